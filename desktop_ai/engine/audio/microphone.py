"""Microphone capture: the device's own rate in, 16 kHz mono out, and nothing lost without saying so.

Users of other dictation apps lose words when a device is forced to 16 kHz (many refuse, or resample
badly), when the recognizer falls behind, and when a headset is unplugged mid-sentence. So:

- the device records at its own default rate; `read()` resamples with one streaming soxr resampler,
  so block edges never click;
- the PortAudio callback only copies into a bounded buffer and measures the level; if the reader falls
  behind, the oldest audio is dropped, counted in `dropped_seconds` and logged, never silently;
- an unplugged or stolen device (a PortAudio error, the stream finishing by itself, or no callback for
  `stall_seconds`) stops the stream cleanly: what was captured stays readable and `error` says why.

sounddevice is imported lazily: importing it raises OSError when libportaudio is missing, and the rest of
the app must keep working (and say so) on such a machine.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from desktop_ai.engine.errors import EngineError

logger = logging.getLogger(__name__)

TARGET_RATE = 16000
LEVEL_WINDOW_S = 0.1
SILENCE_DB = -120.0  # what level() reports for digital silence (log10(0) has no value)

NO_MICROPHONE_MESSAGE = (
    "No microphone was found. Plug one in (or enable it in the system sound settings) and try again."
)
NO_PORTAUDIO_MESSAGE = (
    "No microphone was found: the PortAudio sound library is not installed "
    "(on Debian or Ubuntu: sudo apt install libportaudio2)."
)
DEVICE_LOST_MESSAGE = (
    "The microphone stopped delivering sound (unplugged or taken by another program?) "
    "— what was captured so far is kept."
)


class MicrophoneError(EngineError):
    """No usable microphone: none present, PortAudio missing, or the device could not be opened."""


@dataclass(frozen=True)
class InputDevice:
    """One input device as PortAudio enumerates it (the index is only valid until the next rescan)."""

    index: int
    name: str
    host_api: str
    channels: int
    default_samplerate: float
    is_default: bool


@dataclass(frozen=True)
class Level:
    """Loudness of the most recent ~100 ms: RMS in dBFS (a full-scale sine is about -3 dB) and the absolute peak."""

    rms_db: float
    peak: float


# ---------------------------------------------------------------- PortAudio access

# Held while PortAudio is re-initialised, while devices are queried, and while a stream is resolved and counted:
# a query on one thread during a rescan on another gets no device ("Error querying device 0"; seen when Record was
# pressed while the Speech tab was still listing the microphones). Re-entrant, since a query may rescan first.
_pa_lock = threading.RLock()
_open_streams = 0  # MicrophoneStreams holding a PortAudio stream: a rescan would close them under our feet


def _import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing libportaudio (OSError) into a message the user can act on."""
    try:
        import sounddevice
    except OSError as error:
        logger.warning("PortAudio is not available: %s", error)
        raise MicrophoneError(NO_PORTAUDIO_MESSAGE) from error
    except ImportError as error:
        logger.warning("sounddevice is not installed: %s", error)
        raise MicrophoneError(
            "No microphone can be used: the Python package 'sounddevice' is not installed."
        ) from error
    return sounddevice


def _rescan(sd: ModuleType) -> bool:
    """Re-initialise PortAudio so devices plugged in (or a sound server started) after start-up appear.

    PortAudio enumerates devices once, in Pa_Initialize; re-initialising closes every PortAudio stream,
    so it is skipped while one of ours (or a sounddevice.play/rec) is open.
    """
    with _pa_lock:
        if _open_streams:
            return False
        last = getattr(sd, "_last_callback", None)
        if last is not None and getattr(getattr(last, "stream", None), "active", False):
            return False
        try:
            sd._terminate()
            sd._initialize()
        except Exception as error:  # noqa: BLE001 - an odd PortAudio state must not stop device listing
            logger.warning("Could not rescan sound devices: %s", error)
            try:
                if not getattr(sd, "_initialized", 1):
                    sd._initialize()
            except Exception:  # noqa: BLE001
                pass
            return False
        return True


def _default_input_index(sd: ModuleType) -> int:
    chosen = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    if isinstance(chosen, int) and chosen >= 0:
        return chosen
    try:
        return int(sd.query_devices(kind="input")["index"])
    except Exception:  # noqa: BLE001 - PortAudioError or ValueError: there is no default input
        return -1


