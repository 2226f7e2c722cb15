"""Taught text labels: examples from files or typed lines, embedded by the zero-shot model (all-MiniLM-L6-v2
embedded with the app), a head trained on them, and classification and corrections with it.

A label with no examples still learns from its label sentence ("This text is about {label}."), the sentence
zero-shot classification compares texts with, so a classifier can start from names and improve by examples.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.store import ProgressCallback
from desktop_ai.engine.tasks.taught_classifiers import (
    TASK_TEXT,
    Example,
    TaughtClassifier,
    TaughtLibrary,
    TeachResult,
    check_labels,
    clean_examples,
)
from desktop_ai.engine.tasks.text_classification import (
    LABEL_TEMPLATE,
    ClassificationBatch,
    ClassificationResult,
    LabelScore,
    TextClassifier,
)

TEXT_SUFFIXES = (".txt", ".text", ".md")
NAME_TEMPLATES = (LABEL_TEMPLATE, "{label}", "A text about {label}.", "Something to do with {label}.")
MAX_EXAMPLE_FILE_BYTES = 50_000_000
TASK_TAUGHT_TEXT = "taught-classify"  # the result cache's task name for taught text predictions
LABEL_COLUMNS = ("label", "sentiment", "category")  # what labelled CSV files call their label column
# Examples the language model scores when a classifier is taught (beside the prompt's own): its side of the
# cross-validation. It costs about 0.1-0.3 s a text on 2 cores, so teaching stays in seconds to a minute.
LM_SCORED_EXAMPLES = 64
CHUNK_WORDS = 180  # about 230 word pieces: within MiniLM's 256


def _rows_from_csv(text: str, name: str, delimiter: str) -> list[Example]:
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().casefold() for cell in rows[0]]
    label_column = next((name for name in LABEL_COLUMNS if name in header), None)
    if "text" in header and label_column is not None:
        t, l = header.index("text"), header.index(label_column)
        rows = rows[1:]
    elif all(len(row) == 2 for row in rows):
        t, l = 0, 1
    else:
        raise InvalidInputError(f"{name}: a CSV file of examples needs a header with 'text' and 'label' columns "
                                "(or exactly two columns: text, label).")
    examples = []
    for number, row in enumerate(rows, start=2 if header and "text" in header else 1):
        if len(row) <= max(t, l):
            raise InvalidInputError(f"{name}, line {number}: expected a text and a label, got {len(row)} column(s).")
        examples.append(Example(row[t], row[l]))
    return examples


def _rows_from_json_lines(text: str, name: str) -> list[Example]:
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise InvalidInputError(f"{name}, line {number}: not JSON ({error.args[0] if error.args else error}).") from error
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") in (None, ""):
            raise InvalidInputError(f"{name}, line {number}: each line needs a \"text\" and a \"label\".")
        examples.append(Example(row["text"], str(row["label"])))
    return examples


def read_text_examples(path: Path) -> list[Example]:
    """Examples from a CSV/TSV (text, label), a JSON lines file ({"text", "label"}), or a folder with one
    subfolder per label holding text files (each non-empty line one example)."""
    path = path.expanduser()
    if path.is_dir():
        examples = []
        for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for file in sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES):
                examples += [Example(line, folder.name) for line in _read(file).splitlines() if line.strip()]
        if not examples:
            raise InvalidInputError(f"{path} has no examples: put one folder per label in it, each with .txt files "
                                    "(one example a line).")
        return examples
    text = _read(path)
    if not text.strip():
        raise InvalidInputError(f"{path.name} is empty: it has no examples.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        examples = _rows_from_json_lines(text, path.name)
    elif suffix in (".csv", ".tsv", ".txt"):
        examples = _rows_from_csv(text, path.name, "\t" if suffix == ".tsv" else ",")
    else:
        raise InvalidInputError(f"{path.name}: examples come as a .csv (text,label), a .jsonl file or a folder of labels.")
    if not examples:
        raise InvalidInputError(f"{path.name} has no examples.")
    return examples


def _read(path: Path) -> str:
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file (or does not exist).")
    if path.stat().st_size > MAX_EXAMPLE_FILE_BYTES:
        raise InvalidInputError(f"{path.name} is larger than {MAX_EXAMPLE_FILE_BYTES // 1_000_000} MB.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{path.name} is not UTF-8 text (byte {error.start}).") from error


def label_phrases(label: str, sentence: str) -> list[str]:
    """What a label's name teaches before any example: its sentence, and with the default sentence a few more
    phrasings of the name (measured: one sentence alone got 5 of 10 forecasts 'weather' beside two labels with
    examples; these four got 10 of 10)."""
    if not sentence:
        return []
    if sentence == LABEL_TEMPLATE.format(label=label):
        return [template.format(label=label) for template in NAME_TEMPLATES]
    return [sentence, label]


class TextTeacher:
    """Teaches, corrects and runs taught text classifiers on one embedding model (the zero-shot one by default)."""

    def __init__(self, store: Any, library: TaughtLibrary | None = None, model: str | None = None,
                 device: str = "auto", compression: str = "none", cache: ResultCache | None = None,
                 language_model: bool = True, lm_examples: int = LM_SCORED_EXAMPLES,
                 prompt_examples: list[tuple[str, str]] | None = None, prompt_style: dict[str, str] | None = None) -> None:
        self.embedder = TextClassifier(store, None, model=model, device=device, compression=compression)
        self.library = library or TaughtLibrary()
        self.cache = cache
        self.language_model = language_model  # whether teaching compares the language model with the head
        self.lm_examples = lm_examples
        # a fixed prompt (examples from elsewhere, wording) instead of the classifier's own shortest examples
        self.prompt_examples = prompt_examples
        self.prompt_style = prompt_style or {}
        self._scorers: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return self.embedder.entry.id

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None) -> tuple[np.ndarray, list[str]]:
        """Unit-length embeddings; a text longer than CHUNK_WORDS words is embedded in windows of that many words,
        averaged (MiniLM reads 256 word pieces: a review's verdict is often past them)."""
        if not texts:
            return np.zeros((0, 0), np.float32), []
        pieces: list[str] = []
        owner: list[int] = []
        for index, text in enumerate(texts):
            words = text.split()
            windows = [" ".join(words[i: i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)] or [text]
            pieces += windows
            owner += [index] * len(windows)
        vectors, notices = self.embedder.embed(pieces, progress, cancel)
        if len(pieces) == len(texts):
            return vectors, notices
        summed = np.zeros((len(texts), vectors.shape[1]), np.float32)
        np.add.at(summed, np.array(owner), vectors)
        return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12), notices

    def check_model(self, classifier: TaughtClassifier) -> None:
        if classifier.embedding_model != self.model_id:
            raise InvalidInputError(
                f"{classifier.name!r} was taught on the embeddings of {classifier.embedding_model}, but the loaded model "
                f"is {self.model_id}: choose {classifier.embedding_model} as the model, or teach it again on this one.")

    def teach(
        self,
        name: str,
        examples: Sequence[Example],
        labels: Sequence[str] | None = None,
        sentences: dict[str, str] | None = None,
        add: bool = False,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TeachResult:
        """Build (or with `add`, extend) the classifier NAME and save it.

        `labels` may name labels without examples: they learn from their label sentence (`sentences` overrides
        it per label; an empty sentence means none)."""
        cleaned, notices = clean_examples(list(examples))
        existing = self.library.load(name, TASK_TEXT) if add and self.library.exists(name) else None
        if existing is not None:
            self.check_model(existing)
        wanted = list(dict.fromkeys([" ".join(l.split()) for l in (labels or []) if l.strip()]
                                    + [e.label for e in cleaned]))
        all_labels = list(dict.fromkeys((existing.labels if existing else []) + wanted))
        given_sentences = dict(existing.sentences if existing else {})
        for label in all_labels:
            if sentences is not None and label in sentences:
                given_sentences[label] = sentences[label].strip()
            given_sentences.setdefault(label, LABEL_TEMPLATE.format(label=label))
        kept = (existing.examples if existing else [])
        check_labels(all_labels, kept + cleaned, {l: bool(given_sentences.get(l)) for l in all_labels})
        started = time.perf_counter()
        phrases = [(label, phrase) for label in all_labels for phrase in label_phrases(label, given_sentences[label])]
        vectors, embed_notices = self.embed([e.text for e in cleaned] + [phrase for _, phrase in phrases], progress, cancel)
        notices += embed_notices
        embed_seconds = time.perf_counter() - started
        dim = vectors.shape[1]
        example_vectors = vectors[: len(cleaned)].reshape(len(cleaned), dim)
        sentence_vectors, sentence_labels = vectors[len(cleaned):], [label for label, _ in phrases]
        if existing is not None:
            classifier = existing
            classifier.labels = all_labels
            notices += classifier.add_examples(cleaned, example_vectors)
        else:
            classifier = TaughtClassifier(name, TASK_TEXT, self.model_id, all_labels, cleaned, example_vectors)
        classifier.sentences = given_sentences
        classifier.sentence_vectors, classifier.sentence_labels = sentence_vectors, sentence_labels
        notices += self._score_with_language_model(classifier, progress, cancel)
        if progress is not None:
            progress("Training", None)
        report = classifier.fit()
        self.library.save(classifier)
        return TeachResult(classifier.describe(), report, notices + report.notices, embed_seconds)

    def _scorer(self, classifier: TaughtClassifier) -> Any:
        from desktop_ai.engine.tasks.taught_prompt import PromptScorer

        key = json.dumps([classifier.labels, classifier.prompt_examples, classifier.prompt_style])
        if key not in self._scorers:
            self._scorers = {key: PromptScorer(self.embedder.store, classifier.labels, classifier.prompt_examples,
                                               classifier.prompt_style)}
        return self._scorers[key]

    def _score_with_language_model(self, classifier: TaughtClassifier, progress: ProgressCallback | None,
                                   cancel: threading.Event | None) -> list[str]:
        """The language model's label scores for up to `lm_examples` examples (a seeded sample), the prompt showing
        a few others: what `fit` compares the head with. Without llama.cpp, the head alone (with a notice)."""
        from desktop_ai.engine.tasks.taught_prompt import PromptScorer, choose_prompt_examples, lm_available

        classifier.lm_scores, classifier.prompt_examples = None, []
        if not self.language_model or self.lm_examples <= 0:
            return []
        if not lm_available():
            return ["The language model was not compared with the head: llama-cpp-python is not installed."]
        texts = [e.text for e in classifier.examples]
        labels = [e.label for e in classifier.examples]
        if self.prompt_examples is not None:
            prompt, shown = [], list(self.prompt_examples)
        else:
            if any(labels.count(label) < 2 for label in classifier.labels):
                return []  # too few examples to show some and score others: the head alone
            prompt = choose_prompt_examples(texts, labels, classifier.labels)
            shown = [(texts[i], labels[i]) for i in prompt]
        rest = np.array([i for i in range(len(texts)) if i not in set(prompt)], np.int64)
        if len(rest) > self.lm_examples:
            rest = np.sort(np.random.default_rng(0).choice(rest, self.lm_examples, replace=False))
        scorer = PromptScorer(self.embedder.store, classifier.labels, shown, self.prompt_style)
        try:
            scores = scorer.score([texts[i] for i in rest], progress, cancel)
        except InvalidInputError as error:
            return [str(error)]
        classifier.prompt_examples, classifier.prompt_style = list(scorer.examples), dict(self.prompt_style)
        classifier.lm_scores = np.full((len(texts), len(classifier.labels)), np.nan, np.float32)
        classifier.lm_scores[rest] = scores
        return []

    def lm_scores(self, classifier: TaughtClassifier, texts: Sequence[str], progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None) -> np.ndarray | None:
        """The language model's label scores for `texts`, when the classifier chose it (else None)."""
        if not classifier.uses_language_model:
            return None
        return self._scorer(classifier).score(list(texts), progress, cancel)

    def correct(self, name: str, text: str, label: str) -> list[str]:
        """The text becomes an example of `label`; the classifier is refitted and saved at once."""
        if not text.strip():
            raise InvalidInputError("There is no text to correct.")
        classifier = self.library.load(name, TASK_TEXT)
        self.check_model(classifier)
        label = " ".join(label.split())
        if label not in classifier.labels:
            raise InvalidInputError(f"{label!r} is not one of {name!r}'s labels ({', '.join(classifier.labels)}); "
                                    "teach it with examples first.")
        vectors, notices = self.embed([text.strip()])
        lm = self.lm_scores(classifier, [text.strip()])
        notices += classifier.correct(text.strip(), label, vectors[0], None if lm is None else lm[0])
        self.library.save(classifier)
        return notices

    def run(self, name: str, texts: Sequence[str], progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None) -> ClassificationBatch:
        """Classify with the taught classifier NAME: the same result shape as zero-shot classification."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise InvalidInputError("There is no text to classify: type or paste at least one line.")
        classifier = self.library.load(name, TASK_TEXT)
        self.check_model(classifier)
        started = time.perf_counter()
        spec = KeySpec(TASK_TAUGHT_TEXT, f"taught:{classifier.name}", classifier.digest(),
                       self.embedder.compression.value, {"embedding_model": classifier.embedding_model})
        results: list[ClassificationResult | None] = [None] * len(texts)
        if self.cache is not None:
            for index, text in enumerate(texts):
                hit = self.cache.get(spec.key(text))
                if hit is not None:
                    results[index] = ClassificationResult(text, [LabelScore(**s) for s in hit["scores"]],
                                                          f"taught:{classifier.name}", True)
        todo = [i for i, r in enumerate(results) if r is None]
        notices: list[str] = []
        if todo:  # the embedding model is loaded only when some text is not in the cache
            vectors, notices = self.embed([texts[i] for i in todo], progress, cancel)
            lm = self.lm_scores(classifier, [texts[i] for i in todo], progress, cancel)
            for index, row in zip(todo, classifier.scores(vectors, lm)):
                ranked = sorted((LabelScore(l, round(float(p), 6)) for l, p in zip(classifier.labels, row)),
                                key=lambda s: -s.score)
                results[index] = ClassificationResult(texts[index], ranked, f"taught:{classifier.name}")
                if self.cache is not None:
                    self.cache.put(spec.key(texts[index]), results[index].to_dict())
        device = self.embedder.device.device
        return ClassificationBatch([r for r in results if r is not None], list(classifier.labels), "taught", device,
                                   self.embedder.compression.value, time.perf_counter() - started, notices)
