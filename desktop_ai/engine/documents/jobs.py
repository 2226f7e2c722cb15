"""The documents jobs of the engine process (the window runs them in its jobs lane, never on the GUI thread):
add or update a collection with progress after every file, search, and list the collections."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _open(workspace: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    from desktop_ai.engine.documents.embedding import DocumentEmbedder
    from desktop_ai.engine.documents.index import DocumentIndex

    index_path = params.get("index")
    return DocumentIndex(Path(index_path) if index_path else None), DocumentEmbedder(workspace.store)


def docs_update(workspace: Any, params: dict[str, Any], cb: Any) -> Any:
    """params: name, paths (to add; none for an Update), rebuild. Each file's progress is a partial
    {"progress": IndexProgress dict}; the result is the UpdateResult dict."""
    from desktop_ai.engine.documents.indexing import Indexer

    index, embedder = _open(workspace, params)
    try:
        indexer = Indexer(index, embedder)

        def progress(state: Any) -> None:
            cb.partial({"progress": state.to_dict()})
            cb.progress(f"{state.collection}: {state.files_done} of {state.files_total} files",
                        state.files_done / state.files_total if state.files_total else None)

        paths = [Path(p) for p in params.get("paths") or []]
        if paths:
            result = indexer.add(params["name"], paths, progress=progress, cancel=cb.cancel)
        else:
            result = indexer.update(params["name"], progress=progress, cancel=cb.cancel,
                                    rebuild=bool(params.get("rebuild")))
        return result.to_dict()
    finally:
        index.close()


def docs_search(workspace: Any, params: dict[str, Any], cb: Any) -> Any:
    from desktop_ai.engine.documents.search import DocumentSearch

    index, embedder = _open(workspace, params)
    try:
        result = DocumentSearch(index, embedder).search(params["collections"], params["query"], params.get("top_k", 5))
        return {"query": result.query, "seconds": result.seconds, "passages": [p.to_dict() for p in result.passages]}
    finally:
        index.close()


def docs_list(workspace: Any, params: dict[str, Any], cb: Any) -> Any:
    index, _ = _open(workspace, params)
    try:
        return [{**c.to_dict(), "failed_files": [f.to_dict() for f in index.failed_files(c)]}
                for c in index.collections()]
    finally:
        index.close()


def docs_remove(workspace: Any, params: dict[str, Any], cb: Any) -> Any:
    index, _ = _open(workspace, params)
    try:
        return index.remove_collection(params["name"]).to_dict()
    finally:
        index.close()


DOCUMENT_JOB_KINDS = {"docs_update": docs_update, "docs_search": docs_search, "docs_list": docs_list,
                      "docs_remove": docs_remove}
