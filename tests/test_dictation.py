"""Live dictation: the session's logic on replayed audio, and the real microphone path through PulseAudio."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from desktop_ai.bench.transcribe import _RealTimeReplay, word_errors
from desktop_ai.engine.tasks.dictation import DictationSession
from desktop_ai.engine.audio.microphone import MicrophoneStream
from desktop_ai.engine.tasks.transcription import live_options, make_recognizer

FOX = "the quick brown fox jumps over the lazy dog"
SHELLS = "please call stella and ask her to bring these things with her from the store"


def _speech(tmp_path: Path, text: str) -> np.ndarray:
    wav = tmp_path / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "-v", "en-us", "-s", "150", "-g", "5", text], check=True)
    samples, rate = sf.read(wav, dtype="float32")
    return soxr.resample(samples, rate, 16000).astype(np.float32)


def _recording(tmp_path: Path, *texts: str, pause_s: float = 1.2) -> np.ndarray:
    rng = np.random.default_rng(1)
    pause = np.zeros(int(pause_s * 16000), dtype=np.float32)
    pieces = [pause]
    for text in texts:
        pieces += [_speech(tmp_path, text), pause]
    audio = np.concatenate(pieces)
    return audio + rng.normal(0, 3e-4, len(audio)).astype(np.float32)


class FastStream(_RealTimeReplay):
    """Delivers the audio as fast as it is read (a microphone that had a backlog); can 'unplug' at a sample."""

    def __init__(self, samples: np.ndarray, unplug_at: int | None = None) -> None:
        super().__init__(samples)
        self.unplug_at = unplug_at

    def read(self, timeout: float | None = 0.05) -> np.ndarray:
        end = min(self.position + self.block * 4, len(self.samples))
        if self.unplug_at is not None and end >= self.unplug_at:
            end = self.unplug_at
            self.error = "The microphone stopped delivering sound (unplugged?)."
        chunk = self.samples[self.position : end]
        self.position = end
        if end >= len(self.samples):
            self.active = False
        return chunk


@pytest.fixture(scope="module")
def whisper_live():
    from desktop_ai.engine.models.store import ModelStore

    store = ModelStore(Path("/nonexistent-converted"))
    return make_recognizer(store, "whisper", options=live_options())


def _texts(result) -> list[str]:
    return [segment.text for segment in result.segments]


def test_phrases_are_cut_at_pauses_and_recorded(tmp_path, whisper_live):
    audio = _recording(tmp_path, FOX, SHELLS)
    events: list[dict] = []
    recording = tmp_path / "rec.wav"
    session = DictationSession(FastStream(audio), lambda: whisper_live, recording_path=recording)
    result = session.run(events.append, threading.Event(), max_seconds=len(audio) / 16000)
    texts = _texts(result)
    assert len(texts) == 2, texts
    assert word_errors(texts[0], FOX) <= 2 and word_errors(texts[1], SHELLS) <= 2, texts
    assert result.segments[0].end <= result.segments[1].start
    finals = [e for e in events if e["type"] == "final"]
    assert [f["segment"]["text"] for f in finals] == texts
    info = sf.info(recording)
    assert info.samplerate == 16000 and abs(info.frames - len(audio)) <= 1600, "the whole recording is kept on disk"
    assert any(e["type"] == "level" for e in events)


def test_partials_refresh_at_least_every_second_while_speaking(tmp_path, whisper_live):
    audio = _recording(tmp_path, SHELLS, pause_s=1.0)  # a 5.9 s sentence, replayed in real time
    events: list[tuple[float, dict]] = []
    replay = _RealTimeReplay(audio)
    session = DictationSession(replay, lambda: whisper_live)
    session.run(lambda e: events.append((time.perf_counter() - replay.started, e)), threading.Event(), max_seconds=len(audio) / 16000)
    partials = [(t, e) for t, e in events if e["type"] == "partial"]
    final_at = next(t for t, e in events if e["type"] == "final" and e["segment"])
    assert len(partials) >= 3, "a 6 s phrase gets several partial hypotheses"
    assert partials[-1][1]["text"], "the partial line has words"
    speech_starts = 1.0
    times = [speech_starts + 1.0] + [t for t, _ in partials] + [final_at]  # the first partial is due ~1 s into the phrase
    gaps = np.diff(times)
    # Decodes start every 0.9 s. The promise is the typical gap, not one wall-clock worst case: a busy 2-core machine
    # can hold one decode up, so one gap of the phrase may pass 1.6 s (the worst is reported), not two.
    slow = gaps[gaps > 1.6]
    report = f"partials came {gaps.round(2).tolist()} s apart (median {np.median(gaps):.2f} s, worst {gaps.max():.2f} s)"
    assert np.median(gaps) <= 1.1, report
    assert len(slow) <= 1, report


class _DriverThread:
    """Stands in for sounddevice.InputStream: a thread calls the real MicrophoneStream's callback with 50 ms
    blocks at 48 kHz, in real time, as PortAudio does, whatever the reader is doing; silence after the audio."""

    def __init__(self, samples_48k: np.ndarray, **options) -> None:
        self.samples = samples_48k
        self.callback, self.finished_callback = options["callback"], options["finished_callback"]
        self.blocksize = options["blocksize"]
        self.delivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            block = self.samples[self.delivered:self.delivered + self.blocksize]
            block = np.pad(block, (0, self.blocksize - len(block)))
            self.callback(block[:, None], len(block), None, None)
            self.delivered += len(block)
            self._stop.wait(max(0.0, started + self.delivered / 48000 - time.perf_counter()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.finished_callback()

    abort = stop

    def close(self) -> None:
        pass


class _SpyRecognizer:
    """The real Whisper recognizer, noting the audio of every phrase it is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.given: list[tuple[float, float]] = []  # (start, end) in stream seconds

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def recognize(self, samples, offset_s=0.0, draft=False):
        self.given.append((offset_s, offset_s + len(samples) / 16000))
        return self.inner.recognize(samples, offset_s, draft)


