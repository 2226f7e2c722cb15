"""The benchmark runs end to end on tiny models (and the real MobileNetV2 of ../shared/models, when it is
there): every row is there and the numbers are real measurements."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from desktop_ai.engine.benchmark import run_benchmark, shared_models_dir

SAMPLE_IMAGES = shared_models_dir() / "sample_images"


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


@pytest.mark.skipif(not (shared_models_dir() / "mobilenet_v2_float").is_dir() or not SAMPLE_IMAGES.is_dir(),
                    reason="../shared/models is absent")
def test_recognize_bench_rows_agreement_and_cache(workspace) -> None:
    images = [str(SAMPLE_IMAGES / name) for name in ("dog.jpg", "bird.jpg", "grace_hopper.jpg", "wasmedge_input.jpg")]
    report = run_benchmark("recognize", device="cpu", repeats=1, images=images, store=workspace.store)
    rows = {(row.name, row.compression): row for row in report.rows}
    baseline = report.rows[0]
    assert baseline.name.startswith("baseline: torchvision")
    for key in [("desktop-ai ImageClassifier, batch 1", "none"), ("desktop-ai ImageClassifier, batched (16)", "none"),
                ("desktop-ai ImageClassifier, default", "none"),
                ("desktop-ai ImageClassifier, int8 TorchScript, default", "int8"), ("desktop-ai ImageClassifier, default", "prune"),
                ("desktop-ai cache hits (memory)", "none")]:
        assert key in rows, key
        assert rows[key].values["images/s"] > 0 and math.isfinite(rows[key].values["x baseline"])
        assert rows[key].values["top-1 = baseline"].endswith("%")
    assert rows[("desktop-ai ImageClassifier, default", "none")].values["top-1 = baseline"] != "0.0%"
    int8 = rows[("desktop-ai ImageClassifier, int8 TorchScript, default", "int8")].values
    assert "top-1 = baseline" in int8
    assert int8["top-1 accuracy"] == "100.0%", "dog, bird, grace_hopper and banana all have reference labels"
    assert rows[("desktop-ai cache hits (memory)", "none")].values["images/s"] > baseline.values["images/s"]
    assert any("4 images given" in note for note in report.notes)
    assert any("traced" in note for note in report.notes)
    assert "| baseline: torchvision" in report.to_markdown()


def test_translate_bench_rows_goal_and_cache(workspace, tiny_marian_dir: Path) -> None:
    report = run_benchmark("translate", model=str(tiny_marian_dir), device="cpu", repeats=1, beams=1, store=workspace.store)
    rows = {(row.name, row.compression): row for row in report.rows}
    assert report.rows[0].name.startswith("baseline: transformers MarianMTModel.generate")
    assert ("desktop-ai Translator", "none") in rows and ("desktop-ai Translator", "int8") in rows
    cached = rows[("desktop-ai Translator, same page again (cache)", "none")]
    for row in report.rows:
        assert row.values["sentences/s"] > 0 and math.isfinite(row.values["x baseline"])
    assert cached.values["ms/page"] < 50
    assert rows[("desktop-ai Translator", "none")].values["words = baseline"] == "100%", "fp32 must match the baseline"
    assert rows[("desktop-ai Translator", "int8")].values["weights MB"] < report.rows[0].values["weights MB"]
    assert any("60 distinct English sentences" in note for note in report.notes)
    assert any("tiny model" in note for note in report.notes)
    assert any(note.startswith("Goal") and "cannot be judged" in note for note in report.notes)
    assert "| baseline: transformers MarianMTModel.generate" in report.to_markdown()


def test_translate_bench_without_a_model(workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from desktop_ai.engine.errors import ModelUnavailableError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelUnavailableError, match="--model FOLDER"):
        run_benchmark("translate", device="cpu", repeats=1, store=workspace.store)


def test_transcribe_bench_whisper_rows_latency_and_goal(workspace) -> None:
    report = run_benchmark("transcribe", model="whisper-tiny.en", device="cpu", repeats=1, sentences=2, store=workspace.store)
    names = [row.name for row in report.rows]
    assert names[0].startswith("baseline: faster-whisper")
    ours = [r for r in report.rows if r.name.startswith("desktop-ai whisper (")]
    assert {r.compression for r in ours} == {"int8", "float32"}
    for row in [report.rows[0], *ours]:
        assert 0 < row.values["real-time factor"] < 5 and math.isfinite(row.values["x baseline"])
        assert float(row.values["WER"].rstrip("%")) <= 20, row  # espeak-ng sentences tiny.en hears well
    cache = next(r for r in report.rows if "cache" in r.name)
    assert cache.values["ms"] < 100
    latency = next(r for r in report.rows if "latency" in r.name)
    assert 0 < latency.values["median latency s"] < 10 and latency.values["partials"] >= 1
    assert any(note.startswith("Goal on a 2-core CPU") and "real-time factor" in note for note in report.notes)


def test_transcribe_bench_wav2vec2_against_the_pipeline(workspace, tiny_wav2vec2_dir: Path) -> None:
    report = run_benchmark("transcribe", model=str(tiny_wav2vec2_dir), device="cpu", repeats=1, sentences=1, store=workspace.store)
    assert report.rows[0].name.startswith("baseline: transformers pipeline")
    assert {r.compression for r in report.rows[1:]} == {"int8", "none"}
    assert not any("latency" in r.name for r in report.rows), "latency is measured for Whisper, the dictation default"
