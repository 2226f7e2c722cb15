"""Which runtime runs a causal language model, chosen by its format (or forced by the user), and opening it.

auto: a GGUF file runs on llama.cpp as it is; a transformers folder whose architecture CTranslate2 converts runs
there; anything else (and pruning, which only torch does) on transformers. When llama-cpp-python is missing a
GGUF still runs, on the next runtime, and the user is told once how to get the fast one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import DeviceChoice
from desktop_ai.engine.models.memory import check_fits
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback
from desktop_ai.engine.runtimes import ctranslate2_lm, llama_cpp
from desktop_ai.engine.runtimes.causal_lm import (
    RUNTIME_AUTO,
    RUNTIME_CHOICES,
    RUNTIME_CTRANSLATE2,
    RUNTIME_LLAMA_CPP,
    RUNTIME_TRANSFORMERS,
    CausalLM,
)

logger = logging.getLogger(__name__)

_told_about_llama_cpp = False  # the install hint is said once per engine process


def parse_runtime(value: str | None) -> str:
    value = (value or RUNTIME_AUTO).strip().lower()
    aliases = {"llama-cpp": RUNTIME_LLAMA_CPP, "llamacpp": RUNTIME_LLAMA_CPP, "llama_cpp": RUNTIME_LLAMA_CPP, "ct2": RUNTIME_CTRANSLATE2}
    value = aliases.get(value, value)
    if value not in RUNTIME_CHOICES:
        raise InvalidInputError(f"Unknown runtime {value!r}: choose one of {', '.join(RUNTIME_CHOICES)}.")
    return value


def _install_hint_once() -> list[str]:
    global _told_about_llama_cpp
    if _told_about_llama_cpp:
        return []
    _told_about_llama_cpp = True
    return ["llama-cpp-python is not installed, so this GGUF ran on a slower runtime. " + llama_cpp.INSTALL_HINT]


def choose_runtime(location: ModelLocation, requested: str, compression: Compression) -> tuple[str, list[str]]:
    """(runtime, notices). Cheap: reads a config or a file name, never loads the model."""
    requested = parse_runtime(requested)
    is_gguf = location.gguf_file is not None
    if requested == RUNTIME_LLAMA_CPP:
        if not is_gguf:
            raise InvalidInputError(
                f"llama.cpp runs .gguf files; {location.entry.title} is a transformers folder. "
                "Choose the ctranslate2 or transformers runtime (or auto)."
            )
        if not llama_cpp.available():
            raise ModelUnavailableError("The llama.cpp runtime is not installed. " + llama_cpp.INSTALL_HINT)
        return RUNTIME_LLAMA_CPP, _not_applicable(compression, location)
    if requested == RUNTIME_CTRANSLATE2:
        if compression is Compression.PRUNE:
            raise InvalidInputError("CTranslate2 does not prune: choose the transformers runtime for pruning, or int8.")
        if not is_gguf and ctranslate2_lm.supported_config(location.path) is None:
            raise InvalidInputError(
                f"CTranslate2 cannot convert {location.entry.title} (its architecture is not one it reads, such as "
                "Llama, Mistral, Qwen2, Gemma or GPT-2). Choose the transformers runtime (or auto)."
            )
        return RUNTIME_CTRANSLATE2, []
    if requested == RUNTIME_TRANSFORMERS:
        return RUNTIME_TRANSFORMERS, []
    # auto
    if compression is Compression.PRUNE:
        return RUNTIME_TRANSFORMERS, []
    if is_gguf:
        if llama_cpp.available():
            return RUNTIME_LLAMA_CPP, _not_applicable(compression, location)
        return RUNTIME_TRANSFORMERS, _install_hint_once()
    if ctranslate2_lm.supported_config(location.path) is not None:
        return RUNTIME_CTRANSLATE2, []
    return RUNTIME_TRANSFORMERS, []


def _not_applicable(compression: Compression, location: ModelLocation) -> list[str]:
    if compression in (Compression.NONE, Compression.INT8):
        return []  # a GGUF is already quantized (to int8 or fewer bits): nothing to add
    return [f"{compression.value} does not apply to a GGUF file, which is already quantized; "
            f"{Path(location.gguf_file or '').name} ran as it is."]


def open_causal_lm(
    store: ModelStore,
    location: ModelLocation,
    runtime: str,
    device: DeviceChoice,
    compression: Compression,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CausalLM:
    """The loaded model for this runtime, kept in the store's memory cache (keyed by runtime) for the next job."""
    entry = location.entry
    key = (entry.id, location.revision, runtime, device.device, compression.value)

    def load() -> tuple[CausalLM, int]:
        if runtime == RUNTIME_TRANSFORMERS:
            from transformers import AutoModelForCausalLM

            from desktop_ai.engine.models.compression import model_size_bytes
            from desktop_ai.engine.models.loading import load_model
            from desktop_ai.engine.runtimes.transformers_lm import TransformersLM

            loaded = load_model(store, location, AutoModelForCausalLM, device, compression, progress, cancel)
            lm: CausalLM = TransformersLM(loaded, model_size_bytes(loaded.model))
            return lm, lm.resident_bytes()
        if progress:
            progress(f"Loading {entry.title} ({runtime})", None)
        if runtime == RUNTIME_LLAMA_CPP:
            path = location.path / (location.gguf_file or "")
            shape = llama_cpp.read_shape(path)
            check_fits(llama_cpp.estimate(entry.title, path, device.device, shape))
            lm = llama_cpp.LlamaCppLM(entry.id, entry.title, path, device.device, shape)
        elif runtime == RUNTIME_CTRANSLATE2:
            source = store.gguf_as_folder(location, progress) if location.gguf_file else location.path
            check_fits(ctranslate2_lm.estimate(entry.title, source, compression, device.device))
            from desktop_ai import paths

            target = ctranslate2_lm.converted_folder(paths.cache_dir(), source, location.revision, compression)
            ctranslate2_lm.convert(source, target, compression, entry.title, progress, cancel)
            lm = ctranslate2_lm.CTranslate2LM(entry.id, entry.title, source, target, device.device, compression)
        else:
            raise InvalidInputError(f"Unknown runtime {runtime!r}.")
        return lm, lm.resident_bytes()

    return store.loaded.get_or_load(key, load)