def _slow_load_session(tmp_path: Path, whisper_live, buffer_seconds: float, load_s: float):
    """FOX spoken from the first 0.3 s, the model taking `load_s` to load: the real ring buffer holds the speech."""
    from desktop_ai.engine.audio.microphone import InputDevice

    audio = _recording(tmp_path, FOX, pause_s=0.3)
    at_48k = soxr.resample(audio, 16000, 48000).astype(np.float32)
    drivers: list[_DriverThread] = []

    def factory(**options):
        drivers.append(_DriverThread(at_48k, **options))
        return drivers[-1]

    device = InputDevice(index=0, name="Driver thread", host_api="ALSA", channels=1, default_samplerate=48000, is_default=True)
    stream = MicrophoneStream(device, buffer_seconds=buffer_seconds, stream_factory=factory)
    spy = _SpyRecognizer(whisper_live)
    during_load: dict[str, float] = {}

    def slow_factory():
        during_load["captured_at_start"] = stream.captured_seconds
        time.sleep(load_s)
        during_load["pending_at_end"] = stream.pending_seconds
        return spy

    recording = tmp_path / "slow-load.wav"
    session = DictationSession(stream, slow_factory, recording_path=recording)
    result = session.run(lambda e: None, threading.Event(), max_seconds=len(audio) / 16000 + 0.5)
    return result, spy, during_load, stream, drivers[0], audio, recording


def test_the_microphone_opens_before_the_model_loads_and_nothing_is_lost(tmp_path, whisper_live):
    """Issue 17 (fakes): the real MicrophoneStream ring buffer, fed by a PortAudio-like thread in real time, holds
    every sample captured during a 1.5 s model load; the recognizer gets the phrase from its first word and the
    recording has every sample the device delivered (the old fake had an unlimited backlog, so nothing could be lost)."""
    result, spy, during_load, stream, driver, audio, recording = _slow_load_session(tmp_path, whisper_live, 60.0, 1.5)
    assert during_load["captured_at_start"] < 0.3, "the load started as soon as the microphone opened"
    assert during_load["pending_at_end"] >= 1.3, "the speech during the load waited in the stream's ring buffer"
    assert result.dropped_s == 0.0 and stream.dropped_seconds == 0.0
    assert not any("dropped" in notice for notice in result.notices)
    recorded, rate = sf.read(recording, dtype="float32")
    assert rate == 16000 and abs(len(recorded) - driver.delivered / 3) <= 16, "every delivered sample was read"
    n = min(len(recorded), len(audio)) - 800
    assert np.corrcoef(recorded[400:n], audio[400:n])[0, 1] > 0.99, "the samples read are the ones spoken, in order"
    speech_at = 0.3
    first = min(start for start, _ in spy.given)
    assert first <= speech_at + 0.05, f"the recognizer got the phrase from its first word: {spy.given}"
    assert word_errors(" ".join(_texts(result)), FOX) <= 2, _texts(result)


