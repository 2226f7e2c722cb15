"""Retrieval quality (nDCG@10) of BM25 alone, the embeddings alone and the weighted fusion, and the choice of the
fusion weight.

No BEIR-style set (FiQA, ArguAna, NFCorpus, SCIDOCS...) can be reached from this project's machines: they are
downloads from their authors' servers or the Hugging Face Hub, and no PyPI, npm or Debian package ships their
files. So the weight is chosen on a dev set built from public text that every install has: the Python packages
installed beside the app. Each package's one-line summary, with the package's own name taken out, is a query;
the one relevant document is that package's long description (indexed as a collection, chunked as ours are). A
document's rank is the rank of its best chunk. This is a known-item set: one relevant document per query, so
nDCG@10 is 1/log2(1 + rank) when it is in the top 10.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from desktop_ai.bench.report import BenchRow
from desktop_ai.engine.documents.embedding import DocumentEmbedder
from desktop_ai.engine.documents.index import DocumentIndex
from desktop_ai.engine.documents.indexing import Indexer
from desktop_ai.engine.documents.search import DocumentSearch

WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # BM25's weight; the vectors' weight is 1 (0 = vectors alone)


DESCRIPTION_WORDS = 400  # each description's beginning: keeps the dev set small enough to embed in minutes


def dev_set(limit: int = 60) -> list[tuple[str, str, str]]:
    """(name, query, description) of installed packages with a summary and a long description."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata.get("Name") or "").lower()):
        name = (dist.metadata.get("Name") or "").strip()
        summary = (dist.metadata.get("Summary") or "").strip()
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        body = str(body or dist.metadata.get("Description") or "")
        if not name or name.lower() in seen or len(body.split()) < 80 or len(summary.split()) < 4:
            continue
        seen.add(name.lower())
        parts = {name.lower(), name.lower().replace("-", "_"), name.lower().replace("_", "-")}
        query = " ".join(w for w in summary.split() if re.sub(r"\W", "", w).lower() not in
                         {re.sub(r"\W", "", p) for p in parts})
        if len(query.split()) >= 3:
            rows.append((name, query, " ".join(body.split(" ")[:DESCRIPTION_WORDS])))
        if len(rows) >= limit:
            break
    return rows


def ndcg_at_10(ranked_paths: list[str], relevant: str) -> float:
    seen: list[str] = []
    for path in ranked_paths:
        if path not in seen:
            seen.append(path)
    if relevant in seen[:10]:
        return 1.0 / math.log2(seen.index(relevant) + 2)
    return 0.0


def quality_rows(embedder: DocumentEmbedder, say: Callable[[str], None]) -> tuple[list[BenchRow], list[str]]:
    rows_in = dev_set()
    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-quality-") as folder:
        root = Path(folder)
        docs = root / "docs"
        docs.mkdir()
        for number, (name, _query, body) in enumerate(rows_in):
            (docs / f"{number:04d}.md").write_text(body, encoding="utf-8")
        say(f"Quality dev set: indexing {len(rows_in)} package descriptions")
        with DocumentIndex(root / "index.sqlite") as index:
            Indexer(index, embedder).add("dev", [docs])
            results: dict[str, list[float]] = {}
            for weight in WEIGHTS:
                search = DocumentSearch(index, embedder, bm25_weight=weight, vector_weight=1.0)
                label = "vectors alone" if weight == 0 else f"fusion, BM25 weight {weight:g}"
                results[label] = []
                for number, (_name, query, _body) in enumerate(rows_in):
                    passages = search.search(["dev"], query, top_k=50).passages
                    results[label].append(ndcg_at_10([p.path for p in passages], str(docs / f"{number:04d}.md")))
            search = DocumentSearch(index, embedder)
            results["BM25 alone"] = [
                ndcg_at_10([p.path for p in search.search(["dev"], q, top_k=50, mode="bm25").passages],
                           str(docs / f"{n:04d}.md")) for n, (_name, q, _b) in enumerate(rows_in)]
    table = [BenchRow(f"dev set: {label}", "none", {"nDCG@10": 100 * sum(v) / len(v), "queries": float(len(v))})
             for label, v in results.items()]
    best = max((label for label in results if label.startswith("fusion")), key=lambda l: sum(results[l]))
    notes = [f"Quality: {len(rows_in)} known-item queries (installed packages' summaries without their names, against "
             f"their long descriptions); the best fusion weight on this dev set was “{best}”. No BEIR-style set could "
             "be reached (see desktop_ai/bench/documents_quality.py)."]
    return table, notes
