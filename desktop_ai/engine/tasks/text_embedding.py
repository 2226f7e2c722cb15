"""Sentence embeddings: texts in, one unit-length vector each out (mean-pooled, as sentence-transformers does).

The same sentence-embedding models the zero-shot classifier runs (the embedded MiniLM, any sentence-transformers
folder), loaded once in the store and shared with it; vectors are cached per text like every other result."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.catalogue import KIND_SENTENCE_EMBEDDING, TASK_CLASSIFY
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.models.loading import LoadedModel, run_with_cpu_fallback
from desktop_ai.engine.models.store import ModelStore, ProgressCallback

logger = logging.getLogger(__name__)

TASK_EMBED = "embed"
MAX_TEXTS = 2048  # OpenAI's own limit on one embeddings request
MAX_TOKENS = 512


@dataclass
class EmbeddingBatch:
    vectors: list[list[float]]
    tokens: int  # tokens read by the model, cached texts counted as they were when first read
    model_id: str
    device: str
    seconds: float
    cached: int = 0
    notices: list[str] = field(default_factory=list)


class TextEmbedder:
    def __init__(self, store: ModelStore, cache: ResultCache | None = None, model: str | None = None,
                 device: str = "auto", compression: Compression | str = Compression.NONE) -> None:
        self.store = store
        self.cache = cache
        self.entry = store.resolve_entry(model or "all-minilm-l6-v2", TASK_CLASSIFY)
        if self.entry.kind != KIND_SENTENCE_EMBEDDING:
            raise ModelUnavailableError(f"{self.entry.title} is not a sentence-embedding model.")
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)

    def run(self, texts: Sequence[str], progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None, batch_size: int = 32) -> EmbeddingBatch:
        """Empty texts are refused (OpenAI refuses them too): a vector of nothing means nothing."""
        texts = list(texts)
        if not texts:
            raise InvalidInputError("There is no text to embed.")
        if len(texts) > MAX_TEXTS:
            raise InvalidInputError(f"{len(texts):,} texts is more than {MAX_TEXTS:,} at once.")
        if any(not text.strip() for text in texts):
            raise InvalidInputError("An input text is empty.")
        started = time.perf_counter()
        location = self.store.locate(self.entry, progress, cancel)
        spec = KeySpec(TASK_EMBED, self.entry.id, location.revision, self.compression.value, {"pool": "mean"})
        vectors: list[list[float] | None] = [None] * len(texts)
        counts = [0] * len(texts)
        if self.cache is not None:
            for index, text in enumerate(texts):
                hit = self.cache.get(spec.key(text))
                if hit is not None:
                    vectors[index], counts[index] = hit["vector"], hit["tokens"]
        todo = [i for i, v in enumerate(vectors) if v is None]
        device, notices = self.device.device, []
        if todo:
            from transformers import AutoModel

            def job(loaded: LoadedModel) -> None:
                for start in range(0, len(todo), batch_size):
                    chunk = todo[start:start + batch_size]
                    rows, lengths = embed(loaded, [texts[i] for i in chunk])
                    for i, row, length in zip(chunk, rows, lengths):
                        vectors[i], counts[i] = row, length
                        if self.cache is not None:
                            self.cache.put(spec.key(texts[i]), {"vector": row, "tokens": length})

            _, loaded, notices = run_with_cpu_fallback(self.store, self.entry, AutoModel, self.device,
                                                       self.compression, job, progress, cancel)
            device = loaded.device
        return EmbeddingBatch([v for v in vectors if v is not None], sum(counts), self.entry.id, device,
                              time.perf_counter() - started, len(texts) - len(todo), notices)


def embed(loaded: LoadedModel, texts: list[str]) -> tuple[list[list[float]], list[int]]:
    """Unit vectors (mean of the token states, padding left out) and each text's token count."""
    import torch

    limit = min(getattr(loaded.tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS, MAX_TOKENS)
    batch = loaded.tokenizer(texts, truncation=True, max_length=limit, padding=True, return_tensors="pt")
    batch = {k: v.to(loaded.device) for k, v in batch.items()}
    with torch.inference_mode():
        hidden = loaded.model(**batch).last_hidden_state.float()
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(pooled, dim=-1)
    return vectors.cpu().tolist(), batch["attention_mask"].sum(1).tolist()
