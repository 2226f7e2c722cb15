"""`models`: the catalogue and what is on this machine."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from desktop_ai.cli.options import TASK_CHOICES
from desktop_ai.cli.output import EXIT_OK, err, out, print_json

logger = logging.getLogger(__name__)


def cmd_models(args: argparse.Namespace) -> int:
    """What is known, what is ready offline, and what would need a download: before choosing, not after."""
    from desktop_ai.engine.models.catalogue import CATALOGUE, TASKS
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace(use_disk_cache=False)
    try:
        defaults = {task: workspace.store.default_model(task) for task in TASKS}
        rows = [
            {
                "id": entry.id,
                "task": entry.task,
                "title": entry.title,
                "size_mb": entry.size_mb,
                "licence": entry.licence,
                "source": entry.source,
                "location": entry.location,
                "availability": workspace.store.availability(entry),
                "default": defaults.get(entry.task) == entry.id,
            }
            for entry in CATALOGUE
            if args.task is None or entry.task == args.task
        ]
    finally:
        workspace.close()
    if args.json:
        for row in rows:
            print_json(row)
        return EXIT_OK
    columns = ("id", "task", "size", "licence", "source", "availability", "title")
    table = [
        (("* " if row["default"] else "  ") + row["id"], row["task"], f"{row['size_mb']:.0f} MB", row["licence"],
         row["source"], row["availability"], row["title"])
        for row in rows
    ]
    header = ("  " + columns[0],) + columns[1:]
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i]) for i in range(len(header))]
    for line in [header, *table]:
        out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    out("\n* the default model of its task")
    return EXIT_OK


def _inventory():
    from desktop_ai import paths
    from desktop_ai.engine.models.inventory import Inventory
    from desktop_ai.engine.models.store import ModelStore

    return Inventory(ModelStore(paths.cache_dir() / "converted-models"))


def cmd_models_list(args: argparse.Namespace) -> int:
    """Every model with its state, sizes, where its files are and whether it fits this machine."""
    rows = _inventory().rows(args.task)
    if args.json:
        for row in rows:
            print_json(row.as_dict())
        return EXIT_OK
    table = [(r.id, r.task, r.state + (f" ({r.kept_mb:.0f} MB kept)" if r.kept_mb else ""),
              f"{r.size_on_disk_mb:.0f} MB" if r.size_on_disk_mb else "-",
              f"{r.download_mb:.0f} MB" if r.download_mb else "-", f"{r.memory_mb:.0f} MB", r.licence, r.where)
             for r in rows]
    header = ("id", "task", "state", "on disk", "download", "memory", "licence", "where")
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i]) for i in range(len(header))]
    for line in [header, *table]:
        out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    if rows:
        out(f"\nmemory is an estimate; this machine: {rows[0].fits}")
    return EXIT_OK


def cmd_models_download(args: argparse.Namespace) -> int:
    from desktop_ai.cli.output import progress_for

    progress = progress_for(args)
    inventory = _inventory()
    result = inventory.download(args.id, lambda event: progress(f"{args.id}: {event.describe()}", event.fraction))
    progress.finish()
    if args.json:
        print_json({"id": args.id, "path": str(result.path), "commit": result.commit,
                    "downloaded_bytes": result.downloaded_bytes, "resumed_bytes": result.resumed_bytes})
    else:
        out(f"{args.id} downloaded to {result.path} ({result.downloaded_bytes / 1e6:.1f} MB fetched"
            + (f", {result.resumed_bytes / 1e6:.1f} MB resumed" if result.resumed_bytes else "") + ")")
    return EXIT_OK


def cmd_models_remove(args: argparse.Namespace) -> int:
    message, freed = _inventory().remove(args.id)
    if args.json:
        print_json({"id": args.id, "freed_bytes": freed, "message": message})
    else:
        out(message)
    return EXIT_OK


def cmd_models_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from desktop_ai.engine.models.library import ModelLibrary

    library = ModelLibrary()
    path = Path(args.path).expanduser()
    if path.is_dir() and args.folder:
        found = library.add_folder(path)
        if args.json:
            for model in found:
                print_json({"id": model.id, "task": model.task, "path": model.path})
        else:
            for model in found:
                out(f"{model.id}\t{model.task}\t{model.path}")
            err(f"note: {len(found)} model(s) listed in place from {path}; re-scanned each time")
        return EXIT_OK
    model = library.add(path, args.task, Path(args.labels) if args.labels else None)
    if args.json:
        print_json({"id": model.id, "task": model.task, "kind": model.kind, "path": model.path, "labels": model.labels})
    else:
        out(model.id)
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """models [list|download|remove|add]."""
    models = commands.add_parser("models", parents=[common], help="list, download, add and remove models",
                                 description="List the model catalogue; * marks the default of each task. "
                                 "Subcommands: list, download ID, remove ID, add PATH.")
    models.add_argument("--task", choices=TASK_CHOICES, help="only the models of this task")
    models.add_argument("--json", action="store_true", help="one JSON object a line on stdout")
    models.set_defaults(handler=cmd_models)
    actions = models.add_subparsers(dest="models_command", metavar="{list,download,remove,add}")
    listing = actions.add_parser("list", parents=[common], help="every model: state, sizes, where, memory, fits")
    listing.add_argument("--task", choices=TASK_CHOICES, help="only the models of this task")
    listing.add_argument("--json", action="store_true", help="one JSON object a line on stdout")
    listing.set_defaults(handler=cmd_models_list)
    get = actions.add_parser("download", parents=[common], help="download a catalogue model (resumable, hash-checked)")
    get.add_argument("id", help="catalogue id, see `models list`")
    get.add_argument("--json", action="store_true", help="a JSON object on stdout")
    get.set_defaults(handler=cmd_models_download)
    remove = actions.add_parser("remove", parents=[common], help="delete a download, or forget an added model")
    remove.add_argument("id")
    remove.add_argument("--json", action="store_true", help="a JSON object on stdout")
    remove.set_defaults(handler=cmd_models_remove)
    add = actions.add_parser("add", parents=[common], help="add a model file or folder from disk; prints its id")
    add.add_argument("path", help="a .gguf file, a transformers or CTranslate2 folder, or a .pt/.ts/.onnx image model")
    add.add_argument("--task", choices=TASK_CHOICES, help="the job it does (default: read from the model)")
    add.add_argument("--labels", metavar="FILE", help="labels of an image model (default: labels.txt beside it)")
    add.add_argument("--folder", action="store_true", help="list every model in this folder in place (LM Studio, GPT4All, Ollama)")
    add.add_argument("--json", action="store_true", help="one JSON object a line on stdout (one a model with --folder)")
    add.set_defaults(handler=cmd_models_add)
