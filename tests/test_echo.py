"""Telling the app's own voice in the microphone from a person speaking (engine/audio/echo.py), on real speech:
espeak-ng sentences played, and heard back through a simulated room (delay, reverberation, noise, another rate)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
import soxr

from desktop_ai.engine.audio.echo import (
    ECHO_CORRELATION,
    FRAME_S,
    PlayedSound,
    SoundEnvelope,
    echo_correlation,
    envelope_of,
    is_playback_echo,
    speech_over_echo,
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")

PLAY_RATE, MIC_RATE = 22050, 16000
T0 = 1000.0  # when the answer starts playing, on the shared clock


def _speech(tmp_path, text: str, voice: str = "en-us") -> np.ndarray:
    path = tmp_path / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    audio, rate = soundfile.read(path, dtype="float32")
    return soxr.resample(audio, rate, PLAY_RATE).astype(np.float32)


def _room(played: np.ndarray, delay_s: float, gain: float, seed: int = 0) -> np.ndarray:
    """What a microphone across the table hears of the loudspeaker: late, quieter, reverberant, noisy, at 16 kHz."""
    rng = np.random.default_rng(seed)
    tail = int(0.15 * PLAY_RATE)
    response = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.04 * PLAY_RATE)) * 0.05
    response[0] = 1.0
    wet = np.convolve(played, response)[: len(played)] * gain
    heard = np.concatenate([np.zeros(int(delay_s * PLAY_RATE), dtype=np.float32), wet])
    heard = soxr.resample(heard, PLAY_RATE, MIC_RATE)
    return (heard + rng.standard_normal(len(heard)) * 10 ** (-55 / 20)).astype(np.float32)


def _played_envelopes(played: np.ndarray, block: int = 441) -> list[SoundEnvelope]:
    """As the player records it: one sound-card block at a time, each with the moment it sounds."""
    sound = PlayedSound(PLAY_RATE)
    for start in range(0, len(played), block):
        sound.add(played[start:start + block], T0 + start / PLAY_RATE)
    return sound.take()


@pytest.fixture(scope="module")
def answer(tmp_path_factory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("echo")
    return _speech(folder, "L'Etoile, la Marseillaise. Paris is the capital of France, and it lies on the Seine.")


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("echo-question")
    return _speech(folder, "Wait, what about Germany and its capital?", voice="en-gb+m3")


def test_the_player_envelope_is_continuous_and_matches_the_whole_clip(answer):
    envelopes = _played_envelopes(answer)
    assert len(envelopes) == 1, "blocks played back to back make one run"
    whole = envelope_of(answer, PLAY_RATE, T0)
    assert envelopes[0].start == pytest.approx(T0)
    assert len(envelopes[0].db) == len(whole.db)
    assert np.allclose(envelopes[0].db, whole.db, atol=0.01)
    assert len(whole.db) == pytest.approx(len(answer) / PLAY_RATE / FRAME_S, abs=1)


def test_the_echo_of_the_answer_is_told_whatever_words_whisper_makes_of_it(answer):
    played = _played_envelopes(answer)
    for delay_s, gain, seed in ((0.05, 0.9, 1), (0.25, 0.3, 2), (0.6, 0.1, 3)):
        heard_audio = _room(answer, delay_s, gain, seed)
        # dictation's phrase: a stretch of the echo from 1 s in, as voice activity would cut it
        phrase = heard_audio[MIC_RATE: MIC_RATE * 3]
        heard = envelope_of(phrase, MIC_RATE, T0 + 1.0)
        score = echo_correlation(heard, played)
        assert score >= ECHO_CORRELATION, (delay_s, gain, score)
        assert is_playback_echo(heard, played)


def test_a_person_speaking_over_the_answer_or_after_it_is_not_echo(answer, question):
    played = _played_envelopes(answer)
    echo = _room(answer, 0.2, 0.3, seed=4)
    voice = soxr.resample(question, PLAY_RATE, MIC_RATE).astype(np.float32)
    # over the echo, as loud as it (barge-in): from 1 s into the answer
    mixed = echo.copy()
    start = MIC_RATE
    length = min(len(voice), len(mixed) - start)
    level = np.sqrt(np.mean(echo[start:start + length] ** 2)) / np.sqrt(np.mean(voice[:length] ** 2))
    mixed[start:start + length] += voice[:length] * level
    over = envelope_of(mixed[start:start + length], MIC_RATE, T0 + 1.0)
    assert echo_correlation(over, played) < ECHO_CORRELATION
    assert not is_playback_echo(over, played)
    # after the answer ended: nothing was played under it
    after = envelope_of(voice, MIC_RATE, T0 + len(answer) / PLAY_RATE + 1.5)
    assert not is_playback_echo(after, played)
    # nothing played at all
    assert not is_playback_echo(after, [])


def test_envelopes_travel_as_json():
    envelope = SoundEnvelope(12.5, [-60.0, -20.04, -3.0])
    again = SoundEnvelope.from_json(envelope.to_json())
    assert again.start == 12.5 and again.db == [-60.0, -20.0, -3.0]
    assert again.end == pytest.approx(12.5 + 3 * FRAME_S)


def test_a_question_spoken_over_the_answer_is_heard_within_a_second(answer, question):
    """One phrase that begins as the echo and goes on with a question (voice activity cannot cut them apart): its
    last second is louder than the echo predicts within a second of the question's start."""
    played = _played_envelopes(answer)
    for delay_s, gain, seed in ((0.0, 1.0, 5), (0.05, 0.9, 1), (0.25, 0.3, 2), (0.6, 0.1, 3)):
        echo = _room(answer, delay_s, gain, seed)
        assert not any(speech_over_echo(envelope_of(echo[:MIC_RATE * end], MIC_RATE, T0), played)
                       for end in (2, 3, 4, 5, 6)), (delay_s, gain)
    echo = _room(answer, 0.2, 0.3, seed=4)
    voice = soxr.resample(question, PLAY_RATE, MIC_RATE).astype(np.float32)
    start = 2 * MIC_RATE
    length = min(len(voice), len(echo) - start)
    level = np.sqrt(np.mean(echo[start:start + length] ** 2)) / np.sqrt(np.mean(voice[:length] ** 2))
    for loudness, afters in ((2.0, (0.75, 1.0, 1.5, 2.0)), (1.0, (0.75, 1.0))):  # twice as loud as the echo, or as loud
        mixed = echo.copy()
        mixed[start:start + length] += voice[:length] * level * loudness
        before = envelope_of(mixed[:start], MIC_RATE, T0)
        assert not speech_over_echo(before, played)
        assert all(speech_over_echo(envelope_of(mixed[:int(start + MIC_RATE * after)], MIC_RATE, T0), played)
                   for after in afters), loudness
