"""Text classification on tiny random BERTs: a sentiment classifier, and zero-shot over sentence embeddings."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import CancelledError, InvalidInputError
from desktop_ai.engine.tasks.text_classification import (
    MAX_TEXTS,
    ClassificationBatch,
    TextClassifier,
    clean_labels,
)


@pytest.fixture
def sentiment(workspace, tiny_sequence_classifier_dir: Path) -> TextClassifier:
    return TextClassifier(workspace.store, workspace.cache, model=str(tiny_sequence_classifier_dir), device="cpu")


@pytest.fixture
def zero_shot(workspace, tiny_embedding_dir: Path) -> TextClassifier:
    return TextClassifier(workspace.store, workspace.cache, model=str(tiny_embedding_dir), device="cpu")


def _assert_distribution(result, labels: set[str]) -> None:
    scores = [s.score for s in result.scores]
    assert {s.label for s in result.scores} == labels
    assert sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert result.label == result.scores[0].label


# --- a fine-tuned sequence classifier --------------------------------------------------------------


def test_sequence_classifier_scores(sentiment: TextClassifier) -> None:
    batch = sentiment.run(["I love this film.", "This is the worst meal I have ever eaten."])
    assert isinstance(batch, ClassificationBatch)
    assert batch.mode == "sentiment"
    assert batch.device == "cpu"
    assert batch.compression == "none"
    assert not batch.stopped
    assert len(batch.results) == 2
    for result in batch.results:
        _assert_distribution(result, {"negative", "positive"})  # id2label, lowercased
    # The batch's label list names the same labels as the scores.
    assert sorted(batch.labels) == ["negative", "positive"]


def test_sequence_classifier_refuses_user_labels(sentiment: TextClassifier, workspace) -> None:
    with pytest.raises(InvalidInputError, match="own labels"):
        sentiment.run(["Some text"], labels="sport, politics")
    with pytest.raises(InvalidInputError):
        sentiment.run(["Some text"], labels=["sport", "politics"])
    assert workspace.store.loaded.loads == 0  # refused before loading anything


def test_sequence_classifier_scores_are_deterministic(sentiment: TextClassifier, workspace, tiny_sequence_classifier_dir) -> None:
    first = sentiment.run(["The concert was loud, bright and full of joy."]).results[0]
    fresh = TextClassifier(workspace.store, None, model=str(tiny_sequence_classifier_dir), device="cpu")
    second = fresh.run(["The concert was loud, bright and full of joy."]).results[0]
    assert [(s.label, s.score) for s in first.scores] == [(s.label, s.score) for s in second.scores]


# --- zero-shot over sentence embeddings ---------------------------------------------------------


def test_zero_shot_with_user_labels(zero_shot: TextClassifier) -> None:
    batch = zero_shot.run(["The team won the match in the final minute."], labels="a, b, c")
    assert batch.mode == "labels"
    assert batch.labels == ["a", "b", "c"]
    (result,) = batch.results
    assert len(result.scores) == 3
    _assert_distribution(result, {"a", "b", "c"})


def test_zero_shot_sentiment_mode(zero_shot: TextClassifier) -> None:
    for labels in (None, "", "   "):
        batch = zero_shot.run(["What a great day to go for a walk in the park!"], labels=labels)
        assert batch.mode == "sentiment"
        assert batch.labels == ["positive", "negative"]
        _assert_distribution(batch.results[0], {"positive", "negative"})


def test_duplicated_labels_are_used_once_with_a_notice(zero_shot: TextClassifier) -> None:
    batch = zero_shot.run(["Stocks fell sharply."], labels="sport, politics, Sport,  politics ")
    assert batch.labels == ["sport", "politics"]
    assert len(batch.results[0].scores) == 2
    assert any("more than once" in notice for notice in batch.notices)


def test_labels_as_a_list_are_cleaned() -> None:
    labels, notices = clean_labels(["  science ", "music\n", "", "Music"])
    assert labels == ["science", "music"]
    assert len(notices) == 1


@pytest.mark.parametrize("labels", [" , ", ",,,", "sport", "sport, sport", ["only one"], ["", " "]])
def test_fewer_than_two_labels_is_invalid(zero_shot: TextClassifier, labels) -> None:
    with pytest.raises(InvalidInputError, match="at least two"):
        zero_shot.run(["Some text"], labels=labels)


@pytest.mark.parametrize("texts", [[], [""], ["  ", "\n", "\t"]])
def test_no_text_is_invalid(zero_shot: TextClassifier, texts) -> None:
    with pytest.raises(InvalidInputError, match="no text"):
        zero_shot.run(texts)


def test_too_many_texts_is_invalid(zero_shot: TextClassifier) -> None:
    with pytest.raises(InvalidInputError, match="smaller batches"):
        zero_shot.run(["x"] * (MAX_TEXTS + 1))


def test_a_batch_of_100_lines_comes_back_in_order(zero_shot: TextClassifier) -> None:
    texts = [f"Line number {i}: the cat sat on the mat {i % 7} times." for i in range(100)]
    progress: list[float | None] = []
    batch = zero_shot.run(texts, labels="sport, politics, science", batch_size=16, progress=lambda m, f: progress.append(f))
    assert [r.text for r in batch.results] == texts
    assert all(len(r.scores) == 3 for r in batch.results)
    assert progress[-1] == pytest.approx(1.0)
    assert batch.texts_per_second > 0


def test_batching_does_not_change_the_scores(workspace, tiny_embedding_dir: Path) -> None:
    """Padding a short text next to a long one must not change its embedding (the mask is applied)."""
    texts = ["Hello.", "Once upon a time there was a small village by the sea and a long story began."]
    one_by_one = TextClassifier(workspace.store, None, model=str(tiny_embedding_dir), device="cpu")
    together = TextClassifier(workspace.store, None, model=str(tiny_embedding_dir), device="cpu")
    alone = [one_by_one.run([t], labels="a, b").results[0] for t in texts]
    batch = together.run(texts, labels="a, b", batch_size=2).results
    for single, batched in zip(alone, batch):
        for s, b in zip(single.scores, batched.scores):
            assert s.label == b.label
            assert s.score == pytest.approx(b.score, abs=1e-4)


def test_empty_lines_are_skipped(zero_shot: TextClassifier) -> None:
    batch = zero_shot.run(["first", "", "   ", "second"], labels="a, b")
    assert [r.text for r in batch.results] == ["first", "second"]


def test_second_run_comes_from_the_cache(zero_shot: TextClassifier, workspace) -> None:
    texts = ["The train was late again.", "Add two cups of flour.", "He plays the guitar."]
    first = zero_shot.run(texts, labels="food, music, travel")
    assert not any(r.from_cache for r in first.results)
    second = zero_shot.run(texts, labels="food, music, travel")
    assert all(r.from_cache for r in second.results)
    assert [r.to_dict()["scores"] for r in second.results] == [r.to_dict()["scores"] for r in first.results]
    # Other labels are other work.
    third = zero_shot.run(texts, labels="food, music")
    assert not any(r.from_cache for r in third.results)
    assert workspace.store.loaded.loads == 1


def test_partly_cached_batch_keeps_its_order(zero_shot: TextClassifier) -> None:
    zero_shot.run(["b"], labels="x, y")
    batch = zero_shot.run(["a", "b", "c"], labels="x, y")
    assert [r.text for r in batch.results] == ["a", "b", "c"]
    assert [r.from_cache for r in batch.results] == [False, True, False]


def test_cancel_before_start_with_the_model_loaded(zero_shot: TextClassifier) -> None:
    zero_shot.load()
    cancel = threading.Event()
    cancel.set()
    batch = zero_shot.run(["one", "two"], labels="a, b", cancel=cancel)
    assert batch.stopped
    assert batch.results == []
    assert any("Stopped" in n for n in batch.notices)


def test_cancel_before_the_model_is_loaded(zero_shot: TextClassifier, workspace) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        zero_shot.run(["one", "two"], labels="a, b", cancel=cancel)
    assert workspace.store.loaded.loads == 0


def test_cancel_between_batches_keeps_the_results_so_far(zero_shot: TextClassifier) -> None:
    cancel = threading.Event()

    def progress(message: str, fraction: float | None) -> None:
        if fraction is not None:
            cancel.set()  # after the first batch

    texts = [f"text {i}" for i in range(10)]
    batch = zero_shot.run(texts, labels="a, b", cancel=cancel, progress=progress, batch_size=4)
    assert batch.stopped
    assert [r.text for r in batch.results] == texts[:4]


def test_long_text_is_truncated_with_a_notice(zero_shot: TextClassifier) -> None:
    long_text = "the cat sat on the mat " * 200  # 1200 words, each one token
    batch = zero_shot.run([long_text, "short text"], labels="a, b")
    assert len(batch.results) == 2
    assert any("512 tokens" in n and "1 text" in n for n in batch.notices)


def test_long_text_for_the_sequence_classifier(sentiment: TextClassifier) -> None:
    batch = sentiment.run(["I love this film " * 300])
    _assert_distribution(batch.results[0], {"negative", "positive"})
    assert any("512 tokens" in n for n in batch.notices)


def test_int8_classifier_runs(workspace, tiny_sequence_classifier_dir: Path) -> None:
    classifier = TextClassifier(workspace.store, workspace.cache, model=str(tiny_sequence_classifier_dir), device="cpu", compression="int8")
    batch = classifier.run(["I love this film."])
    assert batch.compression == "int8"
    _assert_distribution(batch.results[0], {"negative", "positive"})
    # Issue 17 (compression checked by the model itself): the loaded model's Linear layers hold int8 weights.
    import torch

    model = classifier.load().model  # the one the run used, kept loaded in the store
    assert classifier.store.loaded.loads == 1
    quantized = [m for m in model.modules() if "quantized" in type(m).__module__ and hasattr(m, "weight")]
    assert quantized and all(m.weight().dtype == torch.qint8 for m in quantized)
    assert not any(type(m) is torch.nn.Linear for m in model.modules()), "every Linear was swapped"


def test_result_to_dict_is_json_serialisable(zero_shot: TextClassifier) -> None:
    result = zero_shot.run(["Hello there."], labels="greeting, farewell").results[0]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["label"] == result.label
    assert [s["label"] for s in data["scores"]] == [s.label for s in result.scores]
    assert data["text"] == "Hello there."


def test_fully_cached_batch_after_a_restart_loads_no_model(workspace, tiny_embedding_dir: Path) -> None:
    from desktop_ai.engine.workspace import open_workspace

    texts = ["one line", "another line"]
    first = TextClassifier(workspace.store, workspace.cache, model=str(tiny_embedding_dir), device="cpu").run(texts, "a, b")
    workspace.close()
    again = open_workspace()
    try:
        second = TextClassifier(again.store, again.cache, model=str(tiny_embedding_dir), device="cpu").run(texts, "a, b")
        assert all(r.from_cache for r in second.results)
        assert [r.label for r in second.results] == [r.label for r in first.results]
        assert again.store.loaded.loads == 0
    finally:
        again.close()
