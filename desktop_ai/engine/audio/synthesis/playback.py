"""Playing speech on an output device (sounddevice), and writing it to a file (soundfile).

One PortAudio output stream per reading: audio is queued as it is synthesised (sentence by sentence), the callback
plays what is queued and plays silence while the next sentence is still being made, and Stop aborts the stream,
which drops what the device had buffered, so the sound ends at once instead of after the queue or the buffer.
Devices that refuse the voice's rate get the audio resampled (soxr) to their own.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.audio import microphone
from desktop_ai.engine.audio.echo import PlayedSound
from desktop_ai.engine.errors import EngineError, InvalidInputError

logger = logging.getLogger(__name__)

NO_OUTPUT_MESSAGE = ("No sound output device was found, so the speech cannot be played: plug in speakers or "
                     "headphones, or write the speech to a WAV file instead (desktop-ai speak --out FILE.wav).")
BLOCK_S = 0.02  # callback size: Stop and the first sound wait at most about this long in our buffer


class PlaybackError(EngineError):
    """No output device, or it could not be opened."""


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    host_api: str
    channels: int
    default_samplerate: float
    is_default: bool


def _output_devices(sd: Any) -> list[OutputDevice]:
    chosen = sd.default.device[1] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    default = chosen if isinstance(chosen, int) and chosen >= 0 else -1
    if default < 0:
        try:
            default = int(sd.query_devices(kind="output")["index"])
        except Exception:  # noqa: BLE001 - no default output
            default = -1
    hostapis = sd.query_hostapis()
    return [
        OutputDevice(int(info["index"]), str(info["name"]), str(hostapis[info["hostapi"]]["name"]),
                     int(info["max_output_channels"]), float(info["default_samplerate"]), int(info["index"]) == default)
        for info in sd.query_devices() if info["max_output_channels"] > 0
    ]


def _import_sounddevice() -> Any:
    try:
        return microphone._import_sounddevice()
    except microphone.MicrophoneError as error:
        raise PlaybackError(NO_OUTPUT_MESSAGE) from error


def list_output_devices(rescan: bool = True) -> list[OutputDevice]:
    """Every output device, the system default marked (rescanned, so a sound server started later shows up)."""
    sd = _import_sounddevice()
    with microphone._pa_lock:
        if rescan:
            microphone._rescan(sd)
        devices = _output_devices(sd)
    if not devices:
        raise PlaybackError(NO_OUTPUT_MESSAGE)
    return devices


def resolve_output_device(device: int | str | None = None) -> OutputDevice:
    """A user's choice (index, name or part of it, None for the default) to one device, or a PlaybackError."""
    devices = list_output_devices(rescan=not isinstance(device, int))
    if device is None:
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(device, int):
        match = [d for d in devices if d.index == device]
    else:
        match = [d for d in devices if d.name == device] or [d for d in devices if device.lower() in d.name.lower()]
    if len(match) == 1 or (match and isinstance(device, int)):
        return match[0]
    if not match:
        names = ", ".join(f"“{d.name}”" for d in devices)
        raise PlaybackError(f"The output device “{device}” was not found. Output devices: {names}.")
    names = ", ".join(f"“{d.name}”" for d in match)
    raise PlaybackError(f"“{device}” matches several output devices ({names}); choose one of them.")


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM WAV (or whatever soundfile infers from the suffix: .flac, .ogg)."""
    import soundfile

    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder: give a file name to write the speech to, like speech.wav.")
    try:
        soundfile.write(str(path), np.asarray(audio, dtype=np.float32), int(sample_rate),
                        subtype="PCM_16" if path.suffix.lower() in (".wav", "") else None, format=None if path.suffix else "WAV")
    except (OSError, RuntimeError, TypeError, ValueError) as error:
        raise InvalidInputError(f"The speech could not be written to {path}: {error}") from error
    return path


class SpeechPlayer:
    """Plays queued mono float32 audio on one output device until finish() and the queue runs dry, or stop()."""

    def __init__(self, sample_rate: int, device: int | str | OutputDevice | None = None,
                 stream_factory: Callable[..., Any] | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self._requested = device
        self._factory = stream_factory
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._close_lock = threading.Lock()  # Stop (any thread) and the end of playback (the waiting one) may meet
        self._done = threading.Event()
        self._finishing = False
        self._stream: Any = None
        self._counted = False
        self._resampler: Any = None
        self.device: OutputDevice | None = None
        self.device_rate = self.sample_rate
        self.first_sound_at: float | None = None  # time.monotonic() when the first queued sample went to the device
        self.sounding = threading.Event()  # set then: waiters need not poll
        self.played_samples = 0  # at the voice's rate
        self.played_sound: PlayedSound | None = None  # its loudness, for telling its echo in the microphone
        self._last_block_full = False
        self.stopped = False

    # ------------------------------------------------------------ control
    def start(self) -> SpeechPlayer:
        if self._stream is not None:
            return self
        sd = _import_sounddevice()
        with microphone._pa_lock:
            requested = self._requested
            self.device = requested if isinstance(requested, OutputDevice) else resolve_output_device(requested)
            microphone._open_streams += 1  # a device rescan would close this stream under our feet
        self._counted = True
        factory = self._factory or sd.OutputStream
        try:
            self._stream = self._open(factory, self.sample_rate)
        except Exception as first:  # noqa: BLE001 - PortAudioError: the device refuses the voice's rate
            rate = int(round(self.device.default_samplerate))
            if rate == self.sample_rate:
                self._release()
                raise PlaybackError(_open_failure(self.device, first)) from first
            try:
                self._stream = self._open(factory, rate)
            except Exception as error:  # noqa: BLE001
                self._release()
                raise PlaybackError(_open_failure(self.device, error)) from error
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, rate, 1, dtype="float32")
            self.device_rate = rate
        try:
            self._stream.start()
        except Exception as error:  # noqa: BLE001
            self._close(abort=True)
            raise PlaybackError(_open_failure(self.device, error)) from error
        self.played_sound = PlayedSound(self.device_rate)
        logger.info("Playing speech on %r at %d Hz", self.device.name, self.device_rate)
        return self

    def _open(self, factory: Callable[..., Any], rate: int) -> Any:
        return factory(device=self.device.index, samplerate=rate, channels=1, dtype="float32",
                       blocksize=max(1, int(rate * BLOCK_S)), latency="high", callback=self._callback,
                       finished_callback=self._done.set)

    def enqueue(self, audio: np.ndarray) -> None:
        """Queue more audio at the voice's rate (played after what is queued)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio)
        with self._lock:
            if not self.stopped:
                self._queue.append(audio)

    def finish(self) -> None:
        """No more audio will come: the stream ends when the queue has played."""
        with self._lock:
            self._finishing = True

    def wait(self, timeout: float | None = None) -> bool:
        """Until everything played or Stop; False on timeout."""
        finished = self._done.wait(timeout)
        if finished:
            self._close(abort=False)
        return finished

    def stop(self) -> None:
        """Silence now: the queue is dropped and the stream aborted (what the device buffered is dropped too)."""
        with self._lock:
            self.stopped = True
            self._queue.clear()
        self._close(abort=True)
        self._done.set()

    def play(self, audio: np.ndarray, cancel: threading.Event | None = None) -> bool:
        """Play one clip to the end (True) or until `cancel` is set (False)."""
        self.start()
        self.enqueue(audio)
        self.finish()
        while not self.wait(0.05):
            if cancel is not None and cancel.is_set():
                self.stop()
                return False
        return not self.stopped

    @property
    def played_s(self) -> float:
        return self.played_samples / self.device_rate

    # ------------------------------------------------------------ the PortAudio thread
    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            while filled < frames and self._queue:
                head = self._queue[0]
                take = min(frames - filled, len(head))
                out[filled:filled + take] = head[:take]
                if take == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
                filled += take
            ending = self._finishing and not self._queue
        if filled and self.first_sound_at is None:
            self.first_sound_at = time.monotonic()
            self.sounding.set()
        if filled and self.played_sound is not None:
            self.played_sound.add(out[:filled].copy(), _sounds_at(time_info), follows_on=self._last_block_full)
        self._last_block_full = filled == frames
        self.played_samples += filled
        out[filled:] = 0.0
        if ending:
            import sounddevice

            raise sounddevice.CallbackStop

    def _close(self, abort: bool) -> None:
        with self._close_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            for method in ("abort" if abort else "stop", "close"):
                try:
                    getattr(stream, method)()
                except Exception as error:  # noqa: BLE001 - an unplugged device fails to stop too
                    logger.debug("Output stream %s failed: %s", method, error)
        self._release()

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            with microphone._pa_lock:
                microphone._open_streams -= 1


def _sounds_at(time_info: Any) -> float | None:
    """When this block leaves the loudspeaker, on time.perf_counter()'s clock (None where PortAudio does not say)."""
    try:
        delay = float(time_info.outputBufferDacTime) - float(time_info.currentTime)
    except (AttributeError, TypeError, ValueError):
        return None
    return time.perf_counter() + delay if 0.0 <= delay < 2.0 else None


def _open_failure(device: OutputDevice, error: BaseException) -> str:
    detail = str(error).strip() or type(error).__name__
    return (f"The output device “{device.name}” could not be opened ({detail}). It may be unplugged or in use; choose "
            "another output device, or write the speech to a file.")
