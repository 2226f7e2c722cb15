"""The vector half of the documents search: the exact scan's matrix and the approximate index (usearch HNSW) stay
current incrementally as files are added, re-indexed and removed; the approximate index is saved under the data
folder and rebuilt, with a log message, when its file is unreadable; BM25's postings budget keeps the rare words.
Real SQLite indexes with real (seeded random) unit vectors; no model is needed here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from desktop_ai.engine.documents.chunking import Chunk
from desktop_ai.engine.documents.index import DocumentIndex
from desktop_ai.engine.documents.search import DocumentSearch, within_budget
from desktop_ai.engine.documents.vectors import VectorStore, ann_folder

FILES = 12
PER_FILE = 40
DIMENSIONS = 32


def _unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.normal(size=(count, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _save(index: DocumentIndex, name: str, number: int, vectors: np.ndarray, texts: list[str] | None = None) -> None:
    collection = index.collection(name)
    texts = texts or [f"file {number} passage {i}" for i in range(len(vectors))]
    chunks = [Chunk(text, f"file {number}", "", None, i, 8) for i, text in enumerate(texts)]
    index.save_file(collection, f"/docs/{number:03d}.md", 1, 1.0, f"{number}", f"file {number}", chunks, vectors, 4)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[DocumentIndex, dict[int, np.ndarray]]:
    rng = np.random.default_rng(7)
    index = DocumentIndex(tmp_path / "documents.sqlite")
    index.create_collection("many", [], {})
    vectors = {}
    for number in range(FILES):
        vectors[number] = _unit(rng, PER_FILE)
        _save(index, "many", number, vectors[number])
    yield index, vectors
    index.close()


def _exact_top(index: DocumentIndex, query: np.ndarray, k: int) -> list[int]:
    ids, _ = index.chunk_stamps(index.collection("many").id)
    matrix = index.vectors_of(ids)
    return [int(ids[i]) for i in np.argsort(-(matrix @ query))[:k]]


def test_the_approximate_index_answers_as_the_exact_scan_on_a_small_set(filled) -> None:  # type: ignore[no-untyped-def]
    index, _ = filled
    collection_id = index.collection("many").id
    exact_store, ann_store = VectorStore(exact_scan_limit=10**9), VectorStore(exact_scan_limit=100)
    exact, approximate = exact_store.get(index, collection_id), ann_store.get(index, collection_id)
    assert not exact.approximate and approximate.approximate
    assert (ann_folder(index) / f"collection-{collection_id}.usearch").exists(), "saved under the data folder"
    rng = np.random.default_rng(11)
    for query in _unit(rng, 20):
        exact_ids, exact_scores = exact.nearest(query, 10)
        ann_ids, ann_scores = approximate.nearest(query, 10)
        assert list(exact_ids) == _exact_top(index, query, 10)
        # The graph keeps half-precision vectors and is built by several threads, so it is approximate: it may miss
        # one of the ten (a fresh-clone run missed the third of one query's ten). What it reports is each answer's
        # true similarity, best first, and at least nine of the exact ten.
        true = index.vectors_of(ann_ids) @ query
        assert np.allclose(ann_scores, true, atol=2e-3) and np.all(np.diff(ann_scores) <= 2e-3)
        assert len(set(ann_ids.tolist()) & set(exact_ids.tolist())) >= 9


@pytest.mark.parametrize("limit", [10**9, 100], ids=["exact", "approximate"])
def test_removed_and_reindexed_files_leave_the_vectors_incrementally(filled, limit: int) -> None:  # type: ignore[no-untyped-def]
    index, vectors = filled
    collection = index.collection("many")
    store = VectorStore(exact_scan_limit=limit)
    entry = store.get(index, collection.id)
    assert len(entry.ids) == FILES * PER_FILE
    removed_ids = index.db.execute("SELECT chunks.id FROM chunks JOIN files ON files.id = chunks.file_id "
                                   "WHERE files.path = ?", ("/docs/011.md",)).fetchall()
    index.remove_files(collection, ["/docs/011.md"])
    entry = store.get(index, collection.id)
    assert len(entry.ids) == (FILES - 1) * PER_FILE and not set(r[0] for r in removed_ids) & set(entry.ids.tolist())
    for query in vectors[11][:5]:  # the removed file's own vectors find nothing of it any more
        found, _ = entry.nearest(query, 10)
        assert not set(found.tolist()) & set(r[0] for r in removed_ids)
    if limit == 100:
        assert len(entry.ann) == (FILES - 1) * PER_FILE, "removed from the graph, not only filtered out"
        reopened = VectorStore(exact_scan_limit=limit).get(index, collection.id)
        assert len(reopened.ann) == (FILES - 1) * PER_FILE, "the saved file was updated"

    # File 10 is re-indexed with new vectors: SQLite may hand its chunks the same ids again (they were the
    # highest), so the store must see that they are new by their file's indexing time, not by id.
    fresh = _unit(np.random.default_rng(99), PER_FILE)
    _save(index, "many", 10, fresh)
    entry = store.get(index, collection.id)
    for row, query in enumerate(fresh[:5]):
        found, similarity = entry.nearest(query, 1)
        text = index.db.execute("SELECT text FROM chunks WHERE id = ?", (int(found[0]),)).fetchone()[0]
        assert text == f"file 10 passage {row}" and similarity[0] == pytest.approx(1.0, abs=2e-3)


def test_an_unreadable_approximate_index_is_rebuilt_with_a_log_message(filled, caplog) -> None:  # type: ignore[no-untyped-def]
    index, _ = filled
    collection_id = index.collection("many").id
    VectorStore(exact_scan_limit=100).get(index, collection_id)
    graph = ann_folder(index) / f"collection-{collection_id}.usearch"
    graph.write_bytes(graph.read_bytes()[:200])  # a torn write
    query = _unit(np.random.default_rng(3), 1)[0]
    with caplog.at_level(logging.WARNING, logger="desktop_ai.engine.documents.vectors"):
        entry = VectorStore(exact_scan_limit=100).get(index, collection_id)
    assert any("unreadable" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert len(entry.ann) == FILES * PER_FILE and list(entry.nearest(query, 10)[0]) == _exact_top(index, query, 10)
    assert VectorStore(exact_scan_limit=100).get(index, collection_id).ann is not None, "saved whole again"
    graph.write_bytes(b"not an index at all")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="desktop_ai.engine.documents.vectors"):
        entry = VectorStore(exact_scan_limit=100).get(index, collection_id)
    assert any("rebuilding" in r.getMessage() for r in caplog.records) and len(entry.ann) == FILES * PER_FILE


def test_bm25_scores_the_rarest_words_within_its_postings_budget(tmp_path: Path) -> None:
    assert within_budget(["common", "rare", "middle"], {"common": 900, "rare": 3, "middle": 50}, 100) == ["rare", "middle"]
    assert within_budget(["common", "absent"], {"common": 900, "absent": 0}, 100) == ["common"], "the rarest always"
    with DocumentIndex(tmp_path / "documents.sqlite") as index:
        index.create_collection("many", [], {})
        rng = np.random.default_rng(5)
        texts = [f"the value of setting {i}" for i in range(60)] + ["the quasar value", "a quasar alone"]
        _save(index, "many", 0, _unit(rng, len(texts)), texts)
        collection_id = index.collection("many").id
        budgeted = DocumentSearch(index, None, postings_budget=10)  # type: ignore[arg-type]
        everything = DocumentSearch(index, None, postings_budget=None)  # type: ignore[arg-type]
        rows = dict(index.db.execute("SELECT id, text FROM chunks"))
        assert [rows[i] for i in budgeted.bm25([collection_id], "quasar value")] == ["the quasar value", "a quasar alone"]
        full = [rows[i] for i in everything.bm25([collection_id], "quasar value")]
        assert full[0] == "the quasar value" and len(full) == 62, "without a budget every chunk with a word"
