"""Microphone capture: a fake PortAudio stream for the edge cases, a PulseAudio virtual microphone for the real path."""

from __future__ import annotations

import importlib.abc
import logging
import math
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

# Imported (so PortAudio is initialised) before any virtual microphone starts, as in the app: the engine
# must rescan to see devices that appear later.
import sounddevice  # noqa: F401

from desktop_ai.engine.audio import microphone
from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.audio.microphone import (
    InputDevice,
    Level,
    MicrophoneError,
    MicrophoneStream,
    list_input_devices,
)
from virtual_microphone import start_virtual_microphone


def _says_the_microphone_was_lost(error: str | None) -> bool:
    """What the README promises for a microphone unplugged mid-sentence: a message, and what was said is kept
    (issue 17: the words the user reads, not the module's own constant)."""
    return bool(error) and "stopped delivering sound" in error and "kept" in error


# ---------------------------------------------------------------- a fake PortAudio stream


class FakeFlags:
    def __init__(self, input_overflow: bool = False) -> None:
        self.input_overflow = input_overflow


class FakeStream:
    """Stands in for sounddevice.InputStream: the test pushes blocks and pulls the plug."""

    def __init__(self, *, device: int, samplerate: int, channels: int, dtype: str, blocksize: int,
                 callback: Any, finished_callback: Any) -> None:
        self.device, self.samplerate, self.channels, self.blocksize = device, samplerate, channels, blocksize
        self.callback, self.finished_callback = callback, finished_callback
        self.started = self.closed = self.aborted = self.finished = False

    def start(self) -> None:
        self.started = True

    def _end(self) -> None:
        if not self.finished:
            self.finished = True
            self.finished_callback()

    def stop(self) -> None:
        self._end()

    def abort(self) -> None:
        self.aborted = True
        self._end()

    def close(self) -> None:
        self.closed = True

    def push(self, samples: np.ndarray, overflow: bool = False) -> None:
        block = np.asarray(samples, dtype=np.float32)
        if block.ndim == 1:
            block = np.repeat(block[:, None], self.channels, axis=1)
        self.callback(block, len(block), None, FakeFlags(overflow))

    def unplug(self) -> None:
        """What PortAudio does when the device goes away: the stream finishes by itself."""
        self._end()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_device(rate: float = 48000, channels: int = 1, name: str = "Fake USB Mic") -> InputDevice:
    return InputDevice(index=3, name=name, host_api="ALSA", channels=channels, default_samplerate=rate, is_default=True)


def open_fake(rate: float = 48000, channels: int = 1, **kwargs: Any) -> tuple[MicrophoneStream, FakeStream]:
    made: list[FakeStream] = []

    def factory(**options: Any) -> FakeStream:
        made.append(FakeStream(**options))
        return made[-1]

    stream = MicrophoneStream(fake_device(rate, channels), stream_factory=factory, **kwargs)
    stream.start()
    return stream, made[-1]


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    n = int(round(seconds * rate))
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def push_in_blocks(fake: FakeStream, samples: np.ndarray, block: int) -> None:
    for i in range(0, len(samples), block):
        fake.push(samples[i:i + block])


# ---------------------------------------------------------------- unit tests (fake stream)


def test_opens_the_device_at_its_own_rate_in_blocks() -> None:
    stream, fake = open_fake(rate=44100, block_seconds=0.05)
    assert fake.started and fake.device == 3 and fake.samplerate == 44100 and fake.channels == 1
    assert fake.blocksize == 2205
    assert stream.active and stream.device == fake_device(44100) and stream.samplerate == 44100
    stream.stop()
    assert fake.closed and not stream.active and stream.error is None


def test_ring_buffer_is_bounded_and_drops_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    rate, block = 16000, 800  # no resampling, so samples can be traced one to one
    stream, fake = open_fake(rate=rate, buffer_seconds=1.0)
    for index in range(30):  # 1.5 s into a 1 s buffer, nobody reading
        fake.push(np.full(block, index, dtype=np.float32))
    assert stream.captured_seconds == pytest.approx(1.5)
    assert stream.pending_seconds == pytest.approx(1.0)
    assert stream.dropped_seconds == pytest.approx(0.5)
    with caplog.at_level(logging.WARNING, logger="desktop_ai.engine.audio.microphone"):
        audio = stream.read(timeout=0)
    assert len(audio) == rate
    assert audio[0] == 10 and audio[-1] == 29  # the oldest audio went, the newest is kept
    assert any("dropped" in record.getMessage() for record in caplog.records)
    # A partial block is trimmed too, and once the reader keeps up nothing more is lost.
    fake.push(np.zeros(block * 21, dtype=np.float32))
    assert stream.dropped_seconds == pytest.approx(0.55)
    assert len(stream.read(timeout=0)) == rate
    fake.push(np.zeros(block, dtype=np.float32))
    assert len(stream.read(timeout=0)) == block and stream.dropped_seconds == pytest.approx(0.55)
    stream.stop()


