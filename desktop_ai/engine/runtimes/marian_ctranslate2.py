"""opus-mt (MarianMT) through CTranslate2: converted once to int8 into the user cache, then loaded from there.

CTranslate2 runs the same model several times faster than `MarianMTModel.generate` on a CPU (see
docs/benchmarks.md). The conversion (CTranslate2's transformers converter, a few seconds for opus-mt) is written
into a scratch folder beside its place, a marker file is written last, and only then is it renamed into place:
a folder without the marker (a crash, a full disk) or one that will not load is converted again, never used.
The weights are stored as int8 once; the compute type is picked at load (int8_float32 on the CPU, int8_float16,
or float16 for half precision, on a GPU), so one conversion serves every device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_ai import paths
from desktop_ai.engine.errors import CancelledError, ModelUnavailableError
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback
from desktop_ai.engine.runtimes.marian_runtime import RUNTIME_CTRANSLATE2, ctranslate2_device

logger = logging.getLogger(__name__)

CONVERSION_VERSION = 1  # raise when the conversion changes, so that older folders are converted again
STORED_QUANTIZATION = "int8"
MARKER = "desktop_ai_conversion.json"


def conversion_folder(location: ModelLocation) -> Path:
    """Where this model's conversion lives: one folder per model files (the revision changes with them)."""
    digest = hashlib.sha256(f"{location.entry.id}\0{location.revision}\0{location.path}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(location.entry.id).name or "marian")[-60:]
    return paths.cache_dir() / "ctranslate2" / "marian" / f"{name}-{digest}-{STORED_QUANTIZATION}-v{CONVERSION_VERSION}"


def is_complete(folder: Path) -> bool:
    """A conversion that finished: its marker says so and the weights are there."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("version") == CONVERSION_VERSION
        and marker.get("quantization") == STORED_QUANTIZATION
        and (folder / "model.bin").is_file()
        and (folder / "model.bin").stat().st_size == marker.get("model_bytes")
    )


def convert(location: ModelLocation, progress: ProgressCallback | None = None) -> Path:
    """Convert the model into its cache folder (replacing an incomplete one); returns the folder."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    folder = conversion_folder(location)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress(f"Converting {location.entry.title} to CTranslate2 int8 (once; it is kept in the cache)", None)
    logger.info("Converting %s to CTranslate2 (%s) in %s", location.entry.id, STORED_QUANTIZATION, folder)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as scratch:
        built = Path(scratch) / "model"
        try:
            TransformersConverter(str(location.path)).convert(str(built), quantization=STORED_QUANTIZATION, force=True)
        except Exception as error:
            raise ModelUnavailableError(
                f"{location.entry.title} could not be converted to CTranslate2: {error}. "
                "Choose the transformers runtime for it."
            ) from error
        marker = {
            "version": CONVERSION_VERSION, "quantization": STORED_QUANTIZATION, "source": str(location.path),
            "model_id": location.entry.id, "revision": location.revision, "ctranslate2": ctranslate2.__version__,
            "model_bytes": (built / "model.bin").stat().st_size,
        }
        (built / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        try:
            os.rename(built, folder)
        except OSError:
            if not is_complete(folder):  # not another process finishing the same conversion first
                raise
    return folder


def converted_folder(location: ModelLocation, progress: ProgressCallback | None = None) -> tuple[Path, bool]:
    """(the conversion, whether it was made just now)."""
    folder = conversion_folder(location)
    if is_complete(folder):
        return folder, False
    if folder.exists():
        logger.warning("The CTranslate2 conversion in %s is incomplete; converting again", folder)
    return convert(location, progress), True


def compute_type(device: str, compression: Compression) -> str:
    if device == "cpu":
        return "int8_float32"
    return "float16" if compression is Compression.FP16 else "int8_float16"


def threads() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass
class CTranslate2Marian:
    translator: Any  # ctranslate2.Translator
    tokenizer: Any  # the model's MarianTokenizer, from its own folder
    device: str
    compression: str  # the compute type CTranslate2 runs
    folder: Path
    size_bytes: int
    min_new_tokens: int = 0  # from the model's generation_config (the bench's stand-ins fix their length)
    name: str = RUNTIME_CTRANSLATE2
    notices: list[str] = field(default_factory=list)

    def translate(self, texts: list[str], beams: int, max_new_tokens: int) -> list[str]:
        tokenizer = self.tokenizer
        source = [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
        results = self.translator.translate_batch(
            source, beam_size=beams, max_decoding_length=max_new_tokens,
            min_decoding_length=min(self.min_new_tokens, max_new_tokens), max_input_length=0,
        )
        return [
            tokenizer.decode(tokenizer.convert_tokens_to_ids(result.hypotheses[0]), skip_special_tokens=True).strip()
            for result in results
        ]


def _open(folder: Path, device: str, compute: str) -> Any:
    import ctranslate2

    return ctranslate2.Translator(str(folder), device=device, compute_type=compute, intra_threads=threads())


def load_ctranslate2_marian(
    store: ModelStore,
    location: ModelLocation,
    device: str,
    compression: Compression,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CTranslate2Marian:
    """Convert once, load, and keep it loaded (shared with other jobs like every loaded model)."""
    target = ctranslate2_device(device)
    if target is None:
        raise ModelUnavailableError(f"CTranslate2 cannot run on {device}.")
    compute = compute_type(target, compression)
    key = (location.entry.id, location.revision, "ctranslate2-marian", target, compute)

    def load() -> tuple[CTranslate2Marian, int]:
        from transformers import AutoTokenizer, GenerationConfig

        folder, fresh = converted_folder(location, progress)
        if cancel is not None and cancel.is_set():
            raise CancelledError("Stopped before the model was loaded.")
        if progress is not None:
            progress(f"Loading {location.entry.title} (CTranslate2, {compute})", None)
        try:
            translator = _open(folder, target, compute)
        except Exception as error:
            if "out of memory" in str(error).lower() or fresh:
                raise
            logger.warning("The CTranslate2 conversion in %s did not load (%s); converting again", folder, error)
            folder = convert(location, progress)
            translator = _open(folder, target, compute)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location.path)
        except Exception as error:
            raise ModelUnavailableError(f"The tokenizer of {location.entry.title} could not be loaded: {error}.") from error
        try:
            minimum = int(GenerationConfig.from_pretrained(location.path).min_new_tokens or 0)
        except OSError:  # no generation_config.json
            minimum = 0
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        logger.info("Loaded %s with CTranslate2 on %s (%s)", location.entry.id, target, translator.compute_type)
        runtime = CTranslate2Marian(translator, tokenizer, target, str(translator.compute_type), folder, size, minimum)
        return runtime, size

    return store.loaded.get_or_load(key, load)
