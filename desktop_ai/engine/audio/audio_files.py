"""Audio files for transcription: any common format, any rate and channel count, in as 16 kHz mono float32.

Files are streamed: a two-hour recording is read block by block and resampled with one continuous soxr stream,
so memory stays at one chunk and chunk boundaries do not click. libsndfile reads what it can (WAV, FLAC, Ogg,
MP3 and more); anything else (M4A/AAC, Opus in MP4, WMA...) is decoded frame by frame with FFmpeg through PyAV.
Every failure a user can cause (a missing, empty, damaged or non-audio file) becomes an InvalidInputError whose
message names the file; decoder tracebacks never reach the window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from desktop_ai.engine.errors import InvalidInputError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""What the recognizers take: float32 mono in [-1, 1] at this rate."""

BLOCK_FRAMES = 65536
"""Input frames decoded per read: small enough to keep memory flat, large enough to keep Python overhead low."""

_DIGEST_BLOCK = 1 << 20


@dataclass
class AudioFileInfo:
    path: Path
    duration_s: float
    sample_rate: int
    channels: int
    format: str


@dataclass
class AudioChunk:
    """A piece of the file at SAMPLE_RATE; start_s is where it begins in the file, in seconds."""

    start_s: float
    samples: np.ndarray


def _describe(path: Path) -> str:
    return f'"{path.name}"' if path.name else f'"{path}"'


def _check_file(path: Path) -> None:
    """The errors that need no decoder, worded for the user."""
    if not path.exists():
        raise InvalidInputError(f"The audio file {path} does not exist (was it moved or deleted?).")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder, not an audio file.")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InvalidInputError(f"The audio file {path} cannot be read: {error.strerror or error}.") from None
    if size == 0:
        raise InvalidInputError(f"The audio file {_describe(path)} is empty (0 bytes).")


def _not_audio(path: Path) -> InvalidInputError:
    return InvalidInputError(f"{_describe(path)} is not an audio file, or its format is not supported.")


def _no_audio(path: Path) -> InvalidInputError:
    return InvalidInputError(f"The audio file {_describe(path)} contains no audio.")


def _damaged(path: Path, at_s: float | None, error: BaseException) -> InvalidInputError:
    where = f" after {_clock(at_s)}" if at_s else ""
    logger.warning("Decoding %s failed%s: %s", path, where, error)
    return InvalidInputError(f"The audio file {_describe(path)} is damaged or truncated: it cannot be decoded{where}.")


def _clock(seconds: float) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _import_av() -> Any:
    try:
        import av
    except ImportError:  # PyAV comes with faster-whisper; without it only libsndfile formats can be read
        return None
    return av


def _av_error_types(av: Any) -> tuple[type[BaseException], ...]:
    return (av.error.FFmpegError, OSError, ValueError, RuntimeError)


def _av_format_name(path: Path, container: Any) -> str:
    """FFmpeg names demuxers in groups ("mov,mp4,m4a,..."): prefer the member that matches the file's suffix."""
    names = [name for name in str(container.format.name).split(",") if name]
    suffix = path.suffix.lower().lstrip(".")
    if suffix in names:
        return suffix
    return names[0] if names else suffix


