"""Compression options, each reporting size and sparsity before and after so the user sees what it bought.

int8 uses a swappable backend: torch.ao dynamic quantization (fbgemm/x86 kernels) is the fastest on a CPU
today, measured against torchao's int8 configs (see docs/benchmarks.md); torchao is used on GPUs, where
torch.ao's dynamic quantization does not run. torch.ao.quantization is deprecated in torch 2.14, so the
choice lives in one function.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)


class Compression(str, Enum):
    NONE = "none"
    INT8 = "int8"
    FP16 = "fp16"
    PRUNE = "prune"

    @classmethod
    def parse(cls, value: "str | Compression") -> "Compression":
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(c.value for c in cls)
            raise ValueError(f"Unknown compression {value!r}: choose one of {choices}.") from None


COMPRESSION_LABELS = {
    Compression.NONE: "None (fp32)",
    Compression.INT8: "int8 quantization",
    Compression.FP16: "Half precision (GPU)",
    Compression.PRUNE: "Pruning (L1, 20%)",
}
DEFAULT_PRUNE_AMOUNT = 0.2


@dataclass
class CompressionReport:
    method: str
    backend: str
    parameters: int
    size_bytes_before: int
    size_bytes: int
    sparsity: float
    seconds: float
    notice: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        text = (
            f"{self.method}: {self.parameters / 1e6:.1f} M parameters, "
            f"{self.size_bytes_before / 1e6:.0f} MB -> {self.size_bytes / 1e6:.0f} MB"
        )
        if self.sparsity:
            text += f", {self.sparsity:.0%} zero weights"
        return text


def _weight_stats(model: nn.Module) -> tuple[int, int]:
    """(parameter count, bytes) of the weights, quantized ones at their int8 size and tied ones once.

    Computed from shapes: asking a dynamically quantized Linear for its weight unpacks it (seconds for a
    whole model), and this runs after every load.
    """
    count = size = 0
    seen: set[int] = set()
    for module in model.modules():
        if type(module).__module__.startswith("torch.ao.nn.quantized") and hasattr(module, "in_features"):
            weights = module.in_features * module.out_features
            count += weights + module.out_features
            size += weights + 4 * module.out_features  # int8 weights, fp32 bias
            continue
        for tensor in module.parameters(recurse=False):
            key = tensor.data_ptr()
            if key in seen or tensor.is_meta:
                continue
            seen.add(key)
            size += tensor.nelement() * tensor.element_size()
            if tensor.is_floating_point():
                count += tensor.nelement()
    return count, size


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of weights in memory, counting quantized weights at their int8 size and tied weights once."""
    return _weight_stats(model)[1]


def count_parameters(model: nn.Module) -> int:
    return _weight_stats(model)[0]


def linear_sparsity(model: nn.Module) -> float:
    """Share of zero weights in the Linear and Conv2d layers (the ones pruning touches)."""
    from torch import nn

    total = zeros = 0
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            weight = module.weight.detach()
            total += weight.numel()
            zeros += int((weight == 0).sum())
    return zeros / total if total else 0.0


def _tied_to_embeddings(model: nn.Module) -> set[int]:
    """Linear layers sharing weights with an embedding (lm_head): pruning them would prune the embedding too."""
    from torch import nn

    embeddings = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    return {id(m) for m in model.modules() if isinstance(m, nn.Linear) and m.weight.data_ptr() in embeddings}


def int8_backend_for(device: str) -> str:
    return "torch.ao" if device == "cpu" else "torchao"


def _int8_torch_ao(model: nn.Module) -> nn.Module:
    import torch
    from torch import nn

    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine not in engines or torch.backends.quantized.engine == "none":
        torch.backends.quantized.engine = next(e for e in ("x86", "fbgemm", "qnnpack") if e in engines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def _int8_torchao(model: nn.Module) -> nn.Module:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return model


def compress(
    model: nn.Module,
    method: "Compression | str",
    device: str,
    *,
    backend: str | None = None,
    prune_amount: float = DEFAULT_PRUNE_AMOUNT,
) -> tuple[nn.Module, CompressionReport]:
    """Compress in place (the model must already be on `device`); returns the model to use and a report."""
    from torch import nn

    method = Compression.parse(method)
    started = time.perf_counter()
    size_before = model_size_bytes(model)
    notice = None
    used_backend = "torch"
    if method is Compression.INT8:
        used_backend = backend or int8_backend_for(device)
        if used_backend == "torch.ao" and device != "cpu":
            raise ValueError("torch.ao dynamic quantization runs on the CPU only; use the torchao backend on a GPU.")
        model = _int8_torch_ao(model) if used_backend == "torch.ao" else _int8_torchao(model)
    elif method is Compression.FP16:
        if device == "cpu":
            notice = "Half precision needs a GPU (it is slower than fp32 on a CPU); kept fp32."
            method = Compression.NONE
        else:
            model = model.half()
    elif method is Compression.PRUNE:
        from torch.nn.utils import prune

        skip = _tied_to_embeddings(model)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)) and id(module) not in skip:
                prune.l1_unstructured(module, name="weight", amount=prune_amount)
                prune.remove(module, "weight")
        used_backend = "torch.nn.utils.prune"
    model.eval()
    report = CompressionReport(
        method=method.value,
        backend=used_backend,
        parameters=count_parameters(model),
        size_bytes_before=size_before,
        size_bytes=model_size_bytes(model),
        sparsity=linear_sparsity(model) if method is Compression.PRUNE else 0.0,
        seconds=time.perf_counter() - started,
        notice=notice,
    )
    logger.info("Compression %s", report.describe())
    return model, report
