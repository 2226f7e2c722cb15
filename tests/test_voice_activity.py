"""Voice activity on real espeak-ng speech: phrases cut at the pauses, the same however the stream is fed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from desktop_ai.engine.audio.audio_files import read_audio
from desktop_ai.engine.audio.voice_activity import SAMPLE_RATE, PhraseSegmenter, SileroVad, SpeechPhrase, VadSettings

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call me back tomorrow morning",
    "she sells sea shells by the sea shore",
    "a good book and a cup of tea make a fine evening",
    "the train was late again so we missed the meeting",
]
NOISE_DBFS = -55.0
AUDIBLE = 10 ** (-40 / 20)  # a sample louder than this is speech (the added noise peaks near -43 dBFS)
TOLERANCE_S = 0.35


def _say(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-w", str(path), "-v", "en-us", "-s", "150", "-g", "5", text], check=True, timeout=60)
    return read_audio(path)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)


def _noise(count: int, dbfs: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 10 ** (dbfs / 20), count).astype(np.float32)


def _speech_span(clean: np.ndarray, start: int = 0, stop: int | None = None) -> tuple[float, float]:
    """First and last audible sample of clean[start:stop], in stream seconds."""
    loud = np.flatnonzero(np.abs(clean[start:stop]) > AUDIBLE)
    return (start + loud[0]) / SAMPLE_RATE, (start + loud[-1] + 1) / SAMPLE_RATE


def _feed_all(samples: np.ndarray, piece: int | None = None, settings: VadSettings | None = None) -> list[SpeechPhrase]:
    segmenter = PhraseSegmenter(settings)
    piece = piece or len(samples)
    phrases: list[SpeechPhrase] = []
    for at in range(0, len(samples), piece):
        phrases += segmenter.feed(samples[at : at + piece])
    last = segmenter.flush()
    return phrases + ([last] if last is not None else [])


def _slice(stream: np.ndarray, phrase: SpeechPhrase) -> np.ndarray:
    start = int(round(phrase.start_s * SAMPLE_RATE))
    return stream[start : start + len(phrase.samples)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    folder = tmp_path_factory.mktemp("vad-speech")
    return [_say(text, folder / f"s{i}.wav") for i, text in enumerate(SENTENCES)]


class TwoSentences:
    """1 s of quiet, sentence one, 1.5 s of quiet, sentence two, 1 s of quiet."""

    def __init__(self, clips: list[np.ndarray], noisy: bool) -> None:
        first, second = clips[0], clips[1]
        self.clean = np.concatenate([_silence(1.0), first, _silence(1.5), second, _silence(1.0)])
        self.stream = self.clean + _noise(len(self.clean), NOISE_DBFS) if noisy else self.clean.copy()
        split = int(SAMPLE_RATE * 1.0) + len(first) + int(SAMPLE_RATE * 0.75)  # the middle of the pause
        self.spans = [_speech_span(self.clean, 0, split), _speech_span(self.clean, split)]


@pytest.fixture(scope="module", params=["noise", "digital-silence"])
def two(request: pytest.FixtureRequest, clips: list[np.ndarray]) -> TwoSentences:
    return TwoSentences(clips, noisy=request.param == "noise")


def test_two_sentences_give_two_phrases_that_bracket_the_speech(two: TwoSentences):
    phrases = _feed_all(two.stream)
    assert len(phrases) == 2
    for phrase, (speech_start, speech_end) in zip(phrases, two.spans):
        assert phrase.final
        assert phrase.start_s <= speech_start <= phrase.start_s + TOLERANCE_S
        assert phrase.end_s - TOLERANCE_S <= speech_end <= phrase.end_s
        assert phrase.end_s - phrase.start_s == pytest.approx(phrase.duration_s)
        # The phrase is the stream's own audio at that place, not a copy of something else.
        np.testing.assert_array_equal(phrase.samples, _slice(two.stream, phrase))
    assert phrases[0].end_s < phrases[1].start_s


@pytest.mark.parametrize("piece", [160, 1600, 48000], ids=["10ms", "100ms", "3s"])
def test_streaming_in_pieces_gives_the_same_phrases_as_one_call(two: TwoSentences, piece: int):
    whole = _feed_all(two.stream)
    pieces = _feed_all(two.stream, piece)
    assert [(p.start_s, p.end_s, p.final) for p in pieces] == [(p.start_s, p.end_s, p.final) for p in whole]
    for a, b in zip(pieces, whole):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_silero_probabilities_do_not_depend_on_how_windows_are_batched(two: TwoSentences):
    """The digital-silence shortcut is per window: one call per window equals one call for the lot."""
    windows = two.stream[: len(two.stream) // 512 * 512].reshape(-1, 512)
    one_call = SileroVad().probabilities(windows)
    vad = SileroVad()
    per_window = np.concatenate([vad.probabilities(windows[i : i + 1]) for i in range(len(windows))])
    np.testing.assert_allclose(per_window, one_call, atol=1e-5)
    assert one_call.max() > 0.9  # there is speech in there
    silent = np.max(np.abs(windows), axis=1) < 1e-4
    assert np.all(one_call[silent] == 0.0)


@pytest.mark.parametrize(
    "stream",
    [_noise(30 * SAMPLE_RATE, -50.0, seed=7), _silence(60.0)],
    ids=["noise-50dBFS", "digital-silence"],
)
def test_noise_and_silence_give_no_phrase(stream: np.ndarray):
    segmenter = PhraseSegmenter()
    phrases = []
    for at in range(0, len(stream), 16000):
        phrases += segmenter.feed(stream[at : at + 16000])
        assert segmenter.current() is None
    assert phrases == []
    assert segmenter.flush() is None
    assert not segmenter.speaking
    assert segmenter.time_s == pytest.approx(len(stream) / SAMPLE_RATE, abs=0.04)


def test_pre_roll_keeps_the_first_syllable(clips: list[np.ndarray]):
    lead = _silence(1.0)
    clean = np.concatenate([lead, clips[1], _silence(1.0)])
    stream = clean + _noise(len(clean), NOISE_DBFS, seed=3)
    noise_peak = float(np.max(np.abs(stream[: len(lead)])))
    onset = int(np.flatnonzero(np.abs(stream) > noise_peak)[0])
    assert onset >= len(lead)  # the first sample above the noise floor is speech
    (phrase,) = _feed_all(stream)
    start = int(round(phrase.start_s * SAMPLE_RATE))
    assert start < onset
    # The phrase holds the onset and the first syllable after it, exactly as it was in the stream.
    first_syllable = stream[onset : onset + SAMPLE_RATE // 5]
    np.testing.assert_array_equal(phrase.samples[onset - start : onset - start + len(first_syllable)], first_syllable)
    assert np.max(np.abs(first_syllable)) > 0.1


@pytest.mark.parametrize("max_phrase_s", [25.0, 8.0])
def test_forty_seconds_of_speech_without_pauses_is_cut_at_max_phrase(clips: list[np.ndarray], max_phrase_s: float):
    gap = _silence(0.1)  # far shorter than the 450 ms pause that ends a phrase
    parts: list[np.ndarray] = []
    total = 0
    while total < 40 * SAMPLE_RATE:
        for clip in clips:
            start, end = _speech_span(clip)
            speech = clip[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            parts += [speech, gap]
            total += len(speech) + len(gap)
    stream = np.concatenate(parts) + _noise(total, NOISE_DBFS, seed=5)
    phrases = _feed_all(stream, settings=VadSettings(max_phrase_s=max_phrase_s))
    assert len(phrases) >= int(40 // max_phrase_s) + 1
    assert all(p.duration_s <= max_phrase_s + 1e-9 for p in phrases)
    assert all(p.final for p in phrases)
    # Cut, not cropped: each phrase starts where the previous one ended, and together they are the stream.
    for before, after in zip(phrases, phrases[1:]):
        assert after.start_s == pytest.approx(before.end_s)
    assert phrases[0].start_s < 0.35
    assert phrases[-1].end_s > len(stream) / SAMPLE_RATE - 0.35
    joined = np.concatenate([p.samples for p in phrases])
    start = int(round(phrases[0].start_s * SAMPLE_RATE))
    np.testing.assert_array_equal(joined, stream[start : start + len(joined)])


def test_current_is_the_partial_phrase_during_speech_and_none_in_silence(two: TwoSentences):
    (first_start, first_end), _ = two.spans
    segmenter = PhraseSegmenter()
    middle = int((first_start + first_end) / 2 * SAMPLE_RATE)
    assert segmenter.feed(two.stream[:middle]) == []
    partial = segmenter.current()
    assert segmenter.speaking and partial is not None
    assert not partial.final
    assert partial.start_s <= first_start <= partial.start_s + TOLERANCE_S
    assert partial.end_s == pytest.approx(segmenter.time_s)
    np.testing.assert_array_equal(partial.samples, _slice(two.stream, partial))
    # A second look later in the phrase is longer and starts at the same place.
    later = int((first_end - 0.2) * SAMPLE_RATE)
    assert segmenter.feed(two.stream[middle:later]) == []
    longer = segmenter.current()
    assert longer is not None and longer.start_s == partial.start_s and longer.duration_s > partial.duration_s
    # Into the pause: the phrase is finished and there is no partial any more.
    pause = int((first_end + 1.0) * SAMPLE_RATE)
    finished = segmenter.feed(two.stream[later:pause])
    assert len(finished) == 1 and finished[0].final
    assert finished[0].start_s == partial.start_s
    assert not segmenter.speaking
    assert segmenter.current() is None
    assert first_end - 0.1 <= segmenter.last_speech_end_s <= finished[0].end_s


def test_flush_returns_the_phrase_in_progress_as_final(two: TwoSentences):
    (first_start, first_end), _ = two.spans
    segmenter = PhraseSegmenter()
    cut = int((first_end - 0.3) * SAMPLE_RATE)  # the stream ends before the sentence does
    assert segmenter.feed(two.stream[:cut]) == []
    assert segmenter.speaking
    phrase = segmenter.flush()
    assert phrase is not None and phrase.final
    assert phrase.start_s <= first_start <= phrase.start_s + TOLERANCE_S
    assert phrase.end_s == pytest.approx(segmenter.time_s)
    np.testing.assert_array_equal(phrase.samples, _slice(two.stream, phrase))
    assert not segmenter.speaking
    assert segmenter.current() is None
    assert segmenter.flush() is None
