"""Taught photo labels: a head on the embedded EfficientNet-Lite0's image features (the 1280 pooled values
before its ImageNet layer), taught from a folder per label or photos dropped per label.

Results come back as a RecognitionBatch whose predictions are the user's labels (best first), with ImageNet's
own best labels after them in `imagenet`, so recognition shows both and Sort into folders sorts by the user's.
The features come from PyTorch (the ONNX export of the recognizer has only logits); the model is loaded once
per engine process and kept with the other loaded models.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.catalogue import TASK_RECOGNIZE, find_entry
from desktop_ai.engine.models.store import ModelStore, ProgressCallback
from desktop_ai.engine.tasks.image_files import collect_images, load_image
from desktop_ai.engine.tasks.image_results import ImageResult, LabelScore, RecognitionBatch
from desktop_ai.engine.tasks.taught_classifiers import (
    TASK_PHOTO,
    Example,
    TaughtClassifier,
    TaughtLibrary,
    TeachResult,
    check_labels,
    clean_examples,
)

FEATURE_MODEL = "efficientnet-lite0"
BATCH = 16
IMAGENET_TOP = 3
TASK_TAUGHT_PHOTO = "taught-recognize"  # the result cache's task name for taught photo predictions


def read_photo_examples(folder: Path) -> list[Example]:
    """One subfolder per label, holding its photos (any depth)."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder: give a folder with one subfolder of photos per label.")
    examples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        examples += [Example(str(path), sub.name) for path in collect_images([sub])]
    if not examples:
        raise InvalidInputError(f"{folder} has no photos in subfolders: put the photos of each label in a folder "
                                "named after the label.")
    return examples


class PhotoFeatures:
    """EfficientNet-Lite0 as a feature extractor: unit-length 1280-value features and ImageNet scores per photo."""

    def __init__(self, store: ModelStore, model: str | None = None) -> None:
        self.store = store
        entry = find_entry(model or FEATURE_MODEL)
        if entry is None or entry.task != TASK_RECOGNIZE or entry.arch is None or not entry.arch.startswith("lite"):
            raise InvalidInputError(f"Taught photo labels use the embedded EfficientNet-Lite models, not {model!r}.")
        self.entry = entry

    def _load(self) -> Any:
        from desktop_ai.engine.runtimes.image_lite import LITE_VARIANTS, LitePreprocess, build_lite, imagenet_categories

        location = self.store.locate(self.entry)
        key = ("taught-photo-features", self.entry.id, location.revision)

        def loader() -> tuple[Any, int]:
            model = build_lite(self.entry.arch or "lite0", location.path / self.entry.files[0])
            size = LITE_VARIANTS[self.entry.arch or "lite0"][1]
            parts = (model, LitePreprocess(size), imagenet_categories())
            return parts, sum(p.numel() * p.element_size() for p in model.parameters())

        return self.store.loaded.get_or_load(key, loader)

    def __call__(self, paths: Sequence[str | Path], progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> tuple[np.ndarray, list[list[LabelScore]], list[str | None]]:
        """(features [n x 1280], ImageNet's top labels, error or None) per photo; unreadable photos get zeros."""
        import torch

        from desktop_ai.engine.errors import CancelledError
        from desktop_ai.engine.runtimes.image_lite import CROP_FRACTION

        model, preprocess, categories = self._load()
        side = int(np.ceil(preprocess.size / CROP_FRACTION))
        features = np.zeros((len(paths), model.num_features), np.float32)
        imagenet: list[list[LabelScore]] = [[] for _ in paths]
        errors: list[str | None] = [None] * len(paths)
        for start in range(0, len(paths), BATCH):
            if cancel is not None and cancel.is_set():
                raise CancelledError("Stopped.")
            rows, arrays = [], []
            for i in range(start, min(start + BATCH, len(paths))):
                path = Path(paths[i])
                try:
                    image, _, _ = load_image(path.read_bytes(), path.name, side)
                except OSError as error:
                    errors[i] = f"{path.name} cannot be read: {error.strerror or error}"
                    continue
                except InvalidInputError as error:
                    errors[i] = str(error)
                    continue
                rows.append(i)
                arrays.append(preprocess(image))
            if arrays:
                with torch.inference_mode():
                    pooled = model.forward_head(model.forward_features(torch.from_numpy(np.stack(arrays))), pre_logits=True)
                    probs = model.classifier(pooled).softmax(-1)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).numpy()
                top = probs.topk(IMAGENET_TOP, dim=-1)
                for j, i in enumerate(rows):
                    features[i] = pooled[j]
                    imagenet[i] = [LabelScore(categories[k], round(float(s), 6))
                                   for s, k in zip(top.values[j].tolist(), top.indices[j].tolist())]
            if progress is not None:
                done = min(start + BATCH, len(paths))
                progress(f"Looked at {done} of {len(paths)} photos", done / len(paths))
        return features, imagenet, errors


