"""The language-model side of a taught text classifier: the embedded SmolLM2 (llama.cpp) prompted with a few of
the classifier's own labelled examples, scored by the next-token logits of the label words.

Why: a head on sentence embeddings needs many examples; a language model prompted with a few ranks texts well
but its raw decision is off (the issue's measurement: 0.72 as it is, 0.84 with the best threshold). So its label
logits are features, and the decision on them is fitted on labelled data (a small logistic regression, which for
two labels is a fitted threshold on the logit difference), chosen against the head by cross-validation.

The prompt's prefix (instruction and examples) is decoded once per call and kept: each text costs only its own
tokens (runtimes/llama_cpp.py, next_token_logits). Texts are capped at MAX_TEXT_TOKENS (their beginning and end:
a review's verdict is often in its last sentences), which bounds the cost of a long text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.store import ProgressCallback

logger = logging.getLogger(__name__)

LM_MODEL = "smollm2-135m-instruct-q4"  # the embedded chat model (catalogue id)
PROMPT_EXAMPLES_PER_LABEL = 2
MAX_PROMPT_EXAMPLE_TOKENS = 48  # a prompt example longer than this is cut (the prefix stays short)
MAX_TEXT_TOKENS = 128  # first and last halves of a longer text
PROGRESS_EVERY = 32  # texts per call: the prefix is decoded again once per call


def lm_available() -> bool:
    from desktop_ai.engine.runtimes import llama_cpp

    return llama_cpp.available()


def choose_prompt_examples(texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str]) -> list[int]:
    """The indices of the examples shown in the prompt: the shortest PROMPT_EXAMPLES_PER_LABEL of each label,
    interleaved (label order varies in the prompt, so no label is simply 'the last one seen')."""
    per_label = []
    for name in label_names:
        rows = sorted((i for i, label in enumerate(labels) if label == name), key=lambda i: (len(texts[i]), i))
        per_label.append(rows[:PROMPT_EXAMPLES_PER_LABEL])
    chosen = []
    for round_ in range(PROMPT_EXAMPLES_PER_LABEL):
        for rows in per_label:
            if round_ < len(rows):
                chosen.append(rows[round_])
    return chosen


DEFAULT_STYLE = {"instruction": "", "item": "Text", "cue": "Label"}


class PromptScorer:
    """Label logits from the embedded language model, for one classifier's labels and prompt examples.

    `style` may name the task for the model (the built-in sentiment classifier: "Classify each review as positive
    or negative.", items called "Review", the answer cued by "Sentiment:"); a taught classifier's default is
    "Label each text as one of: ...", "Text:" and "Label:"."""

    def __init__(self, store: Any, labels: Sequence[str], examples: Sequence[tuple[str, str]],
                 style: dict[str, str] | None = None) -> None:
        self.store = store
        self.labels = list(labels)
        self.examples = list(examples)
        self.style = DEFAULT_STYLE | {k: v for k, v in (style or {}).items() if v}
        self._lm: Any = None

    def _load(self, progress: ProgressCallback | None, cancel: threading.Event | None) -> Any:
        if self._lm is None:
            if not lm_available():
                raise ModelUnavailableError("The language-model scorer needs llama-cpp-python, which is not installed.")
            from desktop_ai.engine.models.compression import Compression
            from desktop_ai.engine.models.devices import pick_device
            from desktop_ai.engine.runtimes.causal_lm import RUNTIME_LLAMA_CPP
            from desktop_ai.engine.runtimes.choice import open_causal_lm

            entry = self.store.resolve_entry(LM_MODEL, "generate")
            location = self.store.locate(entry, progress, cancel)
            # always on the CPU: 135 M parameters, and it must not take the GPU from a job that needs it
            self._lm = open_causal_lm(self.store, location, RUNTIME_LLAMA_CPP, pick_device("cpu"), Compression.NONE,
                                      progress, cancel)
        return self._lm

    def _cut(self, lm: Any, text: str, limit: int) -> list[int]:
        tokens = lm._llm.tokenize((" " + " ".join(text.split())).encode("utf-8"), add_bos=False, special=False)
        if len(tokens) > limit:
            tokens = tokens[: limit // 2] + lm._llm.tokenize(b" ...", add_bos=False, special=False) + tokens[-(limit - limit // 2):]
        return tokens

    def _candidates(self, lm: Any) -> list[int]:
        """The first token of each label word (' label'); two labels that start with the same token cannot be
        told apart by it."""
        firsts = [lm._llm.tokenize((" " + label).encode("utf-8"), add_bos=False, special=False)[0] for label in self.labels]
        if len(set(firsts)) != len(firsts):
            raise InvalidInputError("Two labels begin with the same word piece, so the language model cannot tell them "
                                    "apart by their first token; the embedding head is used.")
        return firsts

    def score(self, texts: Sequence[str], progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None) -> np.ndarray:
        """Log-probabilities of the label words (rows: texts; columns: labels), normalised over the labels."""
        lm = self._load(progress, cancel)
        llm = lm._llm
        item, cue = self.style["item"], self.style["cue"]
        header = (self.style["instruction"] or "Label each text as one of: " + ", ".join(self.labels) + ".") + "\n\n"
        prefix = llm.tokenize(header.encode("utf-8"), add_bos=False, special=False)
        start = llm.tokenize(f"{item}:".encode("utf-8"), add_bos=False, special=False)
        for text, label in self.examples:
            prefix += start + self._cut(lm, text, MAX_PROMPT_EXAMPLE_TOKENS)
            prefix += llm.tokenize(f"\n{cue}: {label}\n\n".encode("utf-8"), add_bos=False, special=False)
        ask = llm.tokenize(f"\n{cue}:".encode("utf-8"), add_bos=False, special=False)
        candidates = self._candidates(lm)
        rows = []
        for begin in range(0, len(texts), PROGRESS_EVERY):
            chunk = texts[begin: begin + PROGRESS_EVERY]
            continuations = [start + self._cut(lm, text, MAX_TEXT_TOKENS) + ask for text in chunk]
            rows.append(lm.next_token_logits(prefix, continuations, candidates, cancel))
            if progress is not None:
                done = begin + len(chunk)
                progress(f"Language model: {done} of {len(texts)} texts", done / len(texts))
        logits = np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), np.float32)
        logits = logits - logits.max(axis=1, keepdims=True)
        return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)
