"""Translation through the real loading, splitting, batching, caching and reassembly code, on a tiny
MarianMT model built by the tests (random weights: what matters is where each sentence goes)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.tasks.translation import Segment, TranslationOptions, Translator, split_text


@pytest.fixture
def translator(workspace, tiny_marian_dir: Path) -> Translator:
    return Translator(workspace.store, workspace.cache, model=str(tiny_marian_dir), device="cpu")


def _sentences(text: str) -> list[str]:
    return [s.text for s in split_text(text) if s.translatable]


def test_split_keeps_every_character_and_finds_sentences() -> None:
    text = "  Hello world. This is a test!\n\nSecond paragraph? Yes.\r\nLast line\n"
    segments = split_text(text)
    assert "".join(s.text for s in segments) == text
    assert _sentences(text) == ["Hello world.", "This is a test!", "Second paragraph?", "Yes.", "Last line"]
    assert _sentences('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]
    assert _sentences("这是一个测试。这是第二句。") == ["这是一个测试。", "这是第二句。"]
    assert all(isinstance(s, Segment) for s in segments)


def test_order_paragraphs_and_spacing_are_preserved(translator: Translator) -> None:
    text = "Hello world. This is a test.\n\n  The cat sits on the mat.\nHow are you today?"
    result = translator.run(text, TranslationOptions(beams=1))
    lines = result.text.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[2].startswith("  ")
    assert result.sentences == 4 and result.translated == 4
    # Each sentence translated alone gives the same text as in the page: order kept, nothing mixed.
    alone = [Translator(translator.store, None, model=translator.entry.id, device="cpu").run(s, TranslationOptions(beams=1)).text
             for s in _sentences(text)]
    assert result.text == f"{alone[0]} {alone[1]}\n\n  {alone[2]}\n{alone[3]}"


def test_editing_one_sentence_retranslates_only_that_one(translator: Translator) -> None:
    page = "Hello world. This is a test. The cat sits on the mat.\n\nHow are you today? Guten Tag."
    first = translator.run(page)
    calls = translator.model_calls
    edited = page.replace("The cat sits on the mat.", "The cat sits on the sofa.")
    second = translator.run(edited)
    assert second.translated == 1 and second.cached == 4
    assert translator.model_calls == calls + 1
    assert translator.sentences_translated == first.translated + 1
    unchanged = translator.run(page)
    assert unchanged.translated == 0 and unchanged.text == first.text


def test_partial_output_grows_in_order_and_stop_keeps_it(translator: Translator) -> None:
    page = " ".join(f"Sentence number {i} is here." for i in range(60))
    seen: list[str] = []
    cancel = threading.Event()

    def partial(text: str) -> None:
        seen.append(text)
        cancel.set()

    result = translator.run(page, TranslationOptions(beams=1), on_partial=partial, cancel=cancel)
    assert result.stopped and 0 < result.translated < 60
    assert seen and result.text == seen[-1]
    assert any("Stopped" in n for n in result.notices)


def test_empty_input_is_refused(translator: Translator) -> None:
    for text in ("", "   \n\n "):
        with pytest.raises(InvalidInputError, match="nothing to translate"):
            translator.run(text)


def test_twenty_thousand_words(translator: Translator) -> None:
    words = ("The cat sits on the mat. " * 4000).strip()
    assert len(words.split()) == 24000
    result = translator.run(words, TranslationOptions(beams=1))
    assert result.sentences == 4000
    assert result.translated == 4000
    assert translator.model_calls == 1, "4000 copies of one sentence are translated once"
    single = translator.run("The cat sits on the mat.", TranslationOptions(beams=1)).text
    assert single.strip() and translator.model_calls == 1, "the one sentence comes back from the sentence cache"
    assert result.text == " ".join([single] * 4000), "every sentence is there, in order, with its space"


def test_a_sentence_longer_than_the_model_reads_is_split_not_cut(translator: Translator) -> None:
    long_sentence = " ".join(["word"] * 900) + "."
    result = translator.run(long_sentence, TranslationOptions(beams=1))
    assert any("split" in n for n in result.notices)
    assert result.translated == 1
    assert translator.model_calls == 1


def test_non_latin_text(translator: Translator) -> None:
    result = translator.run("Привет, мир. 这是一个测试。", TranslationOptions(beams=1))
    assert result.sentences == 2 and result.translated == 2


def test_a_folder_that_is_not_a_translation_model(workspace, tmp_path: Path, tiny_causal_lm_dir: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not a model folder"):
        Translator(workspace.store, None, model=str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="not a MarianMT translation model"):
        Translator(workspace.store, None, model=str(tiny_causal_lm_dir))


def test_offline_catalogue_pair_names_both_ways_to_get_it(workspace, tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    translator = Translator(workspace.store, None, src="en", tgt="de")
    with pytest.raises(ModelUnavailableError) as error:
        translator.run("Hello.")
    message = str(error.value)
    assert "Helsinki-NLP/opus-mt-en-de" in message and "offline" in message and "folder" in message
    assert "No translation model is embedded" in message
    with pytest.raises(ModelUnavailableError, match="No translation model is listed"):
        Translator(workspace.store, None, src="en", tgt="xx")


def test_int8_and_beams(workspace, tiny_marian_dir: Path, tmp_path: Path) -> None:
    # torch int8 on the transformers runtime (CTranslate2, the default, is int8 whatever is chosen: see below)
    result = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu", compression="int8",
                        runtime="transformers").run("Hello world.", TranslationOptions(beams=3))
    assert result.compression == "int8" and result.translated == 1 and result.runtime == "transformers"
    ct2 = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu", compression="int8").run(
        "Hello world.", TranslationOptions(beams=3)
    )
    assert ct2.runtime == "ctranslate2" and ct2.compression == "int8_float32" and ct2.translated == 1
    # Issue 17 (compression checked by the model itself, not its label).
    import torch

    torch_int8 = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu", compression="int8",
                            runtime="transformers").load().loaded.model
    quantized = [m for m in torch_int8.modules() if "quantized" in type(m).__module__ and hasattr(m, "weight")]
    assert quantized and all(m.weight().dtype == torch.qint8 for m in quantized)
    from ctranslate2.converters import TransformersConverter

    converted = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu", compression="int8").load()
    float32 = TransformersConverter(str(tiny_marian_dir)).convert(str(tmp_path / "ct2-float32"), force=True)
    int8_bytes = (converted.folder / "model.bin").stat().st_size
    float32_bytes = (Path(float32) / "model.bin").stat().st_size
    # Against the same model converted unquantized: 0.59 here (a 32-wide model keeps biases and norms in float32).
    assert int8_bytes < 0.7 * float32_bytes, (int8_bytes, float32_bytes)
    with pytest.raises(InvalidInputError, match="Beam"):
        Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu").run("Hi.", TranslationOptions(beams=0))


def test_source_punctuation_is_normalized_as_opus_mt_was_trained(translator: Translator) -> None:
    # MarianTokenizer uses sacremoses' Moses punctuation normalizer when it is installed (a dependency).
    loaded = translator.load()
    assert loaded.tokenizer.normalize("He said „hello“ … and left") == 'He said "hello" ... and left'
