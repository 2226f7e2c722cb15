"""bench --task documents: indexing throughput, search latency over 100,000 chunks, memory while indexing.

Throughput: the same chunks (real prose: the package descriptions installed beside the app, chunked by our
chunker) embedded by our embedder (length-sorted token-budget batches on ONNX Runtime) against a plain
sentence-transformers-style encode (PyTorch, batches of 32 in length order, max_seq_length 256, mean pooling),
interleaved run by run in this process. Goal: at least 2x.
Search: an index of 100,000 distinct chunks of real text, 100 queries, hybrid search timed whole (query embedding,
FTS5, the vector index, fusion, reading the passages) and in parts (documents_search.py). Goal: p95 under 50 ms.
Memory: peak resident memory while indexing a folder of those texts, sampled every 20 ms.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.documents.chunking import Chunk, chunk_document
from desktop_ai.engine.documents.embedding import DocumentEmbedder
from desktop_ai.engine.documents.index import DocumentIndex
from desktop_ai.engine.documents.indexing import Indexer
from desktop_ai.engine.documents.readers.document import Document, Section
from desktop_ai.engine.documents.search import DocumentSearch
from desktop_ai.engine.models.store import ModelStore

logger = logging.getLogger(__name__)

GOAL_SPEEDUP = 2.0
BASELINE_BATCH = 32


def corpus(limit: int) -> list[tuple[str, str]]:
    """(title, text) of installed packages' long descriptions: real English prose of many lengths."""
    found: list[tuple[str, str]] = []
    for dist in sorted(metadata.distributions(), key=lambda d: d.metadata.get("Name") or ""):
        text = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        text = text or dist.metadata.get("Description") or ""
        if len(text.split()) > 80:
            found.append((dist.metadata.get("Name") or "package", str(text)))
        if len(found) >= limit:
            break
    return found


def bench_chunks(embedder: DocumentEmbedder, count: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for title, text in corpus(400):
        chunks.extend(chunk_document(Document(Path(f"{title}.md"), title, [Section(text)]), embedder.tokenizer))
        if len(chunks) >= count:
            break
    return chunks[:count]


def plain_encode(loaded, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What sentence-transformers' encode does for this model: sort by length, batches of 32, 256 tokens."""
    import torch

    order = np.argsort([-len(t) for t in texts])
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for start in range(0, len(texts), BASELINE_BATCH):
        ids = order[start:start + BASELINE_BATCH]
        batch = loaded.tokenizer([texts[i] for i in ids], padding=True, truncation=True, max_length=256,
                                 return_tensors="pt")
        with torch.inference_mode():
            hidden = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
        out[ids] = vectors.numpy()
    return out


class PeakMemory:
    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bench_documents(store: ModelStore, device: str, repeats: int, texts: int, say: Callable[[str], None]) -> BenchReport:
    ours = DocumentEmbedder(store, device=device)
    loaded = ours.load(progress=lambda message, fraction=None: say(message))
    chunks = bench_chunks(ours, texts)
    inputs = [c.embedding_text for c in chunks]
    say(f"Documents bench: {len(inputs)} chunks, {repeats} rounds")
    ours.embed(inputs[:8])  # the ONNX export (first time only) and warm-up are not timed
    plain_encode(loaded, inputs[:8])
    ours_s: list[float] = []
    plain_s: list[float] = []
    for round_ in range(repeats):
        say(f"Embedding round {round_ + 1} of {repeats}")
        started = time.perf_counter()
        mine = ours.embed(inputs)
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = plain_encode(loaded, inputs)
        plain_s.append(time.perf_counter() - started)
    agreement = float(np.min(np.sum(mine * theirs, axis=1)))
    report = BenchReport("documents", ours.model_id, ours.device.device, environment=environment())
    report.environment["embedding runtime"] = ours.runtime
    tokens = sum(c.tokens for c in chunks)
    report.rows.append(BenchRow("plain encode (PyTorch, batches of 32)", "none",
                                {"chunks/s": len(inputs) / median(plain_s), "seconds": median(plain_s)}))
    report.rows.append(BenchRow(f"ours ({ours.runtime}, length-sorted token batches)", "none",
                                {"chunks/s": len(inputs) / median(ours_s), "seconds": median(ours_s)}))
    speedup = median(plain_s) / median(ours_s)

    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-documents-") as folder:
        root = Path(folder)
        documents = root / "documents"
        documents.mkdir()
        for number, (title, text) in enumerate(corpus(24)):
            (documents / f"{number:03d}-{title}.md").write_text(f"# {title}\n\n{text}", encoding="utf-8")
        before = rss_mb()
        with DocumentIndex(root / "index.sqlite") as index, PeakMemory() as memory:
            started = time.perf_counter()
            result = Indexer(index, ours).add("bench", [documents])
            index_s = time.perf_counter() - started
        report.rows.append(BenchRow("indexing a folder (read, chunk, embed, store)", "none", {
            "chunks/s": result.chunks_embedded / index_s, "seconds": index_s, "files": float(result.added),
            "peak RSS MB": memory.peak, "RSS before MB": before}))
        from desktop_ai.bench.documents_search import search_rows

        rows, notes = search_rows(root / "search.sqlite", mine, ours, say)
    report.rows.extend(rows)
    report.notes.append(f"Embedding: ours {speedup:.2f}x the plain encode of the same {len(inputs)} chunks "
                        f"({tokens:,} tokens); goal {GOAL_SPEEDUP:g}x: **{'met' if speedup >= GOAL_SPEEDUP else 'not met'}**. "
                        f"Lowest cosine between the two runs' vectors: {agreement:.6f} (the same vectors).")
    report.notes.extend(notes)
    report.notes.append(f"{repeats} interleaved round(s), medians. Memory: peak resident set of this process while "
                        "indexing (the embedding model is loaded before it starts).")
    from desktop_ai.bench.documents_quality import quality_rows

    rows, notes = quality_rows(ours, say)
    report.rows.extend(rows)
    report.notes.extend(notes)
    return report
