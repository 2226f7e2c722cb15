"""Hybrid search: words (SQLite FTS5, BM25) and meaning (MiniLM vectors, an exact scan with numpy) merged by
weighted reciprocal rank fusion. Words find exact names and numbers that embeddings blur; embeddings find
passages that say the same thing in other words. No language model is involved.

BM25 over many chunks: FTS5 scores every chunk that has any of the query's words, so a common word ("value",
"function") in 40 % of 100,000 chunks costs over 100 ms. Like Lucene's common-terms query (cutoff frequency),
the query's words are taken rarest first until their chunk counts reach POSTINGS_BUDGET; the more common words
left out carry the least idf (docs/benchmarks.md measures what that costs in known-item hits). A collection
smaller than the budget is always searched with every word.

The query is embedded on a worker thread while FTS5 runs (ONNX Runtime and SQLite both release the GIL).

Fusion: score = BM25_WEIGHT / (RRF_K + bm25 rank) + VECTOR_WEIGHT / (RRF_K + vector rank), ranks from 1, a list
the passage is missing from adding nothing. The weights are module constants so the quality bench can sweep them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from desktop_ai.engine.documents.embedding import DocumentEmbedder
from desktop_ai.engine.documents.index import DocumentIndex
from desktop_ai.engine.documents.vectors import VECTORS, VectorStore
from desktop_ai.engine.errors import InvalidInputError

RRF_K = 60
BM25_WEIGHT = 1.0
VECTOR_WEIGHT = 1.0
CANDIDATES = 100  # from each list before fusion
POSTINGS_BUDGET = 15_000  # chunks BM25 may score per query (p95 about 22 ms of FTS5 on this 2-core machine)
# Below this cosine similarity and without a word match, a passage is not about the question (MiniLM's
# unrelated sentences sit around 0 to 0.2).
RELEVANT_SIMILARITY = 0.25
_WORD = re.compile(r"\w+", re.UNICODE)
# English function words: in a small collection BM25's idf cannot tell them from content words, and a question
# ("what to do when ...") would match every passage with "to". Left out unless the query has nothing else.
STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or that the this to was what when "
    "where which who why will with you your can should".split()
)


@dataclass
class Passage:
    chunk_id: int
    collection: str
    path: str
    title: str
    heading: str
    page: int | None
    text: str
    score: float
    bm25_rank: int | None = None
    vector_rank: int | None = None
    similarity: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    passages: list[Passage]
    seconds: float
    notices: list[str] = field(default_factory=list)

    @property
    def relevant(self) -> list[Passage]:
        """Passages that share a word with the query or are close in meaning to it."""
        return [p for p in self.passages if p.bm25_rank is not None or p.similarity >= RELEVANT_SIMILARITY]


def query_words(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))


def fts_query(text: str | Sequence[str]) -> str:
    """The query's words, each quoted (so FTS5 syntax in the user's text means nothing), any of them matching."""
    words = query_words(text) if isinstance(text, str) else list(text)
    return " OR ".join(f'"{w}"' for w in words)


def within_budget(words: Sequence[str], counts: dict[str, int], budget: int = POSTINGS_BUDGET) -> list[str]:
    """The rarest words whose chunk counts add up to at most `budget` (always at least the rarest one)."""
    chosen: list[str] = []
    total = 0
    for word in sorted((w for w in words if counts.get(w, 0) > 0), key=lambda w: counts[w]):
        if chosen and total + counts[word] > budget:
            break
        chosen.append(word)
        total += counts[word]
    return chosen


def fuse(rankings: Sequence[tuple[float, Sequence[int]]], k: int = RRF_K) -> dict[int, float]:
    """Weighted reciprocal rank fusion of several ranked id lists."""
    scores: dict[int, float] = {}
    for weight, ids in rankings:
        for rank, item in enumerate(ids, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


class DocumentSearch:
    def __init__(self, index: DocumentIndex, embedder: DocumentEmbedder, bm25_weight: float | None = None,
                 vector_weight: float | None = None, vectors: VectorStore | None = None,
                 postings_budget: int | None = POSTINGS_BUDGET) -> None:
        """postings_budget None: BM25 always scores every chunk with any of the words (the bench compares)."""
        self.index = index
        self.embedder = embedder
        self.vectors = vectors if vectors is not None else VECTORS
        self.postings_budget = postings_budget
        self.bm25_weight = BM25_WEIGHT if bm25_weight is None else bm25_weight
        self.vector_weight = VECTOR_WEIGHT if vector_weight is None else vector_weight

    def search(self, collections: Sequence[str], query: str, top_k: int = 5, mode: str = "hybrid") -> SearchResult:
        """mode: hybrid, bm25 or vector (the last two for the quality bench)."""
        if not query.strip():
            raise InvalidInputError("The search is empty: type some words to look for.")
        if top_k < 1:
            raise InvalidInputError("--top must be at least 1.")
        started = time.perf_counter()
        names = {self.index.collection_id(name): name for name in collections}
        ids = list(names)
        embedding = None
        if mode in ("hybrid", "vector"):
            embedding = _EMBEDDING_THREAD.submit(self.embedder.embed_query, query)
        bm25 = self.bm25(ids, query) if mode in ("hybrid", "bm25") else []
        vector, similarity = self.vector(ids, embedding.result()) if embedding is not None else ([], {})
        scores = fuse([(self.bm25_weight, bm25), (self.vector_weight, vector)])
        best = sorted(scores, key=lambda i: -scores[i])[:top_k]
        bm25_rank = {item: rank for rank, item in enumerate(bm25, 1)}
        vector_rank = {item: rank for rank, item in enumerate(vector, 1)}
        passages = []
        rows = self._rows(best)
        for chunk_id in best:
            row = rows[chunk_id]
            passages.append(Passage(chunk_id, names[row[0]], row[1], row[2], row[3], row[4], row[5],
                                    round(scores[chunk_id], 6), bm25_rank.get(chunk_id), vector_rank.get(chunk_id),
                                    round(float(similarity.get(chunk_id, 0.0)), 4)))
        return SearchResult(query, passages, time.perf_counter() - started)

    def bm25(self, collection_ids: Sequence[int], query: str, limit: int = CANDIDATES) -> list[int]:
        words = query_words(query)
        if not words or not collection_ids:
            return []
        if self.postings_budget is not None and len(words) > 1:
            counts = {w: self.index.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                               (fts_query([w]),)).fetchone()[0] for w in words}
            words = within_budget(words, counts, self.postings_budget)
            if not words:
                return []
        match = fts_query(words)
        total = self.index.db.execute("SELECT count(*) FROM collections").fetchone()[0]
        if len(set(collection_ids)) >= total:
            # Every collection is searched: rank in FTS5 alone, which keeps only the top `limit` as it goes
            # (about 2x faster over 100,000 chunks than ordering the joined rows; docs/benchmarks.md).
            rows = self.index.db.execute(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rank MATCH 'bm25(0.5, 1.0, 1.0)' "
                "ORDER BY rank LIMIT ?", (match, limit)).fetchall()
            return [r[0] for r in rows]
        marks = ",".join("?" * len(collection_ids))
        rows = self.index.db.execute(
            f"SELECT chunks_fts.rowid FROM chunks_fts JOIN chunks ON chunks.id = chunks_fts.rowid "
            f"JOIN files ON files.id = chunks.file_id WHERE chunks_fts MATCH ? AND files.collection_id IN ({marks}) "
            f"ORDER BY bm25(chunks_fts, 0.5, 1.0, 1.0) LIMIT ?", (match, *collection_ids, limit)).fetchall()
        return [r[0] for r in rows]

    def vector(self, collection_ids: Sequence[int], query: str | np.ndarray,
               limit: int = CANDIDATES) -> tuple[list[int], dict[int, float]]:
        """The nearest chunks by cosine: exact below the store's limit, approximate above (vectors.py)."""
        parts = [self.vectors.get(self.index, cid) for cid in collection_ids]
        parts = [p for p in parts if len(p.ids)]
        if not parts:
            return [], {}
        query_vector = self.embedder.embed_query(query) if isinstance(query, str) else query
        found = [p.nearest(query_vector, limit) for p in parts]
        ids = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        top = np.argsort(-scores, kind="stable")[:limit]
        return [int(ids[i]) for i in top], {int(ids[i]): float(scores[i]) for i in top}

    def _rows(self, chunk_ids: Sequence[int]) -> dict[int, tuple]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self.index.db.execute(
            f"SELECT chunks.id, files.collection_id, files.path, chunks.title, chunks.heading, chunks.page, chunks.text "
            f"FROM chunks JOIN files ON files.id = chunks.file_id WHERE chunks.id IN ({marks})", tuple(chunk_ids))
        return {r[0]: r[1:] for r in rows}


# One thread embeds queries while the calling thread runs FTS5 (the embedder's session is thread-safe for runs).
_EMBEDDING_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-embedding")
