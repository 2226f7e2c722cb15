"""Translation on CTranslate2 with real parts: the tests' tiny MarianMT converted to int8 into the user cache,
translating through the sentence cache; its output against transformers' greedy decoding; the conversion made
once, and made again when the folder is incomplete or corrupt; the runtime choice and its fallbacks; and the
sentence segmenter (sentencex) on abbreviations in English, German and French."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.runtimes import marian_ctranslate2
from desktop_ai.engine.runtimes.marian_ctranslate2 import MARKER, conversion_folder, is_complete
from desktop_ai.engine.tasks.translation import TranslationOptions, Translator, split_text

PAGE = "Hello world. This is a test. The cat sits on the mat.\n\nHow are you today? Guten Tag."


def _sentences(text: str, language: str = "en") -> list[str]:
    return [s.text for s in split_text(text, language) if s.translatable]


def _conversions(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == marian_ctranslate2.__name__ and r.getMessage().startswith("Converting"))


@pytest.fixture(scope="module")
def sharp_marian_dir(tiny_marian_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny MarianMT with larger random weights, so that different sentences get different outputs; its pad
    embedding stays zero (Marian starts the decoder from it; CTranslate2 from a zero vector) and pad is never
    generated (CTranslate2 drops pad from the vocabulary), as with opus-mt."""
    import torch
    from transformers import AutoTokenizer, MarianMTModel

    folder = tmp_path_factory.mktemp("sharp-marian") / "model"
    model = MarianMTModel.from_pretrained(tiny_marian_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
        model.model.shared.weight[model.config.pad_token_id].zero_()
    model.generation_config.forced_eos_token_id = None  # else the last place is forced to </s> by transformers only
    model.generation_config.bad_words_ids = [[model.config.pad_token_id]]
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_marian_dir).save_pretrained(folder)
    return folder


# --- the sentence cache on CTranslate2 ------------------------------------------------------------

def test_ctranslate2_is_the_default_and_translates_through_the_sentence_cache(workspace, tiny_marian_dir: Path) -> None:
    translator = Translator(workspace.store, workspace.cache, model=str(tiny_marian_dir), device="cpu")
    assert translator.runtime == "ctranslate2"
    first = translator.run(PAGE)
    assert first.runtime == "ctranslate2" and first.compression == "int8_float32"
    assert first.sentences == 5 and first.translated == 5 and first.text.count("\n\n") == 1
    calls = translator.model_calls
    edited = PAGE.replace("The cat sits on the mat.", "The cat sits on the sofa.")
    second = translator.run(edited)
    assert second.translated == 1 and second.cached == 4 and second.runtime == "ctranslate2"
    assert translator.model_calls == calls + 1 and translator.sentences_translated == 6
    unchanged = translator.run(PAGE)
    assert unchanged.translated == 0 and unchanged.text == first.text
    # The cache keys include the runtime: transformers does not reuse CTranslate2's sentences.
    reference = Translator(workspace.store, workspace.cache, model=str(tiny_marian_dir), device="cpu", runtime="transformers")
    assert reference.run(PAGE).translated == 5


def test_ctranslate2_streams_and_stops(workspace, tiny_marian_dir: Path) -> None:
    import threading

    translator = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu")
    page = " ".join(f"Sentence number {i} is here." for i in range(60))
    seen: list[str] = []
    cancel = threading.Event()

    def partial(text: str) -> None:
        seen.append(text)
        cancel.set()

    result = translator.run(page, TranslationOptions(beams=1), on_partial=partial, cancel=cancel)
    assert result.stopped and 0 < result.translated < 60 and result.text == seen[-1]


def test_ctranslate2_agrees_with_transformers_greedy(workspace, sharp_marian_dir: Path) -> None:
    page = "Hello world. The cat sits on the mat. How are you today?\nGuten Tag. Das ist ein Test.\n\nA long sentence, with commas, and more words."
    options = TranslationOptions(beams=1, max_new_tokens=10)
    fast = Translator(workspace.store, None, model=str(sharp_marian_dir), device="cpu", runtime="ctranslate2").run(page, options)
    reference = Translator(workspace.store, None, model=str(sharp_marian_dir), device="cpu", runtime="transformers").run(page, options)
    assert (fast.runtime, reference.runtime) == ("ctranslate2", "transformers")
    sentences = [line for line in fast.text.replace("\n", " ").split(" ") if line]
    assert len(set(sentences)) > 1, "the model must give different sentences different outputs, or this compares nothing"
    assert fast.text == reference.text  # same tokens, greedy, with int8 weights on this model


