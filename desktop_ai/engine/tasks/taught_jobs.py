"""The engine lane's one job kind for taught classifiers ("taught"): the window sends an action and its
parameters, the lane teaches, corrects, classifies or manages files, and sends plain data back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.store import ProgressCallback
from desktop_ai.engine.tasks.taught_classifiers import TASK_PHOTO, TASK_TEXT, Example, TaughtLibrary


def _examples(rows: list[Any]) -> list[Example]:
    return [Example(str(text), str(label)) for text, label in rows]


def run_taught_job(workspace: Any, params: dict[str, Any], progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None) -> Any:
    """params: action (teach, correct, classify, recognize, read, list, delete, export, import), task, name, ..."""
    action = params.get("action")
    task = params.get("task", TASK_TEXT)
    library = TaughtLibrary(Path(params["folder"]) if params.get("folder") else None)
    if action == "read":  # an examples file (text CSV / JSON lines): read here, not on the window's thread
        from desktop_ai.engine.tasks.taught_text import read_text_examples

        return {"path": params["path"], "examples": [[e.text, e.label] for e in read_text_examples(Path(params["path"]))]}
    if action == "list":
        return [c.describe() | {"report": c.report} for c in library.list(params.get("task"))]
    if action == "delete":
        return str(library.delete(params["name"]))
    if action == "export":
        return str(library.export(params["name"], Path(params["path"])))
    if action == "import":
        return library.import_file(Path(params["path"]), params.get("name"), params.get("replace", False)).describe()
    if task == TASK_PHOTO:
        from desktop_ai.engine.tasks.taught_photos import PhotoTeacher

        photos = PhotoTeacher(workspace.store, library, params.get("model"), cache=workspace.cache)
        if action == "teach":
            return photos.teach(params["name"], _examples(params["examples"]), params.get("add", False), progress, cancel)
        if action == "correct":
            return photos.correct(params["name"], params["text"], params["label"])
        if action == "recognize":
            return photos.run(params["name"], params["paths"], progress, cancel)
    elif task == TASK_TEXT:
        from desktop_ai.engine.tasks.taught_text import TextTeacher

        texts = TextTeacher(workspace.store, library, params.get("model"), params.get("device", "auto"),
                            cache=workspace.cache, language_model=params.get("language_model", True))
        if action == "teach":
            return texts.teach(params["name"], _examples(params.get("examples", [])), params.get("labels"),
                               params.get("sentences"), params.get("add", False), progress, cancel)
        if action == "correct":
            return texts.correct(params["name"], params["text"], params["label"])
        if action == "classify":
            return texts.run(params["name"], params["texts"], progress, cancel)
    raise InvalidInputError(f"Unknown taught-classifier job {action!r} for {task!r}.")
