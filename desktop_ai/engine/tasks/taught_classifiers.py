"""Classifiers the user teaches by examples: a small logistic head on frozen embeddings (MiniLM sentence
embeddings for texts, EfficientNet-Lite0 image features for photos), kept by name in one file each.

Why a head on frozen embeddings: it trains in well under a second on a few hundred examples, needs no GPU,
and a correction retrains it at once (SetFit and Teachable Machine showed a few examples per label go far on
good embeddings). The embeddings of every example are stored with the head, so retraining never embeds again;
that is also why a classifier is tied to the embedding model it was taught on (its id is recorded and checked).

One file per classifier (numpy .npz: arrays, plus the JSON description as a string; read without pickle), so
export and import are a copy, and a file from elsewhere can never run code when it is opened.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.errors import InvalidInputError

logger = logging.getLogger(__name__)

FORMAT = "desktop-ai taught classifier"
FORMAT_VERSION = 1
FILE_SUFFIX = ".taught.npz"
KIND_HEAD = "embedding-head"
KIND_LM = "language-model"  # the embedded LM prompted with examples, its decision fitted (taught_prompt.py)
KIND_COMBINED = "combined"  # the mean of the two's log-probabilities
KINDS = (KIND_HEAD, KIND_LM, KIND_COMBINED)
MIN_LM_ROWS = 6  # scored examples (beside the prompt's) below which the language model is not compared
TASK_TEXT = "classify"
TASK_PHOTO = "recognize"
REGULARISATION_C = 10.0  # unit-length embeddings: a weaker penalty than sklearn's default 1.0 lets the head fit
CORRECTION_WEIGHT = 1.0  # a correction starts as one example; its weight doubles until it takes (see `correct`)
MAX_CORRECTION_WEIGHT = 256.0
MAX_FOLDS = 5
MAX_EXAMPLES = 100_000


@dataclass
class Example:
    text: str  # the text, or a photo's path
    label: str
    correction: bool = False
    weight: float = 1.0  # how many examples it counts as (a correction may count as several)


@dataclass
class TrainingReport:
    """What cross-validation says about the classifier: accuracy on examples each fold did not see."""

    labels: list[str]
    examples: int
    accuracy: float | None  # None when there are too few examples to hold any out
    folds: int
    confusion: list[list[int]]  # rows: the example's label, columns: the predicted label, in `labels` order
    seconds: float
    notices: list[str] = field(default_factory=list)
    # cross-validated accuracy of each kind compared, on the examples the language model scored (prompt ones out)
    choices: dict[str, float] = field(default_factory=dict)
    kind: str = KIND_HEAD  # the kind chosen
    judged: int = 0  # the examples `accuracy` and `confusion` are over (all, or those the language model scored)

    def confusion_lines(self) -> list[str]:
        """The confusion table as aligned text (rows: true label; columns: predicted)."""
        if not self.confusion:
            return []
        width = max(len(label) for label in self.labels)
        cell = max(5, *(len(label) for label in self.labels), *(len(str(v)) for row in self.confusion for v in row))
        header = " " * width + "  " + " ".join(label.rjust(cell) for label in self.labels)
        rows = [label.ljust(width) + "  " + " ".join(str(v).rjust(cell) for v in row)
                for label, row in zip(self.labels, self.confusion)]
        return [header, *rows]


@dataclass
class TeachResult:
    """What teaching did: the classifier's description, its cross-validation, and what the user should know."""

    classifier: dict[str, Any]
    report: TrainingReport
    notices: list[str] = field(default_factory=list)
    embed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"classifier": self.classifier, "report": asdict(self.report), "notices": self.notices,
                "embed_seconds": self.embed_seconds}


KIND_WORDS = {KIND_HEAD: "embedding head", KIND_LM: "language model", KIND_COMBINED: "head + language model"}


def describe_choice(kind: str, choices: dict[str, float]) -> str:
    """Which kind a classifier uses and, when the language model was compared, each one's cross-validated accuracy."""
    if not choices:
        return KIND_WORDS.get(kind, kind)
    compared = ", ".join(f"{KIND_WORDS.get(k, k)} {100 * v:.0f} %" for k, v in choices.items())
    return f"{KIND_WORDS.get(kind, kind)} (chosen by cross-validation: {compared})"


