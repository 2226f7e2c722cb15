"""The benchmark runs end to end on tiny models (and the real MobileNetV2 of ../shared/models, when it is
there): every row is there and the numbers are real measurements."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from desktop_ai.bench import run_benchmark
from desktop_ai.bench.recognize import shared_models_dir
from desktop_ai.engine.tasks.taught_prompt import lm_available
from llama_cpp_gate import needs_llama_cpp

SAMPLE_IMAGES = shared_models_dir() / "sample_images"


def test_generate_bench_compares_every_runtime_with_the_baseline(workspace, tiny_causal_lm_dir: Path) -> None:
    """A tiny Llama folder: transformers fp32 baseline, CTranslate2 (auto's choice) and transformers compressions."""
    report = run_benchmark("generate", model=str(tiny_causal_lm_dir), device="cpu", compressions=["none", "int8"],
                           max_new_tokens=8, repeats=1, store=workspace.store)
    rows = {(row.name, row.compression): row.values for row in report.rows}
    assert report.rows[0].name == "baseline: transformers generate"
    for key in [("desktop-ai TextGenerator, ctranslate2 (the default)", "int8"),
                ("desktop-ai TextGenerator, transformers", "none"), ("desktop-ai TextGenerator, transformers", "int8")]:
        assert key in rows, key
    measured = report.rows[:4]
    for row in measured:
        values = row.values
        assert values["tokens/s"] > 0 and math.isfinite(values["x baseline"]), row.name
        for column in ("first token ms, repeated prompt", "first token ms, new prompt"):
            assert 0 < values[column] < 60_000, (row.name, column)  # a measured time, not a placeholder
        assert values["weights MB"] > 0 and math.isfinite(values["RSS added MB"])
    assert report.rows[0].values["x baseline"] == 1.0
    # x baseline is each row's own measurement divided by the baseline's, not a constant.
    for row in measured[1:]:
        assert row.values["x baseline"] == pytest.approx(row.values["tokens/s"] / report.rows[0].values["tokens/s"])
    int8 = rows[("desktop-ai TextGenerator, transformers", "int8")]
    assert int8["weights MB"] < report.rows[0].values["weights MB"]
    fresh = next(r for r in report.rows if r.name.startswith("fresh engine, press Generate to first token"))
    assert "(ctranslate2)" in fresh.name  # a real engine process answered, on the runtime auto chose
    assert 0 < fresh.values["first token ms, new prompt"] < 120_000 and fresh.values["engine start ms"] > 0
    goals = [note for note in report.notes if note.startswith("Goal")]
    assert any("CTranslate2 at least 2.5x" in g for g in goals)
    assert all(("**met**" in g) != ("**not met**" in g) for g in goals)  # each goal judged, one way
    assert {"desktop-ai cache hit (memory)", "desktop-ai cache hit (disk)"} <= {row.name for row in report.rows}
    markdown = report.to_markdown()
    assert "| baseline: transformers generate |" in markdown and "tokens/s" in markdown
    assert report.to_dict()["task"] == "generate"


@needs_llama_cpp
def test_generate_bench_on_the_embedded_gguf_includes_llama_cpp_direct(workspace) -> None:
    report = run_benchmark("generate", device="cpu", compressions=["none"], max_new_tokens=6, repeats=1, store=workspace.store)
    rows = {row.name: row for row in report.rows}
    ours = rows["desktop-ai TextGenerator, llama.cpp (the default)"]
    direct = rows["llama-cpp-python called directly"]
    assert ours.compression == "Q4_1 (GGUF)"
    assert ours.values["weights MB"] == direct.values["weights MB"]  # the same file, as it is
    assert ours.values["tokens/s"] > 0 and direct.values["tokens/s"] > 0
    assert "desktop-ai TextGenerator, ctranslate2" in rows  # from the GGUF's plain copy, int8
    goals = " ".join(note for note in report.notes if note.startswith("Goal"))
    for goal in ("at least 5x", "within 10 % of llama-cpp-python", "repeated prompt", "CTranslate2", "within 3 s"):
        assert goal in goals
    assert any(name.startswith("fresh engine") and "(llama.cpp)" in name for name in rows)


def test_classify_bench_reports_agreement_and_cache(workspace, tiny_embedding_dir: Path) -> None:
    report = run_benchmark("classify", model=str(tiny_embedding_dir), device="cpu", compressions=["none"],
                           repeats=1, texts=16, store=workspace.store)
    ours = next(r for r in report.rows if r.name.startswith("desktop-ai TextClassifier"))
    assert ours.values["same label as baseline"] == "100%", "fp32 batched must agree with the one-at-a-time baseline"
    cache = next(r for r in report.rows if "cache" in r.name)
    assert cache.values["texts/s"] > ours.values["texts/s"]
    taught = next(r for r in report.rows if r.name.startswith("desktop-ai taught classifier"))
    assert taught.values["texts/s"] > 0 and taught.values["x baseline"] == pytest.approx(
        taught.values["texts/s"] / report.rows[0].values["texts/s"])
    if lm_available():
        lm = next(r for r in report.rows if "language model" in r.name)
        assert lm.values["texts/s"] > 0 and lm.values["x baseline"] == pytest.approx(
            lm.values["texts/s"] / report.rows[0].values["texts/s"])


@pytest.mark.skipif(not (shared_models_dir() / "mobilenet_v2_float").is_dir() or not SAMPLE_IMAGES.is_dir(),
                    reason="../shared/models is absent")
def test_recognize_bench_rows_agreement_and_cache(workspace) -> None:
    images = [str(SAMPLE_IMAGES / name) for name in ("dog.jpg", "bird.jpg", "grace_hopper.jpg", "wasmedge_input.jpg")]
    report = run_benchmark("recognize", model="shared-mobilenet-v2", device="cpu", repeats=1, images=images, store=workspace.store)
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


@pytest.mark.skipif(not SAMPLE_IMAGES.is_dir(), reason="the photos in ../shared/models/sample_images are absent")
def test_recognize_bench_embedded_onnx_against_plain_pytorch(workspace) -> None:
    images = [str(SAMPLE_IMAGES / name) for name in ("dog.jpg", "bird.jpg", "wasmedge_input.jpg")]
    report = run_benchmark("recognize", device="cpu", repeats=1, images=images, store=workspace.store)
    assert report.model.startswith("EfficientNet-Lite0")
    baseline, one, many = report.rows
    assert baseline.name.startswith("baseline: plain PyTorch fp32") and "one photo at a time" in one.name
    for row in report.rows:
        assert row.values["images/s"] > 0 and math.isfinite(row.values["x baseline"])
        assert row.values["top-1 accuracy"] == "100.0%", "Samoyed, drake and banana, each way"
    goal = next(n for n in report.notes if n.startswith("Goal"))
    assert (": met:" in goal) == (one.values["x baseline"] >= 3), goal


TRANSFORMERS = "desktop-ai Translator, transformers"
CT2 = "desktop-ai Translator, CTranslate2 (the default)"


def _goal_ratio(goal: str) -> float:
    match = re.search(r"CTranslate2 ([0-9.]+)x the baseline", goal)
    assert match, goal
    return float(match.group(1))


def test_translate_bench_rows_goal_and_cache(workspace, tiny_marian_dir: Path) -> None:
    report = run_benchmark("translate", model=str(tiny_marian_dir), device="cpu", repeats=1, beams=1, store=workspace.store)
    rows = {(row.name, row.compression): row for row in report.rows}
    assert report.rows[0].name.startswith("baseline: transformers MarianMTModel.generate")
    assert [(r.name, r.compression) for r in report.rows[1:]] == [
        (TRANSFORMERS, "none"), (TRANSFORMERS, "int8"), (CT2, "int8_float32"),
        ("desktop-ai Translator, same page again (cache)", "int8_float32"),
    ]
    base_ms = report.rows[0].values["ms/page"]
    for row in report.rows:
        # real measurements: a page's time, and sentences/s and the ratio derived from it (60 sentences)
        assert row.values["ms/page"] > 0 and math.isfinite(row.values["x baseline"])
        assert row.values["sentences/s"] == pytest.approx(60_000 / row.values["ms/page"])
        assert row.values["x baseline"] == pytest.approx(base_ms / row.values["ms/page"])
    cached = report.rows[-1]
    # Issue 17 (timed tests): was "under 50 ms", the machine's speed; now a real figure of this run, below every
    # row that ran the model on the same page in the same run.
    assert 0 < cached.values["ms/page"] < min(r.values["ms/page"] for r in report.rows[:-1])
    assert rows[(TRANSFORMERS, "none")].values["words = baseline"] == "100%", "fp32 must match the baseline"
    assert rows[(TRANSFORMERS, "int8")].values["weights MB"] < report.rows[0].values["weights MB"]
    assert 0 < rows[(CT2, "int8_float32")].values["weights MB"] < report.rows[0].values["weights MB"]
    assert any("60 distinct English sentences" in note for note in report.notes)
    assert any("tiny model" in note for note in report.notes)
    assert any("converted the model once to int8" in note for note in report.notes)
    goal = next(note for note in report.notes if note.startswith("Goal"))
    assert "cannot be judged" in goal
    assert _goal_ratio(goal) == pytest.approx(rows[(CT2, "int8_float32")].values["x baseline"], abs=0.006)
    assert "| baseline: transformers MarianMTModel.generate" in report.to_markdown()


def test_translate_bench_without_a_model_runs_on_an_opus_mt_shaped_stand_in(
    workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No opus-mt here: the bench builds a random-weight MarianMT of opus-mt-en-de's shape and says so."""
    from huggingface_hub import constants
    from transformers import AutoConfig, GenerationConfig

    from desktop_ai import paths
    from desktop_ai.bench.marian_stand_in import BUILD, OPUS_MT_EN_DE, stand_in_note

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    report = run_benchmark("translate", device="cpu", repeats=1, beams=1, compressions=["none", "int8"], store=workspace.store)
    assert report.model == "opus-mt-en-de stand-in (random weights)"
    folder = paths.cache_dir() / "bench-stand-ins" / f"marian-opus-mt-en-de-v{BUILD}"
    config = AutoConfig.from_pretrained(folder)
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.vocab_size) == (512, 6, 6, 58101)
    assert (config.encoder_ffn_dim, config.encoder_attention_heads, config.activation_function) == (2048, 8, "swish")
    assert stand_in_note(config) == "random weights in opus-mt-en-de's shape, built by desktop-ai; not a translation model"
    generation = GenerationConfig.from_pretrained(folder)
    assert generation.min_new_tokens == generation.max_new_tokens == OPUS_MT_EN_DE.new_tokens
    first = report.notes[0]
    assert first.startswith("opus-mt-en-de is not downloaded") and "--model FOLDER" in first
    assert "M parameters" in first and "architecture's" in first
    rows = {(row.name, row.compression): row for row in report.rows}
    ct2 = rows[(CT2, "int8_float32")]
    # The goal is judged on the stand-in, from this run's own measurement: met exactly when the ratio is 2.5 or more.
    goal = next(note for note in report.notes if note.startswith("Goal"))
    ratio = _goal_ratio(goal)
    assert ratio == pytest.approx(ct2.values["x baseline"], abs=0.006)
    assert "opus-mt's architecture" in goal
    # The goal note holds two verdicts (the speed, then the cached page): judge the speed's own.
    speed_verdict = re.search(r"CTranslate2 [\d.]+x the baseline[^()]*\((met|not met)\)", goal)
    assert speed_verdict is not None, goal
    assert (speed_verdict.group(1) == "met") == (ratio >= 2.5)
    int8 = rows[(TRANSFORMERS, "int8")]
    assert int8.values["weights MB"] < 0.7 * report.rows[0].values["weights MB"]  # the 58 101 x 512 embedding stays fp32
    assert ct2.values["weights MB"] < 0.5 * report.rows[0].values["weights MB"]  # every matrix int8, the embedding too
    assert rows[(TRANSFORMERS, "none")].values["words = baseline"] == "100%", "fp32 must match the baseline"
    built = folder.stat().st_mtime
    converted = next((paths.cache_dir() / "ctranslate2" / "marian").iterdir())
    converted_at = (converted / "model.bin").stat().st_mtime
    run_benchmark("translate", device="cpu", repeats=1, beams=1, compressions=["none"], store=workspace.store)
    assert folder.stat().st_mtime == built, "the stand-in is built once and kept in the cache"
    assert (converted / "model.bin").stat().st_mtime == converted_at, "and converted to CTranslate2 once"


def test_translate_bench_stand_in_and_model_are_exclusive(workspace, tiny_marian_dir: Path) -> None:
    from desktop_ai.engine.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not both"):
        run_benchmark("translate", model=str(tiny_marian_dir), stand_in="tiny", device="cpu", store=workspace.store)
    with pytest.raises(InvalidInputError, match="Unknown stand-in"):
        run_benchmark("translate", stand_in="opus-mt-xx", device="cpu", store=workspace.store)
    from desktop_ai import paths

    with pytest.raises(InvalidInputError, match="Beam"):
        run_benchmark("translate", stand_in="opus-mt-en-de", beams=20, device="cpu", store=workspace.store)
    assert not (paths.cache_dir() / "bench-stand-ins").exists(), "a bad --beams is refused before a stand-in is built"


def test_a_model_that_never_reaches_end_of_sentence_is_not_taken_for_a_translation_model(tiny_marian_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, MarianMTModel

    from desktop_ai.bench.translate import _ends_sentences

    tokenizer = AutoTokenizer.from_pretrained(tiny_marian_dir)
    model = MarianMTModel.from_pretrained(tiny_marian_dir).eval()
    texts = ["Hello world.", "The cat sits on the mat."]
    model.final_logits_bias[0, model.config.eos_token_id] = -1e4  # random weights that never pick </s>
    assert not _ends_sentences(model, tokenizer, texts, "cpu")
    with torch.no_grad():
        model.final_logits_bias[0, model.config.eos_token_id] = 1e4  # a model that ends at once
    assert _ends_sentences(model, tokenizer, texts, "cpu")


def test_transcribe_bench_whisper_rows_latency_and_goal(workspace) -> None:
    report = run_benchmark("transcribe", model="whisper-tiny.en", device="cpu", repeats=1, sentences=2, store=workspace.store)
    names = [row.name for row in report.rows]
    assert names[0].startswith("baseline: faster-whisper")
    ours = [r for r in report.rows if r.name.startswith("desktop-ai whisper (")]
    assert {r.compression for r in ours} == {"int8", "float32"}
    # Issue 17 (timed tests): the figures are real measurements of this run and agree with each other (the ratio is
    # the baseline's real-time factor over the row's), not "real-time factor under 5" or "cache under 100 ms".
    base_rtf = report.rows[0].values["real-time factor"]
    for row in [report.rows[0], *ours]:
        assert row.values["real-time factor"] > 0
        assert row.values["x baseline"] == pytest.approx(base_rtf / row.values["real-time factor"], rel=1e-6)
        assert float(row.values["WER"].rstrip("%")) <= 20, row  # espeak-ng sentences tiny.en hears well
    cache = next(r for r in report.rows if "cache" in r.name)
    assert 0 < cache.values["ms"] and cache.values["real-time factor"] < min(r.values["real-time factor"] for r in ours)
    assert cache.values["x baseline"] == pytest.approx(base_rtf / cache.values["real-time factor"], rel=1e-6)
    latency = next(r for r in report.rows if "latency" in r.name)
    assert latency.values["median latency s"] > 0 and latency.values["partials"] >= 1
    assert any(note.startswith("Goal on a 2-core CPU") and "real-time factor" in note for note in report.notes)


def test_transcribe_bench_wav2vec2_against_the_pipeline(workspace, tiny_wav2vec2_dir: Path) -> None:
    report = run_benchmark("transcribe", model=str(tiny_wav2vec2_dir), device="cpu", repeats=1, sentences=1, store=workspace.store)
    assert report.rows[0].name.startswith("baseline: transformers pipeline")
    assert {r.compression for r in report.rows[1:]} == {"int8", "none"}
    assert not any("latency" in r.name for r in report.rows), "latency is measured for Whisper, the dictation default"


@needs_llama_cpp
def test_chat_bench_times_turns_with_and_without_state_reuse(workspace) -> None:
    """The 10-turn script on the embedded GGUF, answers cut to 2 tokens: the figures come from the run."""
    report = run_benchmark("chat", device="cpu", max_new_tokens=2, repeats=1, store=workspace.store)
    assert report.task == "chat" and report.model == "smollm2-135m-instruct-q4"
    assert report.environment["runtime"] == "llama.cpp"
    reuse, reset = report.rows
    assert reuse.name.startswith("with state reuse") and reset.name.startswith("without")
    for row in (reuse, reset):
        times = [row.values[f"turn {n} first token ms"] for n in (1, 5, 10)]
        assert all(math.isfinite(t) and 0 < t < 120_000 for t in times), row.name  # measured, not placeholders
        assert row.values["turn 10 / turn 1"] == pytest.approx(times[2] / times[0])
    # Both ways read the same prompt at turn 10; only the reuse row skipped most of it.
    assert reuse.values["turn 10 prompt tokens"] == reset.values["turn 10 prompt tokens"] > 100
    assert 0 < reuse.values["turn 10 reused tokens"] < reuse.values["turn 10 prompt tokens"]
    assert reset.values["turn 10 reused tokens"] == 0
    speedup = reset.values["turn 10 first token ms"] / reuse.values["turn 10 first token ms"]
    assert any(f"{speedup:.2f}x sooner" in note for note in report.notes)
    goal = next(note for note in report.notes if note.startswith("Goal"))
    assert f"{reuse.values['turn 10 / turn 1']:.2f}x" in goal
    assert ("**met**" in goal) != ("**not met**" in goal)
    assert "| with state reuse (the default) |" in report.to_markdown()
