"""What image recognition returns (typed results), and what a loaded image model is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.models.compression import CompressionReport

RUNTIME_TORCH = "pytorch"
RUNTIME_ONNX = "onnxruntime"


@dataclass
class LabelScore:
    label: str
    score: float


@dataclass
class ImageResult:
    path: str
    predictions: list[LabelScore] = field(default_factory=list)
    error: str | None = None
    from_cache: bool = False
    width: int = 0
    height: int = 0
    thumbnail_png: bytes | None = None
    index: int = 0  # position in the input, since failures and cache hits arrive before their batch
    imagenet: list[LabelScore] = field(default_factory=list)  # ImageNet's best, beside a taught classifier's labels

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, with_thumbnail: bool = False) -> dict[str, Any]:
        data = {
            "path": self.path,
            "labels": [p.label for p in self.predictions],
            "scores": [round(p.score, 6) for p in self.predictions],
            "error": self.error,
            "from_cache": self.from_cache,
            "width": self.width,
            "height": self.height,
        }
        if self.imagenet:
            data["imagenet"] = {"labels": [p.label for p in self.imagenet], "scores": [round(p.score, 6) for p in self.imagenet]}
        if with_thumbnail:
            data["thumbnail_png"] = self.thumbnail_png
        return data


@dataclass
class RecognitionBatch:
    results: list[ImageResult]
    model_id: str
    device: str
    compression: str
    seconds: float
    notices: list[str] = field(default_factory=list)
    stopped: bool = False
    load_seconds: float = 0.0  # loading the model, not counted in images_per_second
    model_title: str = ""
    runtime: str = ""  # what ran the model: "onnxruntime", "pytorch", "pytorch fp16", ...

    @property
    def images_per_second(self) -> float:
        done = sum(1 for r in self.results if r.ok)
        busy = self.seconds - self.load_seconds
        return done / busy if busy > 0 else 0.0


@dataclass
class LoadedImageModel:
    model: Any
    labels: list[str]
    preprocess: Any
    device: str
    batch_size_limit: int | None  # 1 for TorchScript traced at batch size 1
    compression: CompressionReport
    revision: str
    notices: list[str] = field(default_factory=list)
    channels_last: bool = False
    runtime: str = RUNTIME_TORCH