class PhotoTeacher:
    """Teaches, corrects and runs taught photo classifiers."""

    def __init__(self, store: ModelStore, library: TaughtLibrary | None = None, model: str | None = None,
                 cache: ResultCache | None = None) -> None:
        self.features = PhotoFeatures(store, model)
        self.library = library or TaughtLibrary()
        self.cache = cache

    @property
    def model_id(self) -> str:
        return self.features.entry.id

    def check_model(self, classifier: TaughtClassifier) -> None:
        if classifier.embedding_model != self.model_id:
            raise InvalidInputError(
                f"{classifier.name!r} was taught on the features of {classifier.embedding_model}, not of "
                f"{self.model_id}: teach it again on this model.")

    def teach(self, name: str, examples: Sequence[Example], add: bool = False, progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None) -> TeachResult:
        """Photos per label (Example.text is the photo's path); unreadable photos are left out with a notice."""
        cleaned, notices = clean_examples([Example(str(Path(e.text).expanduser().absolute()), e.label) for e in examples])
        existing = self.library.load(name, TASK_PHOTO) if add and self.library.exists(name) else None
        if existing is not None:
            self.check_model(existing)
        labels = list(dict.fromkeys((existing.labels if existing else []) + [e.label for e in cleaned]))
        check_labels(labels, (existing.examples if existing else []) + cleaned, {})
        started = time.perf_counter()
        vectors, _, errors = self.features([e.text for e in cleaned], progress, cancel)
        bad = [i for i, error in enumerate(errors) if error]
        if bad:
            notices.append(f"{len(bad)} photo(s) could not be read and were left out: "
                           + "; ".join(errors[i] or "" for i in bad[:3]) + (" …" if len(bad) > 3 else ""))
            keep = [i for i in range(len(cleaned)) if not errors[i]]
            cleaned, vectors = [cleaned[i] for i in keep], vectors[keep]
            check_labels(labels, (existing.examples if existing else []) + cleaned, {})
        embed_seconds = time.perf_counter() - started
        if existing is not None:
            classifier = existing
            notices += classifier.add_examples(cleaned, vectors)
        else:
            classifier = TaughtClassifier(name, TASK_PHOTO, self.model_id, labels, cleaned, vectors)
        report = classifier.fit()
        self.library.save(classifier)
        return TeachResult(classifier.describe(), report, notices + report.notices, embed_seconds)

    def correct(self, name: str, photo: str | Path, label: str) -> list[str]:
        classifier = self.library.load(name, TASK_PHOTO)
        self.check_model(classifier)
        label = " ".join(label.split())
        if label not in classifier.labels:
            raise InvalidInputError(f"{label!r} is not one of {name!r}'s labels ({', '.join(classifier.labels)}).")
        path = str(Path(photo).expanduser().absolute())
        vectors, _, errors = self.features([path])
        if errors[0]:
            raise InvalidInputError(errors[0])
        notices = classifier.correct(path, label, vectors[0])
        self.library.save(classifier)
        return notices

    def run(self, name: str, paths: Sequence[str | Path], progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None) -> RecognitionBatch:
        files = collect_images(paths)
        if not files:
            raise InvalidInputError("No images to recognise: drop or open image files, or a folder that holds some.")
        classifier = self.library.load(name, TASK_PHOTO)
        self.check_model(classifier)
        started = time.perf_counter()
        # keyed by the photo's bytes and the classifier's digest (labels, feature model, fitted head): a retrained
        # or corrected classifier never answers from an older one's entries
        spec = KeySpec(TASK_TAUGHT_PHOTO, f"taught:{classifier.name}", classifier.digest(), "none",
                       {"features": classifier.embedding_model, "imagenet_top": IMAGENET_TOP})
        results: list[ImageResult | None] = [None] * len(files)
        keys: list[str | None] = [None] * len(files)
        if self.cache is not None:
            for index, path in enumerate(files):
                try:
                    keys[index] = spec.key(Path(path).read_bytes())
                except OSError:
                    continue  # the features step says why it cannot be read
                hit = self.cache.get(keys[index])
                if hit is not None:
                    results[index] = ImageResult(str(path), [LabelScore(**s) for s in hit["predictions"]], index=index,
                                                 from_cache=True, imagenet=[LabelScore(**s) for s in hit["imagenet"]])
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:  # the feature model is loaded only when some photo is not in the cache
            vectors, imagenet, errors = self.features([files[i] for i in todo], progress, cancel)
            scores = classifier.scores(vectors)
            for row, (index, error) in enumerate(zip(todo, errors)):
                result = ImageResult(str(files[index]), index=index, error=error)
                if error is None:
                    result.predictions = sorted((LabelScore(l, round(float(p), 6)) for l, p in zip(classifier.labels, scores[row])),
                                                key=lambda s: -s.score)
                    result.imagenet = imagenet[row]
                    if self.cache is not None and keys[index] is not None:
                        self.cache.put(keys[index], {"predictions": [asdict(s) for s in result.predictions],
                                                     "imagenet": [asdict(s) for s in result.imagenet]})
                results[index] = result
        results = [r for r in results if r is not None]
        failed = sum(1 for r in results if not r.ok)
        notices = [f"{failed} file(s) could not be recognised; each says why."] if failed else []
        return RecognitionBatch(results, f"taught:{classifier.name}", "cpu", "none", time.perf_counter() - started,
                                notices, model_title=f"{classifier.name} (your labels, on {self.features.entry.title})",
                                runtime="pytorch")