def slug(name: str) -> str:
    """A classifier name as a file name: letters, digits, '-', '_' and '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    if not cleaned:
        raise InvalidInputError(f"{name!r} cannot be a classifier name: use letters, digits, '-' or '_'.")
    return cleaned


def clean_examples(examples: list[Example]) -> tuple[list[Example], list[str]]:
    """Trims texts and labels, drops empties and exact repeats, and warns (naming both labels) when one text
    is under two labels; the later one wins, as a correction would."""
    notices: list[str] = []
    by_text: dict[str, Example] = {}
    for example in examples:
        text = example.text.strip()
        label = " ".join(str(example.label).split())
        if not text or not label:
            continue
        key = " ".join(text.split()).casefold()
        earlier = by_text.get(key)
        if earlier is not None and earlier.label != label:
            shown = text if len(text) <= 60 else text[:59] + "…"
            notices.append(f"The text {shown!r} is under two labels, {earlier.label!r} and {label!r}; "
                           f"it is kept under {label!r}.")
            del by_text[key]
        elif earlier is not None:
            continue
        by_text[key] = Example(text, label, example.correction, example.weight)
    return list(by_text.values()), notices


def check_labels(labels: list[str], examples: list[Example], has_sentence: dict[str, bool]) -> None:
    """Two labels at least, and each one with an example or a label sentence to learn from."""
    if len(labels) < 2:
        raise InvalidInputError(
            "A classifier needs at least two labels to tell apart"
            + (f"; it has only {labels[0]!r}." if labels else "; it has none.")
            + " Add examples of another label.")
    counts = {label: 0 for label in labels}
    for example in examples:
        counts[example.label] = counts.get(example.label, 0) + 1
    empty = [label for label in labels if counts.get(label, 0) == 0 and not has_sentence.get(label, False)]
    if empty:
        raise InvalidInputError(
            "These labels have no examples and no label sentence to learn from: " + ", ".join(repr(e) for e in empty)
            + ". Give each at least one example.")


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_head(vectors: np.ndarray, targets: np.ndarray, n_labels: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(coef [labels x dim], intercept [labels]) of a logistic regression; scores are softmax(x @ coef.T + b).

    sklearn gives two-label problems one row; it is spread over two rows so that prediction is one formula."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(targets)
    dim = vectors.shape[1]
    if len(present) == 1:  # a fold that holds only one label: that label, always
        coef = np.zeros((n_labels, dim), np.float32)
        intercept = np.full(n_labels, -10.0, np.float32)
        intercept[present[0]] = 10.0
        return coef, intercept
    # balanced: a label taught by its sentence alone, or by few examples, weighs as much as a label with many
    model = LogisticRegression(C=REGULARISATION_C, max_iter=1000, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(vectors, targets, sample_weight=weights)
    coef = np.zeros((n_labels, dim), np.float32)
    intercept = np.full(n_labels, -30.0, np.float32)  # labels absent from this fit never win
    if len(model.classes_) == 2:
        low, high = model.classes_
        coef[low], coef[high] = -model.coef_[0] / 2, model.coef_[0] / 2
        intercept[low], intercept[high] = -model.intercept_[0] / 2, model.intercept_[0] / 2
    else:
        for row, cls in enumerate(model.classes_):
            coef[cls], intercept[cls] = model.coef_[row], model.intercept_[row]
    return coef, intercept


@dataclass
class TaughtClassifier:
    """Labels, examples with their embeddings, label sentences and the fitted head, all in one file."""

    name: str
    task: str  # TASK_TEXT or TASK_PHOTO
    embedding_model: str  # the catalogue id of the model whose embeddings these are
    labels: list[str]
    examples: list[Example]
    vectors: np.ndarray  # one row per example, float32
    sentences: dict[str, str] = field(default_factory=dict)  # label -> its label sentence ("" for none)
    sentence_vectors: np.ndarray | None = None  # embeddings of phrases made from the label sentences, one a row
    sentence_labels: list[str] = field(default_factory=list)  # the label of each row of `sentence_vectors`
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None
    report: TrainingReport | None = None
    kind: str = KIND_HEAD
    lm_scores: np.ndarray | None = None  # per example: the LM's label log-probabilities; NaN where not scored
    prompt_examples: list[tuple[str, str]] = field(default_factory=list)  # (text, label) shown in the LM's prompt
    prompt_style: dict[str, str] = field(default_factory=dict)  # the prompt's wording (taught_prompt.PromptScorer)
    lm_coef: np.ndarray | None = None  # the decision fitted on the LM's label log-probabilities
    lm_intercept: np.ndarray | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)  # a held-out check, when one was made (built-in sentiment)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    source: Path | None = None  # the file it was read from

    # --- training ----------------------------------------------------------------------------------
    def _has_sentence(self) -> dict[str, bool]:
        return {label: self.sentence_vectors is not None and label in self.sentence_labels for label in self.labels}

    def _design(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vectors, label indices, weights) of the examples in `rows` (all by default) plus every label sentence."""
        index = {label: i for i, label in enumerate(self.labels)}
        rows = np.arange(len(self.examples)) if rows is None else rows
        vectors = [self.vectors[rows]] if len(rows) else []
        targets = [np.array([index[self.examples[i].label] for i in rows], np.int64)]
        weights = [np.array([self.examples[i].weight for i in rows], np.float32)]
        sentence_rows = [i for i, label in enumerate(self.sentence_labels) if label in index]
        if sentence_rows and self.sentence_vectors is not None:
            vectors.append(self.sentence_vectors[sentence_rows])
            targets.append(np.array([index[self.sentence_labels[i]] for i in sentence_rows], np.int64))
            weights.append(np.ones(len(sentence_rows), np.float32))
        return (np.concatenate(vectors).astype(np.float32), np.concatenate(targets), np.concatenate(weights))

    def lm_rows(self) -> np.ndarray:
        """The indices of the examples the language model scored (the prompt's own examples are never among them)."""
        if self.lm_scores is None or len(self.lm_scores) != len(self.examples):
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.isfinite(self.lm_scores).all(axis=1))

    def fit(self, cross_validate: bool = True) -> TrainingReport:
        """Fit the head on every example (and the language model's decision on the examples it scored); first,
        cross-validate on folds of the examples (label sentences are always in the training side: they are part of
        what the user gave, not data to test on), and with the language model's scores, choose by that
        cross-validation between the head, the language model and their combination."""
        if len(self.examples) > MAX_EXAMPLES:
            raise InvalidInputError(f"{len(self.examples):,} examples is more than {MAX_EXAMPLES:,}; use fewer.")
        check_labels(self.labels, self.examples, self._has_sentence())
        started = time.perf_counter()
        notices: list[str] = []
        n = len(self.labels)
        accuracy, folds, confusion, choices = None, 0, [], {}
        if cross_validate:
            accuracy, folds, confusion, head_predicted, cv_notices = self._cross_validate()
            notices += cv_notices
            self.kind = KIND_HEAD
            if head_predicted is not None:
                compared = self._compare_kinds(head_predicted)
                if compared is not None:
                    choices, self.kind, kind_accuracy, kind_confusion = compared
                    if self.kind != KIND_HEAD:
                        accuracy, confusion = kind_accuracy, kind_confusion
        vectors, targets, weights = self._design()
        self.coef, self.intercept = fit_head(vectors, targets, n, weights)
        rows = self.lm_rows()
        if self.kind != KIND_HEAD and len(rows):
            self.lm_coef, self.lm_intercept = self._fit_lm(rows)
        elif self.kind != KIND_HEAD:
            self.kind = KIND_HEAD  # nothing scored to fit it on
        counts = {label: sum(1 for e in self.examples if e.label == label) for label in self.labels}
        few = [label for label, count in counts.items() if count == 0]
        if few:
            notices.append("Learned from the label sentence alone (no examples yet): " + ", ".join(few) + ".")
        self.updated = time.time()
        judged = int(np.sum(confusion)) if confusion else 0
        self.report = TrainingReport(list(self.labels), len(self.examples), accuracy, folds, confusion,
                                     time.perf_counter() - started, notices, choices, self.kind, judged)
        return self.report

    def _targets(self) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[e.label] for e in self.examples], np.int64)

    def _fit_lm(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.lm_scores is not None
        weights = np.array([self.examples[i].weight for i in rows], np.float32)
        return fit_head(self.lm_scores[rows], self._targets()[rows], len(self.labels), weights)

    def _compare_kinds(self, head_predicted: np.ndarray) -> tuple[dict[str, float], str, float, list[list[int]]] | None:
        """Cross-validated accuracy of the head (its out-of-fold log-probabilities, from `_cross_validate`), the
        language model's fitted decision and their mean, on the examples the language model scored; the best wins
        (a tie goes to the head, which costs least to run)."""
        from sklearn.model_selection import StratifiedKFold

        rows = self.lm_rows()
        targets = self._targets()[rows]
        counts = np.bincount(targets, minlength=len(self.labels))
        folds = int(min(MAX_FOLDS, counts[counts > 0].min() if len(rows) else 0))
        if len(rows) < MIN_LM_ROWS or folds < 2 or (counts > 0).sum() < 2:
            return None
        assert self.lm_scores is not None
        lm = np.zeros((len(rows), len(self.labels)), np.float32)
        weights = np.array([self.examples[i].weight for i in rows], np.float32)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for train, test in splitter.split(np.zeros(len(rows)), targets):
                coef, intercept = fit_head(self.lm_scores[rows[train]], targets[train], len(self.labels), weights[train])
                lm[test] = np.log(_softmax(self.lm_scores[rows[test]] @ coef.T + intercept) + 1e-12)
        head = head_predicted[rows]
        predicted = {KIND_HEAD: head.argmax(1), KIND_LM: lm.argmax(1), KIND_COMBINED: (head + lm).argmax(1)}
        choices = {kind: float((p == targets).mean()) for kind, p in predicted.items()}
        best = max(KINDS, key=lambda kind: (choices[kind], -KINDS.index(kind)))
        confusion = np.zeros((len(self.labels), len(self.labels)), np.int64)
        np.add.at(confusion, (targets, predicted[best]), 1)
        return choices, best, choices[best], confusion.tolist()

    def _cross_validate(self) -> tuple[float | None, int, list[list[int]], np.ndarray | None, list[str]]:
        """(accuracy, folds, confusion, out-of-fold log-probabilities of the head, notices)."""
        from sklearn.model_selection import StratifiedKFold

        targets = self._targets()
        counts = np.bincount(targets, minlength=len(self.labels)) if len(targets) else np.zeros(len(self.labels), int)
        folds = int(min(MAX_FOLDS, counts.max() if len(targets) else 0))
        if folds < 2 or (counts >= 2).sum() < 1:
            return None, 0, [], None, ["Too few examples to measure accuracy: give at least two of a label."]
        logprobs = np.zeros((len(targets), len(self.labels)), np.float32)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a label with fewer examples than folds is warned about by sklearn
            splits = list(splitter.split(np.zeros(len(targets)), targets))
        for train, test in splits:
            vectors, y, weights = self._design(train)
            coef, intercept = fit_head(vectors, y, len(self.labels), weights)
            logprobs[test] = np.log(_softmax(self.vectors[test] @ coef.T + intercept) + 1e-12)
        predicted = logprobs.argmax(1)
        confusion = np.zeros((len(self.labels), len(self.labels)), np.int64)
        np.add.at(confusion, (targets, predicted), 1)
        return float((predicted == targets).mean()), folds, confusion.tolist(), logprobs, []

    # --- predicting ---------------------------------------------------------------------------------
    @property
    def uses_language_model(self) -> bool:
        return self.kind in (KIND_LM, KIND_COMBINED)

    def scores(self, vectors: np.ndarray, lm_scores: np.ndarray | None = None) -> np.ndarray:
        """Probabilities, one row per vector, columns in `labels` order. A classifier that chose the language model
        needs its label log-probabilities for the same texts (`lm_scores`, from taught_prompt.PromptScorer)."""
        if self.coef is None or self.intercept is None:
            raise InvalidInputError(f"The classifier {self.name!r} has not been trained yet.")
        head = _softmax(np.asarray(vectors, np.float32) @ self.coef.T + self.intercept)
        if not self.uses_language_model:
            return head
        if lm_scores is None or self.lm_coef is None or self.lm_intercept is None:
            raise InvalidInputError(f"The classifier {self.name!r} uses the language model: its scores are needed.")
        lm = _softmax(np.asarray(lm_scores, np.float32) @ self.lm_coef.T + self.lm_intercept)
        if self.kind == KIND_LM:
            return lm
        return _softmax(np.log(head + 1e-12) + np.log(lm + 1e-12))

    # --- changing ------------------------------------------------------------------------------------
    def add_examples(self, examples: list[Example], vectors: np.ndarray, lm_scores: np.ndarray | None = None) -> list[str]:
        """New examples (and their embeddings, and the language model's scores when it has them); a text already
        present under another label moves (with a notice)."""
        notices: list[str] = []
        keys = {" ".join(e.text.split()).casefold(): i for i, e in enumerate(self.examples)}
        keep = np.ones(len(self.examples), bool)
        for example in examples:
            old = keys.get(" ".join(example.text.split()).casefold())
            if old is not None and keep[old]:
                if self.examples[old].label != example.label:
                    notices.append(f"{_short(example.text)!r} was under {self.examples[old].label!r}; "
                                   f"it is now under {example.label!r}.")
                keep[old] = False
            if example.label not in self.labels:
                self.labels.append(example.label)
        self.examples = [e for e, k in zip(self.examples, keep) if k] + list(examples)
        self.vectors = np.vstack([self.vectors[keep], np.asarray(vectors, np.float32)]) if len(self.vectors) else np.asarray(vectors, np.float32)
        if self.lm_scores is not None and self.lm_scores.shape[1] != len(self.labels):
            self.lm_scores, self.kind = None, KIND_HEAD  # a new label: the language model's scores are rescored
        if self.lm_scores is not None:
            new = np.full((len(examples), self.lm_scores.shape[1]), np.nan, np.float32)
            if lm_scores is not None and lm_scores.shape[1] == new.shape[1]:
                new[:] = lm_scores
            self.lm_scores = np.vstack([self.lm_scores[keep], new])
        return notices

    def correct(self, text: str, label: str, vector: np.ndarray, lm_row: np.ndarray | None = None) -> list[str]:
        """A wrong result corrected: the input becomes an example of `label` and the head is refitted at once.

        It starts as one example; while the refitted head still gives the input another label, its weight doubles
        (a correction that does not change the answer would be no correction; the smallest weight that takes
        moves the other answers least)."""
        if not label.strip():
            raise InvalidInputError("Choose the label the text should have.")
        lm_rows = None if lm_row is None else np.asarray(lm_row, np.float32)[None, :]
        notices = self.add_examples([Example(text, label.strip(), True, CORRECTION_WEIGHT)], vector[None, :], lm_rows)
        vectors = np.asarray(vector, np.float32)[None, :]
        weight = CORRECTION_WEIGHT
        target = self.labels.index(label.strip())
        self.fit(cross_validate=False)
        while self.labels[int(self.scores(vectors, lm_rows).argmax())] != self.labels[target] and weight < MAX_CORRECTION_WEIGHT:
            weight *= 2
            self.examples[-1].weight = weight
            self.fit(cross_validate=False)
        fitted = (self.coef, self.intercept, self.kind, self.lm_coef, self.lm_intercept)
        self.fit()  # the accuracy and confusion table again, with the correction among the examples
        # the same decision: fit() retrains on the same examples and weights, but may choose another kind
        self.coef, self.intercept, self.kind, self.lm_coef, self.lm_intercept = fitted
        if self.report is not None:
            self.report.kind = self.kind
        return notices

    def digest(self) -> str:
        """What its predictions depend on (labels, embedding model, fitted head): the result cache's revision for
        them, so a retrained or corrected classifier never answers from an older one's cache."""
        import hashlib

        h = hashlib.sha256(json.dumps([self.kind, self.embedding_model, self.labels]).encode())
        if self.uses_language_model:
            h.update(json.dumps([self.prompt_examples, self.prompt_style]).encode())
        arrays = (self.coef, self.intercept) + ((self.lm_coef, self.lm_intercept) if self.uses_language_model else ())
        for array in arrays:
            if array is not None:
                h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    # --- files ---------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        counts = {label: sum(1 for e in self.examples if e.label == label) for label in self.labels}
        return {
            "name": self.name, "task": self.task, "kind": self.kind, "embedding_model": self.embedding_model,
            "labels": self.labels, "examples": counts, "accuracy": self.report.accuracy if self.report else None,
            "choices": self.report.choices if self.report else {}, "evaluation": self.evaluation,
            "size_bytes": self.source.stat().st_size if self.source and self.source.exists() else None,
            "path": str(self.source) if self.source else None,
        }

    def save(self, path: Path) -> Path:
        """Written to a temporary file and renamed, so a crash never leaves half a classifier."""
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "task": self.task, "kind": self.kind,
            "embedding_model": self.embedding_model, "labels": self.labels, "sentences": self.sentences,
            "sentence_labels": self.sentence_labels,
            "examples": [[e.text, e.label, e.correction, e.weight] for e in self.examples],
            "report": asdict(self.report) if self.report else None, "created": self.created, "updated": self.updated,
            "prompt_examples": [list(pair) for pair in self.prompt_examples], "evaluation": self.evaluation,
            "prompt_style": self.prompt_style,
        }
        arrays = {"meta": np.array(json.dumps(meta)), "vectors": np.asarray(self.vectors, np.float32)}
        for key in ("sentence_vectors", "coef", "intercept", "lm_scores", "lm_coef", "lm_intercept"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = np.asarray(value, np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        tmp.replace(path)
        self.source = path
        return path

    @classmethod
    def load(cls, path: Path) -> "TaughtClassifier":
        """Any file that is not a whole, readable classifier is one clear InvalidInputError."""
        if not path.is_file():
            raise InvalidInputError(f"{path} does not exist or is not a file.")
        if path.stat().st_size == 0:
            raise InvalidInputError(f"{path.name} is empty: it is not a taught classifier.")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {key: data[key] for key in data.files if key != "meta"}
        except Exception as error:  # zip, npy and JSON errors all mean the same to the user
            raise InvalidInputError(f"{path.name} is not a taught classifier file ({type(error).__name__}).") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InvalidInputError(f"{path.name} is not a taught classifier file.")
        if int(meta.get("version", 0)) > FORMAT_VERSION:
            raise InvalidInputError(f"{path.name} was written by a newer desktop-ai; update the app to open it.")
        try:
            examples = [Example(str(text), str(label), bool(correction), float(weight))
                        for text, label, correction, weight in meta["examples"]]
            report = meta.get("report")
            classifier = cls(
                name=str(meta["name"]), task=str(meta["task"]), embedding_model=str(meta["embedding_model"]),
                labels=[str(label) for label in meta["labels"]], examples=examples, vectors=arrays["vectors"],
                sentences={str(k): str(v) for k, v in meta.get("sentences", {}).items()},
                sentence_vectors=arrays.get("sentence_vectors"),
                sentence_labels=[str(label) for label in meta.get("sentence_labels", [])], coef=arrays.get("coef"), intercept=arrays.get("intercept"),
                report=TrainingReport(**report) if report else None, kind=str(meta.get("kind", KIND_HEAD)),
                created=float(meta.get("created", 0)), updated=float(meta.get("updated", 0)), source=path,
                lm_scores=arrays.get("lm_scores"), lm_coef=arrays.get("lm_coef"), lm_intercept=arrays.get("lm_intercept"),
                prompt_examples=[(str(text), str(label)) for text, label in meta.get("prompt_examples", [])],
                evaluation=dict(meta.get("evaluation") or {}),
                prompt_style={str(k): str(v) for k, v in (meta.get("prompt_style") or {}).items()},
            )
            if classifier.kind not in KINDS:
                raise ValueError(f"kind {classifier.kind!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"{path.name} is a damaged taught classifier file (missing {error}).") from error
        sentence_rows = 0 if classifier.sentence_vectors is None else len(classifier.sentence_vectors)
        lm_misfit = classifier.lm_scores is not None and classifier.lm_scores.shape != (len(classifier.examples), len(classifier.labels))
        if lm_misfit or sentence_rows != len(classifier.sentence_labels) or len(classifier.examples) != len(classifier.vectors) or (classifier.coef is not None and classifier.coef.shape[0] != len(classifier.labels)):
            raise InvalidInputError(f"{path.name} is a damaged taught classifier file (its parts do not fit together).")
        return classifier


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


class TaughtLibrary:
    """The user's taught classifiers: one file each in the data folder's `taught/`."""

    def __init__(self, folder: Path | None = None) -> None:
        if folder is None:
            from desktop_ai import paths

            folder = paths.data_dir() / "taught"
        self.folder = folder

    def path_for(self, name: str) -> Path:
        return self.folder / f"{slug(name)}{FILE_SUFFIX}"

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def load(self, name: str, task: str | None = None) -> TaughtClassifier:
        path = self.path_for(name)
        if not path.is_file():
            known = ", ".join(c.name for c in self.list(task)) or "none yet"
            raise InvalidInputError(f"There is no taught classifier named {name!r} (yours: {known}). "
                                    f"Teach one with: desktop-ai teach {name} --examples FILE")
        classifier = TaughtClassifier.load(path)
        if task is not None and classifier.task != task:
            raise InvalidInputError(f"{name!r} was taught to {_task_words(classifier.task)}, not to {_task_words(task)}.")
        return classifier

    def save(self, classifier: TaughtClassifier) -> Path:
        return classifier.save(self.path_for(classifier.name))

    def list(self, task: str | None = None) -> list[TaughtClassifier]:
        found = []
        for path in sorted(self.folder.glob(f"*{FILE_SUFFIX}")) if self.folder.is_dir() else []:
            try:
                classifier = TaughtClassifier.load(path)
            except InvalidInputError as error:
                logger.warning("Skipping %s: %s", path, error)
                continue
            if task is None or classifier.task == task:
                found.append(classifier)
        return found

    def names(self, task: str | None = None) -> list[str]:
        """The classifiers' names (of one task), reading only each file's small description, not its arrays:
        cheap enough for a picker to refresh when it is shown."""
        found = []
        for path in sorted(self.folder.glob(f"*{FILE_SUFFIX}")) if self.folder.is_dir() else []:
            try:
                with np.load(path, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                if meta.get("format") == FORMAT and (task is None or meta.get("task") == task):
                    found.append(str(meta["name"]))
            except Exception as error:  # a damaged file is not offered; list() and load() say why
                logger.warning("Skipping %s: %s", path, error)
        return found

    def delete(self, name: str) -> Path:
        path = self.path_for(name)
        if not path.is_file():
            raise InvalidInputError(f"There is no taught classifier named {name!r}.")
        path.unlink()
        return path

    def export(self, name: str, target: Path) -> Path:
        source = self.path_for(name)
        self.load(name)  # refuse to export something unreadable
        if target.is_dir():
            target = target / source.name
        shutil.copyfile(source, target)
        return target

    def import_file(self, path: Path, name: str | None = None, replace: bool = False) -> TaughtClassifier:
        """Checked before it is copied in; an existing classifier of the same name is kept unless `replace`."""
        classifier = TaughtClassifier.load(path)
        if name:
            classifier.name = name
        if self.exists(classifier.name) and not replace:
            raise InvalidInputError(f"A taught classifier named {classifier.name!r} exists already; "
                                    "delete it first or import under another name.")
        self.save(classifier)
        return classifier


def _task_words(task: str) -> str:
    return "classify texts" if task == TASK_TEXT else "recognise photos"
