"""Text generation on a tiny random Llama loaded from a folder: streaming, caching, stopping, long prompts."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.tasks.text_generation import GenerationOptions, GenerationResult, TextGenerator

GREEDY = dict(temperature=0.0)


@pytest.fixture
def generator(workspace, tiny_causal_lm_dir: Path) -> TextGenerator:
    return TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu")


def _squash(text: str) -> str:
    return "".join(text.split())


def test_run_returns_text_within_the_token_limit(generator: TextGenerator) -> None:
    result = generator.run("Tell me a short story about a robot.", GenerationOptions(max_new_tokens=12, **GREEDY))
    assert isinstance(result, GenerationResult)
    assert result.text.strip()
    assert 1 <= result.new_tokens <= 12
    assert result.prompt_tokens > 0
    assert result.device == "cpu"
    assert result.compression == "none"
    assert result.model_id == generator.entry.id
    assert not result.stopped and not result.from_cache
    assert result.seconds > 0
    assert result.first_token_seconds is not None and result.first_token_seconds > 0
    assert result.tokens_per_second > 0


def test_partial_pieces_join_to_the_result(generator: TextGenerator) -> None:
    pieces: list[str] = []
    result = generator.run("Hello, how are you today?", GenerationOptions(max_new_tokens=20, **GREEDY), on_partial=pieces.append)
    assert len(pieces) > 1  # streamed, not delivered at the end in one go
    assert all(isinstance(p, str) and p for p in pieces)
    assert _squash("".join(pieces)) == _squash(result.text)


def test_progress_reports_loading(generator: TextGenerator) -> None:
    messages: list[tuple[str, float | None]] = []
    generator.run("Hello", GenerationOptions(max_new_tokens=2, **GREEDY), progress=lambda m, f: messages.append((m, f)))
    assert any("Loading" in m for m, _ in messages)


def test_greedy_run_is_cached_and_the_model_stays_loaded(generator: TextGenerator, workspace) -> None:
    options = GenerationOptions(max_new_tokens=10, **GREEDY)
    first = generator.run("The weather today is", options)
    assert not first.from_cache
    pieces: list[str] = []
    second = generator.run("The weather today is", options, on_partial=pieces.append)
    assert second.from_cache
    assert second.text == first.text
    assert second.new_tokens == first.new_tokens
    assert _squash("".join(pieces)) == _squash(first.text)  # the window still gets the text
    assert workspace.store.loaded.loads == 1
    assert workspace.cache.hits == 1
    # Another prompt or other options are not served from the cache.
    assert not generator.run("The weather today is!", options).from_cache
    assert not generator.run("The weather today is", GenerationOptions(max_new_tokens=9, **GREEDY)).from_cache
    assert workspace.store.loaded.loads == 1


def test_cached_result_survives_a_restart(workspace, tiny_causal_lm_dir: Path) -> None:
    from desktop_ai.engine.workspace import open_workspace

    options = GenerationOptions(max_new_tokens=6, **GREEDY)
    first = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu").run("Hi", options)
    workspace.close()
    again = open_workspace()
    try:
        second = TextGenerator(again.store, again.cache, model=str(tiny_causal_lm_dir), device="cpu").run("Hi", options)
        assert second.from_cache
        assert second.text == first.text
        assert again.store.loaded.loads == 0, "a cached answer must not load the model"
    finally:
        again.close()


def test_sampling_without_a_seed_is_not_cached(generator: TextGenerator, workspace) -> None:
    options = GenerationOptions(max_new_tokens=6, temperature=0.8, seed=None)
    assert not options.cacheable
    assert not generator.run("Write a poem", options).from_cache
    assert not generator.run("Write a poem", options).from_cache
    assert workspace.cache.stats().entries_on_disk == 0


def test_sampling_with_a_seed_is_reproducible_and_cached(workspace, tiny_causal_lm_dir: Path) -> None:
    uncached = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu")
    texts = {seed: uncached.run("Write a poem", GenerationOptions(max_new_tokens=10, temperature=1.0, seed=seed)).text for seed in (1, 2, 3)}
    again = uncached.run("Write a poem", GenerationOptions(max_new_tokens=10, temperature=1.0, seed=1)).text
    assert again == texts[1]
    assert len(set(texts.values())) > 1  # the seed matters

    cached = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu")
    options = GenerationOptions(max_new_tokens=10, temperature=1.0, seed=1)
    first = cached.run("Write a poem", options)
    second = cached.run("Write a poem", options)
    assert first.text == texts[1]
    assert not first.from_cache and second.from_cache
    assert second.text == first.text


def test_cancel_from_the_partial_callback_stops_early(generator: TextGenerator, workspace) -> None:
    cancel = threading.Event()
    pieces: list[str] = []

    def on_partial(text: str) -> None:
        pieces.append(text)
        cancel.set()

    options = GenerationOptions(max_new_tokens=50, **GREEDY)
    result = generator.run("Hello there", options, on_partial=on_partial, cancel=cancel)
    assert result.stopped
    assert 1 <= result.new_tokens < 50
    assert any("Stopped" in n for n in result.notices)
    assert pieces
    # A stopped result is partial: it is not cached.
    assert not generator.run("Hello there", options).from_cache


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t  \n"])
def test_empty_prompt_is_invalid(generator: TextGenerator, prompt: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        generator.run(prompt)


@pytest.mark.parametrize(
    "options",
    [GenerationOptions(max_new_tokens=0), GenerationOptions(max_new_tokens=5000), GenerationOptions(temperature=-1), GenerationOptions(top_p=0)],
)
def test_bad_options_are_invalid(generator: TextGenerator, options: GenerationOptions) -> None:
    with pytest.raises(InvalidInputError):
        generator.run("Hello", options)


def test_max_new_tokens_must_leave_room_for_the_prompt(generator: TextGenerator) -> None:
    # The tiny model reads 256 tokens in all.
    with pytest.raises(InvalidInputError, match="256"):
        generator.run("Hello", GenerationOptions(max_new_tokens=250, **GREEDY))


def test_very_long_prompt_is_truncated_with_a_notice(generator: TextGenerator, workspace) -> None:
    prompt = ("The cat sat on the mat and looked out of the window. " * 2000)[:100_000]
    assert len(prompt) == 100_000
    options = GenerationOptions(max_new_tokens=8, **GREEDY)
    result = generator.run(prompt, options)
    context = generator.load().context_length
    assert context == 256  # the tiny model's max_position_embeddings
    assert any("truncated" in notice for notice in result.notices)
    assert result.prompt_tokens <= context - options.max_new_tokens
    assert 1 <= result.new_tokens <= 8


@pytest.mark.parametrize("runtime", ["ctranslate2", "transformers"])
def test_chat_template_is_used_when_the_model_has_one(workspace, tiny_causal_lm_dir: Path, runtime: str) -> None:
    from transformers import AutoTokenizer

    generator = TextGenerator(workspace.store, None, model=str(tiny_causal_lm_dir), device="cpu", runtime=runtime)
    loaded = generator.load()
    assert loaded.runtime == runtime
    assert loaded.chat_template and "<|im_start|>" in loaded.chat_template
    with_template, _ = generator.prepare(loaded, "hello", GenerationOptions())
    plain, _ = generator.prepare(loaded, "hello", GenerationOptions(use_chat_template=False))
    im_start = AutoTokenizer.from_pretrained(tiny_causal_lm_dir).convert_tokens_to_ids("<|im_start|>")
    assert im_start in with_template
    assert im_start not in plain
    assert len(with_template) > len(plain)


@pytest.mark.parametrize("compression", ["int8", "prune"])
def test_compressed_models_run_and_report_their_method(workspace, tiny_causal_lm_dir: Path, compression: str) -> None:
    """torch.ao int8 and pruning are the transformers runtime's (auto sends int8 to CTranslate2: tests/test_runtimes.py)."""
    generator = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu",
                              compression=compression, runtime="transformers")
    result = generator.run("Tell me a story", GenerationOptions(max_new_tokens=6, **GREEDY))
    assert result.compression == compression
    assert result.runtime == "transformers"
    assert 1 <= result.new_tokens <= 6
    report = generator.load().loaded.compression
    assert report.method == compression
    if compression == "int8":
        assert report.size_bytes < report.size_bytes_before
    else:
        assert report.sparsity > 0