def _av_duration(stream: Any, container: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def probe_audio(path: Path | str) -> AudioFileInfo:
    """Duration, rate, channels and format from the header, without decoding (so the window can show it at once)."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as sf_error:
        return _probe_av(path, sf_error)
    if info.frames <= 0 or info.samplerate <= 0:
        raise _no_audio(path)
    return AudioFileInfo(
        path=path,
        duration_s=info.frames / info.samplerate,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        format=str(info.format).lower(),
    )


def _probe_av(path: Path, sf_error: BaseException) -> AudioFileInfo:
    av = _import_av()
    if av is None:
        raise _not_audio(path) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise _not_audio(path)
            stream = container.streams.audio[0]
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            channels = int(stream.codec_context.channels or 0)
            duration = _av_duration(stream, container)
            fmt = _av_format_name(path, container)
    except _av_error_types(av) as error:
        logger.debug("Neither libsndfile (%s) nor FFmpeg (%s) can open %s", sf_error, error, path)
        raise _not_audio(path) from None
    if duration is None:  # no duration in the header: count the samples, streamed
        duration = sum(len(chunk.samples) for chunk in _iter_av(path, 60.0)) / SAMPLE_RATE
    if duration <= 0 or rate <= 0:
        raise _no_audio(path)
    return AudioFileInfo(path=path, duration_s=duration, sample_rate=rate, channels=channels, format=fmt)


class _Chunker:
    """Turns decoded blocks (any rate, any channels) into exact-length 16 kHz mono chunks through one soxr stream."""

    def __init__(self, in_rate: int, chunk_seconds: float) -> None:
        self.in_rate = int(in_rate)
        self.chunk_len = max(1, round(chunk_seconds * SAMPLE_RATE))
        self._stream = (
            None
            if self.in_rate == SAMPLE_RATE
            else soxr.ResampleStream(self.in_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self.emitted = 0  # output samples already yielded
        self.consumed = 0  # input frames fed in

    @property
    def position_s(self) -> float:
        """How far into the file decoding got (for error messages)."""
        return self.consumed / self.in_rate if self.in_rate else 0.0

    def feed(self, block: np.ndarray, last: bool = False) -> Iterator[AudioChunk]:
        """block is (frames, channels) or (frames,) float32 at in_rate."""
        mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self.consumed += len(mono)
        out = mono if self._stream is None else self._stream.resample_chunk(mono, last=last)
        if len(out):
            self._pending.append(np.array(out, dtype=np.float32, copy=True))
            self._pending_len += len(out)
        while self._pending_len >= self.chunk_len:
            yield self._take(self.chunk_len)
        if last and self._pending_len:
            yield self._take(self._pending_len)

    def finish(self) -> Iterator[AudioChunk]:
        return self.feed(np.zeros(0, dtype=np.float32), last=True)

    def _take(self, count: int) -> AudioChunk:
        joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        samples, rest = joined[:count], joined[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)
        np.clip(samples, -1.0, 1.0, out=samples)  # resampling can overshoot full scale a little
        chunk = AudioChunk(start_s=self.emitted / SAMPLE_RATE, samples=np.ascontiguousarray(samples))
        self.emitted += count
        return chunk


def iter_audio_chunks(path: Path | str, chunk_seconds: float = 30.0) -> Iterator[AudioChunk]:
    """Stream the file as consecutive 16 kHz mono chunks of chunk_seconds (the last one shorter).

    Only one block and one chunk are in memory at a time, so any length of file can be transcribed. A file that
    breaks part way raises InvalidInputError when the reader gets there; the chunks yielded before stay valid.
    """
    if not chunk_seconds or chunk_seconds <= 0:
        raise InvalidInputError("The chunk length must be more than 0 seconds.")
    path = Path(path)
    _check_file(path)
    try:
        soundfile = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as sf_error:
        logger.debug("libsndfile cannot open %s (%s); trying FFmpeg", path, sf_error)
        yield from _iter_av(path, chunk_seconds, sf_error)
        return
    with soundfile:
        if soundfile.frames <= 0 or soundfile.samplerate <= 0:
            raise _no_audio(path)
        chunker = _Chunker(soundfile.samplerate, chunk_seconds)
        while True:
            try:
                block = soundfile.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
                raise _damaged(path, chunker.position_s, error) from None
            if not len(block):
                break
            yield from chunker.feed(block)
        yield from chunker.finish()
        if not chunker.emitted:
            raise _no_audio(path)


def _iter_av(path: Path, chunk_seconds: float, sf_error: BaseException | None = None) -> Iterator[AudioChunk]:
    """The FFmpeg path: decode frame by frame, convert each to planar float, then the same chunker."""
    av = _import_av()
    if av is None:
        raise _not_audio(path)
    errors = _av_error_types(av)
    try:
        container = av.open(str(path))
    except errors as error:
        logger.debug("Neither libsndfile (%s) nor FFmpeg (%s) can open %s", sf_error, error, path)
        raise _not_audio(path) from None
    with container:
        if not container.streams.audio:
            raise _not_audio(path)
        stream = container.streams.audio[0]
        chunker: _Chunker | None = None
        converter = None
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
                if frame is None:
                    break
                if chunker is None:
                    chunker = _Chunker(frame.sample_rate, chunk_seconds)
                    # Planar float at the first frame's rate: one row per channel, whatever the codec gives.
                    converter = av.AudioResampler(format="fltp", rate=frame.sample_rate)
                converted = [f.to_ndarray() for f in converter.resample(frame)]
            except errors as error:
                position = chunker.position_s if chunker is not None else None
                raise _damaged(path, position, error) from None
            for planes in converted:
                yield from chunker.feed(np.ascontiguousarray(planes.T))
        if chunker is None:
            raise _no_audio(path)
        try:
            tail = [f.to_ndarray() for f in converter.resample(None)]
        except errors as error:
            raise _damaged(path, chunker.position_s, error) from None
        for planes in tail:
            yield from chunker.feed(np.ascontiguousarray(planes.T))
        yield from chunker.finish()
        if not chunker.emitted:
            raise _no_audio(path)


def read_audio(path: Path | str) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array (for short files; long ones go through iter_audio_chunks)."""
    chunks = [chunk.samples for chunk in iter_audio_chunks(path, chunk_seconds=60.0)]
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def file_digest(path: Path | str) -> str:
    """sha256 of the file's bytes, read in blocks: the result cache key for a transcription of this file."""
    path = Path(path)
    _check_file(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(_DIGEST_BLOCK):
                digest.update(block)
    except OSError as error:
        raise InvalidInputError(f"The audio file {path} cannot be read: {error.strerror or error}.") from None
    return digest.hexdigest()