def test_resamples_48k_to_16k_as_one_stream_without_clicks() -> None:
    stream, fake = open_fake(rate=48000)
    source = tone(1000, 1.0, 48000)
    chunks = []
    for i in range(0, len(source), 2400):  # read between blocks, as dictation does
        fake.push(source[i:i + 2400])
        if i % 7200 == 0:
            chunks.append(stream.read(timeout=0))
    stream.stop()
    chunks.append(stream.read(timeout=0))  # stop() flushed the resampler's tail
    audio = np.concatenate(chunks)
    assert audio.dtype == np.float32
    assert abs(len(audio) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert np.fft.rfftfreq(len(audio), 1 / 16000)[np.argmax(spectrum)] == pytest.approx(1000, abs=2)
    ideal = tone(1000, len(audio) / 16000, 16000)  # the same sine, phase and all: no gaps, no clicks
    assert np.max(np.abs(audio[100:-100] - ideal[100:-100])) < 1e-3
    assert len(stream.read(timeout=0)) == 0


def test_level_of_a_known_sine_in_dbfs() -> None:
    stream, fake = open_fake(rate=48000)
    assert stream.level() == Level(microphone.SILENCE_DB, 0.0)
    push_in_blocks(fake, tone(1000, 0.3, 48000, amplitude=0.5), 2400)
    level = stream.level()
    assert level.rms_db == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)  # -9.03 dBFS
    assert level.peak == pytest.approx(0.5, abs=0.001)
    push_in_blocks(fake, np.zeros(4800, dtype=np.float32), 2400)  # only the last ~100 ms count
    assert stream.level() == Level(microphone.SILENCE_DB, 0.0)
    stream.stop()


def test_multichannel_device_falls_back_to_the_mean_of_its_channels() -> None:
    made: list[FakeStream] = []

    def stereo_only(**options: Any) -> FakeStream:
        if options["channels"] != 2:
            raise ValueError("Invalid number of channels [PaErrorCode -9998]")
        made.append(FakeStream(**options))
        return made[-1]

    stream = MicrophoneStream(fake_device(16000, channels=4), stream_factory=stereo_only).start()
    left = tone(440, 0.1, 16000, amplitude=0.4)
    made[0].callback(np.stack([left, np.zeros_like(left)], axis=1), len(left), None, FakeFlags())
    audio = stream.read(timeout=0)
    np.testing.assert_allclose(audio, left / 2, atol=1e-6)
    stream.stop()


def test_unplugged_mid_recording_keeps_what_was_captured(caplog: pytest.LogCaptureFixture) -> None:
    stream, fake = open_fake(rate=48000)
    push_in_blocks(fake, tone(300, 0.5, 48000), 2400)
    fake.push(np.zeros(2400, dtype=np.float32), overflow=True)
    with caplog.at_level(logging.WARNING, logger="desktop_ai.engine.audio.microphone"):
        fake.unplug()
    assert not stream.active
    assert _says_the_microphone_was_lost(stream.error)
    assert "what was captured so far is kept" in stream.error
    assert any("lost" in record.getMessage() for record in caplog.records)
    assert stream.input_overflows == 1
    fake.push(np.ones(2400, dtype=np.float32))  # a late block after the end is ignored
    started = time.monotonic()
    audio = stream.read(timeout=2.0)
    assert time.monotonic() - started < 0.5  # nothing more can come: no waiting
    assert abs(len(audio) - 8800) <= 1 and stream.captured_seconds == pytest.approx(0.55)
    assert fake.closed  # released from the reader's thread
    assert len(stream.read(timeout=1.0)) == 0
    stream.stop()  # still fine, and idempotent
    stream.stop()
    assert _says_the_microphone_was_lost(stream.error)


def test_stall_watchdog_treats_silence_from_the_driver_as_a_lost_device() -> None:
    clock = FakeClock()
    stream, fake = open_fake(rate=16000, clock=clock, stall_seconds=2.0)
    fake.push(np.full(1600, 0.25, dtype=np.float32))
    clock.now += 1.9
    assert stream.active and stream.error is None
    clock.now += 0.2  # 2.1 s without a callback
    assert not stream.active and _says_the_microphone_was_lost(stream.error)
    audio = stream.read(timeout=0)
    assert len(audio) == 1600 and np.all(audio == 0.25)
    assert fake.aborted and fake.closed


