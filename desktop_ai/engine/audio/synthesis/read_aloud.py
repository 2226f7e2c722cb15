"""Reading streamed text aloud: sentences are cut as they complete, synthesised in order and played one after another,
the first as soon as it is complete, while the rest of the answer is still being written.

A sentence counts as complete when the segmenter (sentencex) sees another one begin after it, or when the text ends;
so "Dr. Smith" does not cut early, and the next token's leading space is what releases a finished sentence.
One thread synthesises (ONNX Runtime releases the GIL), the PortAudio callback plays; Stop drops both at once.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from desktop_ai.engine.audio.synthesis.playback import SpeechPlayer
from desktop_ai.engine.audio.synthesis.synthesizer import (
    LANGUAGE_CHECK_MIN_WORDS,
    SENTENCE_SILENCE_S,
    SpeechSynthesizer,
    check_language,
)
from desktop_ai.engine.errors import EngineError

logger = logging.getLogger(__name__)

_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
_MARKUP = re.compile(r"[*_`#>|~]+|\[([^\]]*)\]\([^)]*\)|^\s*[-+]\s+", re.MULTILINE)


def speakable(text: str) -> str:
    """Markdown as it would be read out: code blocks left out, link text kept, emphasis and list marks dropped."""
    text = _CODE_BLOCK.sub(" ", text)
    return _MARKUP.sub(lambda m: m.group(1) or " ", text)


@dataclass
class ReadingReport:
    """What a reading did and when (time.monotonic() seconds), for the window and the benchmark."""

    sentences: list[str] = field(default_factory=list)
    first_sentence_at: float | None = None  # the first sentence was complete
    first_audio_at: float | None = None  # its audio was queued for the device
    first_sound_at: float | None = None  # the device took its first samples
    played_s: float = 0.0
    stopped: bool = False
    error: str | None = None

    @property
    def first_sound_latency_s(self) -> float | None:
        if self.first_sentence_at is None or self.first_sound_at is None:
            return None
        return self.first_sound_at - self.first_sentence_at


class StreamingReader:
    """feed() text as it streams, close() at its end, wait() for the last sound, or stop() at any moment."""

    def __init__(self, synthesizer: SpeechSynthesizer, speed: float = 1.0, device: int | str | None = None,
                 on_sentence: Callable[[str], None] | None = None, player: SpeechPlayer | None = None) -> None:
        self.synthesizer = synthesizer
        self.speed = speed
        self.player = player or SpeechPlayer(synthesizer.sample_rate, device)
        self.report = ReadingReport()
        self._on_sentence = on_sentence
        self._text = ""  # everything fed so far
        self._consumed = 0  # characters of speakable(self._text) already queued as sentences
        self._closed = False
        self._checked = False
        self._lock = threading.Lock()
        self._sentences: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._speak, name="read-aloud", daemon=True)

    def start(self) -> StreamingReader:
        """Open the output device now, so the first sentence does not wait for it."""
        self.player.start()
        self._thread.start()
        return self

    def feed(self, chunk: str) -> None:
        """More text of the answer; every sentence it completes is queued for speaking."""
        with self._lock:
            if self._closed or self._stop.is_set():
                return
            self._text += chunk
            # The whole text is cleaned again each time: a code block that is still open is left out until it closes.
            tail = speakable(self._text)[self._consumed:]
            sentences = self.synthesizer.sentences(tail)
            if len(sentences) < 2:
                return
            start = tail.rfind(sentences[-1])
            if start < 0:
                return
            self._consumed += start
        self._queue(sentences[:-1])

    def close(self) -> None:
        """The text has ended: what is left is the last sentence."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            rest = speakable(self._text)[self._consumed:]
        sentences = self.synthesizer.sentences(rest) if rest.strip() else []
        self._queue(sentences)
        self._sentences.put(None)

    def stop(self) -> None:
        """Silence at once; nothing more is said."""
        self._stop.set()
        self.report.stopped = True
        self.player.stop()
        self._sentences.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Until the last sentence has played (or Stop, or an error); False on timeout."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _queue(self, sentences: list[str]) -> None:
        for sentence in sentences:
            if not any(c.isalnum() for c in sentence):
                continue
            if self.report.first_sentence_at is None:
                self.report.first_sentence_at = time.monotonic()
            self._sentences.put(sentence)

    def _check_language(self, sentence: str) -> None:
        """Once, on the first sentences that are long enough to tell (see synthesizer.check_language)."""
        if self._checked:
            return
        said = " ".join([*self.report.sentences, sentence])
        if len(said.split()) >= LANGUAGE_CHECK_MIN_WORDS or self._closed:
            self._checked = True
            check_language(said, self.synthesizer.voice)

    def _speak(self) -> None:
        try:
            while not self._stop.is_set():
                sentence = self._sentences.get()
                if sentence is None or self._stop.is_set():
                    break
                self._check_language(sentence)
                audio = self.synthesizer.model.sentence_audio(sentence, self.speed)
                if self._stop.is_set():
                    break
                self.report.sentences.append(sentence)
                if audio.size:
                    pause = np.zeros(int(SENTENCE_SILENCE_S * self.synthesizer.sample_rate), dtype=np.float32)
                    self.player.enqueue(np.concatenate([audio, pause]))
                    if self.report.first_audio_at is None:
                        self.report.first_audio_at = time.monotonic()
                if self._on_sentence is not None:
                    self._on_sentence(sentence)
            if not self._stop.is_set():
                self.player.finish()
                while not self.player.wait(0.05) and not self._stop.is_set():
                    pass
        except EngineError as error:
            self.report.error = str(error)
            self.player.stop()
        except Exception as error:  # a bug: said, and logged with its traceback
            logger.exception("Reading aloud failed")
            self.report.error = f"Reading aloud failed: {error}"
            self.player.stop()
        finally:
            self.report.first_sound_at = self.player.first_sound_at
            self.report.played_s = self.player.played_s
            self._done.set()

