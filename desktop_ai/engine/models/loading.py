"""Turning a catalogue entry into a ready transformers model: locate, check it fits in memory, load (a GGUF only
when the transformers runtime is forced: it is converted once), place on a device, compress, and keep it loaded. Shared by every transformers-based task so all of them behave the same.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.models.compression import Compression, CompressionReport, compress, model_size_bytes
from desktop_ai.engine.models.catalogue import ModelEntry
from desktop_ai.engine.models.devices import DeviceChoice, cpu_fallback_notice, is_out_of_memory, release_gpu_memory
from desktop_ai.engine.errors import CancelledError, ModelUnavailableError
from desktop_ai.engine.models.memory import weights_bytes_on_disk
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    location: ModelLocation
    device: str
    compression: CompressionReport
    notices: list[str] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        return self.location.entry.id


def load_pretrained(
    store: ModelStore,
    entry: ModelEntry,
    auto_class: Any,
    device: DeviceChoice,
    compression: Compression,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """Returns the already-loaded model when the same one was asked for before."""
    location = store.locate(entry, progress, cancel)
    key = (entry.id, location.revision, auto_class.__name__, device.device, compression.value)

    def load() -> tuple[LoadedModel, int]:
        loaded = load_model(store, location, auto_class, device, compression, progress, cancel)
        return loaded, model_size_bytes(loaded.model)

    return store.loaded.get_or_load(key, load, weights_bytes_on_disk(location.path), device.is_gpu)


def load_model(
    store: ModelStore,
    location: ModelLocation,
    auto_class: Any,
    device: DeviceChoice,
    compression: Compression,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> LoadedModel:
    """Load without the memory cache (callers that keep their own wrapper cached use this)."""
    import torch
    from transformers import AutoTokenizer

    from desktop_ai.engine.models.memory import check_fits, transformers_estimate

    check_fits(transformers_estimate(location.entry.title, location.path, compression.value, device.device, location.gguf_file))
    folder = store.gguf_as_folder(location, progress) if location.gguf_file else location.path
    if cancel is not None and cancel.is_set():
        raise CancelledError("Stopped before the model was loaded.")
    if progress:
        progress(f"Loading {location.entry.title}", None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = auto_class.from_pretrained(folder, dtype=torch.float32)
    except Exception as error:
        raise ModelUnavailableError(
            f"{location.entry.title} could not be loaded from {folder}: {error}. "
            "The files may be incomplete or corrupt: download it again or pick another folder."
        ) from error
    model.eval()
    notices: list[str] = []
    target = device.device
    if target != "cpu":
        try:
            model.to(target)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            release_gpu_memory()
            model.to("cpu")
            target = "cpu"
            notices.append(cpu_fallback_notice(device.device))
            logger.warning("Out of GPU memory while loading %s; using the CPU", location.entry.id)
    model, report = compress(model, compression, target)
    if report.notice:
        notices.append(report.notice)
    logger.info("Loaded %s on %s (%s)", location.entry.id, target, report.describe())
    return LoadedModel(model, tokenizer, location, target, report, notices)


def run_with_cpu_fallback(
    store: ModelStore,
    entry: ModelEntry,
    auto_class: Any,
    device: DeviceChoice,
    compression: Compression,
    job: Any,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Any, LoadedModel, list[str]]:
    """Run `job(loaded)`; if the GPU runs out of memory, reload on the CPU, run once more and say so."""
    loaded = load_pretrained(store, entry, auto_class, device, compression, progress, cancel)
    notices = list(loaded.notices)
    try:
        return job(loaded), loaded, notices
    except Exception as error:
        if loaded.device == "cpu" or not is_out_of_memory(error):
            raise
        logger.warning("Out of GPU memory running %s on %s; retrying on the CPU", entry.id, loaded.device)
    import torch

    store.loaded.drop(lambda key: key[0] == entry.id and key[3] == loaded.device)
    del loaded
    release_gpu_memory()
    cpu = DeviceChoice("cpu", torch.float32, "GPU out of memory")
    cpu_compression = Compression.NONE if compression is Compression.FP16 else compression
    loaded = load_pretrained(store, entry, auto_class, cpu, cpu_compression, progress, cancel)
    notices.append(cpu_fallback_notice(device.device))
    return job(loaded), loaded, notices