def test_read_with_no_timeout_returns_when_the_device_stalls() -> None:
    stream, fake = open_fake(rate=16000, stall_seconds=0.2)
    fake.push(np.zeros(160, dtype=np.float32))
    assert len(stream.read(timeout=0)) == 160
    started = time.monotonic()
    assert len(stream.read(timeout=None)) == 0  # would hang forever without the watchdog
    assert 0.15 < time.monotonic() - started < 1.5
    assert _says_the_microphone_was_lost(stream.error)


def test_read_waits_up_to_the_timeout_and_wakes_on_data() -> None:
    stream, fake = open_fake(rate=16000)
    started = time.monotonic()
    assert len(stream.read(timeout=0.2)) == 0
    assert 0.15 < time.monotonic() - started < 1.0
    timer = threading.Timer(0.05, fake.push, args=(np.zeros(800, dtype=np.float32),))
    timer.start()
    started = time.monotonic()
    assert len(stream.read(timeout=5.0)) == 800
    assert time.monotonic() - started < 1.0
    timer.join()
    stream.stop()


def test_context_manager_starts_and_stops() -> None:
    made: list[FakeStream] = []

    def factory(**options: Any) -> FakeStream:
        made.append(FakeStream(**options))
        return made[-1]

    with MicrophoneStream(fake_device(16000), stream_factory=factory) as stream:
        assert stream.active and made[0].started
        made[0].push(np.zeros(800, dtype=np.float32))
    assert not stream.active and made[0].closed
    assert len(stream.read(timeout=0)) == 800
    stream.start()  # a stream runs once
    assert len(made) == 1


@pytest.mark.parametrize("fail_on", ["open", "start"])
def test_busy_device_raises_a_message_naming_it(fail_on: str) -> None:
    class Busy(FakeStream):
        def start(self) -> None:
            raise RuntimeError("Error starting stream: Device unavailable [PaErrorCode -9985]")

    def factory(**options: Any) -> FakeStream:
        if fail_on == "open":
            raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        return Busy(**options)

    stream = MicrophoneStream(fake_device(name="Blue Yeti"), stream_factory=factory)
    with pytest.raises(MicrophoneError) as raised:
        stream.start()
    message = str(raised.value)
    assert "Blue Yeti" in message and "in use by another program" in message and "Device unavailable" in message
    assert isinstance(raised.value, EngineError)
    assert not stream.active
    assert microphone._open_streams == 0


# ---------------------------------------------------------------- device lists (fake sounddevice module)


def fake_sounddevice(devices: list[dict[str, Any]], default_input: int) -> types.ModuleType:
    module = types.ModuleType("sounddevice")
    module.default = types.SimpleNamespace(device=[-1, -1])
    module.rescans = 0

    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        if kind == "input":
            if default_input < 0:
                raise RuntimeError("Error querying device -1")
            return devices[default_input]
        return devices

    def _terminate() -> None:
        module.rescans += 1

    module.query_devices = query_devices
    module.query_hostapis = lambda index=None: [{"name": "ALSA"}, {"name": "JACK Audio Connection Kit"}]
    module._terminate = _terminate
    module._initialize = lambda: None
    module.InputStream = FakeStream
    return module


def device_info(index: int, name: str, inputs: int, outputs: int = 0, rate: float = 44100.0, hostapi: int = 0) -> dict:
    return {"index": index, "name": name, "hostapi": hostapi, "max_input_channels": inputs,
            "max_output_channels": outputs, "default_samplerate": rate}


def test_list_input_devices_marks_the_default_and_skips_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = fake_sounddevice([
        device_info(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2, 48000.0),
        device_info(1, "HDMI 0", 0, 8),
        device_info(2, "pulse", 32, 32),
        device_info(3, "default", 32, 32),
    ], default_input=3)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    devices = list_input_devices()
    assert [d.name for d in devices] == ["HDA Intel PCH: ALC257 Analog (hw:0,0)", "pulse", "default"]
    assert [d.is_default for d in devices] == [False, False, True]
    assert devices[0] == InputDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 48000.0, False)
    assert sd.rescans == 1  # PortAudio re-enumerated: a microphone plugged in after start-up appears

    opened = MicrophoneStream(None).start()  # default input
    assert opened.device.name == "default" and opened.samplerate == 44100
    assert list_input_devices() and sd.rescans == 2  # no rescan while a stream is open
    by_name = MicrophoneStream("ALC257").start()
    assert by_name.device.index == 0
    opened.stop()
    by_name.stop()
    assert microphone._open_streams == 0

    with pytest.raises(MicrophoneError, match="“Blue Yeti” was not found"):
        MicrophoneStream("Blue Yeti").start()
    with pytest.raises(MicrophoneError, match="#7 was not found"):
        MicrophoneStream(7).start()
    with pytest.raises(MicrophoneError, match="#1 was not found"):  # an output-only device
        MicrophoneStream(1).start()


