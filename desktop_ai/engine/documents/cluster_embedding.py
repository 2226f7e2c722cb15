"""Embedding a large collection on a Ray cluster (`docs update NAME --cluster ADDRESS`).

This machine still walks the folders, reads, chunks and stores (the files are here, and so is the index); only
the chunks' texts travel, in batches, to one actor per worker that holds the embedding model, and their vectors
come back in order. The indexer hands over the chunks of many files at once (GROUP_CHUNKS), so every worker has
batches to run, and stores each file as soon as its group is back: a stop or a lost connection keeps every file
stored before it, as a local update does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from desktop_ai.engine.cache import KeySpec
from desktop_ai.engine.cluster.tasks import BatchOutcome, Item
from desktop_ai.engine.documents.embedding import DIMENSIONS, DocumentEmbedder
from desktop_ai.engine.errors import CancelledError

GROUP_CHUNKS = 512  # chunks sent to the cluster at once: several batches per worker
BATCH_CHUNKS = 32


@dataclass
class EmbedChunksTask:
    """The cluster job kind: texts in, unit float32 vectors out (no result cache: the index is the store)."""

    model: str
    noun: str = "chunks"

    def read(self, name: str, ship: bool) -> tuple[str, Item]:
        return name, Item(0, name)  # the chunk's text itself travels

    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any:
        return np.asarray(value, dtype=np.float32)

    def failed_result(self, index: int, name: str, message: str) -> Any:
        raise AssertionError("a text is always readable")

    def load(self) -> Any:
        from desktop_ai.engine.workspace import open_workspace

        workspace = open_workspace(use_disk_cache=False)
        embedder = DocumentEmbedder(workspace.store, model=self.model, device="auto")
        embedder.embed(["warm up"])  # loads the model (and its ONNX export) once per worker
        return {"workspace": workspace, "embedder": embedder}

    def key_spec(self, state: Any) -> KeySpec:
        embedder = state["embedder"]
        return KeySpec("document-embedding", embedder.model_id, "", "none", {}, embedder.runtime)

    def meta(self, state: Any) -> dict[str, Any]:
        embedder = state["embedder"]
        return {"model_id": embedder.model_id, "device": embedder.device.device, "runtime": embedder.runtime}

    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome:
        vectors = state["embedder"].embed([item.name for item in items])
        return BatchOutcome([(item.index, vector) for item, vector in zip(items, vectors)])


class ClusterEmbedder:
    """Stands in for DocumentEmbedder in the Indexer: the same model id and tokenizer (chunking happens here),
    embeddings from the cluster. Use as a context manager: the workers start once and stay for the update."""

    group_chunks = GROUP_CHUNKS

    def __init__(self, local: DocumentEmbedder, address: str, workers: int = 2) -> None:
        self.local = local
        self.address = address
        self.workers = workers
        self.texts_embedded = 0
        self._cluster: Any = None
        self._job: Any = None

    @property
    def model_id(self) -> str:
        return self.local.model_id

    @property
    def tokenizer(self) -> Any:
        return self.local.tokenizer

    def __enter__(self) -> ClusterEmbedder:
        from desktop_ai.engine.cluster.connection import connect
        from desktop_ai.engine.cluster.jobs import ClusterJob

        self._cluster = connect(self.address, self.workers)
        try:
            self._job = ClusterJob(self._cluster, EmbedChunksTask(self.local.model_id), self.workers, BATCH_CHUNKS)
            self._job.start(wait=True)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._job is not None:
            self._job.close()
            self._job = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def worker_nodes(self) -> list[str]:
        return [info.node for info in self._job.infos if info is not None] if self._job is not None else []

    def embed(self, texts: Sequence[str], cancel: threading.Event | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        assert self._job is not None, "use ClusterEmbedder as a context manager"
        run = self._job.run(list(texts), cancel=cancel)
        if run.stopped or len(run.results) < len(texts):
            raise CancelledError("Stopped while embedding on the cluster.")
        self.texts_embedded += len(texts)
        return np.stack(run.results).astype(np.float32)
