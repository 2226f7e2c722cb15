"""The benchmark runs end to end on tiny models: every row is there and the numbers are real measurements."""

from __future__ import annotations

import math
from pathlib import Path

from desktop_ai.engine.benchmark import run_benchmark


def test_generate_bench_compares_every_compression_with_the_baseline(workspace, tiny_causal_lm_dir: Path) -> None:
    report = run_benchmark("generate", model=str(tiny_causal_lm_dir), device="cpu", compressions=["none", "int8"],
                           max_new_tokens=8, repeats=1, store=workspace.store)
    names = [(row.name, row.compression) for row in report.rows]
    assert names[0][0].startswith("baseline")
    assert ("desktop-ai TextGenerator", "int8") in names
    assert {"desktop-ai cache hit (memory)", "desktop-ai cache hit (disk)"} <= {n for n, _ in names}
    for row in report.rows[:3]:
        assert row.values["tokens/s"] > 0 and math.isfinite(row.values["x baseline"])
    int8 = next(r for r in report.rows if r.compression == "int8")
    assert int8.values["weights MB"] < report.rows[0].values["weights MB"]
    markdown = report.to_markdown()
    assert "| baseline: transformers generate |" in markdown and "tokens/s" in markdown
    assert report.to_dict()["task"] == "generate"


def test_classify_bench_reports_agreement_and_cache(workspace, tiny_embedding_dir: Path) -> None:
    report = run_benchmark("classify", model=str(tiny_embedding_dir), device="cpu", compressions=["none"],
                           repeats=1, texts=16, store=workspace.store)
    ours = next(r for r in report.rows if r.name.startswith("desktop-ai TextClassifier"))
    assert ours.values["same label as baseline"] == "100%", "fp32 batched must agree with the one-at-a-time baseline"
    cache = next(r for r in report.rows if "cache" in r.name)
    assert cache.values["texts/s"] > ours.values["texts/s"]
