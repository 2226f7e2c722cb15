"""One interface for the engines that translate with a Marian (opus-mt) model, and the choice between them.

CTranslate2 runs the model converted to int8 (int8_float16 on a GPU) and is the default where it can run;
transformers' MarianMTModel stays as the reference and baseline, for devices CTranslate2 does not drive (mps),
and for the compression options only torch has (pruning). A forced runtime that cannot run is an error with a
reason; under `auto` the app falls back to transformers and says why.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Protocol

from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.loading import LoadedModel

RUNTIME_AUTO = "auto"
RUNTIME_CTRANSLATE2 = "ctranslate2"
RUNTIME_TRANSFORMERS = "transformers"
RUNTIMES = (RUNTIME_AUTO, RUNTIME_CTRANSLATE2, RUNTIME_TRANSFORMERS)


class MarianRuntime(Protocol):
    """A loaded Marian model: its tokenizer (for splitting long sentences) and a batch translate call."""

    name: str
    tokenizer: Any
    device: str
    compression: str  # what the weights run as: "none", "int8", "int8_float16", ...
    size_bytes: int
    notices: list[str]

    def translate(self, texts: list[str], beams: int, max_new_tokens: int) -> list[str]: ...


@dataclass
class TransformersMarian:
    """MarianMTModel.generate, exactly as the baseline calls it."""

    loaded: LoadedModel
    name: str = RUNTIME_TRANSFORMERS
    notices: list[str] = field(default_factory=list)

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def device(self) -> str:
        return self.loaded.device

    @property
    def compression(self) -> str:
        return self.loaded.compression.method

    @property
    def size_bytes(self) -> int:
        return self.loaded.compression.size_bytes

    def translate(self, texts: list[str], beams: int, max_new_tokens: int) -> list[str]:
        import torch

        tokenizer = self.loaded.tokenizer
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=False)
        batch = {k: v.to(self.loaded.device) for k, v in batch.items()}
        with torch.inference_mode():
            generated = self.loaded.model.generate(**batch, num_beams=beams, max_new_tokens=max_new_tokens)
        return [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]


def parse_runtime(value: str | None) -> str:
    value = (value or RUNTIME_AUTO).lower()
    if value not in RUNTIMES:
        raise InvalidInputError(f"Unknown translation runtime {value!r}: choose one of {', '.join(RUNTIMES)}.")
    return value


def ctranslate2_installed() -> bool:
    return importlib.util.find_spec("ctranslate2") is not None


def ctranslate2_device(device: str) -> str | None:
    """The CTranslate2 device for a torch device string, or None where CTranslate2 cannot run (mps)."""
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        return "cuda"
    return None


def choose_runtime(requested: str, device: str, compression: Compression) -> tuple[str, str | None]:
    """(the runtime to use, why auto did not pick CTranslate2, or None)."""
    requested = parse_runtime(requested)
    if requested == RUNTIME_TRANSFORMERS:
        return RUNTIME_TRANSFORMERS, None
    problem = None
    if compression is Compression.PRUNE:
        problem = "pruning runs on the transformers runtime only"
    elif not ctranslate2_installed():
        problem = "CTranslate2 is not installed (pip install ctranslate2)"
    elif ctranslate2_device(device) is None:
        problem = f"CTranslate2 runs on the CPU or a CUDA GPU, not on {device}"
    if problem is None:
        return RUNTIME_CTRANSLATE2, None
    if requested == RUNTIME_CTRANSLATE2:
        error = InvalidInputError if compression is Compression.PRUNE or ctranslate2_installed() else ModelUnavailableError
        raise error(f"Cannot translate with CTranslate2: {problem}. Choose the transformers runtime or auto.")
    return RUNTIME_TRANSFORMERS, f"Translated with transformers: {problem}."
