"""The user's own models: files and folders added from disk, and model folders (their own, LM Studio's,
GPT4All's, Ollama's blobs) listed in place. Nothing is ever copied: the library keeps paths in a small
SQLite file under the user data folder, checks each model when it is added, and gives it an id that
every command and tab accepts (`--model ID`). Forgetting a model never deletes the user's files.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.catalogue import (
    KIND_CAUSAL_LM,
    KIND_IMAGE_CLASSIFIER,
    KIND_SEQUENCE_CLASSIFIER,
    KIND_SPEECH_CTC,
    KIND_TRANSLATION,
    KIND_WHISPER,
    SOURCE_LOCAL,
    TASK_CLASSIFY,
    TASK_GENERATE,
    TASK_RECOGNIZE,
    TASK_TRANSCRIBE,
    TASK_TRANSLATE,
    TASKS,
    ModelEntry,
)
from desktop_ai.engine.models.model_files import is_gguf, kind_from_config

logger = logging.getLogger(__name__)

IMAGE_MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".onnx")
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS added_models (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
    title TEXT NOT NULL, size_bytes INTEGER NOT NULL, labels TEXT, added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_folders (path TEXT PRIMARY KEY, added_at REAL NOT NULL);
"""


@dataclass(frozen=True)
class AddedModel:
    id: str
    task: str
    kind: str
    path: str  # the .gguf / image model file, or the model folder
    title: str
    size_bytes: int
    labels: str | None = None
    folder: str | None = None  # set when listed in place from an added folder

    @property
    def model_ref(self) -> str:
        """What a tab or `--model` passes on: the path, which every task already loads."""
        return self.path

    def entry(self) -> ModelEntry:
        path = Path(self.path)
        is_file = path.is_file() or not path.exists() and path.suffix
        return ModelEntry(
            id=self.path, task=self.task, kind=self.kind, source=SOURCE_LOCAL,
            location=str(path.parent if is_file else path), title=f"{self.title} (yours)",
            size_mb=round(self.size_bytes / 1e6, 1), licence="see the model's own files",
            gguf_file=path.name if self.kind == KIND_CAUSAL_LM and is_file else None,
            description=f"Added from {self.folder or self.path}; never copied, never deleted by the app.",
        )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "model"


