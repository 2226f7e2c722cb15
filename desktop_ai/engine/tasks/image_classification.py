"""Image recognition: ImageNet top-k for many files at once, from torchvision models or a model file the
user picks (a TorchScript file, or a state_dict plus an architecture name, with a labels file beside it).

Images are decoded once at a reduced size (JPEG draft mode, then a thumbnail), because decoding a 12 MP
photo at full size costs more than classifying it; the model's own preprocessing then runs on that.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_ai.engine.cache import ResultCache, make_cache_key
from desktop_ai.engine.models.catalogue import (
    KIND_IMAGE_CLASSIFIER,
    SOURCE_LOCAL,
    SOURCE_TORCHVISION,
    TASK_RECOGNIZE,
    ModelEntry,
    find_entry,
)
from desktop_ai.engine.models.compression import Compression, CompressionReport, compress, model_size_bytes
from desktop_ai.engine.models.devices import cpu_fallback_notice, is_out_of_memory, pick_device, release_gpu_memory
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.store import ModelStore, ProgressCallback, torch_hub_checkpoints

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DECODE_SIZE = 512  # JPEGs decode at the smallest DCT scale keeping both sides at least this (256 costs accuracy)
SAFE_SIZE = 2048  # anything larger (a 20000x20000 PNG, say) is box-reduced first, so memory stays bounded
THUMBNAIL_SIZE = 96
MAX_PIXELS = 600_000_000  # refuse decompression bombs beyond this; below it, downscale
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and folders expanded (recursively, sorted) to the image files they hold."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = []
            for root, _dirs, names in os.walk(path):
                found.extend(Path(root) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)
            files.extend(sorted(found))
        else:
            files.append(path)
    return files


def read_labels(path: Path) -> list[str]:
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ModelUnavailableError(f"The labels file {path} cannot be read: {error}") from error
    if len(labels) < 2:
        raise ModelUnavailableError(f"The labels file {path} has {len(labels)} label(s); it needs one class name per line.")
    return labels


def load_image(data: bytes, name: str = "image") -> tuple["Image.Image", int, int]:
    """Decode to RGB at a reduced size, honouring EXIF orientation and any mode (RGBA, L, CMYK, 16-bit)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidInputError(f"{name} is empty (0 bytes).")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if image.format == "JPEG":
                image.draft("RGB", (DECODE_SIZE, DECODE_SIZE))
            image.load()
    except UnidentifiedImageError:
        raise InvalidInputError(f"{name} is not an image file this app can read (JPEG, PNG, BMP, GIF, WebP, TIFF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInputError(f"{name} is too large to open safely (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInputError(f"{name} is damaged or truncated and cannot be decoded ({error}).") from None
    if min(image.size) > SAFE_SIZE and image.mode not in ("P", "1"):
        image = image.reduce(min(image.size) // SAFE_SIZE)  # before any conversion copies it
    ImageOps.exif_transpose(image, in_place=True)  # no copy when nothing needs turning
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: scale to 8 bits instead of clipping
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if min(image.size) > SAFE_SIZE:
        image = image.reduce(min(image.size) // SAFE_SIZE)
    return image, width, height


def thumbnail_png(image: "Image.Image") -> bytes:
    from PIL import Image

    small = image.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()


def _imagenet_preprocess() -> Any:
    from torchvision.transforms import v2

    import torch

    return v2.Compose([
        v2.ToImage(),
        v2.Resize(256, antialias=True),
        v2.CenterCrop(224),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def local_image_entry(path: Path, arch: str | None = None) -> ModelEntry:
    if not path.exists():
        raise ModelUnavailableError(f"The model file {path} does not exist.")
    if path.is_dir():
        raise ModelUnavailableError(f"{path} is a folder: pick a TorchScript file or a state_dict file (.pt or .pth).")
    return ModelEntry(
        id=str(path), task=TASK_RECOGNIZE, kind=KIND_IMAGE_CLASSIFIER, source=SOURCE_LOCAL, location=str(path),
        title=f"{path.name} (from disk)", size_mb=round(path.stat().st_size / 1e6, 1), licence="see the model's source", arch=arch,
    )


class ImageClassifier:
    def __init__(
        self,
        store: ModelStore,
        cache: ResultCache | None = None,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.NONE,
        arch: str | None = None,
        labels: str | Path | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        model = model or store.default_model(TASK_RECOGNIZE)
        entry = find_entry(model)
        if entry is not None and entry.task != TASK_RECOGNIZE:
            raise ModelUnavailableError(f"{entry.title} is a {entry.task} model, not an image model.")
        self.entry = entry or local_image_entry(Path(model).expanduser(), arch)
        self.arch = arch or self.entry.arch
        self.labels_path = Path(labels).expanduser() if labels else None
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)

    # --- loading --------------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> LoadedImageModel:
        key = (self.entry.id, "image", self.arch, str(self.labels_path), self.device.device, self.compression.value)

        def loader() -> tuple[LoadedImageModel, int]:
            loaded = self._load(progress)
            return loaded, model_size_bytes(loaded.model) if not _is_scripted(loaded.model) else Path(self.entry.location).stat().st_size

        return self.store.loaded.get_or_load(key, loader)

    def _revision(self) -> str:
        if self.entry.source == SOURCE_LOCAL:
            stat = Path(self.entry.location).stat()
            labels = self._labels_file()
            extra = f":{labels.stat().st_mtime_ns}" if labels and labels.exists() else ""
            return f"local-{stat.st_size}-{stat.st_mtime_ns}{extra}"
        return self.entry.weights or self.entry.id

    def _labels_file(self) -> Path | None:
        if self.labels_path is not None:
            return self.labels_path
        if self.entry.source == SOURCE_LOCAL:
            beside = Path(self.entry.location).with_name("labels.txt")
            return beside if beside.exists() else None
        return None

    def _load(self, progress: ProgressCallback | None) -> LoadedImageModel:
        import torch

        if progress:
            progress(f"Loading {self.entry.title}", None)
        if self.entry.source == SOURCE_TORCHVISION:
            model, labels, preprocess = self._load_torchvision()
            limit = None
        else:
            model, labels, preprocess, limit = self._load_local()
        notices: list[str] = []
        target = self.device.device
        channels_last = not _is_scripted(model) and self.compression is not Compression.INT8
        if target != "cpu":
            try:
                model = model.to(target)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                release_gpu_memory()
                model, target = model.to("cpu"), "cpu"
                notices.append(cpu_fallback_notice(self.device.device))
        if _is_scripted(model):
            quantized = _is_quantized_script(model)
            if self.compression not in (Compression.NONE, Compression.INT8) or (self.compression is Compression.INT8 and not quantized):
                notices.append(f"{self.compression.value} does not apply to a TorchScript file; it ran as it was saved.")
            size = Path(self.entry.location).stat().st_size
            report = CompressionReport("int8" if quantized else "none", "torchscript", 0, size, size, 0.0, 0.0)
        else:
            method = self.compression
            if method is Compression.INT8 and target != "cpu":
                notices.append("int8 for image models runs on the CPU only; kept the GPU model as it is.")
                method = Compression.NONE
            model, report = compress(model, method, target)
            if report.notice:
                notices.append(report.notice)
            if channels_last:  # faster convolutions on CPUs and GPUs alike (int8 Linear layers need contiguous input)
                model = model.to(memory_format=torch.channels_last)
        return LoadedImageModel(model, labels, preprocess, target, limit, report, self._revision(), notices, channels_last)

    def _load_torchvision(self) -> tuple[Any, list[str], Any]:
        import torchvision

        entry = self.entry
        present = all((torch_hub_checkpoints() / f).exists() for f in entry.files)
        if not present and not hub_reachable_torchvision():
            raise ModelUnavailableError(
                f"{entry.title} is not downloaded yet and download.pytorch.org cannot be reached: this machine looks "
                f"offline. Connect to the internet to download it (about {entry.size_mb:.0f} MB), or choose "
                "'From file…' to use a TorchScript or state_dict file with a labels.txt beside it."
            )
        weights = torchvision.models.get_weight(entry.weights)
        try:
            model = torchvision.models.get_model(entry.arch, weights=weights).eval()
        except Exception as error:
            raise ModelUnavailableError(f"{entry.title} could not be loaded: {error}") from error
        return model, list(weights.meta["categories"]), weights.transforms()

    def _load_local(self) -> tuple[Any, list[str], Any, int | None]:
        import torch
        import torchvision

        path = Path(self.entry.location)
        labels_file = self._labels_file()
        if labels_file is None:
            raise ModelUnavailableError(f"No labels for {path.name}: put a labels.txt (one class per line) beside it, or choose a labels file.")
        labels = read_labels(labels_file)
        model: Any = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception:
            model = None
        if model is None:
            if not self.arch:
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
                model = torchvision.models.get_model(self.arch, weights=None, num_classes=len(labels))
            except ValueError as error:
                raise ModelUnavailableError(f"Unknown architecture {self.arch!r}: {error}") from error
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as error:
                raise ModelUnavailableError(
                    f"{path.name} does not fit the {self.arch} architecture with {len(labels)} classes: {str(error).splitlines()[0]}"
                ) from error
            model.eval()
        limit = self._check_shape(model, labels, path)
        return model, labels, _imagenet_preprocess(), limit

    @staticmethod
    def _check_shape(model: Any, labels: list[str], path: Path) -> int | None:
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
            if not _is_scripted(model):
                return None
            try:
                model(torch.zeros(2, 3, 224, 224))
                return None
            except Exception:
                return 1  # traced for one image at a time

    # --- running --------------------------------------------------------------------------
    def _key(self, revision: str, data: bytes, top_k: int) -> str:
        options = {"top_k": top_k, "arch": self.arch, "labels": str(self._labels_file())}
        return make_cache_key(TASK_RECOGNIZE, self.entry.id, revision, self.compression.value, options, data)

    def run(
        self,
        paths: Sequence[str | Path],
        top_k: int = 5,
        batch_size: int | None = None,
        on_results: Callable[[list[ImageResult]], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        thumbnails: bool = False,
    ) -> RecognitionBatch:
        """Unreadable files get a result with the reason; the others still run. `on_results` gets each batch."""
        if not 1 <= top_k <= 1000:
            raise InvalidInputError("Top must be between 1 and 1000.")
        files = collect_images(paths)
        if not files:
            raise InvalidInputError("No images to recognise: drop or open image files, or a folder that holds some.")
        started = time.perf_counter()
        revision = self._revision() if self.entry.source == SOURCE_LOCAL else (self.entry.weights or self.entry.id)
        loaded: LoadedImageModel | None = None
        load_seconds = 0.0
        results: list[ImageResult] = []
        notices: list[str] = []
        pending: list[tuple[ImageResult, Any, str]] = []
        stopped = False

        def flush() -> None:
            nonlocal loaded, load_seconds
            if not pending:
                return
            if loaded is None:
                load_started = time.perf_counter()
                loaded = self.load(progress)
                load_seconds = time.perf_counter() - load_started
                notices.extend(loaded.notices)
            self._classify(loaded, pending, top_k)
            for result, _, key in pending:
                if self.cache is not None:
                    self.cache.put(key, result.to_dict(with_thumbnail=False))
            batch_results = [r for r, _, _ in pending]
            pending.clear()
            if on_results is not None:
                on_results(batch_results)

        def report_progress(index: int) -> None:
            if progress is not None and (index % 8 == 7 or index == len(files) - 1):
                progress(f"{index + 1} of {len(files)} images", (index + 1) / len(files))

        if not self.device.is_gpu and batch_size is None:
            loaded, load_seconds = self._run_on_cpu_cores(files, revision, top_k, thumbnails, results, on_results, report_progress, progress, cancel)
            if loaded is not None:
                notices.extend(loaded.notices)
        else:
            size = batch_size or 64
            for index, path in enumerate(files):
                if cancel is not None and cancel.is_set():
                    break
                result, image, key = self._prepare(index, path, revision, top_k, thumbnails)
                results.append(result)
                if image is not None:
                    pending.append((result, image, key))
                elif on_results is not None:
                    on_results([result])  # a failure or a cache hit: shown at once
                limit = loaded.batch_size_limit if loaded is not None and loaded.batch_size_limit else size
                if len(pending) >= limit:
                    flush()
                report_progress(index)
        if cancel is not None and cancel.is_set():
            stopped = True
            for result, _, _ in pending:
                results.remove(result)
            notices.append(f"Stopped after {len(results)} of {len(files)} images; the results so far are kept.")
        else:
            flush()
        failed = sum(1 for r in results if not r.ok)
        if failed:
            notices.append(f"{failed} file(s) could not be recognised; each says why.")
        return RecognitionBatch(
            results=results,
            model_id=self.entry.id,
            device=loaded.device if loaded else self.device.device,
            compression=loaded.compression.method if loaded else self.compression.value,
            seconds=time.perf_counter() - started,
            notices=notices,
            stopped=stopped,
            load_seconds=load_seconds,
        )

    def _run_on_cpu_cores(
        self,
        files: list[Path],
        revision: str,
        top_k: int,
        thumbnails: bool,
        results: list[ImageResult],
        on_results: Callable[[list[ImageResult]], None] | None,
        report_progress: Callable[[int], None],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> tuple[LoadedImageModel | None, float]:
        """One image per core, each decoded and classified whole with one torch thread.

        Measured on 2 cores, this beats batching and beats torch's own two threads on one image at a time:
        decoding (PIL releases the GIL) runs beside the model instead of before it.
        """
        import torch
        from concurrent.futures import ThreadPoolExecutor

        state: dict[str, Any] = {"loaded": None, "load_seconds": 0.0}
        lock = threading.Lock()

        def model() -> LoadedImageModel:
            with lock:
                if state["loaded"] is None:
                    started = time.perf_counter()
                    state["loaded"] = self.load(progress)
                    state["load_seconds"] = time.perf_counter() - started
                return state["loaded"]

        def work(index: int, path: Path) -> ImageResult:
            result, image, key = self._prepare(index, path, revision, top_k, thumbnails)
            if image is not None:
                self._classify(model(), [(result, image, key)], top_k)
                if self.cache is not None:
                    self.cache.put(key, result.to_dict(with_thumbnail=False))
            return result

        workers = max(1, min(os.cpu_count() or 1, 8))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="recognize") as pool:
                window: list[Any] = []
                index = 0
                while index < len(files) or window:
                    while index < len(files) and len(window) < 2 * workers and not (cancel is not None and cancel.is_set()):
                        window.append(pool.submit(work, index, files[index]))
                        index += 1
                    if not window:
                        break
                    result = window.pop(0).result()
                    results.append(result)
                    if on_results is not None:
                        on_results([result])
                    report_progress(result.index)
                    if cancel is not None and cancel.is_set():
                        for future in window:
                            future.cancel()
                        break
        finally:
            torch.set_num_threads(threads)
        return state["loaded"], state["load_seconds"]

    def _prepare(self, index: int, path: Path, revision: str, top_k: int, thumbnails: bool) -> tuple[ImageResult, Any, str]:
        """Read, look up in the cache, decode: (result, image to classify or None, cache key)."""
        result = ImageResult(str(path), index=index)
        try:
            data = path.read_bytes()
        except OSError as error:
            result.error = f"{path.name} cannot be read: {error.strerror or error}"
            return result, None, ""
        key = self._key(revision, data, top_k)
        hit = self.cache.get(key) if self.cache is not None else None
        image = None
        try:
            if hit is None or thumbnails:
                image, result.width, result.height = load_image(data, path.name)
            if thumbnails and image is not None:
                result.thumbnail_png = thumbnail_png(image)
        except InvalidInputError as error:
            result.error = str(error)
            return result, None, key
        if hit is not None:
            result.predictions = [LabelScore(l, s) for l, s in zip(hit["labels"], hit["scores"])]
            result.width, result.height = hit["width"] or result.width, hit["height"] or result.height
            result.from_cache = True
            return result, None, key
        return result, image, key

    def _classify(self, loaded: LoadedImageModel, pending: list[tuple[ImageResult, Any, str]], top_k: int) -> None:
        import torch

        batch = torch.stack([loaded.preprocess(image) for _, image, _ in pending])
        dtype = next((p.dtype for p in loaded.model.parameters()), torch.float32) if not _is_scripted(loaded.model) else torch.float32
        batch = batch.to(loaded.device, dtype=dtype if dtype.is_floating_point else torch.float32)
        if loaded.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if loaded.batch_size_limit == 1:
                logits = torch.cat([loaded.model(batch[i : i + 1]) for i in range(batch.shape[0])])
            else:
                logits = loaded.model(batch)
        probs = logits.float().softmax(-1).cpu()
        k = min(top_k, probs.shape[1])
        scores, indices = probs.topk(k, dim=-1)
        for (result, _, _), row_scores, row_indices in zip(pending, scores.tolist(), indices.tolist()):
            result.predictions = [LabelScore(loaded.labels[i], round(float(s), 6)) for i, s in zip(row_indices, row_scores)]


def _is_scripted(model: Any) -> bool:
    import torch

    return isinstance(model, torch.jit.ScriptModule)


def _is_quantized_script(model: Any) -> bool:
    try:
        return any("quantized" in node.kind() for node in model.inlined_graph.nodes())
    except Exception:
        return False


def hub_reachable_torchvision(timeout: float = 2.0) -> bool:
    import socket

    try:
        with socket.create_connection(("download.pytorch.org", 443), timeout=timeout):
            return True
    except OSError:
        return False
