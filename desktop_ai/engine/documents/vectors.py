"""Each collection's vectors for the meaning half of a search: an exact scan (one matrix-vector product and a
partial sort) while the collection is small enough for that to be fast, an approximate index (usearch's HNSW,
half-precision) beyond, stored under the data folder beside the SQLite index.

Both are kept current incrementally: when a collection's generation changed, the chunk ids and their files'
indexing times are read again (one small query) and only the chunks added, re-indexed or removed since are
applied; nothing is rebuilt from zero. The approximate index is saved with a sidecar of the (id, indexed time)
pairs it holds; a missing, unreadable or mismatched file is rebuilt from SQLite, with a log message.

EXACT_SCAN_LIMIT was measured (docs/benchmarks.md, 2026-12-08, shared 2-core machine): the exact scan of 100,000
384-d vectors took p50 8 to 22 ms / p95 16 to 30 ms depending on the load, the HNSW search 0.4 to 1.3 ms p50
(recall@10 0.999 for queries near a passage); at 50,000 the exact scan costs half that, and its results are exact.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.documents.index import DocumentIndex

logger = logging.getLogger(__name__)

EXACT_SCAN_LIMIT = 50_000  # chunks in a collection above which the approximate index answers
ANN_CONNECTIVITY = 16
ANN_EXPANSION_ADD = 128
ANN_EXPANSION_SEARCH = 256  # candidates the graph search keeps; the hybrid search asks for 100


def ann_folder(index: DocumentIndex) -> Path:
    return index.path.parent / f"{index.path.stem}-vectors"


@dataclass
class CollectionVectors:
    """One collection's chunk ids, each with its file's indexing time (a re-indexed file gets new vectors under
    ids SQLite may reuse, so the pair is what identifies a vector), and either the matrix or the ANN index."""

    collection_id: int
    generation: int = -1
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stamps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    matrix: np.ndarray | None = None
    ann: Any = None

    @property
    def approximate(self) -> bool:
        return self.ann is not None

    def nearest(self, query: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, cosine similarities), best first."""
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.ann is not None:
            matches = self.ann.search(query.astype(np.float32), min(limit, len(self.ids)))
            return matches.keys.astype(np.int64), (1.0 - matches.distances).astype(np.float32)
        assert self.matrix is not None
        scores = self.matrix @ query
        count = min(limit, len(scores))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top])]
        return self.ids[top], scores[top]


def _new_ann(dimensions: int) -> Any:
    from usearch.index import Index

    return Index(ndim=dimensions, metric="cos", dtype="f16", connectivity=ANN_CONNECTIVITY,
                 expansion_add=ANN_EXPANSION_ADD, expansion_search=ANN_EXPANSION_SEARCH)