def test_a_rescan_on_one_thread_never_breaks_opening_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17 (the live-microphone retries): the Speech tab lists the microphones (a PortAudio rescan) in one job
    thread while Record opens the default input in another; PortAudio knows no device between its terminate and
    initialize, which failed the recording with "Error querying device 0" now and then. Both now take _pa_lock."""
    sd = fake_sounddevice([device_info(0, "pulse", 32, 32), device_info(1, "default", 32, 32)], default_input=1)
    initialized = [True]
    listed = sd.query_devices

    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        time.sleep(0.0005)  # sounddevice's calls into PortAudio release the GIL, so another thread runs meanwhile
        if not initialized[0]:
            raise RuntimeError(f"Error querying device {0 if device is None else device}")
        return listed(device, kind)

    def _terminate() -> None:
        initialized[0] = False
        time.sleep(0.002)  # PortAudio takes a moment to re-enumerate: the window the race needs

    def _initialize() -> None:
        initialized[0] = True

    sd.query_devices, sd._terminate, sd._initialize = query_devices, _terminate, _initialize
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_listing() -> None:
        while not stop.is_set():
            try:
                list_input_devices()
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

    lister = threading.Thread(target=keep_listing)
    lister.start()
    try:
        for _ in range(300):
            try:
                stream = MicrophoneStream(None).start()
                assert stream.device.name == "default"
                stream.stop()
            except BaseException as error:  # noqa: BLE001
                failures.append(error)
    finally:
        stop.set()
        lister.join()
    assert failures == [] and microphone._open_streams == 0


def test_no_input_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice([device_info(0, "HDMI 0", 0, 8)], -1))
    with pytest.raises(MicrophoneError, match="^No microphone was found"):
        list_input_devices()
    with pytest.raises(MicrophoneError, match="^No microphone was found"):
        MicrophoneStream().start()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Importing sounddevice on a machine without libportaudio2 raises OSError."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    for attempt in (list_input_devices, lambda: MicrophoneStream().start()):
        with pytest.raises(MicrophoneError) as raised:
            attempt()
        assert str(raised.value).startswith("No microphone was found")
        assert "PortAudio" in str(raised.value) and "libportaudio2" in str(raised.value)
        assert isinstance(raised.value.__cause__, OSError)


# ---------------------------------------------------------------- the real path: PulseAudio virtual microphone


def normalized_cross_correlation(recording: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Peak of the reference-length windowed, energy-normalised cross-correlation, and its lag in samples."""
    n, m = len(recording), len(reference)
    size = 1 << int(np.ceil(np.log2(n + m)))
    product = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size)), size)[: n - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(recording.astype(np.float64) ** 2)])
    window = np.sqrt(np.maximum(energy[m:] - energy[:-m], 1e-12))
    correlation = product / (window * np.linalg.norm(reference))
    lag = int(np.argmax(correlation))
    return float(correlation[lag]), lag


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def test_virtual_microphone_is_the_default_input(virtual_microphone: Any) -> None:
    devices = list_input_devices()
    defaults = [device for device in devices if device.is_default]
    assert len(defaults) == 1, devices
    assert defaults[0].name in {"default", "pulse"} and defaults[0].host_api == "ALSA"
    assert "pulse" in {device.name for device in devices}
    assert virtual_microphone.pactl("get-default-source").strip() == "virtmic.monitor"


