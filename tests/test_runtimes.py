"""The language-model runtimes with real parts: the embedded GGUF on llama.cpp, a tiny random Llama converted to
CTranslate2, the choice by format, the memory guard, and the app without llama-cpp-python."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError, ModelTooLargeError, ModelUnavailableError
from desktop_ai.engine.runtimes import llama_cpp
from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator
from llama_cpp_gate import needs_llama_cpp, require_llama_cpp

EMBEDDED = "smollm2-135m-instruct-q4"
COMMON_WORDS = {"the", "a", "is", "of", "and", "to", "in", "it", "sea", "water", "blue", "waves", "with", "ocean"}


def _fluent(text: str) -> bool:
    words = re.findall(r"[A-Za-z']+", text.lower())
    return len(words) >= 6 and len(COMMON_WORDS & set(words)) >= 2


# --- CTranslate2 on a tiny random Llama ------------------------------------------------------------

def test_auto_converts_a_llama_folder_to_ctranslate2_once(workspace, tiny_causal_lm_dir: Path) -> None:
    from desktop_ai import paths
    from desktop_ai.engine.workspace import open_workspace

    messages: list[str] = []
    generator = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", compression="int8")
    result = generator.run("Hello there", GenerationOptions(max_new_tokens=8, temperature=0),
                           progress=lambda m, f: messages.append(m))
    assert result.runtime == "ctranslate2"
    assert result.compression == "int8"
    assert 1 <= result.new_tokens <= 8 and result.text.strip()
    assert any("Converting" in m and "CTranslate2" in m for m in messages)  # visible progress
    converted = list((paths.cache_dir() / "ctranslate2").glob("*/model.bin"))
    assert len(converted) == 1
    lm = generator.load()
    assert lm.compute_type == "int8_float32"
    assert lm.resident_bytes() == converted[0].stat().st_size
    assert lm.threads == 1  # a small model: one intra-op thread beats OpenMP barriers between tiny matrix products

    # A fresh engine (new store, empty memory cache) reuses the converted copy.
    other = open_workspace()
    try:
        messages.clear()
        again = TextGenerator(other.store, None, model=str(tiny_causal_lm_dir), device="cpu", compression="int8").run(
            "Hello there", GenerationOptions(max_new_tokens=8, temperature=0), progress=lambda m, f: messages.append(m))
    finally:
        other.close()
    assert again.text == result.text
    assert not any("Converting" in m for m in messages)


def test_ctranslate2_uses_every_core_only_for_large_models() -> None:
    from desktop_ai.engine.runtimes.causal_lm import physical_cores
    from desktop_ai.engine.runtimes.ctranslate2_lm import ONE_THREAD_BELOW_BYTES, cpu_threads_for

    assert cpu_threads_for(140_000_000) == 1
    assert cpu_threads_for(ONE_THREAD_BELOW_BYTES) == physical_cores()
    assert cpu_threads_for(4_000_000_000) == physical_cores()


def test_ctranslate2_streams_and_matches_transformers_greedy(workspace, tiny_causal_lm_dir: Path) -> None:
    """Same weights, same greedy decoding: CTranslate2 in float32 writes what transformers writes."""
    options = GenerationOptions(max_new_tokens=12, temperature=0, repetition_penalty=1.0)
    pieces: list[str] = []
    ct2 = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", runtime="ctranslate2")
    reference = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", runtime="transformers")
    fast = ct2.run("The weather today is", options, on_partial=pieces.append)
    slow = reference.run("The weather today is", options)
    assert (fast.runtime, slow.runtime) == ("ctranslate2", "transformers")
    assert len(pieces) > 1 and "".join(pieces) == fast.text
    assert fast.text == slow.text
    assert fast.new_tokens == slow.new_tokens


def test_ctranslate2_stop_string_ends_the_answer(workspace, tiny_causal_lm_dir: Path) -> None:
    generator = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", runtime="ctranslate2")
    full = generator.run("Hello", GenerationOptions(max_new_tokens=20, temperature=0)).text
    words = full.split()
    assert len(words) > 3
    cut = generator.run("Hello", GenerationOptions(max_new_tokens=20, temperature=0, stop=[words[2]]))
    assert words[2] not in cut.text
    assert full.startswith(cut.text)


def test_the_cache_key_includes_the_runtime(workspace, tiny_causal_lm_dir: Path) -> None:
    options = GenerationOptions(max_new_tokens=4, temperature=0)
    for runtime in ("ctranslate2", "transformers"):
        generator = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu", runtime=runtime)
        assert not generator.run("Hello", options).from_cache, runtime
        assert generator.run("Hello", options).from_cache, runtime
    assert workspace.store.loaded.loads == 2


def test_forced_runtimes_that_cannot_run_say_why(workspace, tiny_causal_lm_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="llama.cpp runs .gguf files"):
        TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), runtime="llama.cpp").run("Hi")
    with pytest.raises(InvalidInputError, match="CTranslate2 does not prune"):
        TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), runtime="ctranslate2", compression="prune").run("Hi")
    with pytest.raises(InvalidInputError, match="Unknown runtime"):
        TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), runtime="onnx")
    # Pruning is torch's: auto sends it to transformers.
    pruned = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", compression="prune")
    assert pruned.run("Hi", GenerationOptions(max_new_tokens=2, temperature=0)).runtime == "transformers"
    assert workspace.store.loaded.loads == 1


# --- the memory guard ------------------------------------------------------------------------------

def test_a_model_over_the_memory_budget_is_refused_with_numbers(workspace, tiny_causal_lm_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DESKTOP_AI_MEMORY_BUDGET_MB", "50")
    for runtime, what in (("ctranslate2", "on CTranslate2"), ("transformers", "on transformers (none)")):
        generator = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", runtime=runtime)
        with pytest.raises(ModelTooLargeError) as info:
            generator.run("Hello", GenerationOptions(max_new_tokens=2))
        message = str(info.value)
        assert what in message
        assert re.search(r"needs about \d+\.\d\d GB", message)
        assert "only 0.05 GB of RAM is free" in message
        assert "What would fit:" in message and "the GPU" in message
    assert "int8 compression (about" in message  # fp32 was asked for: int8 is offered, with its size
    assert workspace.store.loaded.loads == 0
    monkeypatch.setenv("DESKTOP_AI_MEMORY_BUDGET_MB", "4000")
    assert TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu").run(
        "Hello", GenerationOptions(max_new_tokens=2, temperature=0)).new_tokens >= 1


def test_the_embedded_gguf_over_the_budget_is_refused_before_loading(workspace, monkeypatch) -> None:
    from desktop_ai.engine.models.memory import gguf_kv_shape

    monkeypatch.setenv("DESKTOP_AI_MEMORY_BUDGET_MB", "100")
    generator = TextGenerator(workspace.store, None, model=EMBEDDED, device="cpu",
                              runtime="llama.cpp" if llama_cpp.available() else "transformers")
    location = workspace.store.locate(generator.entry)
    shape = gguf_kv_shape(location.path / location.gguf_file)
    assert shape is not None and shape.layers == 30 and shape.context_length == 8192  # read from the GGUF header
    if llama_cpp.available():
        assert llama_cpp.read_shape(location.path / location.gguf_file) == shape  # llama.cpp reads it the same
    with pytest.raises(ModelTooLargeError) as info:
        generator.run("Hello")
    message = str(info.value)
    assert "SmolLM2" in message and "only 0.10 GB of RAM is free" in message
    assert "4,096-token context" in message
    assert workspace.store.loaded.loads == 0


# --- llama.cpp on the embedded GGUF ----------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded_lm():
    """One llama.cpp load of the embedded model for the tests below (0.1 s on an idle machine)."""
    from desktop_ai.engine.models.store import ModelStore

    require_llama_cpp()
    store = ModelStore(Path("/nonexistent"))
    generator = TextGenerator(store, None, model=EMBEDDED, device="cpu")
    return generator


@needs_llama_cpp
def test_embedded_gguf_runs_on_llama_cpp_as_it_is(embedded_lm: TextGenerator) -> None:
    pieces: list[str] = []
    result = embedded_lm.run("Write one sentence about the sea.", GenerationOptions(max_new_tokens=40, temperature=0),
                             on_partial=pieces.append)
    assert result.runtime == "llama.cpp"
    assert result.compression == "Q4_1 (GGUF)"
    assert _fluent(result.text), result.text
    assert len(pieces) > 3 and "".join(pieces) == result.text
    assert result.first_token_seconds is not None
    lm = embedded_lm.load()
    assert lm.threads >= 1 and lm.gpu_layers == 0
    assert lm.context_length == 4096
    assert lm.path.suffix == ".gguf"  # the file itself, memory-mapped: nothing was converted
    assert lm.resident_bytes() >= lm.path.stat().st_size


@needs_llama_cpp
def test_llama_cpp_applies_the_gguf_chat_template(embedded_lm: TextGenerator) -> None:
    lm = embedded_lm.load()
    assert lm.chat_template and "<|im_start|>" in lm.chat_template  # from the GGUF's metadata
    with_template, _ = embedded_lm.prepare(lm, "What is the capital of France?", GenerationOptions())
    plain, _ = embedded_lm.prepare(lm, "What is the capital of France?", GenerationOptions(use_chat_template=False))
    rendered = lm._llm.detokenize(with_template, special=True).decode()
    assert rendered.startswith("<|im_start|>system\n")
    assert rendered.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    special = lm._llm.tokenize(b"<|im_start|><|im_end|>", add_bos=False, special=True)
    assert len(special) == 2 and set(special) <= set(with_template)  # single special tokens, not text
    assert not set(special) & set(plain)  # typed as plain text, the markers are not special tokens


@needs_llama_cpp
def test_llama_cpp_same_seed_same_text(embedded_lm: TextGenerator) -> None:
    options = dict(max_new_tokens=24, temperature=1.0, top_p=0.95)
    texts = {seed: embedded_lm.run("Tell me about cats.", GenerationOptions(seed=seed, **options)).text for seed in (7, 8)}
    again = embedded_lm.run("Tell me about cats.", GenerationOptions(seed=7, **options)).text
    assert again == texts[7]
    assert texts[7] != texts[8]


@needs_llama_cpp
def test_llama_cpp_stops_mid_answer(embedded_lm: TextGenerator) -> None:
    cancel = threading.Event()
    pieces: list[str] = []

    def on_partial(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 3:
            cancel.set()

    result = embedded_lm.run("Write a long story about a dragon.", GenerationOptions(max_new_tokens=200, temperature=0),
                             on_partial=on_partial, cancel=cancel)
    assert result.stopped
    assert any("Stopped" in n for n in result.notices)
    assert 3 <= result.new_tokens <= 5
    assert result.text == "".join(pieces)


@needs_llama_cpp
def test_llama_cpp_fixed_length_and_stop_strings(embedded_lm: TextGenerator) -> None:
    fixed = embedded_lm.run("Hi", GenerationOptions(max_new_tokens=30, min_new_tokens=30, temperature=0))
    assert fixed.new_tokens == 30
    full = embedded_lm.run("Write one sentence about the sea.", GenerationOptions(max_new_tokens=40, temperature=0)).text
    word = full.split()[3]
    cut = embedded_lm.run("Write one sentence about the sea.", GenerationOptions(max_new_tokens=40, temperature=0, stop=[word]))
    assert word not in cut.text and full.startswith(cut.text)


# --- without llama-cpp-python ----------------------------------------------------------------------

def test_without_llama_cpp_a_gguf_still_runs_and_the_user_is_told_once(workspace, monkeypatch) -> None:
    from desktop_ai.engine.runtimes import choice

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    monkeypatch.setattr(choice, "_told_about_llama_cpp", False)
    assert not llama_cpp.available()
    generator = TextGenerator(workspace.store, None, model=EMBEDDED, device="cpu")
    result = generator.run("Write one sentence about the sea.", GenerationOptions(max_new_tokens=12, temperature=0))
    assert result.runtime == "transformers"
    assert result.text.strip()
    hint = [n for n in result.notices if "llama-cpp-python" in n]
    assert len(hint) == 1 and 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF" pip install llama-cpp-python==0.3.36' in hint[0]
    second = TextGenerator(workspace.store, None, model=EMBEDDED, device="cpu").run(
        "Another one.", GenerationOptions(max_new_tokens=4, temperature=0))
    assert not any("llama-cpp-python" in n for n in second.notices)  # said once
    with pytest.raises(ModelUnavailableError, match="not installed"):
        TextGenerator(workspace.store, None, model=EMBEDDED, runtime="llama.cpp").run("Hi")