# --- conversion: once, and again when broken -------------------------------------------------------

def test_conversion_happens_once_and_is_reused_by_a_new_process(tmp_path: Path, tiny_marian_dir: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from desktop_ai.engine.workspace import open_workspace

    caplog.set_level(logging.INFO, logger=marian_ctranslate2.__name__)
    first = open_workspace()
    translator = Translator(first.store, None, model=str(tiny_marian_dir), device="cpu")
    translator.run("Hello world.")
    folder = conversion_folder(first.store.locate(translator.entry))
    assert is_complete(folder) and json.loads((folder / MARKER).read_text())["quantization"] == "int8"
    written = (folder / "model.bin").stat().st_mtime_ns
    translator.run("This is a test.")  # loaded already: no second load, no second conversion
    first.close()
    second = open_workspace()  # a fresh store, as after a restart: loads from the cache folder
    try:
        Translator(second.store, None, model=str(tiny_marian_dir), device="cpu").run("How are you today?")
    finally:
        second.close()
    assert _conversions(caplog) == 1
    assert (folder / "model.bin").stat().st_mtime_ns == written
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "no scratch folders are left behind"


@pytest.mark.parametrize("damage", ["no marker", "truncated weights", "garbage weights"])
def test_an_incomplete_or_corrupt_conversion_is_made_again(workspace, tiny_marian_dir: Path, damage: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from desktop_ai.engine.workspace import open_workspace

    caplog.set_level(logging.INFO, logger=marian_ctranslate2.__name__)
    good = Translator(workspace.store, None, model=str(tiny_marian_dir), device="cpu").run("Hello world.")
    folder = conversion_folder(workspace.store.locate(workspace.store.resolve_entry(str(tiny_marian_dir), "translate")))
    weights = folder / "model.bin"
    if damage == "no marker":  # a conversion cut short before its marker was written
        (folder / MARKER).unlink()
    elif damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:  # the right size, but not a model: only loading it finds out
        weights.write_bytes(b"\0" * weights.stat().st_size)
    fresh = open_workspace()
    try:
        again = Translator(fresh.store, None, model=str(tiny_marian_dir), device="cpu").run("Hello world.")
    finally:
        fresh.close()
    assert _conversions(caplog) == 2
    assert is_complete(folder) and again.runtime == "ctranslate2" and again.text == good.text


# --- choosing the runtime --------------------------------------------------------------------------

def test_runtime_choice_and_fallbacks(workspace, tiny_marian_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = str(tiny_marian_dir)
    with pytest.raises(InvalidInputError, match="pruning runs on the transformers runtime only"):
        Translator(workspace.store, None, model=model, device="cpu", compression="prune", runtime="ctranslate2")
    with pytest.raises(InvalidInputError, match="Unknown translation runtime"):
        Translator(workspace.store, None, model=model, device="cpu", runtime="onnx")
    pruned = Translator(workspace.store, None, model=model, device="cpu", compression="prune").run("Hello world.")
    assert pruned.runtime == "transformers" and pruned.compression == "prune"
    assert any("pruning runs on the transformers runtime only" in n for n in pruned.notices)

    # A Marian whose <pad> is not the last token (CTranslate2's converter expects opus-mt's layout) cannot be
    # converted: auto says so and translates with transformers; forcing CTranslate2 is an error.
    odd = tmp_path / "odd-marian"
    shutil.copytree(tiny_marian_dir, odd)
    vocab = json.loads((odd / "vocab.json").read_text())
    third = next(token for token, index in vocab.items() if index == 2)
    vocab["<pad>"], vocab[third] = 2, vocab["<pad>"]  # <pad> third, as the tests' models had it before
    (odd / "vocab.json").write_text(json.dumps(vocab))
    config = json.loads((odd / "config.json").read_text())
    for name in ("pad_token_id", "decoder_start_token_id"):
        config[name] = vocab["<pad>"]
    (odd / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((odd / "tokenizer_config.json").read_text())
    added = tokenizer_config["added_tokens_decoder"]
    added["2"] = added.pop(next(key for key, token in added.items() if token["content"] == "<pad>"))
    (odd / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    fallback = Translator(workspace.store, None, model=str(odd), device="cpu").run("Hello world.")
    assert fallback.runtime == "transformers" and fallback.translated == 1
    assert any("could not be converted to CTranslate2" in n and "transformers instead" in n for n in fallback.notices)
    from desktop_ai.engine.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="could not be converted"):
        Translator(workspace.store, None, model=str(odd), device="cpu", runtime="ctranslate2").run("Hello world.")

    # Without CTranslate2 installed, auto runs transformers and says why.
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ctranslate2" else real_find_spec(name, *a))
    absent = Translator(workspace.store, None, model=model, device="cpu").run("Hello world.")
    assert absent.runtime == "transformers" and any("not installed" in n for n in absent.notices)


# --- sentences -----------------------------------------------------------------------------------

def test_abbreviations_do_not_end_sentences() -> None:
    assert _sentences("Dr. Smith met Mr. Jones at 3 p.m. in the U.S. embassy.") == [
        "Dr. Smith met Mr. Jones at 3 p.m. in the U.S. embassy."
    ]
    assert _sentences("Dr. Smith met Mr. Jones at 3 p.m. in the U.S. embassy. Then they left.") == [
        "Dr. Smith met Mr. Jones at 3 p.m. in the U.S. embassy.", "Then they left."
    ]
    assert _sentences("Prof. Smith, Ph.D., arrived at 5 a.m. sharp. Mrs. Brown e.g. likes tea, i.e. green tea.") == [
        "Prof. Smith, Ph.D., arrived at 5 a.m. sharp.", "Mrs. Brown e.g. likes tea, i.e. green tea."
    ]
    assert _sentences("It costs $3.50 vs. $4.00 today. I was born in the U.S. in 1990.") == [
        "It costs $3.50 vs. $4.00 today.", "I was born in the U.S. in 1990."
    ]


def test_german_and_french_sentences_follow_their_own_rules() -> None:
    german = "Herr Prof. Dr. Meier kommt z.B. um 9 Uhr. Siehe Nr. 5 und Abb. 3 im Text. Das kostet ca. 5 Euro."
    assert _sentences(german, "de") == ["Herr Prof. Dr. Meier kommt z.B. um 9 Uhr.", "Siehe Nr. 5 und Abb. 3 im Text.",
                                        "Das kostet ca. 5 Euro."]
    french = "Il habite av. de la République, env. 3 km. Voir p. 12, chap. 3 pour plus. Mme Durand est là."
    assert _sentences(french, "fr") == ["Il habite av. de la République, env. 3 km.", "Voir p. 12, chap. 3 pour plus.",
                                        "Mme Durand est là."]
    # English rules do not know these abbreviations: the language matters.
    assert len(_sentences("Siehe Nr. 5 und Abb. 3 im Text.", "en")) == 2
    assert len(_sentences("Il habite av. de la République, env. 3 km.", "en")) == 3


def test_layout_is_kept_exactly_around_abbreviations() -> None:
    text = "  Dr. Smith met Mr. Jones.\tThen   they left!\r\n\r\n\nU.S. news:  e.g. this one.  \n"
    segments = split_text(text)
    assert "".join(s.text for s in segments) == text
    assert _sentences(text) == ["Dr. Smith met Mr. Jones.", "Then   they left!", "U.S. news:  e.g. this one."]
    assert [s.text for s in segments if not s.translatable] == ["  ", "\t", "\r\n", "\r\n", "\n", "  ", "\n"]


def test_the_translator_splits_by_its_source_language(workspace, tiny_marian_dir: Path) -> None:
    german = Translator(workspace.store, None, model=str(tiny_marian_dir), src="de", device="cpu")
    assert german.run("Siehe Nr. 5 und Abb. 3 im Text.", TranslationOptions(beams=1)).sentences == 1
    english = Translator(workspace.store, None, model=str(tiny_marian_dir), src="en", device="cpu")
    assert english.run("Siehe Nr. 5 und Abb. 3 im Text.", TranslationOptions(beams=1)).sentences == 2
