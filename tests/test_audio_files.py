"""Audio files in, 16 kHz mono float32 out: real espeak-ng speech converted with sox and ffmpeg to every format."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from desktop_ai.engine.audio.audio_files import (
    SAMPLE_RATE,
    AudioChunk,
    file_digest,
    iter_audio_chunks,
    probe_audio,
    read_audio,
)
from desktop_ai.engine.errors import InvalidInputError

SENTENCE = "the quick brown fox jumps over the lazy dog"
TOOLS = ("espeak-ng", "sox", "ffmpeg")

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS), reason="needs espeak-ng, sox and ffmpeg"
)


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=60)


def _ffmpeg(src: Path, dest: Path, *options: str) -> None:
    _run("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", src, *options, dest)


def build_speech_samples(folder: Path) -> dict[str, Path]:
    """The sentence spoken once (22.05 kHz mono wav), then converted to each rate, layout and format under test."""
    base = folder / "speech.wav"
    _run("espeak-ng", "-w", base, "-v", "en-us", "-s", "150", "-g", "5", SENTENCE)
    files = {"wav": base}
    files["wav8k"] = folder / "speech-8k.wav"
    _run("sox", base, "-r", "8000", files["wav8k"])
    files["wav44k_stereo"] = folder / "speech-44k-stereo.wav"
    _run("sox", base, "-r", "44100", "-c", "2", files["wav44k_stereo"])
    files["wav48k"] = folder / "speech-48k.wav"
    _run("sox", base, "-r", "48000", files["wav48k"])
    files["flac"] = folder / "speech.flac"
    _run("sox", base, files["flac"])
    files["ogg"] = folder / "speech.ogg"
    _run("sox", base, files["ogg"])
    # ffmpeg's LAME writes the gapless (encoder delay/padding) header that libsndfile honours; sox's mp3 has none,
    # so it decodes 1.5 % long (a whole frame of padding at each end).
    files["mp3"] = folder / "speech.mp3"
    _ffmpeg(base, files["mp3"], "-c:a", "libmp3lame", "-b:a", "64k")
    files["m4a"] = folder / "speech.m4a"  # AAC in MP4: libsndfile cannot read it, FFmpeg (PyAV) does
    _ffmpeg(base, files["m4a"], "-c:a", "aac", "-b:a", "64k")
    files["long_flac"] = folder / "speech-x4.flac"  # 20 s, long enough to break part way through
    _run("sox", base, files["long_flac"], "repeat", "4")
    return files


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_speech_samples(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def original(samples: dict[str, Path]) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(samples["wav"]), dtype="float32")
    return data, rate


@pytest.fixture(scope="module")
def reference(original: tuple[np.ndarray, int]) -> np.ndarray:
    """The original resampled in one shot, to compare the streamed output against."""
    data, rate = original
    return soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")


def _duration(original: tuple[np.ndarray, int]) -> float:
    data, rate = original
    return len(data) / rate


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


FORMATS = {
    # key: (sample rate, channels, format as probe_audio names it)
    "wav": (22050, 1, "wav"),
    "wav8k": (8000, 1, "wav"),
    "wav44k_stereo": (44100, 2, "wav"),
    "wav48k": (48000, 1, "wav"),
    "flac": (22050, 1, "flac"),
    "ogg": (22050, 1, "ogg"),
    "mp3": (22050, 1, "mp3"),
    "m4a": (22050, 1, "m4a"),
}


@pytest.mark.parametrize("key", FORMATS)
def test_probe_reads_the_header(samples, original, key):
    rate, channels, fmt = FORMATS[key]
    info = probe_audio(samples[key])
    assert info.path == samples[key]
    assert (info.sample_rate, info.channels, info.format) == (rate, channels, fmt)
    assert info.duration_s == pytest.approx(_duration(original), rel=0.01)


@pytest.mark.parametrize("key", FORMATS)
def test_read_audio_is_16k_mono_float32_with_the_same_speech(samples, original, reference, key):
    audio = read_audio(samples[key])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(_duration(original), rel=0.01)
    assert np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.3  # speech, not silence
    # Same waveform, time-aligned: lossless and resampled files match closely, lossy codecs nearly.
    assert _correlation(audio, reference) > 0.99


@pytest.mark.parametrize("key", FORMATS)
def test_chunks_concatenate_to_read_audio(samples, key):
    whole = read_audio(samples[key])
    chunks = list(iter_audio_chunks(samples[key], chunk_seconds=0.75))
    assert all(isinstance(chunk, AudioChunk) for chunk in chunks)
    assert [chunk.start_s for chunk in chunks] == [pytest.approx(0.75 * i) for i in range(len(chunks))]
    assert all(len(chunk.samples) == 12000 for chunk in chunks[:-1])
    assert 0 < len(chunks[-1].samples) <= 12000
    assert all(chunk.samples.dtype == np.float32 and chunk.samples.ndim == 1 for chunk in chunks)
    joined = np.concatenate([chunk.samples for chunk in chunks])
    assert len(joined) == len(whole)
    assert np.abs(joined - whole).max() < 1e-4


def test_streamed_resampling_matches_one_shot_resampling(samples, reference):
    """One soxr stream across all blocks: no clicks or gaps where chunks meet."""
    for chunk_seconds in (0.1, 1.0, 30.0):
        joined = np.concatenate([c.samples for c in iter_audio_chunks(samples["wav"], chunk_seconds)])
        assert len(joined) == len(reference)
        assert np.abs(joined - np.clip(reference, -1, 1)).max() < 1e-3
        assert _correlation(joined, reference) > 0.9999


def test_every_input_rate_gives_the_same_length_at_16k(samples, original):
    lengths = {key: len(read_audio(samples[key])) for key in ("wav8k", "wav", "wav44k_stereo", "wav48k")}
    expected = _duration(original) * SAMPLE_RATE
    for key, length in lengths.items():
        assert abs(length - expected) <= 4, (key, length, expected)
    assert max(lengths.values()) - min(lengths.values()) <= 4


def test_stereo_and_multichannel_are_averaged_to_mono(samples, original, tmp_path):
    mono = read_audio(samples["wav"])
    stereo = read_audio(samples["wav44k_stereo"])  # both channels carry the speech
    assert _correlation(stereo, mono) > 0.999
    assert np.abs(stereo).max() == pytest.approx(np.abs(mono).max(), rel=0.02)

    data, rate = original
    six = np.zeros((len(data), 6), dtype=np.float32)
    six[:, 2] = data  # speech on one channel of six (5.1), silence on the rest
    path = tmp_path / "six.wav"
    sf.write(str(path), six, rate, subtype="FLOAT")
    assert probe_audio(path).channels == 6
    audio = read_audio(path)
    assert len(audio) == len(mono)
    assert np.abs(audio - mono / 6).max() < 1e-4


def test_file_digest_is_the_sha256_of_the_bytes(samples):
    path = samples["flac"]
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(str(path)) != file_digest(samples["wav"])


def _write_silence(path: Path, seconds: int, rate: int = 8000) -> None:
    block = np.zeros(rate * 600, dtype=np.int16)
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16") as out:
        for _ in range(seconds // 600):
            out.write(block)


def test_a_two_hour_file_is_streamed_not_loaded(tmp_path):
    path = tmp_path / "two-hours.wav"
    _write_silence(path, 7200)
    assert path.stat().st_size > 110_000_000
    assert probe_audio(path).duration_s == pytest.approx(7200.0)

    tracemalloc.start()
    try:
        chunks = iter_audio_chunks(path, chunk_seconds=30.0)
        first = list(itertools.islice(chunks, 3))
        chunks.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [c.start_s for c in first] == [0.0, 30.0, 60.0]
    assert all(len(c.samples) == 30 * SAMPLE_RATE for c in first)
    assert not np.any(first[-1].samples)
    # Reading it whole would hold 460 MB at 16 kHz (and 115 MB of input): a few blocks must be all there is.
    assert peak < 50_000_000

    tracemalloc.start()
    try:
        digest = file_digest(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(digest) == 64
    assert peak < 10_000_000


# --- bad input: each one an InvalidInputError that names the file and says what is wrong ---------------------


def _all_readers(path: Path) -> list:
    return [
        lambda: probe_audio(path),
        lambda: read_audio(path),
        lambda: list(iter_audio_chunks(path)),
    ]


def _assert_all_fail(path: Path, message: str) -> None:
    for reader in _all_readers(path):
        with pytest.raises(InvalidInputError) as caught:
            reader()
        assert message in str(caught.value)
        assert path.name in str(caught.value)


def test_missing_file(tmp_path):
    path = tmp_path / "gone.wav"
    _assert_all_fail(path, "does not exist")
    with pytest.raises(InvalidInputError, match="does not exist"):
        file_digest(path)


def test_a_folder(tmp_path):
    path = tmp_path / "recordings.wav"
    path.mkdir()
    _assert_all_fail(path, "is a folder, not an audio file")
    with pytest.raises(InvalidInputError, match="is a folder"):
        file_digest(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    _assert_all_fail(path, "is empty (0 bytes)")


def test_wav_header_without_samples(tmp_path):
    path = tmp_path / "header-only.wav"
    sf.write(str(path), np.zeros((0, 1), dtype=np.float32), 16000)
    assert 0 < path.stat().st_size <= 100
    _assert_all_fail(path, "contains no audio")


def test_text_renamed_to_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("Meeting notes: buy milk, call Anna.\n" * 20, encoding="utf-8")
    _assert_all_fail(path, "is not an audio file, or its format is not supported")


def test_png_renamed_to_m4a_is_not_audio(tmp_path):
    """FFmpeg opens an image happily: without an audio stream it is still not an audio file."""
    from PIL import Image

    path = tmp_path / "photo.m4a"
    Image.new("RGB", (8, 8), "red").save(path, format="PNG")
    _assert_all_fail(path, "is not an audio file, or its format is not supported")


def test_truncated_flac_fails_part_way_keeping_earlier_chunks(samples, tmp_path):
    data = samples["long_flac"].read_bytes()
    path = tmp_path / "cut-short.flac"
    path.write_bytes(data[: len(data) * 6 // 10])
    got: list[AudioChunk] = []
    with pytest.raises(InvalidInputError) as caught:
        for chunk in iter_audio_chunks(path, chunk_seconds=1.0):
            got.append(chunk)
    assert "cut-short.flac" in str(caught.value)
    assert "is damaged or truncated" in str(caught.value)
    # The chunks that came out before the damage are real speech, where they belong.
    assert len(got) >= 3
    reference = read_audio(samples["long_flac"])
    joined = np.concatenate([c.samples for c in got])
    assert np.abs(joined - reference[: len(joined)]).max() < 1e-4
    with pytest.raises(InvalidInputError, match="is damaged or truncated"):
        read_audio(path)


def test_corrupt_flac(samples, tmp_path):
    data = bytearray(samples["long_flac"].read_bytes())
    rng = np.random.default_rng(3)
    middle = len(data) // 2
    data[middle : middle + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path = tmp_path / "scrambled.flac"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError) as caught:
        read_audio(path)
    assert '"scrambled.flac" is damaged or truncated' in str(caught.value)


def test_chunk_length_must_be_positive(samples):
    with pytest.raises(InvalidInputError, match="more than 0 seconds"):
        list(iter_audio_chunks(samples["wav"], chunk_seconds=0))