def test_records_speech_played_into_the_virtual_microphone(virtual_microphone: Any) -> None:
    """sounddevice was imported (PortAudio initialised) before this daemon started: the rescan finds it."""
    assert sounddevice._initialized  # PortAudio enumerated devices at import, before this daemon existed
    mic = virtual_microphone
    wav = mic.speak("The quick brown fox jumps over the lazy dog.")
    chunks: list[np.ndarray] = []
    with MicrophoneStream() as stream:  # the system default input
        assert stream.device is not None and stream.device.is_default
        started = time.monotonic()
        while time.monotonic() - started < 0.6:  # silence first
            chunks.append(stream.read(timeout=0.2))
        silent_samples = sum(len(chunk) for chunk in chunks)
        player = mic.play(wav, wait=False)
        deadline = time.monotonic() + 15
        while player.poll() is None and time.monotonic() < deadline:
            chunks.append(stream.read(timeout=0.2))
        assert player.returncode == 0
        tail_until = time.monotonic() + 0.3
        while time.monotonic() < tail_until:
            chunks.append(stream.read(timeout=0.1))
        wall = time.monotonic() - started
    chunks.append(stream.read(timeout=0))
    audio = np.concatenate(chunks)
    assert stream.error is None and stream.dropped_seconds == 0 and stream.input_overflows == 0

    seconds = len(audio) / 16000
    assert abs(seconds - wall) < 0.1 * wall + 0.3, (seconds, wall)
    assert silent_samples > 0.3 * 16000
    assert rms(audio[: int(0.9 * silent_samples)]) < 1e-3  # digital silence before the speech

    speech, rate = sf.read(wav, dtype="float32")
    reference = soxr.resample(speech, rate, 16000).astype(np.float32)
    peak, lag = normalized_cross_correlation(audio, reference)
    assert peak > 0.5, peak
    assert lag >= int(0.8 * silent_samples)  # the speech starts after the silence, not before
    during = audio[lag: lag + len(reference)]
    assert rms(during) > 0.3 * rms(reference) and rms(during) > 0.01  # speech energy, at about unity gain


def record_for(stream: MicrophoneStream, seconds: float) -> list[np.ndarray]:
    chunks, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        chunks.append(stream.read(timeout=0.1))
    return chunks


def wait_for_error(stream: MicrophoneStream, chunks: list[np.ndarray], timeout: float) -> float:
    started = time.monotonic()
    while stream.error is None and time.monotonic() - started < timeout:
        chunks.append(stream.read(timeout=0.1))
    return time.monotonic() - started


def test_sound_server_dying_mid_recording_keeps_the_audio(virtual_microphone: Any) -> None:
    """The closest thing to pulling the plug: PortAudio's ALSA thread fails and the stream finishes by itself."""
    stream = MicrophoneStream(stall_seconds=1.5).start()
    chunks = record_for(stream, 0.4)
    virtual_microphone.daemon.kill()
    virtual_microphone.daemon.wait(timeout=5)
    assert wait_for_error(stream, chunks, 5.0) < 3.0
    assert _says_the_microphone_was_lost(stream.error) and not stream.active
    chunks.append(stream.read(timeout=0))
    stream.stop()
    chunks.append(stream.read(timeout=0))
    assert sum(len(chunk) for chunk in chunks) / 16000 == pytest.approx(stream.captured_seconds, abs=0.05)
    assert stream.captured_seconds > 0.3


def test_a_device_that_stops_delivering_trips_the_stall_watchdog(virtual_microphone: Any) -> None:
    stream = MicrophoneStream(stall_seconds=0.5).start()
    chunks = record_for(stream, 0.3)
    virtual_microphone.pactl("suspend-sink", "virtmic", "1")  # the monitor goes quiet without an error
    assert 0.4 < wait_for_error(stream, chunks, 5.0) < 2.0
    assert _says_the_microphone_was_lost(stream.error) and not stream.active
    stream.stop()
    chunks.append(stream.read(timeout=0))
    assert sum(len(chunk) for chunk in chunks) / 16000 == pytest.approx(stream.captured_seconds, abs=0.05)
    assert stream.captured_seconds > 0.2


def test_virtual_microphone_cleans_up_after_itself(tmp_path: Path) -> None:
    import os

    before = os.environ.get("PULSE_SERVER")
    with start_virtual_microphone(tmp_path) as mic:
        assert os.environ["PULSE_SERVER"] == mic.server
        assert mic.runtime_dir.is_dir() and (mic.runtime_dir / "pulse" / "pid").is_file()
        pid = mic.pid
    assert mic.daemon.poll() is not None and not Path(f"/proc/{pid}").exists()
    assert not mic.runtime_dir.exists()
    assert os.environ.get("PULSE_SERVER") == before


def test_virtual_microphone_skips_when_a_binary_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import virtual_microphone

    monkeypatch.setattr(virtual_microphone.shutil, "which", lambda name: None if name == "espeak-ng" else "/usr/bin/" + name)
    with pytest.raises(pytest.skip.Exception, match="espeak-ng is not installed"):
        with start_virtual_microphone(tmp_path):
            pass
