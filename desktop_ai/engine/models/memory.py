"""The memory guard: before a model loads, estimate what it will take and refuse with numbers when it will not
fit, instead of letting the machine swap. Estimates are read from file sizes and configs, never by loading.

DESKTOP_AI_MEMORY_BUDGET_MB sets the budget by hand (tests, or a user who wants to keep memory for other work).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from desktop_ai.engine.errors import ModelTooLargeError

logger = logging.getLogger(__name__)

BUDGET_ENV = "DESKTOP_AI_MEMORY_BUDGET_MB"
OVERHEAD_BYTES = 150 * 1024**2  # the runtime's own buffers, scratch space and the tokenizer
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
BYTES_PER_DTYPE = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


@dataclass(frozen=True)
class KVShape:
    """Enough of a transformer's shape to size its key/value cache."""

    layers: int
    kv_heads: int
    head_dim: int
    context_length: int

    def kv_bytes(self, context: int, bytes_per_value: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * context * bytes_per_value


@dataclass
class MemoryEstimate:
    what: str  # e.g. "SmolLM2 135M on llama.cpp"
    weights_bytes: int
    context_bytes: int
    context_tokens: int
    device: str = "cpu"
    alternatives: list[str] = field(default_factory=list)  # what would fit, in words

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.context_bytes + OVERHEAD_BYTES


def gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB" if value < 10e9 else f"{value / 1e9:.1f} GB"


def free_ram_bytes() -> int:
    budget = os.environ.get(BUDGET_ENV, "").strip()
    if budget:
        try:
            return int(float(budget) * 1024**2)
        except ValueError:
            logger.warning("%s=%r is not a number of MB; ignored", BUDGET_ENV, budget)
    return int(psutil.virtual_memory().available)


def free_vram_bytes(device: str) -> int | None:
    """Free memory on a CUDA device, or None when there is none (torch is imported only when asked for a GPU)."""
    if not device.startswith("cuda"):
        return None
    budget = os.environ.get(BUDGET_ENV, "").strip()
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except Exception:  # a broken driver should not stop a CPU fallback
        return None
    if budget:
        try:
            return min(int(free), int(float(budget) * 1024**2))
        except ValueError:
            pass
    return int(free)


def check_fits(estimate: MemoryEstimate) -> None:
    """Raise ModelTooLargeError with the numbers and what would fit, when the estimate exceeds free memory."""
    on_gpu = estimate.device.startswith("cuda")
    free = free_vram_bytes(estimate.device) if on_gpu else None
    where = f"GPU memory on {estimate.device}" if free is not None else "RAM"
    if free is None:
        free = free_ram_bytes()
    need = estimate.total_bytes
    logger.info("Memory guard: %s needs about %s, %s free (%s)", estimate.what, gb(need), gb(free), where)
    if need <= free:
        return
    message = (
        f"{estimate.what} needs about {gb(need)} ({gb(estimate.weights_bytes)} of weights, "
        f"{gb(estimate.context_bytes)} for a {estimate.context_tokens:,}-token context, {gb(OVERHEAD_BYTES)} runtime), "
        f"but only {gb(free)} of {where} is free; loading it would make the machine swap, so it was not loaded."
    )
    if estimate.alternatives:
        message += " What would fit: " + "; ".join(estimate.alternatives) + "."
    else:
        message += " Close other programs or choose a smaller model."
    raise ModelTooLargeError(message)


def weights_bytes_on_disk(path: Path) -> int:
    """Bytes of the weight files of a folder (or of one file)."""
    if path.is_file():
        return path.stat().st_size
    files = [p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
    if any(p.suffix == ".safetensors" for p in files):  # a folder with both keeps the .bin only as a fallback
        files = [p for p in files if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in files)


def read_config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(config.get("text_config"), dict):  # multimodal configs keep the language model inside
        config = {**config, **config["text_config"]}
    return config if isinstance(config, dict) else {}


def kv_shape_from_config(config: dict[str, Any]) -> KVShape | None:
    try:
        layers = int(config.get("num_hidden_layers") or config.get("n_layer"))
        heads = int(config.get("num_attention_heads") or config.get("n_head"))
        hidden = int(config.get("hidden_size") or config.get("n_embd"))
    except (TypeError, ValueError):
        return None
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    context = int(config.get("max_position_embeddings") or config.get("n_positions") or 2048)
    return KVShape(layers, kv_heads, head_dim, context)


def source_bytes_per_parameter(config: dict[str, Any]) -> int:
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32").removeprefix("torch.")
    return BYTES_PER_DTYPE.get(dtype, 4)


def gguf_kv_shape(path: Path) -> KVShape | None:
    """Read a GGUF's shape from its metadata (memory-mapped, the tensors are not read)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path), "r")
        fields = reader.fields

        def value(name: str) -> Any:
            item = fields.get(name)
            if item is None:
                return None
            return item.contents()

        arch = value("general.architecture")
        layers = value(f"{arch}.block_count")
        heads = value(f"{arch}.attention.head_count")
        kv_heads = value(f"{arch}.attention.head_count_kv") or heads
        hidden = value(f"{arch}.embedding_length")
        key_length = value(f"{arch}.attention.key_length")
        context = value(f"{arch}.context_length") or 2048
        if isinstance(kv_heads, list):  # per-layer counts in some architectures
            kv_heads = max(kv_heads)
        if not (layers and heads and hidden):
            return None
        return KVShape(int(layers), int(kv_heads), int(key_length or int(hidden) // int(heads)), int(context))
    except Exception as error:  # an unreadable header is reported by the loader itself
        logger.debug("Could not read the GGUF header of %s: %s", path, error)
        return None


def gguf_parameters(path: Path) -> int | None:
    """How many weights a GGUF holds, from its tensor table (memory-mapped, nothing is dequantized)."""
    try:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(str(path), "r").tensors))
    except Exception as error:
        logger.debug("Could not count the parameters of %s: %s", path, error)
        return None


TRANSFORMERS_BYTES_PER_PARAMETER = {"none": 4, "prune": 4, "fp16": 2, "int8": 1.3}  # int8 keeps embeddings in fp32
TRANSFORMERS_CONTEXT_TOKENS = 4096


def transformers_estimate(title: str, folder: Path, compression: str, device: str,
                          gguf_file: str | None = None) -> MemoryEstimate:
    """Parameters x bytes each after loading in float32 (and compressing), plus a float32 cache for the context."""
    if gguf_file:
        parameters = gguf_parameters(folder / gguf_file) or (folder / gguf_file).stat().st_size * 2
        shape = gguf_kv_shape(folder / gguf_file)
    else:
        config = read_config(folder)
        parameters = weights_bytes_on_disk(folder) // source_bytes_per_parameter(config)
        shape = kv_shape_from_config(config)
    per_parameter = TRANSFORMERS_BYTES_PER_PARAMETER.get(compression, 4)
    if compression == "fp16" and not device.startswith("cuda"):
        per_parameter = 4
    context = min(shape.context_length, TRANSFORMERS_CONTEXT_TOKENS) if shape else 0
    kv = shape.kv_bytes(context, 4 if per_parameter != 2 else 2) if shape else 0
    alternatives = []
    if compression != "int8":
        alternatives.append(f"int8 compression (about {gb(parameters * 1.3 + kv + OVERHEAD_BYTES)})")
    if gguf_file:
        alternatives.append(f"the llama.cpp runtime, which runs the GGUF as it is (about {gb((folder / gguf_file).stat().st_size + kv // 2 + OVERHEAD_BYTES)})")
    else:
        alternatives.append("the CTranslate2 runtime with int8, or a GGUF of the same model on llama.cpp")
    if not device.startswith("cuda"):
        alternatives.append("the GPU, if this machine has one with enough memory")
    return MemoryEstimate(f"{title} on transformers ({compression})", int(parameters * per_parameter), kv, context,
                          device, alternatives)