def _check_image_model(path: Path, labels: Path | None) -> Path:
    """A TorchScript/state_dict zip or an ONNX protobuf, with a labels file (given, or labels.txt beside it)."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        try:
            import onnx

            onnx.checker.check_model(str(path))
        except ImportError:
            if path.stat().st_size < 16:
                raise ModelUnavailableError(f"{path} is too small to be an ONNX model.") from None
        except Exception as error:
            raise ModelUnavailableError(f"{path} is not a readable ONNX model: {str(error).splitlines()[0]}") from error
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as error:
            raise ModelUnavailableError(f"{path} is not a PyTorch model file (TorchScript or state_dict): {error}") from error
        if not any(n.endswith(("data.pkl", "constants.pkl")) for n in names):
            raise ModelUnavailableError(f"{path} is a zip file but not a PyTorch model.")
    labels = labels or path.with_name("labels.txt")
    if not labels.is_file():
        raise ModelUnavailableError(f"No labels for {path.name}: put a labels.txt (one class per line) beside it, or give --labels.")
    count = len([line for line in labels.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()])
    if count < 2:
        raise ModelUnavailableError(f"The labels file {labels} has {count} label(s); it needs one class name per line.")
    return labels


def _folder_task_and_kind(folder: Path, task: str | None) -> tuple[str, str]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelUnavailableError(
            f"{folder} is not a model folder: it has no config.json (a transformers or CTranslate2 model folder has one)."
        )
    if task is not None:
        return task, kind_from_config(config_file, task)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"{config_file} is not a valid model config: {error}") from error
    architectures = " ".join(config.get("architectures") or []) if isinstance(config, dict) else ""
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if (folder / "model.bin").is_file() and "alignment_heads" in config:
        return TASK_TRANSCRIBE, KIND_WHISPER
    if model_type == "marian" or "MarianMTModel" in architectures:
        return TASK_TRANSLATE, KIND_TRANSLATION
    if "ForCTC" in architectures:
        return TASK_TRANSCRIBE, KIND_SPEECH_CTC
    if "SequenceClassification" in architectures:
        return TASK_CLASSIFY, KIND_SEQUENCE_CLASSIFIER
    if any(word in architectures for word in ("CausalLM", "LMHead")):
        return TASK_GENERATE, KIND_CAUSAL_LM
    raise ModelUnavailableError(f"{folder}: cannot tell which job this model does ({architectures or model_type}); give --task.")


def inspect(path: Path, task: str | None = None, labels: Path | None = None) -> tuple[str, str, str | None]:
    """(task, kind, labels path) of a model on disk, or a ModelUnavailableError saying what is wrong."""
    if task is not None and task not in TASKS:
        raise ModelUnavailableError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    if not path.exists():
        raise ModelUnavailableError(f"{path} does not exist.")
    if path.is_file():
        if is_gguf(path):
            if task not in (None, TASK_GENERATE):
                raise ModelUnavailableError(f"{path.name} is a GGUF language model: it can only generate text.")
            return TASK_GENERATE, KIND_CAUSAL_LM, None
        if path.suffix.lower() == ".gguf":
            raise ModelUnavailableError(f"{path} is named .gguf but is not a GGUF file (it does not start with 'GGUF').")
        if path.suffix.lower() in IMAGE_MODEL_SUFFIXES:
            if task not in (None, TASK_RECOGNIZE):
                raise ModelUnavailableError(f"{path.name} is an image model: use it to recognize images.")
            return TASK_RECOGNIZE, KIND_IMAGE_CLASSIFIER, str(_check_image_model(path, labels))
        raise ModelUnavailableError(
            f"{path} is not a model: add a .gguf file, a TorchScript (.pt/.ts) or ONNX image model, or a model folder."
        )
    found_task, kind = _folder_task_and_kind(path, task)
    return found_task, kind, None


def scan_folder(folder: Path) -> list[AddedModel]:
    """Every model in a folder, in place: .gguf files (LM Studio, GPT4All), Ollama's manifests and blobs,
    and model folders with a config.json. Unreadable ones are skipped (and logged), never a failure."""
    found: list[AddedModel] = []
    if not folder.is_dir():
        return found
    seen: set[Path] = set()
    ollama_roots = [p.parent for p in [folder / "manifests", *folder.rglob("manifests")]
                    if p.is_dir() and (p.parent / "blobs").is_dir()]
    manifests = [(root, m) for root in dict.fromkeys(ollama_roots) for m in sorted((root / "manifests").rglob("*"))]
    for root, manifest in manifests:
        if not manifest.is_file():
            continue
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        for layer in layers:
            if layer.get("mediaType") == OLLAMA_MODEL_LAYER:
                blob = root / "blobs" / str(layer.get("digest", "")).replace(":", "-")
                if is_gguf(blob):
                    name = f"{manifest.parent.name}:{manifest.name}"
                    seen.add(blob)
                    found.append(AddedModel(f"ollama-{_slug(name)}", TASK_GENERATE, KIND_CAUSAL_LM, str(blob),
                                            f"{name} (Ollama)", blob.stat().st_size, folder=str(folder)))
    for path in sorted(folder.rglob("*")):
        if path in seen or "blobs" in path.relative_to(folder).parts or "manifests" in path.relative_to(folder).parts:
            continue
        try:
            if path.is_file() and path.suffix.lower() == ".gguf" and is_gguf(path):
                found.append(AddedModel(f"file-{_slug(path.stem)}", TASK_GENERATE, KIND_CAUSAL_LM, str(path),
                                        path.name, path.stat().st_size, folder=str(folder)))
            elif path.is_dir() and (path / "config.json").is_file():
                task, kind = _folder_task_and_kind(path, None)
                found.append(AddedModel(f"folder-{_slug(path.name)}", task, kind, str(path), path.name, _size(path),
                                        folder=str(folder)))
        except (ModelUnavailableError, OSError) as error:
            logger.info("Skipping %s in %s: %s", path, folder, error)
    return found


class ModelLibrary:
    """The added models and folders, in SQLite (one small file, safe to open from the window and the CLI)."""

    def __init__(self, db_path: Path | None = None) -> None:
        if db_path is None:
            from desktop_ai import paths

            db_path = paths.data_dir() / "models.sqlite"
        self.db_path = db_path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def add(self, path: Path, task: str | None = None, labels: Path | None = None) -> AddedModel:
        """Check a model file or folder and remember it under a new id (returned)."""
        path = path.expanduser().absolute()  # not resolve(): a Hub snapshot's symlink keeps its file name
        for model in self.added():
            if Path(model.path) == path:
                return model
        task, kind, labels_path = inspect(path, task, labels)
        taken = {m.id for m in self.all_models()}
        base = f"my-{_slug(path.stem if path.is_file() else path.name)}"
        model_id, n = base, 2
        while model_id in taken:
            model_id, n = f"{base}-{n}", n + 1
        model = AddedModel(model_id, task, kind, str(path), path.name, _size(path), labels_path)
        with self._connect() as db:
            db.execute("INSERT INTO added_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (model.id, task, kind, model.path, model.title, model.size_bytes, labels_path, time.time()))
        logger.info("Added model %s: %s (%s)", model.id, path, task)
        return model

    def added(self) -> list[AddedModel]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM added_models ORDER BY added_at").fetchall()
        return [AddedModel(r["id"], r["task"], r["kind"], r["path"], r["title"], r["size_bytes"], r["labels"]) for r in rows]

    def add_folder(self, folder: Path) -> list[AddedModel]:
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            raise ModelUnavailableError(f"{folder} is not a folder.")
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO model_folders VALUES (?, ?)", (str(folder), time.time()))
        return scan_folder(folder)

    def folders(self) -> list[Path]:
        with self._connect() as db:
            return [Path(r["path"]) for r in db.execute("SELECT path FROM model_folders ORDER BY added_at")]

    def forget(self, model_id: str) -> AddedModel:
        """Forget an added model or folder; the files stay where they are."""
        for model in self.all_models():
            if model.id == model_id or model.path == model_id:
                with self._connect() as db:
                    if model.folder:
                        db.execute("DELETE FROM model_folders WHERE path = ?", (model.folder,))
                    else:
                        db.execute("DELETE FROM added_models WHERE id = ?", (model.id,))
                return model
        raise ModelUnavailableError(f"{model_id!r} is not one of your added models.")

    def all_models(self) -> list[AddedModel]:
        """Added models and every model in the added folders (scanned now, so new files appear)."""
        models = self.added()
        for folder in self.folders():
            models.extend(scan_folder(folder))
        return models

    def find(self, ref: str) -> AddedModel | None:
        for model in self.all_models():
            if ref in (model.id, model.path):
                return model
        return None


def expand_model_ref(ref: str | None) -> str | None:
    """`--model ID` of an added model becomes its path; anything else is returned as it is."""
    from desktop_ai.engine.models.catalogue import find_entry

    if not ref or "/" in ref or ref.startswith((".", "~")) or find_entry(ref) is not None:
        return ref
    try:
        model = ModelLibrary().find(ref)
    except sqlite3.Error as error:
        logger.warning("The model library could not be read: %s", error)
        return ref
    return model.model_ref if model is not None else ref
