"""The language-model side of taught text classifiers: cross-validation chooses between the embedding head, the
embedded SmolLM2 prompted with the classifier's examples, and their combination; the choice and its decision
travel with the file; and the real SmolLM2, prompted with a few topic sentences, labels sentences it never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.taught_classifiers import (
    KIND_HEAD,
    KIND_LM,
    KINDS,
    Example,
    TaughtClassifier,
    TaughtLibrary,
    describe_choice,
)
from desktop_ai.engine.tasks.taught_prompt import PromptScorer, choose_prompt_examples, lm_available
from desktop_ai.engine.tasks.taught_text import TextTeacher
from taught_examples import least_right_beyond_luck, split

needs_llama = pytest.mark.skipif(not lm_available(), reason="llama-cpp-python is not installed here")


def _synthetic(informative: str, n: int = 40, seed: int = 0) -> TaughtClassifier:
    """Two labels; either the embeddings or the language model's scores carry the label, the other is noise."""
    rng = np.random.default_rng(seed)
    labels = ["a", "b"]
    y = np.arange(n) % 2
    noise = rng.normal(size=(n, 16)).astype(np.float32)
    signal = noise.copy()
    signal[:, 0] += np.where(y == 1, 3.0, -3.0)
    vectors = signal if informative == "head" else noise
    lm = rng.normal(size=(n, 2)).astype(np.float32)
    if informative == "lm":
        lm[np.arange(n), y] += 8.0  # separable: the language model alone is right on all, and wins the tie with the mix
    lm[:4] = np.nan  # the prompt's own examples are never scored
    examples = [Example(f"text {i}", labels[label]) for i, label in enumerate(y)]
    return TaughtClassifier("synthetic", "classify", "all-minilm-l6-v2", labels, examples,
                            vectors / np.linalg.norm(vectors, axis=1, keepdims=True), lm_scores=lm,
                            prompt_examples=[("text 0", "a"), ("text 1", "b")])


def test_cross_validation_chooses_the_language_model_when_its_scores_carry_the_labels() -> None:
    classifier = _synthetic("lm")
    report = classifier.fit()
    assert set(report.choices) == set(KINDS)
    assert report.kind == classifier.kind == KIND_LM
    assert report.choices[KIND_LM] >= 0.9 > report.choices[KIND_HEAD]
    assert report.judged == 36, "the accuracy is over the scored examples only"
    fresh = np.array([[4.0, 0.0], [0.0, 4.0]], np.float32)
    assert classifier.scores(np.zeros((2, 16), np.float32), fresh).argmax(1).tolist() == [0, 1]
    assert "language model" in describe_choice(report.kind, report.choices)


def test_cross_validation_keeps_the_head_when_the_embeddings_carry_the_labels() -> None:
    classifier = _synthetic("head")
    report = classifier.fit()
    assert report.kind == KIND_HEAD and report.choices[KIND_HEAD] >= 0.9
    assert report.judged == 40, "the head's accuracy is over every example"
    # a head classifier needs no language model to predict
    assert classifier.scores(classifier.vectors[:4]).shape == (4, 2)


def test_the_choice_and_the_fitted_decision_round_trip_through_the_file(tmp_path: Path) -> None:
    classifier = _synthetic("lm")
    classifier.prompt_style = {"instruction": "Classify each review as positive or negative.", "cue": "Sentiment"}
    classifier.fit()
    library = TaughtLibrary(tmp_path)
    library.save(classifier)
    loaded = library.load("synthetic")
    assert loaded.kind == KIND_LM and loaded.prompt_examples == classifier.prompt_examples
    assert loaded.prompt_style == classifier.prompt_style
    assert loaded.digest() == classifier.digest()
    vectors, lm = classifier.vectors[4:10], classifier.lm_scores[4:10]
    assert np.array_equal(loaded.scores(vectors, lm), classifier.scores(vectors, lm))
    assert loaded.report is not None and loaded.report.choices == classifier.report.choices


def test_a_correction_of_a_language_model_classifier_takes() -> None:
    classifier = _synthetic("lm")
    classifier.fit()
    lm_row = np.array([5.0, 0.0], np.float32)  # the language model says 'a' firmly
    classifier.correct("a text that is b", "b", classifier.vectors[5], lm_row)
    assert classifier.kind == KIND_LM
    assert classifier.scores(classifier.vectors[5][None], lm_row[None]).argmax() == 1


def test_prompt_examples_are_the_shortest_of_each_label_interleaved() -> None:
    texts = ["a long one here", "b", "aa", "bb bb", "a"]
    labels = ["x", "y", "x", "y", "x"]
    assert choose_prompt_examples(texts, labels, ["x", "y"]) == [4, 1, 2, 3]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return ModelStore(converted_dir=tmp_path_factory.mktemp("converted"))


@needs_llama
def test_the_embedded_language_model_labels_sentences_it_never_saw_from_a_prompt_of_examples(store: ModelStore) -> None:
    train, test = split(2)
    labels = ["sport", "cooking", "weather"]
    scorer = PromptScorer(store, labels, train)
    chosen = [pair for label in labels for pair in [p for p in test if p[1] == label][:4]]
    scores = scorer.score([text for text, _ in chosen])
    assert scores.shape == (12, 3) and np.allclose(np.exp(scores).sum(1), 1.0, atol=1e-4)
    right = sum(labels[int(row.argmax())] == label for row, (_, label) in zip(scores, chosen))
    assert right >= least_right_beyond_luck(12, 1 / 3, 1e-4), right


@needs_llama
def test_teaching_compares_the_language_model_and_keeps_its_choice(store: ModelStore, tmp_path: Path) -> None:
    train, test = split(4)
    teacher = TextTeacher(store, TaughtLibrary(tmp_path / "taught"), device="cpu")
    result = teacher.teach("topics", [Example(t, l) for t, l in train])
    report = result.report
    assert set(report.choices) == set(KINDS) and report.kind in KINDS
    if report.kind == KIND_HEAD:  # the head's accuracy is over every example
        assert report.judged == 12 and report.accuracy is not None
    else:  # the language model's (or the mix's): over the six examples it scored, the prompt's six aside
        assert report.judged == 6 and report.accuracy == report.choices[report.kind]
    described = teacher.library.load("topics").describe()
    assert described["kind"] == report.kind and described["choices"] == report.choices
    texts = [t for t, _ in test[:2]] + [t for t, _ in test[-2:]]
    first = teacher.run("topics", texts)
    again = TextTeacher(store, TaughtLibrary(tmp_path / "taught"), device="cpu").run("topics", texts)
    assert [r.scores for r in first.results] == [r.scores for r in again.results]


@needs_llama
def test_a_text_scores_the_same_after_another_on_the_kept_prefix(store: ModelStore) -> None:
    """The prompt's prefix is decoded once and kept; what a text leaves behind is dropped before the next."""
    train, test = split(2)
    scorer = PromptScorer(store, ["sport", "cooking", "weather"], train)
    a, b = test[0][0], test[-1][0]
    together = scorer.score([a, b])
    assert np.allclose(together[1], scorer.score([b])[0], atol=1e-3)
    assert np.allclose(together[0], scorer.score([a])[0], atol=1e-3)
    assert not np.allclose(together[0], together[1], atol=1e-2)