def test_audio_dropped_during_a_model_load_too_long_for_the_buffer_is_reported(tmp_path, whisper_live, caplog):
    """Issue 17 (fakes): with a 0.5 s ring buffer and a 1.5 s load, the real buffer drops the oldest audio, and
    the result, its notices and the log say how much (never a silent loss)."""
    result, spy, during_load, stream, driver, audio, recording = _slow_load_session(tmp_path, whisper_live, 0.5, 1.5)
    assert during_load["pending_at_end"] <= 0.5 + 0.05
    assert 0.8 <= result.dropped_s <= 1.3, result.dropped_s
    assert any("dropped" in notice and f"{result.dropped_s:.1f} s" in notice for notice in result.notices), result.notices
    assert "overflowed" in caplog.text
    recorded = sf.info(recording).frames
    assert abs(recorded + result.dropped_s * 16000 - driver.delivered / 3) <= 32, "what was not dropped was all read"


def test_unplugged_mid_phrase_keeps_the_phrase_and_says_so(tmp_path, whisper_live):
    audio = _recording(tmp_path, FOX, SHELLS)
    first_end = int((1.2 + len(_speech(tmp_path, FOX)) / 16000 + 1.2 + 3.0) * 16000)  # 3 s into the second sentence
    recording = tmp_path / "rec.wav"
    session = DictationSession(FastStream(audio, unplug_at=first_end), lambda: whisper_live, recording_path=recording)
    result = session.run(lambda e: None, threading.Event())
    assert result.error and "unplugged" in result.error
    texts = _texts(result)
    assert len(texts) == 2 and word_errors(texts[0], FOX) <= 2
    assert "please call" in texts[1].lower(), "the phrase cut by the unplug is recognised, not dropped"
    assert abs(sf.info(recording).frames - first_end) <= 1600


def test_stop_finishes_the_phrase_in_progress(tmp_path, whisper_live):
    audio = _recording(tmp_path, FOX, pause_s=0.5)
    cancel = threading.Event()
    stream = FastStream(audio[: int(4.0 * 16000)])  # still speaking when Stop comes

    def on_event(event: dict) -> None:
        if stream.position >= len(stream.samples):
            cancel.set()

    result = DictationSession(stream, lambda: whisper_live).run(on_event, cancel)
    assert len(result.segments) == 1 and "quick brown" in result.segments[0].text.lower()


def test_silence_and_noise_make_no_text(tmp_path, whisper_live):
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.003, 16000 * 6).astype(np.float32)
    result = DictationSession(FastStream(noise), lambda: whisper_live).run(lambda e: None, threading.Event(), max_seconds=6)
    assert result.segments == []


def test_real_microphone_through_pulseaudio(virtual_microphone, tmp_path, whisper_live):
    """espeak-ng plays into a null sink; its monitor is the default input; sounddevice records it.
    Issue 17 (retries): spoken once, no retry. It was retried because tiny.en mishears the espeak fox sentence
    for some alignments of the audio (see virtual_microphone.LIVE_SENTENCE); with LIVE_SENTENCE this path came back
    with every word in 50 of 50 runs (measured on this path by a script, 2 shared cores; the fox sentence: "round"
    for "brown" in 13 of 20)."""
    from virtual_microphone import LIVE_SENTENCE

    wav = virtual_microphone.speak(LIVE_SENTENCE)
    stream = MicrophoneStream(None)
    events: list[dict] = []
    cancel = threading.Event()
    playing: list = []

    def on_event(event: dict) -> None:
        events.append(event)
        if event["type"] == "status" and "Listening" in event["message"] and not playing:
            playing.append(virtual_microphone.play(wav, wait=False))
        if event["type"] == "final" and event["segment"]:
            cancel.set()

    recording = tmp_path / "mic.wav"
    session = DictationSession(stream, lambda: whisper_live, recording_path=recording)
    timer = threading.Timer(20.0, cancel.set)  # a safety net, not a synchronisation
    timer.start()
    try:
        result = session.run(on_event, cancel)
    finally:
        timer.cancel()
    assert result.error is None
    text = " ".join(_texts(result))
    assert word_errors(text, LIVE_SENTENCE) <= 1, text
    assert any(e["type"] == "partial" and e["text"] for e in events), "partial text appeared while speaking"
    levels = [e["rms_db"] for e in events if e["type"] == "level"]
    assert max(levels) > -40 > min(levels), "the level meter moved with the speech"
    assert sf.info(recording).frames > 16000 * 2
