"""Taught text labels on the embedded all-MiniLM-L6-v2: learning from a few real examples, corrections that
stick, files that round-trip, and a clear message for every kind of bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.taught_classifiers import Example, TaughtClassifier, TaughtLibrary
from desktop_ai.engine.tasks.taught_text import TextTeacher, read_text_examples
from taught_examples import TOPICS, least_right_beyond_luck, split


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """One store for the module, so MiniLM loads once."""
    return ModelStore(converted_dir=tmp_path_factory.mktemp("converted"))


@pytest.fixture
def library(tmp_path: Path) -> TaughtLibrary:
    return TaughtLibrary(tmp_path / "taught")


@pytest.fixture
def teacher(store: ModelStore, library: TaughtLibrary) -> TextTeacher:
    return TextTeacher(store, library, device="cpu", language_model=False)  # the head alone: test_taught_language_model.py compares


@pytest.fixture
def topics(teacher: TextTeacher) -> TextTeacher:
    """A classifier 'topics' taught with four sentences of each of three topics."""
    train, _ = split(4)
    teacher.teach("topics", [Example(t, l) for t, l in train])
    return teacher


def test_a_few_examples_beat_chance_on_sentences_it_never_saw(topics: TextTeacher) -> None:
    _, test = split(4)
    batch = topics.run("topics", [t for t, _ in test])
    right = sum(r.label == label for r, (_, label) in zip(batch.results, test))
    needed = least_right_beyond_luck(len(test), 1 / 3)
    assert batch.mode == "taught"
    assert right >= needed, f"{right} of {len(test)} right; luck gives {needed} less than once in a million"
    for result in batch.results:
        assert {s.label for s in result.scores} == set(TOPICS)
        assert sum(s.score for s in result.scores) == pytest.approx(1.0, abs=1e-4)


def test_training_reports_cross_validated_accuracy_and_a_confusion_table(teacher: TextTeacher) -> None:
    train, _ = split(6)
    result = teacher.teach("topics", [Example(t, l) for t, l in train])
    report = result.report
    assert report.labels == list(TOPICS)
    assert report.examples == 18
    assert report.folds == 5
    confusion = np.array(report.confusion)
    assert confusion.shape == (3, 3)
    assert confusion.sum(axis=1).tolist() == [6, 6, 6]  # every example predicted once, by a model that did not see it
    assert report.accuracy == pytest.approx(np.trace(confusion) / 18)
    assert report.accuracy > 1 / 3
    assert len(report.confusion_lines()) == 4
    assert result.classifier["examples"] == {"sport": 6, "cooking": 6, "weather": 6}


def test_a_correction_changes_that_text_at_once_and_is_kept_after_a_restart(topics: TextTeacher, store: ModelStore,
                                                                          library: TaughtLibrary) -> None:
    text = "The chef's team won the cooking contest final."
    before = topics.run("topics", [text]).results[0].label
    target = next(label for label in TOPICS if label != before)
    topics.correct("topics", text, target)
    assert topics.run("topics", [text]).results[0].label == target
    restarted = TextTeacher(store, TaughtLibrary(library.folder), device="cpu")  # a new library reads the file again
    assert restarted.run("topics", [text]).results[0].label == target
    kept = restarted.library.load("topics")
    assert any(e.text == text and e.label == target and e.correction for e in kept.examples)


def test_a_correction_against_clear_evidence_still_takes(topics: TextTeacher) -> None:
    """A plainly sporting sentence corrected to 'weather': as one plain example it would not take, so it counts
    more, only as much as it needs."""
    text = "The striker scored a hat-trick and the fans sang until the final whistle."
    assert topics.run("topics", [text]).results[0].label == "sport"
    topics.correct("topics", text, "weather")
    assert topics.run("topics", [text]).results[0].label == "weather"
    example = next(e for e in topics.library.load("topics").examples if e.text == text)
    assert example.correction and example.weight <= 256


def test_a_correction_inside_a_crowd_counts_double_until_it_takes() -> None:
    """Two crowds of 200 examples; a point on the first crowd's side corrected to the second's label: as one
    example among hundreds it does not take, so its weight doubles until it does (no model needed)."""
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    vectors = np.vstack([a + 0.3 * rng.normal(size=(200, 8)), b + 0.3 * rng.normal(size=(200, 8))]).astype(np.float32)
    examples = [Example(f"a{i}", "A") for i in range(200)] + [Example(f"b{i}", "B") for i in range(200)]
    classifier = TaughtClassifier("crowd", "classify", "test", ["A", "B"], examples, vectors)
    classifier.fit()
    point = (0.8 * a + 0.2 * b).astype(np.float32)
    assert classifier.labels[int(classifier.scores(point[None]).argmax())] == "A"
    classifier.correct("the point", "B", point)
    assert classifier.labels[int(classifier.scores(point[None]).argmax())] == "B"
    assert classifier.examples[-1].weight > 1
    assert classifier.report is not None and classifier.report.examples == 401


def test_the_saved_head_scores_exactly_as_the_trained_one(topics: TextTeacher, tmp_path: Path) -> None:
    classifier = topics.library.load("topics")
    classifier.fit()  # trained now, in memory
    _, test = split(17)
    vectors, _ = topics.embed([t for t, _ in test])
    in_memory = classifier.scores(vectors)
    saved = TaughtClassifier.load(classifier.save(tmp_path / "again.taught.npz"))
    assert np.array_equal(saved.scores(vectors), in_memory)
    assert saved.report == classifier.report


def test_save_load_export_and_import_give_identical_scores(topics: TextTeacher, tmp_path: Path) -> None:
    _, test = split(17)
    texts = [t for t, _ in test]
    before = [[(s.label, s.score) for s in r.scores] for r in topics.run("topics", texts).results]
    exported = topics.library.export("topics", tmp_path / "shared.taught.npz")
    other = TaughtLibrary(tmp_path / "elsewhere")
    imported = other.import_file(exported, name="topics-copy")
    assert imported.name == "topics-copy"
    copy_teacher = TextTeacher(topics.embedder.store, other, device="cpu", language_model=False)
    after = [[(s.label, s.score) for s in r.scores] for r in copy_teacher.run("topics-copy", texts).results]
    assert after == before
    reloaded = TaughtClassifier.load(topics.library.path_for("topics"))
    original = topics.library.load("topics")
    assert np.array_equal(reloaded.coef, original.coef) and np.array_equal(reloaded.vectors, original.vectors)
    with pytest.raises(InvalidInputError, match="exists already"):
        other.import_file(exported, name="topics-copy")


def test_a_label_with_only_its_name_learns_from_its_label_sentence(teacher: TextTeacher) -> None:
    train, _ = split(4)
    no_weather = [Example(t, l) for t, l in train if l != "weather"]
    result = teacher.teach("topics", no_weather, labels=["sport", "cooking", "weather"])
    assert result.classifier["examples"]["weather"] == 0
    assert any("label sentence" in n for n in result.notices)
    _, test = split(10)
    weather = [t for t, l in test if l == "weather"]
    labels = [r.label for r in teacher.run("topics", weather).results]
    assert labels.count("weather") >= 6, labels  # most of ten forecasts, from the one sentence "This text is about weather."


def test_examples_are_read_from_csv_json_lines_and_label_folders(tmp_path: Path) -> None:
    csv_file = tmp_path / "examples.csv"
    csv_file.write_text('text,label\n"Rain, then sun.",weather\nWhisk the eggs.,cooking\n', encoding="utf-8")
    assert [(e.text, e.label) for e in read_text_examples(csv_file)] == [("Rain, then sun.", "weather"), ("Whisk the eggs.", "cooking")]
    named = tmp_path / "sentiment.csv"
    named.write_text("sentiment,confidence,text\nnegative,0.75,Never again.\npositive,0.9,Lovely!\n", encoding="utf-8")
    assert [(e.text, e.label) for e in read_text_examples(named)] == [("Never again.", "negative"), ("Lovely!", "positive")]
    jsonl = tmp_path / "examples.jsonl"
    jsonl.write_text(json.dumps({"text": "A goal!", "label": "sport"}) + "\n\n" + json.dumps({"text": "Snow.", "label": "weather"}) + "\n")
    assert [(e.text, e.label) for e in read_text_examples(jsonl)] == [("A goal!", "sport"), ("Snow.", "weather")]
    folder = tmp_path / "labels"
    (folder / "sport").mkdir(parents=True)
    (folder / "cooking").mkdir()
    (folder / "sport" / "a.txt").write_text("A goal!\n\nA try.\n")
    (folder / "cooking" / "b.txt").write_text("Fry the onions.\n")
    assert sorted((e.label, e.text) for e in read_text_examples(folder)) == [("cooking", "Fry the onions."), ("sport", "A goal!"), ("sport", "A try.")]


# --- bad input: one clear message each ---------------------------------------------------------------


def test_one_label_only_is_refused(teacher: TextTeacher) -> None:
    with pytest.raises(InvalidInputError, match="at least two labels.*only 'sport'"):
        teacher.teach("one", [Example("A goal!", "sport"), Example("A try.", "sport")])
    assert not teacher.library.exists("one")


def test_a_label_without_examples_or_sentence_is_named(teacher: TextTeacher) -> None:
    with pytest.raises(InvalidInputError, match="no examples and no label sentence.*'weather'"):
        teacher.teach("topics", [Example("A goal!", "sport"), Example("Fry it.", "cooking")],
                      labels=["sport", "cooking", "weather"], sentences={"weather": ""})


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("   \n\n", "is empty"),
    ("one,two,three\nfour,five,six\n", "header with 'text' and 'label'"),
    ("text,label,extra\nonly one column\n", "line 2: expected a text and a label, got 1 column"),
    ('{"text": "A goal!", "label": "sport"}\n{"text": broken\n', "line 2: not JSON"),
    ('{"text": "A goal!"}\n', "line 1: each line needs"),
])
def test_empty_and_malformed_example_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / ("examples.jsonl" if content.lstrip().startswith("{") else "examples.csv")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message):
        read_text_examples(path)


def test_the_same_text_under_two_labels_is_a_warning_naming_both(teacher: TextTeacher) -> None:
    train, _ = split(3)
    examples = [Example(t, l) for t, l in train] + [Example("Fry the onions gently in butter until they are soft and golden.", "sport")]
    result = teacher.teach("topics", examples)
    warning = [n for n in result.notices if "two labels" in n]
    assert warning and "'cooking'" in warning[0] and "'sport'" in warning[0]
    assert result.classifier["examples"]["sport"] == 4 and result.classifier["examples"]["cooking"] == 2


@pytest.mark.parametrize("kind", ["empty", "garbage", "zip-without-meta", "other-json"])
def test_a_damaged_classifier_file_is_refused_with_a_message(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.taught.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"not a classifier at all" * 10)
    elif kind == "zip-without-meta":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("vectors.npy", b"nonsense")
    else:
        np.savez(path, meta=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(InvalidInputError, match="bad.taught.npz"):
        TaughtClassifier.load(path)
    with pytest.raises(InvalidInputError):
        TaughtLibrary(tmp_path / "lib").import_file(path)
    assert not (tmp_path / "lib").exists() or not list((tmp_path / "lib").iterdir())


def test_a_classifier_built_on_another_embedding_model_is_refused(topics: TextTeacher, store: ModelStore,
                                                                  tiny_embedding_dir: Path) -> None:
    other = TextTeacher(store, topics.library, model=str(tiny_embedding_dir), device="cpu")
    with pytest.raises(InvalidInputError, match="taught on the embeddings of all-minilm-l6-v2"):
        other.run("topics", ["A goal!"])
    with pytest.raises(InvalidInputError, match="taught on the embeddings"):
        other.correct("topics", "A goal!", "sport")


def test_an_unknown_classifier_and_an_unknown_label_are_named(topics: TextTeacher) -> None:
    with pytest.raises(InvalidInputError, match="no taught classifier named 'nope'.*topics"):
        topics.run("nope", ["A goal!"])
    with pytest.raises(InvalidInputError, match="'gardening' is not one of 'topics'"):
        topics.correct("topics", "Prune the roses.", "gardening")


def test_predictions_come_back_from_the_result_cache_until_the_classifier_changes(store: ModelStore,
                                                                                 library: TaughtLibrary) -> None:
    from desktop_ai.engine.cache import ResultCache

    cache = ResultCache(None)  # in memory: the same keys as the disk cache
    cached = TextTeacher(store, library, device="cpu", cache=cache, language_model=False)
    train, test = split(4)
    cached.teach("topics", [Example(t, l) for t, l in train])
    texts = [t for t, _ in test[:4]]
    first = cached.run("topics", texts)
    assert not any(r.from_cache for r in first.results)
    again = cached.run("topics", texts + ["A brand new sentence about the rain."])
    assert [r.from_cache for r in again.results] == [True] * 4 + [False]
    assert [(r.label, [s.score for s in r.scores]) for r in again.results[:4]] == \
        [(r.label, [s.score for s in r.scores]) for r in first.results], "the cached answer is the computed one"
    target = next(label for label in TOPICS if label != first.results[0].label)
    cached.correct("topics", texts[0], target)  # a changed classifier: none of its old answers may come back
    after = cached.run("topics", texts)
    assert not any(r.from_cache for r in after.results) and after.results[0].label == target
