"""Translation with MarianMT (Helsinki-NLP opus-mt pairs), sentence by sentence.

A page is cut into sentences, keeping every paragraph break, line break and space between them exactly as
they were; each sentence is cached on its own, so editing one sentence of a page translates only that one.
Sentences longer than the model can read are split at commas, then at words, never silently cut.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.cache import ResultCache, make_cache_key
from desktop_ai.engine.models.catalogue import KIND_TRANSLATION, TASK_TRANSLATE, find_entry
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.loading import LoadedModel, run_with_cpu_fallback
from desktop_ai.engine.models.store import ModelStore, ProgressCallback

logger = logging.getLogger(__name__)

MAX_CHARS = 2_000_000
MAX_SENTENCE_TOKENS = 400  # opus-mt models read 512 tokens; leave room for the special tokens
BATCH_SIZE = 16
# A sentence ends at . ! ? (and the CJK full stops), optionally followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+|(?<=[。！？])")


@dataclass
class Segment:
    text: str
    translatable: bool


def split_text(text: str) -> list[Segment]:
    """Sentences (translatable) and the exact whitespace between them (kept as it is)."""
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
        start = 0
        for match in _SENTENCE_END.finditer(body):
            end = match.start() + len(match.group(0).rstrip())
            if end > start:
                segments.append(Segment(body[start:end], True))
            gap = body[end : match.end()]
            if gap:
                segments.append(Segment(gap, False))
            start = match.end()
        if start < len(body):
            segments.append(Segment(body[start:], True))
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
    ) -> None:
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
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)
        self.model_calls = 0  # generate() calls, for tests and the benchmark
        self.sentences_translated = 0

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> LoadedModel:
        from transformers import MarianMTModel

        from desktop_ai.engine.models.loading import load_pretrained

        return load_pretrained(self.store, self.entry, MarianMTModel, self.device, self.compression, progress, cancel)

    def _key(self, revision: str, sentence: str, options: TranslationOptions) -> str:
        return make_cache_key(TASK_TRANSLATE, self.entry.id, revision, self.compression.value, {"beams": options.beams}, sentence)

    def run(
        self,
        text: str,
        options: TranslationOptions | None = None,
        on_partial: Callable[[str], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TranslationResult:
        """`on_partial` gets the translation of the page so far, in order, after every batch."""
        from transformers import MarianMTModel

        options = options or TranslationOptions()
        options.validate()
        if not text or not text.strip():
            raise InvalidInputError("There is nothing to translate: type, paste or open some text.")
        if len(text) > MAX_CHARS:
            raise InvalidInputError(f"The text has {len(text):,} characters; translate at most {MAX_CHARS:,} at once.")
        started = time.perf_counter()
        segments = split_text(text)
        output = [None if s.translatable else s.text for s in segments]
        location = self.store.locate(self.entry, progress, cancel)
        todo: list[int] = []
        for index, segment in enumerate(segments):
            if not segment.translatable:
                continue
            hit = self.cache.get(self._key(location.revision, segment.text, options)) if self.cache is not None else None
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

        notices: list[str] = []
        device, compression, stopped = self.device.device, self.compression.value, False
        if todo:

            def job(loaded: LoadedModel) -> tuple[bool, list[str]]:
                return self._translate(loaded, location.revision, segments, todo, output, options, prefix, on_partial, progress, cancel, total)

            (stopped, run_notices), loaded, load_notices = run_with_cpu_fallback(
                self.store, self.entry, MarianMTModel, self.device, self.compression, job, progress, cancel
            )
            notices = load_notices + run_notices
            device, compression = loaded.device, loaded.compression.method
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
        )

    def _translate(
        self,
        loaded: LoadedModel,
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
        limit = min(getattr(loaded.tokenizer, "model_max_length", 512) or 512, MAX_SENTENCE_TOKENS)
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
                parts = self._fit(loaded.tokenizer, sentence, limit)
                split_count += len(parts) > 1
                pieces.append(parts)
            flat = [p for parts in pieces for p in parts]
            translations = self._generate(loaded, flat, options)
            position = 0
            for sentence, parts in zip(batch, pieces):
                target = " ".join(translations[position : position + len(parts)])
                position += len(parts)
                for index in unique[sentence]:
                    output[index] = target
                if self.cache is not None:
                    self.cache.put(self._key(revision, sentence, options), {"source": sentence, "target": target})
                self.sentences_translated += 1
            if on_partial is not None:
                on_partial(prefix())
            if progress is not None:
                done = total - sum(1 for i in todo if output[i] is None)
                progress(f"{done} of {total} sentences", done / total)
        if split_count:
            notices.append(f"{split_count} sentence(s) were longer than the model reads at once ({limit} tokens); each was split and translated in parts.")
        return False, notices

    def _generate(self, loaded: LoadedModel, texts: list[str], options: TranslationOptions) -> list[str]:
        import torch

        batch = loaded.tokenizer(texts, return_tensors="pt", padding=True, truncation=False)
        batch = {k: v.to(loaded.device) for k, v in batch.items()}
        with torch.inference_mode():
            generated = loaded.model.generate(**batch, num_beams=options.beams, max_new_tokens=options.max_new_tokens)
        self.model_calls += 1
        return [t.strip() for t in loaded.tokenizer.batch_decode(generated, skip_special_tokens=True)]

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
