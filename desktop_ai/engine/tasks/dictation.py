"""Live dictation: microphone → voice activity → recognizer, with partial text while the speaker talks.

The microphone is opened before the model is loaded, so the first words are captured while Whisper loads
(they wait in the stream's ring buffer). Partial hypotheses of the phrase in progress are refreshed at least
every second; when the pause comes, the phrase gets its final text (reusing the last partial when it already
heard the whole phrase, which is most of the end-of-phrase latency saved). The captured audio is written to a
WAV file as it arrives, so even a phrase that was never recognized is not lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop_ai.engine.audio.echo import envelope_of
from desktop_ai.engine.audio.transcript import Phrase
from desktop_ai.engine.tasks.transcription import Recognizer, recognize_phrase
from desktop_ai.engine.audio.voice_activity import SAMPLE_RATE, PhraseSegmenter, SpeechPhrase, VadSettings

logger = logging.getLogger(__name__)

PARTIAL_INTERVAL_S = 0.9  # refresh the partial line at least once a second
# Once a phrase has been quiet this long its speech has probably ended: recognise it now, while the segmenter
# waits out the rest of the pause, and the final text is ready the moment the pause is confirmed.
SPECULATIVE_FINAL_S = 0.2
LEVEL_INTERVAL_S = 0.1
# A draft of the first few hundred milliseconds is mostly invented ("That's it."): the first partial waits for this.
FIRST_PARTIAL_S = 0.8
CATCH_UP_BACKLOG_S = 1.5  # behind by more than this: skip partials until the final text has caught up

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class DictationResult:
    segments: list[Phrase]
    duration_s: float
    device: str
    engine: str
    model_id: str
    recording: str | None
    error: str | None = None
    dropped_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)  # end of each phrase's speech → its final text
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _CaptureClock:
    """Maps stream time to the wall-clock moment it was captured, from the times blocks were read."""

    def __init__(self) -> None:
        self._marks: deque[tuple[float, float]] = deque(maxlen=400)

    def mark(self, stream_s: float) -> None:
        self._marks.append((stream_s, time.perf_counter()))

    def captured_at(self, stream_s: float) -> float | None:
        for end_s, wall in self._marks:
            if end_s >= stream_s:
                return wall - (end_s - stream_s)
        return None


class DictationSession:
    def __init__(
        self,
        stream: Any,
        recognizer_factory: Callable[[], Recognizer],
        vad: VadSettings | None = None,
        recording_path: str | Path | None = None,
        partial_interval_s: float = PARTIAL_INTERVAL_S,
        sound_envelopes: bool = False,
    ) -> None:
        """`stream` is a started-or-not MicrophoneStream (or anything with its read/level/stop surface).
        With `sound_envelopes`, partial and final events carry the phrase's loudness envelope ("sound"), which voice
        chat compares with what it played to tell its own echo from a new question (engine/audio/echo.py)."""
        self.stream = stream
        self.recognizer_factory = recognizer_factory
        self.segmenter = PhraseSegmenter(vad)
        self.recording_path = Path(recording_path) if recording_path else None
        self.partial_interval_s = partial_interval_s
        self.sound_envelopes = sound_envelopes
        self.partials = 0
        self.finals_from_partial = 0

    def run(self, on_event: EventCallback, cancel: threading.Event, max_seconds: float | None = None) -> DictationResult:
        stream = self.stream
        if not getattr(stream, "active", False):
            stream.start()
        on_event({"type": "status", "message": f"Listening on {_device_name(stream)}"})
        recorder = self._open_recorder()
        recognizer: Recognizer | None = None
        segments: list[Phrase] = []
        latencies: list[float] = []
        clock = _CaptureClock()
        received_s = 0.0
        last_level = last_partial = 0.0
        partial_phrase_start: float | None = None
        partial_covered_s = 0.0
        partial_segments: list[Phrase] = []
        announced_start: float | None = None  # the phrase whose start was announced ("speech" event)
        error: str | None = None

        def sound(phrase: SpeechPhrase) -> dict[str, Any]:
            if not self.sound_envelopes:
                return {}
            start = clock.captured_at(phrase.start_s)
            return {} if start is None else {"sound": envelope_of(phrase.samples, SAMPLE_RATE, start).to_json()}

        def finish(phrase: SpeechPhrase) -> None:
            nonlocal partial_phrase_start
            reuse = partial_phrase_start == phrase.start_s and partial_covered_s >= self.segmenter.last_speech_end_s + 0.1
            if reuse:
                found = partial_segments
                self.finals_from_partial += 1
            else:
                found = recognize_phrase(recognizer, phrase)
            partial_phrase_start = None
            captured = clock.captured_at(self.segmenter.last_speech_end_s)
            latency = time.perf_counter() - captured if captured is not None else None
            if latency is not None:
                latencies.append(latency)
            for segment in found:
                segments.append(segment)
                on_event({"type": "final", "segment": asdict(segment), "latency_s": latency, "start": phrase.start_s,
                          **sound(phrase)})
            if not found:
                on_event({"type": "final", "segment": None, "latency_s": latency})  # clears the partial line
            if recorder is not None:
                recorder.flush()

        try:
            while not cancel.is_set():
                audio = stream.read(timeout=0.05)
                if len(audio):
                    received_s += len(audio) / SAMPLE_RATE
                    clock.mark(received_s)
                    if recorder is not None:
                        recorder.write(audio)
                if recognizer is None:  # load after the microphone is open: speech meanwhile waits in the buffer
                    on_event({"type": "status", "message": "Loading the speech model (already recording)"})
                    recognizer = self.recognizer_factory()
                    on_event({"type": "status", "message": f"Listening on {_device_name(stream)}", "notices": list(recognizer.notices)})
                for phrase in self.segmenter.feed(audio):
                    finish(phrase)
                now = time.perf_counter()
                backlog = received_s - self.segmenter.time_s + _unread(stream)
                if now - last_level >= LEVEL_INTERVAL_S:
                    level = stream.level()
                    on_event({"type": "level", "rms_db": level.rms_db, "peak": level.peak, "backlog_s": round(max(backlog, 0.0), 2),
                              "seconds": round(received_s, 2), "dropped_s": round(getattr(stream, "dropped_seconds", 0.0), 2)})
                    last_level = now
                current = self.segmenter.current()
                if current is not None and current.start_s != announced_start:
                    announced_start = current.start_s
                    on_event({"type": "speech", "start": current.start_s})  # where dictate-anywhere reads the focus
                quiet = self.segmenter.silence_s
                covered = (current is not None and partial_phrase_start == current.start_s
                           and partial_covered_s >= current.end_s - quiet + SPECULATIVE_FINAL_S - 1e-6)
                speculative = current is not None and quiet >= SPECULATIVE_FINAL_S and not covered
                periodic = (current is not None and quiet < SPECULATIVE_FINAL_S / 2 and current.duration_s >= FIRST_PARTIAL_S
                            and now - last_partial >= self.partial_interval_s)
                if (speculative or periodic) and backlog < CATCH_UP_BACKLOG_S:
                    partial_segments = recognize_phrase(recognizer, current, draft=not speculative)
                    # Only a full-quality decode may stand in for the final text.
                    partial_phrase_start = current.start_s if speculative else None
                    partial_covered_s = current.end_s
                    self.partials += 1
                    last_partial = now  # counted from the start of a decode, so the line refreshes every interval
                    on_event({"type": "partial", "text": " ".join(s.text for s in partial_segments), "start": current.start_s,
                              **sound(current)})
                elif current is None:
                    last_partial = 0.0  # a new phrase gets its first partial as soon as it is long enough
                if getattr(stream, "error", None):
                    error = stream.error
                    break
                if not len(audio) and not getattr(stream, "active", True):
                    break  # the stream ended (a replayed file, or stopped from elsewhere)
                if max_seconds is not None and received_s >= max_seconds - 1e-6:
                    break
        finally:
            stream.stop()
            try:
                tail = stream.read(timeout=0)
                if len(tail):
                    received_s += len(tail) / SAMPLE_RATE
                    if recorder is not None:
                        recorder.write(tail)
                    if recognizer is not None:
                        for phrase in self.segmenter.feed(tail):
                            finish(phrase)
                last = self.segmenter.flush()
                if last is not None and recognizer is not None:
                    finish(last)
            finally:
                if recorder is not None:
                    recorder.close()
        dropped = float(getattr(stream, "dropped_seconds", 0.0))
        notices = list(recognizer.notices) if recognizer is not None else []
        if dropped > 0:
            notices.append(f"{dropped:.1f} s of audio could not be processed in time and was dropped.")
        return DictationResult(
            segments=segments,
            duration_s=received_s,
            device=_device_name(stream),
            engine=recognizer.engine if recognizer is not None else "",
            model_id=recognizer.model_id if recognizer is not None else "",
            recording=str(self.recording_path) if self.recording_path else None,
            error=error,
            dropped_s=dropped,
            latencies_s=latencies,
            notices=notices,
        )

    def _open_recorder(self) -> Any:
        if self.recording_path is None:
            return None
        import soundfile as sf

        self.recording_path.parent.mkdir(parents=True, exist_ok=True)
        return sf.SoundFile(self.recording_path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16")


def _device_name(stream: Any) -> str:
    device = getattr(stream, "device", None)
    return getattr(device, "name", None) or "the microphone"


def _unread(stream: Any) -> float:
    return float(getattr(stream, "pending_seconds", 0.0))
