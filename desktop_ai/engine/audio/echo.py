"""Is what the microphone hears the app's own voice coming back from the loudspeaker?

Voice chat reads answers aloud while it listens. Comparing Whisper's words with the answer's fails exactly when it
matters: a name or a foreign word read by an English voice comes back as other words ("L'Étoile" heard as "a leg
oil"). The sound itself does not lie: the echo's loudness rises and falls with what was played, a little later,
whatever words Whisper makes of it, while a person speaking over it (or into its pauses) breaks that pattern.
So both sides keep a loudness envelope, one value per 20 ms, stamped with `time.perf_counter()` (the system's
monotonic clock, the same in every process of the app): the player for what reached the sound card, dictation for
each phrase it heard; their best correlation over a range of delays says echo or not.

This is echo *detection*, not cancellation: speech much quieter than the echo still counts as echo (headphones
avoid the question altogether).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRAME_S = 0.02
FLOOR_DB = -60.0  # quieter than this is silence on both sides (a noise floor, or digital zeros)
MAX_DELAY_S = 1.2  # the loudspeaker-to-microphone path, with both sides' buffering, is well under this
MIN_OVERLAP = 0.6  # this share of the heard frames must lie where something was played, or it is not echo
MIN_FRAMES = 10
ECHO_CORRELATION = 0.7  # measured (tests/test_echo.py): echo 0.9+, a voice over or between the echo 0.5 or less
# Speech over the echo (tests/test_echo.py measured the share of frames over EXCESS_DB: echo alone 0.1 at most, a
# voice as loud as the echo 0.28-0.46, half as loud 0.14-0.32):
REVERB_S = 0.08  # a room keeps a played sound audible a while: the echo expected now is the loudest of that span
EXCESS_DB = 6.0  # this much louder than the echo expected: somebody else is speaking
SPEAKING_SHARE = 0.2  # this share of a stretch's frames louder than the echo: speech over it, not echo
DRIFT_FRAMES = 5  # the two clocks' drift within a phrase, in frames either way


@dataclass
class SoundEnvelope:
    """Loudness in dB per FRAME_S from `start` (a time.perf_counter() moment)."""

    start: float
    db: list[float] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + len(self.db) * FRAME_S

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "db": [round(value, 1) for value in self.db]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoundEnvelope:
        return cls(float(data["start"]), [float(value) for value in data.get("db", [])])


def loudness_db(samples: np.ndarray, rate: int) -> list[float]:
    """dB per whole FRAME_S of `samples` (a trailing part frame is left out)."""
    size = max(1, int(round(rate * FRAME_S)))
    count = len(samples) // size
    if count == 0:
        return []
    frames = np.asarray(samples[:count * size], dtype=np.float32).reshape(count, size)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    return np.maximum(10.0 * np.log10(power + 1e-12), FLOOR_DB).tolist()


def envelope_of(samples: np.ndarray, rate: int, start: float) -> SoundEnvelope:
    return SoundEnvelope(start, loudness_db(samples, rate))


class PlayedSound:
    """The envelope of what a player sent to the sound card, filled from its audio thread, taken by whoever reports it."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._pending: np.ndarray = np.zeros(0, dtype=np.float32)
        self._pending_start: float | None = None
        self._ready: list[SoundEnvelope] = []

    def add(self, samples: np.ndarray, sounds_at: float | None = None, follows_on: bool = True) -> None:
        """Samples handed to the device now; `sounds_at` is when the first one leaves the loudspeaker, if known.
        Samples that follow on from the last ones (no silence padded between) continue their timeline: the sound
        card's own time stamps jitter by tens of milliseconds, its sample clock does not."""
        at = time.perf_counter() if sounds_at is None else sounds_at
        with self._lock:
            if self._pending_start is None or not follows_on:
                self._flush_locked()  # the first samples, or after a gap: a new run of frames
                self._pending_start = at
            self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
            size = int(round(self.rate * FRAME_S))
            whole = (len(self._pending) // size) * size
            if whole:
                self._append_locked(envelope_of(self._pending[:whole], self.rate, self._pending_start))
                self._pending_start += whole / self.rate
                self._pending = self._pending[whole:]

    def take(self) -> list[SoundEnvelope]:
        with self._lock:
            ready, self._ready = self._ready, []
        return ready

    def _append_locked(self, envelope: SoundEnvelope) -> None:
        last = self._ready[-1] if self._ready else None
        if last is not None and abs(last.end - envelope.start) < FRAME_S / 2:
            last.db.extend(envelope.db)
        else:
            self._ready.append(envelope)

    def _flush_locked(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = None


def _on_grid(heard: SoundEnvelope, played: list[SoundEnvelope], delay_s: float) -> np.ndarray:
    """The played loudness at each heard frame's time minus `delay_s` (NaN where nothing was played)."""
    values = np.full(len(heard.db), np.nan)
    times = heard.start + np.arange(len(heard.db)) * FRAME_S - delay_s
    for envelope in played:
        index = np.round((times - envelope.start) / FRAME_S).astype(int)
        inside = (index >= 0) & (index < len(envelope.db))
        if inside.any():
            values[inside] = np.asarray(envelope.db)[index[inside]]
    return values


def echo_correlation(heard: SoundEnvelope, played: list[SoundEnvelope], max_delay_s: float = MAX_DELAY_S) -> float:
    """The best correlation of the heard loudness with the played loudness over delays 0..max_delay_s (-1: no overlap)."""
    if len(heard.db) < MIN_FRAMES or not played:
        return -1.0
    heard_db = np.asarray(heard.db, dtype=np.float64)
    best = -1.0
    for step in range(int(round(max_delay_s / FRAME_S)) + 1):
        played_db = _on_grid(heard, played, step * FRAME_S)
        known = ~np.isnan(played_db)
        if known.sum() < max(MIN_FRAMES, MIN_OVERLAP * len(heard_db)):
            continue
        a, b = heard_db[known], played_db[known]
        if a.std() < 1e-6 or b.std() < 1e-6:
            continue
        best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def is_playback_echo(heard: SoundEnvelope, played: list[SoundEnvelope], threshold: float = ECHO_CORRELATION) -> bool:
    return echo_correlation(heard, played) >= threshold


def _delay_of(heard: SoundEnvelope, played: list[SoundEnvelope], max_delay_s: float) -> float | None:
    best, best_delay = -1.0, None
    heard_db = np.asarray(heard.db, dtype=np.float64)
    for step in range(int(round(max_delay_s / FRAME_S)) + 1):
        played_db = _on_grid(heard, played, step * FRAME_S)
        known = ~np.isnan(played_db)
        if known.sum() < MIN_FRAMES or heard_db[known].std() < 1e-6 or played_db[known].std() < 1e-6:
            continue
        score = float(np.corrcoef(heard_db[known], played_db[known])[0, 1])
        if score > best:
            best, best_delay = score, step * FRAME_S
    return best_delay


def speech_over_echo(heard: SoundEnvelope, played: list[SoundEnvelope], last_s: float = 1.0,
                     max_delay_s: float = MAX_DELAY_S) -> bool:
    """Is somebody speaking over the echo in the last `last_s` of what was heard? A phrase that began as the
    answer's echo and goes on with a question (voice activity cannot cut them apart: both are speech) is told by
    its frames being much louder than the echo the played sound predicts there, or loud where nothing was played.
    Both clocks jitter by tens of milliseconds over a phrase, so the stretch is judged at the delay near the
    phrase's own that explains it best: only what no alignment explains counts as another voice."""
    if len(heard.db) < MIN_FRAMES:
        return False
    delay = _delay_of(heard, played, max_delay_s)
    if delay is None:
        return True  # loud, and nothing was played under it
    shares = [_share_over_echo(heard, played, delay + step * FRAME_S, last_s)
              for step in range(-DRIFT_FRAMES, DRIFT_FRAMES + 1) if delay + step * FRAME_S >= 0]
    known = [share for share in shares if share is not None]
    return bool(known) and min(known) >= SPEAKING_SHARE


def _share_over_echo(heard: SoundEnvelope, played: list[SoundEnvelope], delay: float, last_s: float) -> float | None:
    """The share of the last `last_s` of frames louder than the echo predicted at this delay (None: not judged)."""
    heard_db = np.asarray(heard.db, dtype=np.float64)
    reverb = int(round(REVERB_S / FRAME_S))
    direct = _on_grid(heard, played, delay)
    expected = np.full_like(direct, np.nan)
    for lag in range(reverb + 1):  # the loudest played frame of the reverberation span before each frame
        shifted = np.concatenate([np.full(lag, np.nan), direct[:len(direct) - lag]])
        expected = np.fmax(expected, shifted)
    played_loud = ~np.isnan(expected) & (expected > FLOOR_DB + 20)
    if played_loud.sum() < MIN_FRAMES:
        return None
    gain = float(np.median(heard_db[played_loud] - expected[played_loud]))  # the room's loss, loudspeaker to microphone
    floor = float(np.percentile(heard_db, 10))
    predicted = np.maximum(np.where(np.isnan(expected), FLOOR_DB, expected + gain), floor)
    # What is played reaches this side a little late (a few reports a second): frames past the newest played one are
    # not known to be free of echo, and are left for the next look (or for is_playback_echo once the reading ended).
    times = heard.start + np.arange(len(heard_db)) * FRAME_S - delay
    known = times < max(envelope.end for envelope in played)
    excess = (heard_db - predicted)[known]
    tail = max(MIN_FRAMES, int(round(last_s / FRAME_S)))
    if len(excess) < MIN_FRAMES:
        return None
    return float(np.mean(excess[-tail:] > EXCESS_DB))
