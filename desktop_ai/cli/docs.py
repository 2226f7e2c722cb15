"""`docs`: collections of the user's own documents, indexed on this machine, searched by words and meaning.

`docs add NAME PATH...` indexes before it returns (progress on stderr, one line per file); `docs update NAME`
reads only new and changed files again; `docs search` needs no language model. JSON output is one object a line.
"""

from __future__ import annotations

import argparse
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from desktop_ai.cli.options import positive_int
from desktop_ai.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    err,
    notes,
    out,
    print_json,
    quiet_libraries,
    read_text_file,
    stop_on_ctrl_c,
)


def _open(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(workspace, index, embedder); the embedding model loads only when something needs it."""
    quiet_libraries(args.verbose)
    from desktop_ai.engine.documents.embedding import DocumentEmbedder
    from desktop_ai.engine.documents.index import DocumentIndex
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace(use_disk_cache=False)
    return workspace, DocumentIndex(), DocumentEmbedder(workspace.store)


_last_line = [0.0]


def _progress_line(state: Any) -> None:
    """One line a file, at most two a second (a large unchanged folder would flood the terminal otherwise)."""
    import time

    now = time.monotonic()
    if state.files_done < state.files_total and now - _last_line[0] < 0.5:
        return
    _last_line[0] = now
    left = state.seconds_left
    err(f"{state.collection}: {state.files_done}/{state.files_total} files, {state.chunks} chunks, "
        f"{state.words:,} words, {state.chunks_per_second:.1f} chunks/s"
        + (f", about {left:.0f} s left" if left is not None and state.files_done < state.files_total else ""))


def _report(args: argparse.Namespace, result: Any) -> int:
    if args.json:
        print_json(result.to_dict())
    else:
        out(f"{result.collection}: {result.added} added, {result.changed} changed, {result.unchanged} unchanged, "
            f"{result.removed} removed, {len(result.failed)} failed; {result.chunks_embedded} chunks embedded in "
            f"{result.seconds:.1f} s")
        for failed in result.failed:
            err(f"failed: {failed.path}: {failed.kind}: {failed.reason}")
    if result.stopped:
        err("stopped: the files indexed so far are kept; `desktop-ai docs update` carries on")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _index(args: argparse.Namespace, sources: list[Path] | None) -> int:
    from desktop_ai.engine.documents.indexing import Indexer

    workspace, index, embedder = _open(args)
    cancel = threading.Event()
    try:
        with ExitStack() as stack:
            if getattr(args, "cluster", None):
                from desktop_ai.engine.documents.cluster_embedding import ClusterEmbedder

                index.collection(args.name)  # an unknown name is said before any worker starts
                err(f"Starting {args.workers} embedding worker(s) on the cluster at {args.cluster}")
                embedder = stack.enter_context(ClusterEmbedder(embedder, args.cluster, args.workers))
                err(f"Embedding on {len(embedder.worker_nodes)} worker(s) ({', '.join(sorted(set(embedder.worker_nodes)))})")
            indexer = Indexer(index, embedder)
            with stop_on_ctrl_c(cancel, "stopping after this file (Ctrl+C again quits)"):
                if sources is not None:
                    result = indexer.add(args.name, sources, progress=_progress_line, cancel=cancel)
                else:
                    result = indexer.update(args.name, progress=_progress_line, cancel=cancel, rebuild=args.rebuild)
        return _report(args, result)
    finally:
        index.close()
        workspace.close()


def cmd_add(args: argparse.Namespace) -> int:
    return _index(args, [Path(p).expanduser() for p in args.paths])


def cmd_update(args: argparse.Namespace) -> int:
    return _index(args, None)


def cmd_list(args: argparse.Namespace) -> int:
    from desktop_ai.engine.documents.index import DocumentIndex

    with DocumentIndex() as index:
        collections = index.collections()
        failures = {c.name: index.failed_files(c) for c in collections}
    if args.json:
        for c in collections:
            print_json({**c.to_dict(), "failed_files": [f.to_dict() for f in failures[c.name]]})
        return EXIT_OK
    if not collections:
        err("No collections yet: `desktop-ai docs add NAME FOLDER` makes one.")
        return EXIT_OK
    out(f"{'name':<20} {'files':>6} {'failed':>6} {'chunks':>7} {'words':>9}  sources")
    for c in collections:
        out(f"{c.name:<20} {c.files:>6} {c.failed:>6} {c.chunks:>7} {c.words:>9,}  {', '.join(c.sources)}")
        for failed in failures[c.name]:
            err(f"failed: {c.name}: {failed.path}: {failed.reason_kind}: {failed.reason}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from desktop_ai.engine.documents.index import DocumentIndex

    with DocumentIndex() as index:
        removed = index.remove_collection(args.name)
    err(f"Removed the collection {removed.name} ({removed.files} files, {removed.chunks} chunks); "
        "the files themselves are untouched.")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from desktop_ai.engine.documents.search import DocumentSearch

    if args.queries is not None:
        if args.query:
            raise CliError("Give either a QUERY or --queries FILE, not both.")
        queries = [line.strip() for line in read_text_file(args.queries).splitlines() if line.strip()]
        if not queries:
            raise CliError(f"{args.queries} has no queries (one a line).")
    elif args.query:
        queries = [args.query]
    else:
        raise CliError("Give a QUERY to search for (or --queries FILE).")
    workspace, index, embedder = _open(args)
    try:
        search = DocumentSearch(index, embedder)
        for query in queries:
            result = search.search([args.name], query, args.top)
            for rank, passage in enumerate(result.passages, 1):
                if args.json:
                    print_json({"query": query, "rank": rank, **passage.to_dict()})
                else:
                    where = f"{passage.path}" + (f", page {passage.page}" if passage.page else "")
                    heading = f" ({passage.heading})" if passage.heading else ""
                    prefix = f"[{query}] " if len(queries) > 1 else ""
                    out(f"{prefix}{rank}. {where}{heading}\n   {' '.join(passage.text.split())[:300]}")
            if not result.passages and not args.json:
                notes([f"nothing found for {query!r}"])
        return EXIT_OK
    finally:
        index.close()
        workspace.close()


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """docs add / list / update / remove / search."""
    docs = commands.add_parser(
        "docs", parents=[common], help="index your own documents and search them",
        description="Collections of your own folders and files (text, Markdown, reStructuredText, HTML, PDF, DOCX, "
        "ODT, EPUB), indexed on this machine and searched by words and meaning together. `chat --docs NAME` "
        "answers from them with sources.",
    )
    actions = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="make a collection (or add to one) and index it")
    add.add_argument("name", metavar="NAME")
    add.add_argument("paths", nargs="+", metavar="PATH", help="folders and files")
    add.add_argument("--json", action="store_true", help="the result as one JSON object")
    add.set_defaults(handler=cmd_add)
    listing = actions.add_parser("list", parents=[common], help="the collections, with their failed files")
    listing.add_argument("--json", action="store_true", help="one JSON object a collection")
    listing.set_defaults(handler=cmd_list)
    update = actions.add_parser("update", parents=[common], help="read new and changed files, drop removed ones")
    update.add_argument("name", metavar="NAME")
    update.add_argument("--rebuild", action="store_true",
                        help="embed everything again (needed after a change of embedding model or chunk size)")
    update.add_argument("--cluster", metavar="ADDRESS",
                        help="embed on a Ray cluster: local, auto, host:port or ray://host:10001 (needs desktop-ai[cluster])")
    update.add_argument("--workers", type=positive_int, default=2, metavar="N",
                        help="embedding workers on the cluster, one model each (default: 2)")
    update.add_argument("--json", action="store_true", help="the result as one JSON object")
    update.set_defaults(handler=cmd_update)
    remove = actions.add_parser("remove", parents=[common], help="forget a collection (the files stay)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=cmd_remove)
    search = actions.add_parser("search", parents=[common], help="find passages, without a language model")
    search.add_argument("name", metavar="NAME")
    search.add_argument("query", nargs="?", metavar="QUERY")
    search.add_argument("--top", type=positive_int, default=5, metavar="K", help="passages per query (default: 5)")
    search.add_argument("--queries", type=Path, metavar="FILE", help="many queries, one a line")
    search.add_argument("--json", action="store_true", help="one JSON object a passage, naming its query")
    search.set_defaults(handler=cmd_search)
