"""Text classification: sentiment with a fine-tuned classifier, or zero-shot into labels the user types,
by comparing sentence embeddings of the text with embeddings of a sentence made from each label.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.models.catalogue import KIND_SENTENCE_EMBEDDING, KIND_SEQUENCE_CLASSIFIER, TASK_CLASSIFY
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.errors import CancelledError, InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.loading import LoadedModel, run_with_cpu_fallback
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback

logger = logging.getLogger(__name__)

SENTIMENT_LABELS = ("positive", "negative")
# Embedding models compare sentences best with sentences, so each label is put into one.
SENTIMENT_TEMPLATE = "This is {label}. I feel {label} about it."
LABEL_TEMPLATE = "This text is about {label}."
# Cosine similarities of MiniLM sit in a narrow band; this scale turns them into usable probabilities.
SIMILARITY_SCALE = 25.0
MAX_TEXTS = 10_000
MAX_TOKENS = 512


@dataclass
class LabelScore:
    label: str
    score: float


@dataclass
class ClassificationResult:
    text: str
    scores: list[LabelScore]
    model_id: str
    from_cache: bool = False

    @property
    def label(self) -> str:
        return self.scores[0].label

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "scores": [asdict(s) for s in self.scores], "model_id": self.model_id, "from_cache": self.from_cache}


@dataclass
class ClassificationBatch:
    results: list[ClassificationResult]
    labels: list[str]
    mode: str  # "sentiment" or "labels"
    device: str
    compression: str
    seconds: float
    notices: list[str] = field(default_factory=list)
    stopped: bool = False

    @property
    def texts_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else 0.0


def clean_labels(labels: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """Split, trim and de-duplicate labels; returns (labels, notices). Fewer than two is an error."""
    if labels is None:
        return [], []
    if isinstance(labels, str):
        labels = labels.split(",")
    cleaned: list[str] = []
    notices: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        label = " ".join(str(raw).split())
        if not label:
            continue
        if label.casefold() in seen:
            notices.append(f"The label {label!r} was given more than once; it is used once.")
            continue
        seen.add(label.casefold())
        cleaned.append(label)
    if len(cleaned) < 2:
        raise InvalidInputError(
            "Type at least two different labels, separated by commas (for example: sport, politics, science)."
            + (f" Got: {', '.join(cleaned)}." if cleaned else "")
        )
    return cleaned, notices


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class TextClassifier:
    def __init__(
        self,
        store: ModelStore,
        cache: ResultCache | None = None,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.NONE,
    ) -> None:
        self.store = store
        self.cache = cache
        self.entry = store.resolve_entry(model or store.default_model(TASK_CLASSIFY), TASK_CLASSIFY)
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)
        self._label_vectors: dict[tuple, torch.Tensor] = {}

    @property
    def auto_class(self) -> Any:
        from transformers import AutoModel, AutoModelForSequenceClassification

        return AutoModelForSequenceClassification if self.entry.kind == KIND_SEQUENCE_CLASSIFIER else AutoModel

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> LoadedModel:
        from desktop_ai.engine.models.loading import load_pretrained

        return load_pretrained(self.store, self.entry, self.auto_class, self.device, self.compression, progress, cancel)

    def run(
        self,
        texts: Sequence[str],
        labels: Sequence[str] | str | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> ClassificationBatch:
        """Empty lines are skipped; scores for every label come back sorted, best first."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise InvalidInputError("There is no text to classify: type or paste at least one line.")
        notices: list[str] = []
        if len(texts) > MAX_TEXTS:
            raise InvalidInputError(f"{len(texts):,} texts is more than {MAX_TEXTS:,} at once; split them into smaller batches.")
        mode = "sentiment" if labels is None or (isinstance(labels, str) and not labels.strip()) else "labels"
        if mode == "labels":
            if self.entry.kind == KIND_SEQUENCE_CLASSIFIER:
                raise InvalidInputError(
                    f"{self.entry.title} only knows its own labels; choose the zero-shot embedding model to use labels you type."
                )
            label_list, label_notices = clean_labels(labels)
            notices += label_notices
        else:
            label_list = list(SENTIMENT_LABELS)
        started = time.perf_counter()
        location = self.store.locate(self.entry, progress, cancel)
        results: list[ClassificationResult | None] = [None] * len(texts)
        if self.cache is not None:
            for index, text in enumerate(texts):
                hit = self.cache.get(self._key(location, text, label_list, mode))
                if hit is not None:
                    results[index] = ClassificationResult(text, [LabelScore(**s) for s in hit["scores"]], self.entry.id, True)
        todo = [i for i, r in enumerate(results) if r is None]
        device, compression, stopped = self.device.device, self.compression.value, False
        if todo:  # only load the model when something is not in the cache

            def job(loaded: LoadedModel) -> tuple[bool, list[str]]:
                return self._classify(loaded, location, texts, todo, results, label_list, mode, progress, cancel, batch_size)

            (stopped, run_notices), loaded, load_notices = run_with_cpu_fallback(
                self.store, self.entry, self.auto_class, self.device, self.compression, job, progress, cancel
            )
            notices = load_notices + notices + run_notices
            device, compression = loaded.device, loaded.compression.method
            if self.entry.kind == KIND_SEQUENCE_CLASSIFIER:
                label_list = [str(loaded.model.config.id2label[i]).lower() for i in sorted(loaded.model.config.id2label)]
        elif self.entry.kind == KIND_SEQUENCE_CLASSIFIER:
            label_list = sorted(s.label for s in results[0].scores)  # type: ignore[union-attr]
        return ClassificationBatch(
            results=[r for r in results if r is not None],
            labels=label_list,
            mode=mode,
            device=device,
            compression=compression,
            seconds=time.perf_counter() - started,
            notices=notices,
            stopped=stopped,
        )

    def embed(
        self,
        texts: Sequence[str],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> tuple[Any, list[str]]:
        """Unit-length sentence embeddings (a float32 array, one row per text) and notices: what taught
        classifiers learn from. Only an embedding model has them."""
        import numpy as np

        if self.entry.kind != KIND_SENTENCE_EMBEDDING:
            raise InvalidInputError(f"{self.entry.title} has no sentence embeddings; taught labels need an embedding model.")
        texts = list(texts)

        def job(loaded: LoadedModel) -> tuple[Any, int]:
            rows, truncated = [], 0
            for start in range(0, len(texts), batch_size):
                if cancel is not None and cancel.is_set():
                    raise CancelledError("Stopped.")
                vectors, chunk_truncated = self._embed(loaded, texts[start : start + batch_size])
                rows.append(vectors.cpu().numpy().astype(np.float32))
                truncated += chunk_truncated
                if progress is not None:
                    done = min(start + batch_size, len(texts))
                    progress(f"Embedded {done} of {len(texts)} texts", done / len(texts))
            return (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)), truncated

        (vectors, truncated), _, notices = run_with_cpu_fallback(
            self.store, self.entry, self.auto_class, self.device, self.compression, job, progress, cancel)
        if truncated:
            notices = [*notices, f"{truncated} text(s) were longer than {MAX_TOKENS} tokens; only their beginning was used."]
        return vectors, notices

    def key_spec(self, labels: Sequence[str] | str | None = None) -> KeySpec:
        """How run(texts, labels) keys each text in the result cache (the cluster driver keys inputs with it)."""
        mode = "sentiment" if labels is None or (isinstance(labels, str) and not labels.strip()) else "labels"
        label_list = clean_labels(labels)[0] if mode == "labels" else list(SENTIMENT_LABELS)
        return self._spec(self.store.locate(self.entry), label_list, mode)

    def _spec(self, location: ModelLocation, labels: list[str], mode: str) -> KeySpec:
        options = {"labels": labels, "mode": mode, "scale": SIMILARITY_SCALE}
        return KeySpec(TASK_CLASSIFY, location.entry.id, location.revision, self.compression.value, options)

    def _key(self, location: ModelLocation, text: str, labels: list[str], mode: str) -> str:
        return self._spec(location, labels, mode).key(text)

    def _classify(
        self,
        loaded: LoadedModel,
        location: ModelLocation,
        texts: list[str],
        todo: list[int],
        results: list[ClassificationResult | None],
        labels: list[str],
        mode: str,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        batch_size: int,
    ) -> tuple[bool, list[str]]:
        """Fills `results` in place for the indices in `todo`, in batches, caching each one."""
        notices: list[str] = []
        stopped = False
        truncated = 0
        for start in range(0, len(todo), batch_size):
            if cancel is not None and cancel.is_set():
                stopped = True
                notices.append(f"Stopped after {start} of {len(todo)} texts; the results so far are kept.")
                break
            chunk = todo[start : start + batch_size]
            scores, chunk_truncated = self._score(loaded, [texts[i] for i in chunk], labels, mode)
            truncated += chunk_truncated
            for i, row in zip(chunk, scores):
                ranked = sorted((LabelScore(label, round(float(p), 6)) for label, p in zip(row[0], row[1])), key=lambda s: -s.score)
                result = ClassificationResult(texts[i], ranked, loaded.model_id)
                results[i] = result
                if self.cache is not None:
                    self.cache.put(self._key(location, texts[i], labels, mode), result.to_dict())
            if progress is not None:
                done = min(start + batch_size, len(todo))
                progress(f"Classified {done} of {len(todo)} texts", done / len(todo))
        if truncated:
            notices.append(f"{truncated} text(s) were longer than {MAX_TOKENS} tokens; only their beginning was classified.")
        return stopped, notices

    def _encode(self, loaded: LoadedModel, texts: list[str]) -> tuple[dict[str, torch.Tensor], int]:
        limit = min(getattr(loaded.tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS, MAX_TOKENS)
        full = loaded.tokenizer(texts, truncation=False, padding=False)["input_ids"]
        truncated = sum(1 for ids in full if len(ids) > limit)
        batch = loaded.tokenizer(texts, truncation=True, max_length=limit, padding=True, return_tensors="pt")
        return {k: v.to(loaded.device) for k, v in batch.items()}, truncated

    def _embed(self, loaded: LoadedModel, texts: list[str]) -> tuple[torch.Tensor, int]:
        import torch

        batch, truncated = self._encode(loaded, texts)
        with torch.inference_mode():
            hidden = loaded.model(**batch).last_hidden_state
        vectors = _mean_pool(hidden.float(), batch["attention_mask"])
        return torch.nn.functional.normalize(vectors, dim=-1), truncated

    def _label_matrix(self, loaded: LoadedModel, labels: list[str], mode: str) -> torch.Tensor:
        key = (loaded.model_id, loaded.device, loaded.compression.method, mode, tuple(labels))
        if key not in self._label_vectors:
            template = SENTIMENT_TEMPLATE if mode == "sentiment" else LABEL_TEMPLATE
            self._label_vectors[key], _ = self._embed(loaded, [template.format(label=label) for label in labels])
        return self._label_vectors[key]

    def _score(self, loaded: LoadedModel, texts: list[str], labels: list[str], mode: str) -> tuple[list[tuple[list[str], list[float]]], int]:
        import torch

        if self.entry.kind == KIND_SEQUENCE_CLASSIFIER:
            batch, truncated = self._encode(loaded, texts)
            with torch.inference_mode():
                probs = loaded.model(**batch).logits.float().softmax(-1)
            id2label = loaded.model.config.id2label
            names = [str(id2label[i]).lower() for i in range(probs.shape[1])]
            return [(names, row.tolist()) for row in probs], truncated
        if self.entry.kind != KIND_SENTENCE_EMBEDDING:
            raise ModelUnavailableError(f"{self.entry.title} cannot classify text.")
        vectors, truncated = self._embed(loaded, texts)
        probs = (SIMILARITY_SCALE * vectors @ self._label_matrix(loaded, labels, mode).T).softmax(-1)
        return [(labels, row.tolist()) for row in probs], truncated
