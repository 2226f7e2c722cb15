"""Translation with MarianMT (Helsinki-NLP opus-mt pairs), sentence by sentence.

A page is cut into sentences, keeping every paragraph break, line break and space between them exactly as
they were; each sentence is cached on its own, so editing one sentence of a page translates only that one.
Sentences longer than the model can read are split at commas, then at words, never silently cut.

Sentences are found by `sentencex` (Wikimedia's segmenter, maintained, with abbreviation and number rules for
about 300 languages through language fallbacks, and fast: a Rust core does 4000 sentences in about 10 ms).
pysbd was the other candidate: about as good on English and German, but unmaintained since 2021, 22 languages
only, and much slower on long pages. A hand-written regular expression cut "Dr. Smith met Mr. Jones at 3 p.m.
in the U.S. embassy." into five pieces, each translated alone; sentencex keeps it one sentence.

The model runs on CTranslate2 (int8, converted once) by default and on transformers' MarianMTModel, the
reference and baseline, when asked or where CTranslate2 cannot run (desktop_ai/engine/runtimes/marian_*.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.models.catalogue import KIND_TRANSLATION, TASK_TRANSLATE, find_entry
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import cpu_fallback_notice, pick_device
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.loading import LoadedModel, run_with_cpu_fallback
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback
from desktop_ai.engine.runtimes.marian_ctranslate2 import compute_type as ct2_compute_type
from desktop_ai.engine.runtimes.marian_ctranslate2 import load_ctranslate2_marian
from desktop_ai.engine.runtimes.marian_runtime import (
    RUNTIME_AUTO,
    RUNTIME_CTRANSLATE2,
    RUNTIME_TRANSFORMERS,
    MarianRuntime,
    TransformersMarian,
    choose_runtime,
    ctranslate2_device,
    parse_runtime,
)

logger = logging.getLogger(__name__)

MAX_CHARS = 2_000_000
MAX_SENTENCE_TOKENS = 400  # opus-mt models read 512 tokens; leave room for the special tokens
BATCH_SIZE = 16
_failed_conversions: set[tuple[str, str]] = set()  # (model id, revision): auto goes to transformers for these


@dataclass
class Segment:
    text: str
    translatable: bool


def split_text(text: str, language: str = "en") -> list[Segment]:
    """Sentences (translatable) and the exact whitespace between them (kept as it is)."""
    from sentencex import segment

    segments: list[Segment] = []
    for line in re.split(r"(\r?\n)", text):
        if line in ("\n", "\r\n") or not line.strip():
            if line:
                segments.append(Segment(line, False))
            continue
        lead = line[: len(line) - len(line.lstrip())]
        if lead:
            segments.append(Segment(lead, False))
        body = line.strip()
        pieces = list(segment(language, body))
        if "".join(pieces) != body:  # never lose a character, whatever the segmenter does
            logger.warning("The sentence segmenter changed the text of a line; translating the line as one piece")
            pieces = [body]
        for piece in pieces:
            sentence = piece.strip()
            start = len(piece) - len(piece.lstrip())
            for part, translatable in ((piece[:start], False), (sentence, True), (piece[start + len(sentence) :], False)):
                if part:
                    segments.append(Segment(part, translatable))
        trail = line[len(line.rstrip()) :]
        if trail:
            segments.append(Segment(trail, False))
    return segments


@dataclass
class TranslationOptions:
    beams: int = 4
    max_new_tokens: int = 512

    def validate(self) -> None:
        if not 1 <= self.beams <= 16:
            raise InvalidInputError("Beam size must be between 1 and 16.")


@dataclass
class TranslationResult:
    text: str
    source_text: str
    model_id: str
    device: str
    compression: str
    sentences: int
    translated: int  # sentences the model translated in this run (the rest came from the cache)
    seconds: float
    stopped: bool = False
    notices: list[str] = field(default_factory=list)
    runtime: str = RUNTIME_TRANSFORMERS  # the engine that ran the model: ctranslate2 or transformers

    @property
    def cached(self) -> int:
        return self.sentences - self.translated

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0


class Translator:
    def __init__(
        self,
        store: ModelStore,
        cache: ResultCache | None = None,
        model: str | None = None,
        src: str = "en",
        tgt: str = "de",
        device: str = "auto",
        compression: Compression | str = Compression.NONE,
        runtime: str = RUNTIME_AUTO,
    ) -> None:
        """`runtime`: auto (CTranslate2 where it runs, else transformers), ctranslate2 or transformers."""
        self.store = store
        self.cache = cache
        if not model:
            if find_entry(f"opus-mt-{src}-{tgt}") is None:
                raise ModelUnavailableError(
                    f"No translation model is listed for {src} → {tgt}. Choose a folder that holds an opus-mt-{src}-{tgt} model."
                )
            model = f"opus-mt-{src}-{tgt}"
        self.entry = store.resolve_entry(model, TASK_TRANSLATE)
        if self.entry.kind != KIND_TRANSLATION:
            raise ModelUnavailableError(f"{self.entry.title} is not a translation model.")
        self.language = src
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)
        self.requested_runtime = parse_runtime(runtime)
        self.runtime, self.runtime_notice = choose_runtime(self.requested_runtime, self.device.device, self.compression)
        self.model_calls = 0  # batch translate calls, for tests and the benchmark
        self.sentences_translated = 0

    def _runtime_for(self, location: ModelLocation) -> str:
        if self.runtime == RUNTIME_CTRANSLATE2 and self.requested_runtime == RUNTIME_AUTO and (
            (self.entry.id, location.revision) in _failed_conversions
        ):
            return RUNTIME_TRANSFORMERS
        return self.runtime

    def runtime_compression(self, runtime: str) -> str:
        """What the weights run as on `runtime` for this device and compression (part of the cache key)."""
        if runtime == RUNTIME_CTRANSLATE2:
            return ct2_compute_type(ctranslate2_device(self.device.device) or "cpu", self.compression)
        return self.compression.value

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> MarianRuntime:
        """The loaded model on the runtime this translator uses (kept loaded in the store)."""
        location = self.store.locate(self.entry, progress, cancel)
        if self._runtime_for(location) == RUNTIME_CTRANSLATE2:
            return load_ctranslate2_marian(self.store, location, self.device.device, self.compression, progress, cancel)
        from transformers import MarianMTModel

        from desktop_ai.engine.models.loading import load_pretrained

        loaded = load_pretrained(self.store, self.entry, MarianMTModel, self.device, self.compression, progress, cancel)
        return TransformersMarian(loaded, notices=list(loaded.notices))

    def key_spec(self, options: TranslationOptions, runtime: str | None = None, revision: str | None = None) -> KeySpec:
        """How run() keys each sentence in the result cache (the cluster driver keys sentences with it)."""
        if revision is None or runtime is None:
            location = self.store.locate(self.entry)
            revision, runtime = revision or location.revision, runtime or self._runtime_for(location)
        key_options = {"beams": options.beams, "runtime": runtime, "compute": self.runtime_compression(runtime)}
        return KeySpec(TASK_TRANSLATE, self.entry.id, revision, self.compression.value, key_options)

    def _key(self, revision: str, sentence: str, options: TranslationOptions, runtime: str) -> str:
        return self.key_spec(options, runtime, revision).key(sentence)

    def run(
        self,
        text: str,
        options: TranslationOptions | None = None,
        on_partial: Callable[[str], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TranslationResult:
        """`on_partial` gets the translation of the page so far, in order, after every batch."""
        options = options or TranslationOptions()
        options.validate()
        if not text or not text.strip():
            raise InvalidInputError("There is nothing to translate: type, paste or open some text.")
        if len(text) > MAX_CHARS:
            raise InvalidInputError(f"The text has {len(text):,} characters; translate at most {MAX_CHARS:,} at once.")
        started = time.perf_counter()
        segments = split_text(text, self.language)
        output = [None if s.translatable else s.text for s in segments]
        location = self.store.locate(self.entry, progress, cancel)
        runtime_name = self._runtime_for(location)
        todo: list[int] = []
        for index, segment in enumerate(segments):
            if not segment.translatable:
                continue
            hit = self.cache.get(self._key(location.revision, segment.text, options, runtime_name)) if self.cache is not None else None
            if hit is not None:
                output[index] = hit["target"]
            else:
                todo.append(index)
        total = sum(1 for s in segments if s.translatable)

        def prefix() -> str:
            parts = []
            for piece in output:
                if piece is None:
                    break
                parts.append(piece)
            return "".join(parts)

        notices: list[str] = [self.runtime_notice] if self.runtime_notice else []
        device, compression, stopped = self.device.device, self.runtime_compression(runtime_name), False
        if todo:

            def job(runtime: MarianRuntime) -> tuple[bool, list[str]]:
                return self._translate(runtime, location.revision, segments, todo, output, options, prefix, on_partial, progress, cancel, total)

            (stopped, run_notices), runtime, load_notices = self._run_job(location, runtime_name, job, progress, cancel)
            notices += load_notices + run_notices
            device, compression, runtime_name = runtime.device, runtime.compression, runtime.name
        elif on_partial is not None:
            on_partial(prefix())
        translated_now = sum(1 for i in todo if output[i] is not None)
        if stopped:
            notices.append(f"Stopped: {total - len(todo) + translated_now} of {total} sentences are translated; the rest is left out.")
        return TranslationResult(
            text=prefix() if stopped else "".join(p or "" for p in output),
            source_text=text,
            model_id=self.entry.id,
            device=device,
            compression=compression,
            sentences=total,
            translated=translated_now,
            seconds=time.perf_counter() - started,
            stopped=stopped,
            notices=notices,
            runtime=runtime_name,
        )

    def _run_job(
        self,
        location: ModelLocation,
        runtime_name: str,
        job: Callable[[MarianRuntime], Any],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> tuple[Any, MarianRuntime, list[str]]:
        """Run `job(runtime)` on the chosen runtime; CTranslate2 falls back to the CPU on GPU out-of-memory,
        and under auto to transformers when the model cannot be converted."""
        if runtime_name == RUNTIME_CTRANSLATE2:
            try:
                runtime = load_ctranslate2_marian(self.store, location, self.device.device, self.compression, progress, cancel)
            except ModelUnavailableError as error:
                if self.requested_runtime != RUNTIME_AUTO:
                    raise
                logger.warning("CTranslate2 cannot run %s (%s); using transformers", self.entry.id, error)
                _failed_conversions.add((self.entry.id, location.revision))
                result, runtime, notices = self._run_transformers(job, progress, cancel)
                return result, runtime, [f"{error} Translated with transformers instead.", *notices]
            try:
                return job(runtime), runtime, []
            except Exception as error:
                if runtime.device == "cpu" or "out of memory" not in str(error).lower():
                    raise
                logger.warning("Out of GPU memory translating with CTranslate2; retrying on the CPU")
            self.store.loaded.drop(lambda key: key[0] == self.entry.id and key[2] == "ctranslate2-marian" and key[3] != "cpu")
            runtime = load_ctranslate2_marian(self.store, location, "cpu", self.compression, progress, cancel)
            return job(runtime), runtime, [cpu_fallback_notice(self.device.device)]
        return self._run_transformers(job, progress, cancel)

    def _run_transformers(
        self, job: Callable[[MarianRuntime], Any], progress: ProgressCallback | None, cancel: threading.Event | None
    ) -> tuple[Any, MarianRuntime, list[str]]:
        from transformers import MarianMTModel

        def on_loaded(loaded: LoadedModel) -> Any:
            return job(TransformersMarian(loaded))

        result, loaded, notices = run_with_cpu_fallback(
            self.store, self.entry, MarianMTModel, self.device, self.compression, on_loaded, progress, cancel
        )
        return result, TransformersMarian(loaded), notices

    def _translate(
        self,
        runtime: MarianRuntime,
        revision: str,
        segments: list[Segment],
        todo: list[int],
        output: list[str | None],
        options: TranslationOptions,
        prefix: Callable[[], str],
        on_partial: Callable[[str], None] | None,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        total: int,
    ) -> tuple[bool, list[str]]:
        notices: list[str] = []
        limit = min(getattr(runtime.tokenizer, "model_max_length", 512) or 512, MAX_SENTENCE_TOKENS)
        # Same sentences (a repeated line) are translated once.
        unique: dict[str, list[int]] = {}
        for index in todo:
            unique.setdefault(segments[index].text, []).append(index)
        sentences = list(unique)
        split_count = 0
        for start in range(0, len(sentences), BATCH_SIZE):
            if cancel is not None and cancel.is_set():
                return True, notices
            batch = sentences[start : start + BATCH_SIZE]
            pieces: list[list[str]] = []
            for sentence in batch:
                parts = self._fit(runtime.tokenizer, sentence, limit)
                split_count += len(parts) > 1
                pieces.append(parts)
            flat = [p for parts in pieces for p in parts]
            translations = runtime.translate(flat, options.beams, options.max_new_tokens)
            self.model_calls += 1
            position = 0
            for sentence, parts in zip(batch, pieces):
                target = " ".join(translations[position : position + len(parts)])
                position += len(parts)
                for index in unique[sentence]:
                    output[index] = target
                if self.cache is not None:
                    self.cache.put(self._key(revision, sentence, options, runtime.name), {"source": sentence, "target": target})
                self.sentences_translated += 1
            if on_partial is not None:
                on_partial(prefix())
            if progress is not None:
                done = total - sum(1 for i in todo if output[i] is None)
                progress(f"{done} of {total} sentences", done / total)
        if split_count:
            notices.append(f"{split_count} sentence(s) were longer than the model reads at once ({limit} tokens); each was split and translated in parts.")
        return False, notices

    @staticmethod
    def _fit(tokenizer: Any, sentence: str, limit: int) -> list[str]:
        """Split a sentence that is too long: at , ; : first, then into runs of words."""
        def length(text: str) -> int:
            return len(tokenizer(text, truncation=False)["input_ids"])

        if length(sentence) <= limit:
            return [sentence]
        clauses = [c for c in re.split(r"(?<=[,;:，；：])\s+", sentence) if c]
        parts: list[str] = []
        current = ""
        for clause in clauses:
            candidate = f"{current} {clause}".strip()
            if current and length(candidate) > limit:
                parts.append(current)
                current = clause
            else:
                current = candidate
        if current:
            parts.append(current)
        fitted: list[str] = []
        for part in parts:
            if length(part) <= limit:
                fitted.append(part)
                continue
            words = part.split()
            sizes = [len(ids) - 1 for ids in tokenizer(words, truncation=False)["input_ids"]]  # less </s>
            chunk: list[str] = []
            used = 0
            for word, size in zip(words, sizes):
                if chunk and used + size > limit - 1:
                    fitted.append(" ".join(chunk))
                    chunk, used = [], 0
                chunk.append(word)
                used += size
            if chunk:
                fitted.append(" ".join(chunk))
        return fitted
