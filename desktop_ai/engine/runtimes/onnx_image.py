"""ONNX Runtime for image classifiers on the CPU (installed already, with faster-whisper).

A PyTorch model is exported once into the user's cache (named by the model's revision, written atomically),
then every load opens that file and checks its logits against PyTorch's on fixed inputs before trusting it:
an export that went wrong is a fallback to PyTorch with a notice, never wrong labels. The session uses one
intra-op thread per core and takes any batch size, so many photos can go through in one call.

Quantized int8 (static QDQ) is not offered for EfficientNet-Lite0: see `docs/benchmarks.md` (recognize).
Dynamic quantization is never used here: it quantizes no convolutions and measured 5x slower than ORT fp32.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.devices import cpu_threads

logger = logging.getLogger(__name__)

RUNTIME_ONNX = "onnxruntime"
RUNTIME_TORCH = "pytorch"
AGREE_ATOL = 2e-3  # logits; fp32 kernels differ in summation order, not more


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def export_onnx(model: Any, size: int, path: Path, opset: int = 17) -> Path:
    """Export once: a batch axis that may be any size, fixed 3 x size x size images."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        example = torch.zeros(1, 3, size, size)
        with torch.inference_mode():
            torch.onnx.export(
                model, (example,), tmp, input_names=["pixels"], output_names=["logits"],
                dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass
class OnnxImageModel:
    """An InferenceSession with the call shape of the torch model: float32 NCHW in, logits out."""

    session: Any
    path: Path
    threads: int

    @classmethod
    def open(cls, path: Path, threads: int | None = None) -> "OnnxImageModel":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or cpu_threads()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelUnavailableError(f"ONNX Runtime cannot open {path.name}: {error}") from error
        return cls(session, path, threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})[0]


def check_against_torch(onnx_model: OnnxImageModel, torch_model: Any, size: int, samples: list[np.ndarray] | None = None) -> float:
    """Largest logit difference between the two on fixed inputs (and `samples`); raises when they disagree."""
    import torch

    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (2, 3, size, size)).astype(np.float32), np.zeros((1, 3, size, size), np.float32)]
    if samples:
        inputs.append(np.stack(samples).astype(np.float32))
    worst = 0.0
    for batch in inputs:
        with torch.inference_mode():
            expected = torch_model(torch.from_numpy(batch)).float().numpy()
        got = onnx_model(batch)
        worst = max(worst, float(np.abs(expected - got).max()))
        if worst > AGREE_ATOL or not np.array_equal(expected.argmax(-1), got.argmax(-1)):
            raise ModelUnavailableError(f"The ONNX export of this model disagrees with PyTorch (logits differ by {worst:.4f}).")
    return worst


def load_onnx_for(torch_model: Any, size: int, path: Path, threads: int | None = None,
                  exportable: Callable[[], Any] | None = None) -> tuple[OnnxImageModel, float]:
    """The cached export (made now if missing or unreadable), checked against PyTorch.

    `exportable` makes the module to export when it differs from `torch_model` (an equivalent made for the
    fixed input size); the check is always against `torch_model` itself."""

    def export() -> Path:
        logger.info("Exporting the image model to ONNX: %s", path)
        return export_onnx(exportable() if exportable is not None else torch_model, size, path)

    if not path.exists():
        export()
    try:
        model = OnnxImageModel.open(path, threads)
    except ModelUnavailableError:
        logger.warning("Cached ONNX file %s cannot be opened; exporting it again", path)
        path.unlink(missing_ok=True)
        model = OnnxImageModel.open(export(), threads)
    return model, check_against_torch(model, torch_model, size)