def test_compression_is_part_of_the_cache_key(workspace, tiny_causal_lm_dir: Path) -> None:
    options = GenerationOptions(max_new_tokens=5, **GREEDY)
    plain = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu")
    pruned = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu", compression="prune")
    plain.run("Hello", options)
    assert not pruned.run("Hello", options).from_cache
    assert workspace.store.loaded.loads == 2  # two different models in memory


def test_fp16_on_cpu_runs_in_fp32_with_a_notice(workspace, tiny_causal_lm_dir: Path) -> None:
    generator = TextGenerator(workspace.store, workspace.cache, model=str(tiny_causal_lm_dir), device="cpu", compression="fp16")
    result = generator.run("Hello", GenerationOptions(max_new_tokens=3, **GREEDY))
    assert result.compression == "none"
    assert any("GPU" in n for n in result.notices)


def test_result_to_dict_is_json_serialisable(generator: TextGenerator) -> None:
    result = generator.run("Hello", GenerationOptions(max_new_tokens=4, **GREEDY))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["text"] == result.text
    assert data["new_tokens"] == result.new_tokens
    assert data["tokens_per_second"] == round(result.tokens_per_second, 2)
    assert set(GenerationResult.__dataclass_fields__) <= set(data)


@pytest.mark.parametrize("folder_fixture", ["tiny_sequence_classifier_dir", "tiny_embedding_dir"])
def test_an_encoder_folder_cannot_generate(workspace, request, folder_fixture: str) -> None:
    """A BERT folder would load as a causal LM with a random head and write nonsense: it is refused clearly."""
    from desktop_ai.engine.errors import ModelUnavailableError

    folder = request.getfixturevalue(folder_fixture)
    with pytest.raises(ModelUnavailableError, match="cannot generate text"):
        TextGenerator(workspace.store, workspace.cache, model=str(folder), device="cpu")
    assert workspace.store.loaded.loads == 0
