"""Sentence embeddings for chunks and queries with the embedded all-MiniLM-L6-v2 (the classify task's model,
loaded and kept by the same model store). Texts are sorted by length and batched, so a batch pads to its own
longest text rather than the longest of all: most of the speed-up over a plain encode of the same chunks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from desktop_ai.engine.documents.chunking import WINDOW_TOKENS
from desktop_ai.engine.errors import CancelledError
from desktop_ai.engine.models.catalogue import TASK_CLASSIFY
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.models.loading import LoadedModel
from desktop_ai.engine.models.store import ModelStore, ProgressCallback

logger = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-minilm-l6-v2"
DIMENSIONS = 384
BATCH_TOKENS = 8192  # padded tokens per batch: long chunks go fewer at a time, short ones more


RUNTIMES = ("auto", "onnx", "torch")


class DocumentEmbedder:
    """Embeds texts into unit-length float32 vectors. `texts_embedded` counts every text the model ran on
    (the tests count it to prove an Update re-embeds only what changed).

    runtime: "auto" runs ONNX Runtime on the CPU (PyTorch on a GPU), "torch" always PyTorch (the bench's
    baseline), "onnx" ONNX Runtime. An export that fails or disagrees with PyTorch falls back to PyTorch, logged."""

    def __init__(self, store: ModelStore, model: str = EMBEDDING_MODEL, device: str = "auto",
                 runtime: str = "auto") -> None:
        self.store = store
        self.entry = store.resolve_entry(model, TASK_CLASSIFY)
        self.device = pick_device(device)
        self.texts_embedded = 0
        self.runtime = runtime if runtime != "auto" else ("torch" if self.device.is_gpu else "onnx")
        self._onnx: Any = None
        self._query_onnx: Any = None

    @property
    def model_id(self) -> str:
        return self.entry.id

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> LoadedModel:
        from transformers import AutoModel

        from desktop_ai.engine.models.loading import load_pretrained

        return load_pretrained(self.store, self.entry, AutoModel, self.device, Compression.NONE, progress, cancel)

    @property
    def tokenizer(self) -> Any:
        return self.load().tokenizer

    def _onnx_model(self, loaded: LoadedModel) -> Any:
        if self.runtime != "onnx":
            return None
        if self._onnx is None:
            from desktop_ai.engine.documents.embedding_onnx import load_onnx

            try:
                self._onnx = load_onnx(loaded, self.store.converted_dir)
            except Exception as error:  # no onnxruntime, a failed export: PyTorch gives the same vectors, slower
                logger.warning("Embedding on PyTorch: ONNX Runtime is not usable (%s)", error)
                self.runtime = "torch"
                return None
        return self._onnx

    def embed_query(self, text: str) -> np.ndarray:
        """One short text (a search's query), on a single-thread ONNX session of its own: waking every core's
        thread for a dozen tokens costs more than it gives (p50 4 ms against 10 ms on the shared 2-core machine),
        and it leaves the other core to FTS5, which runs at the same time."""
        loaded = self.load()
        onnx = self._onnx_model(loaded)
        if onnx is None:
            return self.embed([text])[0]
        from desktop_ai.engine.documents.embedding_onnx import OnnxEmbeddingModel, mean_pooled

        if self._query_onnx is None:
            self._query_onnx = OnnxEmbeddingModel(onnx.path, threads=1)
        batch = loaded.tokenizer([text], truncation=True, max_length=WINDOW_TOKENS, return_tensors="np")
        self.texts_embedded += 1
        return mean_pooled(self._query_onnx.hidden(batch["input_ids"], batch["attention_mask"]),
                           batch["attention_mask"])[0]

    def embed(self, texts: Sequence[str], cancel: threading.Event | None = None,
              on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """(len(texts), 384) float32, rows in the order given."""
        import torch

        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        loaded = self.load()
        tokenizer = loaded.tokenizer
        onnx = self._onnx_model(loaded)
        encoded = tokenizer(list(texts), truncation=True, max_length=WINDOW_TOKENS, add_special_tokens=True)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        position = 0
        while position < len(order):
            if cancel is not None and cancel.is_set():
                raise CancelledError("Stopped while embedding.")
            size = 1
            while position + size < len(order) and len(encoded[order[position + size]]) * (size + 1) <= BATCH_TOKENS:
                size += 1
            batch_ids = order[position:position + size]
            if onnx is not None:
                from desktop_ai.engine.documents.embedding_onnx import mean_pooled

                batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_ids]}, padding=True, return_tensors="np")
                out[batch_ids] = mean_pooled(onnx.hidden(batch["input_ids"], batch["attention_mask"]),
                                             batch["attention_mask"])
            else:
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_ids]}, padding=True, return_tensors="pt")
                batch = {k: v.to(loaded.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                with torch.inference_mode():
                    hidden = loaded.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
                out[batch_ids] = vectors.cpu().numpy()
            self.texts_embedded += len(batch_ids)
            position += size
            if on_batch is not None:
                on_batch(len(batch_ids))
        return out