def _input_devices(sd: ModuleType) -> list[InputDevice]:
    default = _default_input_index(sd)
    hostapis = sd.query_hostapis()
    devices = []
    for info in sd.query_devices():
        if info["max_input_channels"] <= 0:
            continue
        devices.append(
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                host_api=str(hostapis[info["hostapi"]]["name"]),
                channels=int(info["max_input_channels"]),
                default_samplerate=float(info["default_samplerate"]),
                is_default=int(info["index"]) == default,
            )
        )
    return devices


def list_input_devices(rescan: bool = True) -> list[InputDevice]:
    """Every input device, the system default marked; rescans first so a newly plugged microphone shows up."""
    sd = _import_sounddevice()
    with _pa_lock:
        if rescan:
            _rescan(sd)
        devices = _input_devices(sd)
    if not devices:
        raise MicrophoneError(NO_MICROPHONE_MESSAGE)
    return devices


def _resolve_device(sd: ModuleType, device: int | str | None) -> InputDevice:
    """Map a user choice to one device. Names and the default are looked up after a rescan; an index is
    taken as the caller saw it (a rescan could renumber the devices)."""
    if not isinstance(device, int):
        _rescan(sd)
    devices = _input_devices(sd)
    if device is None:
        for candidate in devices:
            if candidate.is_default:
                return candidate
        if devices:  # PortAudio names no default (some ALSA setups): the first input is the best guess
            return devices[0]
        raise MicrophoneError(NO_MICROPHONE_MESSAGE)
    if isinstance(device, int):
        for candidate in devices:
            if candidate.index == device:
                return candidate
        raise MicrophoneError(
            f"The microphone #{device} was not found (it may have been unplugged). "
            "Choose another input device and try again."
        )
    exact = [candidate for candidate in devices if candidate.name == device]
    if exact:
        return exact[0]
    partial = [candidate for candidate in devices if device.lower() in candidate.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise MicrophoneError(
            f"The microphone “{device}” was not found (it may have been unplugged). "
            "Choose another input device and try again."
        )
    names = ", ".join(f"“{candidate.name}”" for candidate in partial)
    raise MicrophoneError(f"“{device}” matches several microphones ({names}); choose one of them.")


# ---------------------------------------------------------------- the stream


class MicrophoneStream:
    """Records one take from an input device; `read()` hands out 16 kHz mono float32 as it arrives.

    A stream runs once: start() on a stream that has already started does nothing.
    """

    def __init__(
        self,
        device: int | str | InputDevice | None = None,
        target_rate: int = TARGET_RATE,
        block_seconds: float = 0.05,
        buffer_seconds: float = 60.0,
        *,
        stream_factory: Callable[..., Any] | None = None,
        stall_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`stream_factory` stands in for sounddevice.InputStream (tests pass a fake); `clock` drives the
        stall watchdog."""
        if target_rate <= 0 or block_seconds <= 0 or buffer_seconds <= 0 or stall_seconds <= 0:
            raise ValueError("target_rate, block_seconds, buffer_seconds and stall_seconds must be positive")
        self._requested_device = device
        self.target_rate = int(target_rate)
        self.block_seconds = float(block_seconds)
        self.buffer_seconds = float(buffer_seconds)
        self.stall_seconds = float(stall_seconds)
        self._stream_factory = stream_factory
        self._clock = clock

        self._cond = threading.Condition()  # guards everything the callback touches
        self._read_lock = threading.Lock()  # one reader at a time owns the resampler
        self._device: InputDevice | None = None
        self._stream: Any = None
        self._stream_counted = False
        self._rate = 0
        self._capacity = 0
        self._blocks: collections.deque[np.ndarray] = collections.deque()
        self._buffered = 0
        self._captured = 0
        self._dropped = 0
        self._dropped_logged = 0
        self._overflows = 0
        self._recent = np.zeros(0, dtype=np.float32)
        self._level = Level(SILENCE_DB, 0.0)
        self._last_callback = 0.0
        self._started = False
        self._active = False
        self._ended = False
        self._stopping = False
        self._error: str | None = None
        self._resampler: Any = None
        self._finalized = False
        self._pending: list[np.ndarray] = []

    # ------------------------------------------------------------ public state

    @property
    def device(self) -> InputDevice | None:
        """The device actually opened (None before start())."""
        return self._device

    @property
    def samplerate(self) -> int:
        """The rate the device records at (0 before start())."""
        return self._rate

    @property
    def active(self) -> bool:
        self._check_stall()
        return self._active

    @property
    def error(self) -> str | None:
        self._check_stall()
        return self._error

    @property
    def captured_seconds(self) -> float:
        return self._captured / self._rate if self._rate else 0.0

    @property
    def dropped_seconds(self) -> float:
        return self._dropped / self._rate if self._rate else 0.0

    @property
    def pending_seconds(self) -> float:
        """Audio captured but not read yet: how far the reader is behind."""
        return self._buffered / self._rate if self._rate else 0.0

    @property
    def input_overflows(self) -> int:
        return self._overflows

    def level(self) -> Level:
        self._check_stall()
        with self._cond:
            return self._level

    # ------------------------------------------------------------ start / stop

    def start(self) -> MicrophoneStream:
        """Open the device at its own rate; MicrophoneError names the device when it cannot be opened."""
        global _open_streams
        if self._started:
            return self
        device = self._requested_device
        factory = self._stream_factory
        sd = None
        if not isinstance(device, InputDevice) or factory is None:
            sd = _import_sounddevice()
            if factory is None:
                factory = sd.InputStream
        with _pa_lock:  # resolved and counted at once: a rescan on another thread must not renumber or close it
            if not isinstance(device, InputDevice):
                device = _resolve_device(sd, device)
            _open_streams += 1
        self._stream_counted = True
        rate = int(round(device.default_samplerate)) or self.target_rate
        blocksize = max(1, int(round(rate * self.block_seconds)))
        self._device = device
        self._rate = rate
        self._capacity = max(blocksize, int(round(rate * self.buffer_seconds)))
        try:
            if rate != self.target_rate:
                import soxr

                self._resampler = soxr.ResampleStream(rate, self.target_rate, 1, dtype="float32", quality="HQ")
            stream = self._open(factory, device, rate, blocksize)
        except BaseException:
            self._close_stream(abort=True)
            self._device = None
            raise
        self._stream = stream
        with self._cond:
            self._started = True
            self._active = True
            self._last_callback = self._clock()
        try:
            stream.start()
        except Exception as error:  # noqa: BLE001 - PortAudioError and friends
            with self._cond:
                self._active = False
                self._ended = True
                self._finalized = True
            self._close_stream(abort=True)
            self._device = None
            raise MicrophoneError(_open_failure(device, error)) from error
        logger.info("Microphone %r opened at %d Hz (%s)", device.name, rate, device.host_api)
        return self

    def _open(self, factory: Callable[..., Any], device: InputDevice, rate: int, blocksize: int) -> Any:
        """Ask for one channel (the host mixes down); devices that insist on more get the mean of theirs."""
        attempts = [1] if device.channels <= 1 else [1, min(device.channels, 2)]
        failure: BaseException | None = None
        for channels in attempts:
            try:
                return factory(
                    device=device.index,
                    samplerate=rate,
                    channels=channels,
                    dtype="float32",
                    blocksize=blocksize,
                    callback=self._callback,
                    finished_callback=self._finished,
                )
            except Exception as error:  # noqa: BLE001 - PortAudioError, ValueError from sounddevice
                logger.info("Opening %r with %d channel(s) failed: %s", device.name, channels, error)
                failure = error
        assert failure is not None
        raise MicrophoneError(_open_failure(device, failure)) from failure

    def stop(self) -> None:
        """Stop recording (idempotent). The resampler is flushed, so the last ~10 ms are not lost."""
        with self._cond:
            self._stopping = True
        self._close_stream(abort=False)
        with self._cond:
            self._active = False
            self._ended = True
            self._level = Level(SILENCE_DB, 0.0)
            self._cond.notify_all()
        with self._read_lock:
            self._pending.extend(self._drain_locked())
            self._report_drops()

    def __enter__(self) -> MicrophoneStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ reading

    def read(self, timeout: float | None = 0.5) -> np.ndarray:
        """All target-rate samples available so far (possibly none), waiting up to `timeout` for the first."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._read_lock:
            if not self._pending:
                self._wait_for_audio(deadline)
            out = self._pending
            self._pending = []
            out.extend(self._drain_locked())
            self._report_drops()
        if not out:
            return np.zeros(0, dtype=np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _wait_for_audio(self, deadline: float | None) -> None:
        while True:
            self._check_stall()
            with self._cond:
                if self._blocks or self._ended or not self._started:
                    return
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                # wake at least every 100 ms so a stalled device is noticed even with timeout=None
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))

    def _drain_locked(self) -> list[np.ndarray]:
        """Take the buffered blocks and resample them; after the end, flush the resampler once.
        Caller holds _read_lock."""
        with self._cond:
            blocks = list(self._blocks)
            self._blocks.clear()
            self._buffered = 0
            ended = self._ended
        out: list[np.ndarray] = []
        if blocks:
            raw = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
            out.append(self._resample(raw, last=False))
        if ended and not self._finalized:
            self._finalized = True
            out.append(self._resample(np.zeros(0, dtype=np.float32), last=True))
            self._close_stream(abort=True)  # a lost device: release it from the reader's thread
        return [chunk for chunk in out if len(chunk)]

    def _resample(self, samples: np.ndarray, last: bool) -> np.ndarray:
        if self._resampler is None:
            return samples
        return np.asarray(self._resampler.resample_chunk(samples, last=last), dtype=np.float32)

    def _report_drops(self) -> None:
        dropped = self._dropped
        if dropped > self._dropped_logged:
            logger.warning(
                "The microphone buffer (%.0f s) overflowed because the reader fell behind: "
                "%.2f s of the oldest audio dropped (%.2f s in all)",
                self.buffer_seconds, (dropped - self._dropped_logged) / self._rate, dropped / self._rate,
            )
            self._dropped_logged = dropped

    # ------------------------------------------------------------ PortAudio side

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Runs on PortAudio's thread: copy, bound, measure; nothing that can block for long."""
        if indata.ndim == 1:
            mono = np.array(indata, dtype=np.float32)
        elif indata.shape[1] == 1:
            mono = np.array(indata[:, 0], dtype=np.float32)
        else:
            mono = indata.mean(axis=1, dtype=np.float32)
        window = max(1, int(self._rate * LEVEL_WINDOW_S))
        with self._cond:
            self._last_callback = self._clock()
            if status is not None and getattr(status, "input_overflow", False):
                self._overflows += 1
            if self._ended:
                return
            self._blocks.append(mono)
            self._buffered += len(mono)
            self._captured += len(mono)
            excess = self._buffered - self._capacity
            while excess > 0:  # drop the oldest audio; read() logs it
                oldest = self._blocks[0]
                if len(oldest) <= excess:
                    self._blocks.popleft()
                    cut = len(oldest)
                else:
                    self._blocks[0] = oldest[excess:]
                    cut = excess
                self._buffered -= cut
                self._dropped += cut
                excess -= cut
            recent = mono[-window:] if len(mono) >= window else np.concatenate([self._recent, mono])[-window:]
            self._recent = recent
            rms = float(np.sqrt(np.mean(np.square(recent, dtype=np.float64)))) if len(recent) else 0.0
            peak = float(np.max(np.abs(recent))) if len(recent) else 0.0
            self._level = Level(20.0 * math.log10(rms) if rms > 1e-6 else SILENCE_DB, peak)
            self._cond.notify_all()

    def _finished(self) -> None:
        """PortAudio calls this when the stream becomes inactive: after stop(), or by itself when the device is lost."""
        with self._cond:
            stopping = self._stopping
        if not stopping:
            self._lose_device("the stream finished by itself")

    def _lose_device(self, reason: str) -> None:
        with self._cond:
            if self._ended:
                return
            self._ended = True
            self._active = False
            self._error = DEVICE_LOST_MESSAGE
            self._level = Level(SILENCE_DB, 0.0)
            self._cond.notify_all()
        name = self._device.name if self._device else "?"
        logger.warning("Microphone %r lost (%s); %.2f s captured are kept", name, reason, self.captured_seconds)

    def _check_stall(self) -> None:
        with self._cond:
            if not self._active or self._stopping:
                return
            silent_for = self._clock() - self._last_callback
            if silent_for <= self.stall_seconds:
                return
        self._lose_device(f"no audio for {silent_for:.1f} s")

    def _close_stream(self, abort: bool) -> None:
        global _open_streams
        with self._cond:
            stream, self._stream = self._stream, None
            counted, self._stream_counted = self._stream_counted, False
        if stream is not None:
            with self._cond:
                self._stopping = True  # from here on, finished_callback is expected
            for method in (("abort" if abort else "stop"), "close"):
                try:
                    getattr(stream, method)()
                except Exception as error:  # noqa: BLE001 - an unplugged device fails to stop too
                    logger.debug("Microphone stream %s failed: %s", method, error)
        if counted:
            with _pa_lock:
                _open_streams -= 1


def _open_failure(device: InputDevice, error: BaseException) -> str:
    detail = str(error).strip() or type(error).__name__
    return (
        f"The microphone “{device.name}” could not be opened ({detail}). "
        "It may be unplugged or in use by another program; choose another input device or try again."
    )