class VectorStore:
    """Process-wide cache of CollectionVectors, refreshed incrementally when a collection's generation moves."""

    def __init__(self, exact_scan_limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], CollectionVectors] = {}
        self.exact_scan_limit = exact_scan_limit

    @property
    def limit(self) -> int:
        return EXACT_SCAN_LIMIT if self.exact_scan_limit is None else self.exact_scan_limit

    def get(self, index: DocumentIndex, collection_id: int) -> CollectionVectors:
        generation = index.generation(collection_id)
        key = (str(index.path), collection_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = CollectionVectors(collection_id)
            if entry.generation != generation:
                self._refresh(index, entry, generation)
            return entry

    def forget(self, index: DocumentIndex, collection_id: int) -> None:
        with self._lock:
            self._entries.pop((str(index.path), collection_id), None)

    def _refresh(self, index: DocumentIndex, entry: CollectionVectors, generation: int) -> None:
        ids, stamps = index.chunk_stamps(entry.collection_id)
        if len(ids) > self.limit:
            if entry.ann is None:
                self._open_ann(index, entry)
                entry.matrix = None
            self._sync_ann(index, entry, ids, stamps)
        else:
            if entry.ann is not None:
                entry.ann = None
                entry.ids, entry.stamps = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
            self._sync_matrix(index, entry, ids, stamps)
        entry.generation = generation

    # the exact scan's matrix

    def _sync_matrix(self, index: DocumentIndex, entry: CollectionVectors, ids: np.ndarray, stamps: np.ndarray) -> None:
        kept, added = _diff(entry.ids, entry.stamps, ids, stamps)
        old = entry.matrix if entry.matrix is not None else None
        new_vectors = index.vectors_of(ids[added]) if added.any() else None
        dimensions = (old.shape[1] if old is not None and old.size else
                      new_vectors.shape[1] if new_vectors is not None else 0)
        matrix = np.zeros((len(ids), dimensions), dtype=np.float32)
        if old is not None and kept.any():
            position = {int(i): row for row, i in enumerate(entry.ids)}
            matrix[kept] = old[[position[int(i)] for i in ids[kept]]]
        if new_vectors is not None:
            matrix[added] = new_vectors
        entry.ids, entry.stamps, entry.matrix = ids, stamps, matrix

    # the approximate index

    def _paths(self, index: DocumentIndex, collection_id: int) -> tuple[Path, Path]:
        folder = ann_folder(index)
        return folder / f"collection-{collection_id}.usearch", folder / f"collection-{collection_id}.keys.npz"

    def _open_ann(self, index: DocumentIndex, entry: CollectionVectors) -> None:
        """Load the saved index if it is whole and agrees with its sidecar; otherwise start an empty one."""
        from usearch.index import Index

        graph_path, keys_path = self._paths(index, entry.collection_id)
        entry.ids, entry.stamps = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        if not graph_path.exists():
            logger.info("Building the approximate vector index of collection %d", entry.collection_id)
            entry.ann = None
            return
        try:
            ann = Index.restore(str(graph_path))
            with np.load(keys_path) as saved:
                ids, stamps = saved["ids"], saved["stamps"]
            if ann is None or len(ann) != len(ids):
                raise ValueError(f"it holds {0 if ann is None else len(ann)} vectors, its key list {len(ids)}")
        except Exception as error:  # a torn write, a foreign file: the SQLite index has every vector
            logger.warning("The approximate vector index %s is unreadable (%s); rebuilding it from the documents "
                           "index", graph_path, error)
            entry.ann = None
            return
        ann.expansion_search = ANN_EXPANSION_SEARCH
        entry.ann, entry.ids, entry.stamps = ann, ids.astype(np.int64), stamps.astype(np.float64)

    def _sync_ann(self, index: DocumentIndex, entry: CollectionVectors, ids: np.ndarray, stamps: np.ndarray) -> None:
        kept_new, added = _diff(entry.ids, entry.stamps, ids, stamps)
        kept_old, _ = _diff(ids, stamps, entry.ids, entry.stamps)
        removed = entry.ids[~kept_old]
        if entry.ann is None:
            probe = index.vectors_of(ids[:1])
            entry.ann = _new_ann(probe.shape[1] if probe.size else 384)
        if len(removed):
            entry.ann.remove(removed.astype(np.uint64))
        if added.any():
            chosen = ids[added]
            for start in range(0, len(chosen), 10_000):  # bounded memory while adding a large collection
                part = chosen[start:start + 10_000]
                entry.ann.add(part.astype(np.uint64), index.vectors_of(part), threads=0)
        entry.ids, entry.stamps = ids, stamps
        if len(removed) or added.any():
            self._save_ann(index, entry)
            logger.info("Approximate vector index of collection %d: %d added, %d removed, %d in all",
                        entry.collection_id, int(added.sum()), len(removed), len(ids))

    def _save_ann(self, index: DocumentIndex, entry: CollectionVectors) -> None:
        graph_path, keys_path = self._paths(index, entry.collection_id)
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        graph_tmp, keys_tmp = graph_path.with_suffix(".tmp"), keys_path.with_name(keys_path.name + ".tmp.npz")
        entry.ann.save(str(graph_tmp))
        np.savez(keys_tmp, ids=entry.ids, stamps=entry.stamps)
        graph_tmp.replace(graph_path)  # each file whole or not at all; a mismatch of the two is caught on load
        keys_tmp.replace(keys_path)


def _diff(old_ids: np.ndarray, old_stamps: np.ndarray, ids: np.ndarray,
          stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks over `ids`: (kept: the same id with the same stamp was there before, added: all others)."""
    if len(old_ids) == 0:
        return np.zeros(len(ids), dtype=bool), np.ones(len(ids), dtype=bool)
    where = np.searchsorted(old_ids, ids)
    where = np.clip(where, 0, len(old_ids) - 1)
    kept = (old_ids[where] == ids) & (old_stamps[where] == stamps)
    return kept, ~kept


VECTORS = VectorStore()
