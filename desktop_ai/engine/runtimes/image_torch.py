"""The PyTorch runtime for image models the user brings: a TorchScript file, or a state_dict with a torchvision
architecture name. Loading runs a blank image through, so a model of the wrong shape is a message now, not a
crash later (and tells whether a traced model takes batches)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import ModelUnavailableError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_preprocess() -> Any:
    from torchvision.transforms import v2

    import torch

    return v2.Compose([
        v2.ToImage(),
        v2.Resize(256, antialias=True),
        v2.CenterCrop(224),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def is_scripted(model: Any) -> bool:
    import torch

    return isinstance(model, torch.jit.ScriptModule)


def is_quantized_script(model: Any) -> bool:
    try:
        return any("quantized" in node.kind() for node in model.inlined_graph.nodes())
    except Exception:
        return False


def load_model_file(path: Path, arch: str | None, labels: list[str]) -> tuple[Any, int | None]:
    """(model, batch size limit): a TorchScript file as it is, else a state_dict loaded strictly into `arch`."""
    import torch
    import torchvision

    model: Any = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception:
        model = None
    if model is None:
        if not arch:
            raise ModelUnavailableError(
                f"{path.name} is not a TorchScript file; if it is a state_dict, choose its architecture (for example mobilenet_v2)."
            )
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:
            raise ModelUnavailableError(f"{path.name} is neither a TorchScript file nor a state_dict: {error}") from error
        if not isinstance(state, dict):
            raise ModelUnavailableError(f"{path.name} does not hold a state_dict.")
        try:
            model = torchvision.models.get_model(arch, weights=None, num_classes=len(labels))
        except ValueError as error:
            raise ModelUnavailableError(f"Unknown architecture {arch!r}: {error}") from error
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelUnavailableError(
                f"{path.name} does not fit the {arch} architecture with {len(labels)} classes: {str(error).splitlines()[0]}"
            ) from error
        model.eval()
    return model, check_shape(model, labels, path)


def check_shape(model: Any, labels: list[str], path: Path) -> int | None:
    """Run a blank image through once: a model of the wrong shape is a message now, not a crash later."""
    import torch

    with torch.inference_mode():
        try:
            out = model(torch.zeros(1, 3, 224, 224))
        except Exception as error:
            raise ModelUnavailableError(
                f"{path.name} does not accept a 224x224 RGB image: {str(error).strip().splitlines()[-1][:200]}"
            ) from error
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != len(labels):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelUnavailableError(
                f"{path.name} outputs {shape}, but its labels file has {len(labels)} classes: they do not belong together."
            )
        if not is_scripted(model):
            return None
        try:
            model(torch.zeros(2, 3, 224, 224))
            return None
        except Exception:
            return 1  # traced for one image at a time
