"""Voice activity: cut a stream of 16 kHz audio into phrases at the pauses.

Dictation needs phrases that end when the speaker pauses (that is when the final text can be written), and
file transcription wants the same cuts so no word is split at an arbitrary 30 s boundary. The speech
probability comes from the Silero VAD model that faster-whisper ships (onnxruntime, ~2 MB, one CPU thread);
what is ours is the streaming state machine around it: a pre-roll so the first syllable is not lost, a
minimum silence before a phrase is declared finished, and a maximum phrase length.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the v5/v6 models read with each window
WINDOW_S = WINDOW / SAMPLE_RATE
DIGITAL_SILENCE = 1e-4  # about -80 dBFS: below any microphone's noise floor


@dataclass
class VadSettings:
    threshold: float = 0.5  # speech starts above this probability
    neg_threshold: float = 0.35  # and is over once it stays below this one
    min_speech_ms: int = 90  # shorter bursts (a click, a cough) do not start a phrase
    min_silence_ms: int = 450  # the pause that ends a phrase
    pre_roll_ms: int = 250  # audio kept from before the speech started
    tail_ms: int = 200  # silence kept after the last word
    max_phrase_s: float = 25.0  # Whisper reads 30 s at most; longer speech is cut at its quietest recent point


@dataclass
class SpeechPhrase:
    start_s: float
    end_s: float
    samples: np.ndarray
    final: bool

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class SileroVad:
    """Speech probability per 32 ms window, with the model's recurrent state carried across calls."""

    _shared_session: Any = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        with SileroVad._lock:  # one ONNX session for every stream: loading it costs ~0.1 s
            if SileroVad._shared_session is None:
                from faster_whisper.vad import get_vad_model

                SileroVad._shared_session = get_vad_model().session
        self._session = SileroVad._shared_session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """`windows` is (n, 512) float32; returns n probabilities.

        A window of digital silence is probability 0 and resets the state without running the model (a long
        silent file is fast). That is decided window by window, so the result does not depend on how the
        stream was cut into calls: 10 ms microphone blocks and 30 s file chunks give the same probabilities.
        """
        count = len(windows)
        probs = np.zeros(count, dtype=np.float32)
        if count == 0:
            return probs
        silent = np.max(np.abs(windows), axis=1) < DIGITAL_SILENCE
        start = 0
        while start < count:
            end = start + 1
            while end < count and silent[end] == silent[start]:
                end += 1
            if silent[start]:
                self.reset()
            else:
                probs[start:end] = self._run(windows[start:end])
            start = end
        return probs

    def _run(self, windows: np.ndarray) -> np.ndarray:
        contexts = np.empty((len(windows), CONTEXT), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = windows[:-1, -CONTEXT:]
        self._context = windows[-1, -CONTEXT:].copy()
        batch = np.concatenate([contexts, windows], axis=1)
        output, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(output, dtype=np.float32).reshape(-1)


class PhraseSegmenter:
    """Feed audio as it comes; finished phrases come back as soon as their pause is long enough."""

    def __init__(self, settings: VadSettings | None = None, vad: Any | None = None) -> None:
        self.settings = settings or VadSettings()
        self.vad = vad if vad is not None else SileroVad()
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet a whole window
        self._windows_seen = 0
        self._pre_roll: list[np.ndarray] = []
        self._phrase: list[np.ndarray] = []  # windows of the phrase in progress (pre-roll included)
        self._probs: list[float] = []
        self._phrase_start_window = 0
        self._candidate = 0
        self._silence = 0
        self.speaking = False
        self.last_speech_end_s = 0.0  # when the latest phrase's last word ended (stream time)

    @property
    def time_s(self) -> float:
        """Stream time analysed so far."""
        return self._windows_seen * WINDOW_S

    def _windows_for(self, ms: int) -> int:
        return max(1, round(ms / 1000 / WINDOW_S))

    def feed(self, samples: np.ndarray) -> list[SpeechPhrase]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        count = len(data) // WINDOW
        self._pending = data[count * WINDOW :].copy()
        if count == 0:
            return []
        windows = data[: count * WINDOW].reshape(count, WINDOW)
        probs = self.vad.probabilities(windows)
        finished: list[SpeechPhrase] = []
        for window, prob in zip(windows, probs):
            phrase = self._step(window, float(prob))
            if phrase is not None:
                finished.append(phrase)
        return finished

    def _step(self, window: np.ndarray, prob: float) -> SpeechPhrase | None:
        s = self.settings
        index = self._windows_seen
        self._windows_seen += 1
        if not self.speaking:
            self._pre_roll.append(window)
            keep = self._windows_for(s.pre_roll_ms) + self._candidate + 1
            del self._pre_roll[:-keep]
            self._candidate = self._candidate + 1 if prob >= s.threshold else 0
            if self._candidate >= self._windows_for(s.min_speech_ms):
                self.speaking = True
                self._phrase = list(self._pre_roll)
                self._probs = [0.0] * (len(self._phrase) - self._candidate) + [1.0] * self._candidate
                self._phrase_start_window = index + 1 - len(self._phrase)
                self._pre_roll = []
                self._candidate = 0
                self._silence = 0
            return None
        self._phrase.append(window)
        self._probs.append(prob)
        self._silence = self._silence + 1 if prob < s.neg_threshold else 0
        if self._silence >= self._windows_for(s.min_silence_ms):
            return self._close(len(self._phrase) - self._silence)
        if len(self._phrase) * WINDOW_S >= s.max_phrase_s:
            return self._cut_long_phrase()
        return None

    def _close(self, speech_windows: int) -> SpeechPhrase:
        """End the phrase after `speech_windows` windows (plus a short tail); the rest becomes pre-roll."""
        keep = min(len(self._phrase), speech_windows + self._windows_for(self.settings.tail_ms))
        phrase = self._make(self._phrase[:keep], final=True)
        self.last_speech_end_s = (self._phrase_start_window + speech_windows) * WINDOW_S
        rest = self._phrase[keep:]
        self.speaking = False
        self._pre_roll = rest[-self._windows_for(self.settings.pre_roll_ms) :]
        self._phrase, self._probs = [], []
        self._silence = 0
        return phrase

    def _cut_long_phrase(self) -> SpeechPhrase:
        """Cut at the quietest window of the last third, so a run-on sentence is split between words if it can be."""
        third = len(self._probs) * 2 // 3
        quietest = third + int(np.argmin(self._probs[third:]))
        phrase = self._make(self._phrase[: quietest + 1], final=True)
        self.last_speech_end_s = (self._phrase_start_window + quietest + 1) * WINDOW_S
        self._phrase_start_window += quietest + 1
        self._phrase = self._phrase[quietest + 1 :]
        self._probs = self._probs[quietest + 1 :]
        return phrase

    def _make(self, windows: list[np.ndarray], final: bool) -> SpeechPhrase:
        start = self._phrase_start_window * WINDOW_S
        samples = np.concatenate(windows) if windows else np.zeros(0, dtype=np.float32)
        return SpeechPhrase(start, start + len(samples) / SAMPLE_RATE, samples, final)

    @property
    def silence_s(self) -> float:
        """How long the phrase in progress has been quiet: its speech may just have ended."""
        return self._silence * WINDOW_S if self.speaking else 0.0

    def current(self) -> SpeechPhrase | None:
        """The phrase in progress, up to now (for a partial hypothesis), or None during silence."""
        if not self.speaking:
            return None
        return self._make(self._phrase, final=False)

    def flush(self) -> SpeechPhrase | None:
        """End of the stream: the phrase in progress, as final."""
        if not self.speaking:
            return None
        speech = len(self._phrase) - self._silence
        return self._close(speech)
