"""Issue 31: file transcription decodes groups of phrases in batches, and Whisper's compute type is measured once.

The recording is real speech for the model (espeak-ng sentences with pauses, as the other speech tests build), about
forty seconds; groups are made small (GROUP_S) so that it makes several Whisper windows without minutes of audio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from desktop_ai.bench.transcribe import word_errors
from desktop_ai.engine.audio.audio_files import read_audio
from desktop_ai.engine.audio.transcript import Phrase
from desktop_ai.engine.tasks import file_transcription
from desktop_ai.engine.tasks.transcription import FileTranscriber, WhisperRecognizer, make_recognizer
from desktop_ai.engine.tasks.whisper_compute import CHOICES_FILE, choose_compute_type, processor_name

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

SENTENCES = (
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "rice is often served in round bowls",
    "the juice of lemons makes fine punch",
    "the box was thrown beside the parked truck",
    "four hours of steady work faced us",
    "the boy was there when the sun rose",
    "kick the ball straight and follow through",
    "help the woman get back to her feet",
    "the salt breeze came across from the sea",
)
PAUSES_S = (1.0, 0.3, 1.5, 0.8, 2.0)  # 0.3 s is shorter than a phrase-ending pause: two sentences, one phrase
SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """About 40 s: the sentences with pauses over a -65 dBFS floor; returns the WAV and each sentence's span."""
    folder = tmp_path_factory.mktemp("batched-speech")
    noise = np.random.default_rng(5)
    pieces, spans, position = [np.zeros(SAMPLE_RATE, dtype=np.float32)], [], SAMPLE_RATE
    for index, sentence in enumerate(SENTENCES):
        wav = folder / f"{index}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "-v", "en-us", "-s", "160", "-g", "4", sentence], check=True, capture_output=True)
        speech = read_audio(wav)
        pause = np.zeros(int(PAUSES_S[index % len(PAUSES_S)] * SAMPLE_RATE), dtype=np.float32)
        pieces += [speech, pause]
        spans.append((position / SAMPLE_RATE, (position + len(speech)) / SAMPLE_RATE))
        position += len(speech) + len(pause)
    audio = np.concatenate(pieces)
    audio += noise.normal(0, 10 ** (-65 / 20), len(audio)).astype(np.float32)
    path = folder / "sentences.wav"
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path, spans


def _whisper(ws, compression: str = "int8") -> WhisperRecognizer:
    recognizer = make_recognizer(ws.store, engine="whisper", compression=compression)
    assert isinstance(recognizer, WhisperRecognizer)
    return recognizer


def test_a_batched_run_gives_the_same_phrases_and_words_as_one_by_one(workspace, recording, monkeypatch):
    path, spans = recording
    monkeypatch.setattr(file_transcription, "GROUP_S", 5.0)  # several windows out of 40 s
    recognizer = _whisper(workspace)
    one_by_one = FileTranscriber(recognizer, None, batch_size=1)
    alone = one_by_one.run(path)
    batched = FileTranscriber(recognizer, None, batch_size=8)
    seen: list[list[Phrase]] = []
    together = batched.run(path, on_segments=seen.append)
    windows = one_by_one.phrases_recognized
    assert windows >= 4 and one_by_one.batch_sizes == [1] * windows, "one window per decode"
    # The first batch holds one window (the first phrases appear soon), the next ones up to eight.
    assert batched.phrases_recognized == windows and sum(batched.batch_sizes) == windows
    assert batched.batch_sizes[0] == 1 and batched.batch_sizes[1] == min(8, windows - 1), batched.batch_sizes
    assert [p.text for p in together.segments] == [p.text for p in alone.segments]
    for a, b in zip(together.segments, alone.segments):
        assert a.start == pytest.approx(b.start, abs=0.05) and a.end == pytest.approx(b.end, abs=0.05), (a, b)
    assert seen and seen[-1] == together.segments
    # Punctuation stays with the word before it: no line begins with the full stop of the previous phrase.
    assert all(p.text[:1].isalnum() for p in together.segments), [p.text for p in together.segments]
    # Real words, each phrase inside the speech it came from (cut at pauses: no phrase spans a 1 s pause).
    reference = " ".join(SENTENCES)
    assert word_errors(together.text, reference) <= len(reference.split()) // 5, together.text
    assert len(together.segments) >= 6
    for phrase in together.segments:
        inside = [s for s in spans if s[0] - 0.5 <= phrase.start and phrase.end <= s[1] + 0.5]
        runs_on = [s for s in spans if s[0] - 0.5 <= phrase.start < s[1]]
        assert inside or runs_on, (phrase, spans)
        assert phrase.end - phrase.start < 9.0, phrase
    # Nothing in the silences: no phrase starts in a pause of a second or more.
    for (_, end), (start, _), pause in zip(spans, spans[1:], PAUSES_S * 2):
        if pause >= 1.0:
            assert not [p for p in together.segments if end + 0.3 < p.start < start - 0.3], (end, start)


def test_skipped_and_repeated_phrases_are_found_by_their_words_per_second():
    spans = [(0.0, 3.0, 10.0), (3.0, 6.0, 20.0), (6.0, 7.0, 30.0)]
    spoken = [(0.2, 0.5, " The"), (0.5, 1.0, " birch"), (1.0, 2.8, " canoe."), (3.2, 3.6, " Glue"), (3.6, 4.0, " the"),
              (4.0, 5.8, " sheet."), (6.1, 6.6, " Yes.")]
    assert file_transcription.doubtful_phrases(spoken, spans) == 0
    # Whisper dropped the first sentence and the alignment stretched one word of the next over it.
    stretched = [(0.0, 2.3, " Blue"), (2.3, 4.7, " machine"), (4.7, 5.8, " sheet."), (6.1, 6.6, " Yes.")]
    assert file_transcription.doubtful_phrases(stretched, spans) == 2  # two words over 6 s of two phrases
    assert file_transcription.doubtful_phrases([w for w in spoken if w[0] < 6.0], spans) == 1  # the last one lost
    assert file_transcription.doubtful_phrases([(0.0, 0.1, " .")] + spoken[3:], spans) == 1  # punctuation is no word
    # A repetition loop: the first sentence three times over, all aligned into the first phrase.
    looped = [(0.2 + 0.1 * i, 0.3 + 0.1 * i, w[2]) for i, w in enumerate(spoken[:3] * 9)] + spoken[3:]
    assert file_transcription.doubtful_phrases(looped, spans) == 1
    # The quiet kept around each phrase is not speech: a one-word phrase of 0.5 s in 1.3 s is no skip.
    assert file_transcription.doubtful_phrases([(0.5, 0.9, " Yes.")], [(0.0, 1.3, 0.0)], padding_s=0.8) == 0
    assert file_transcription.doubtful_phrases([(0.5, 0.9, " Yes.")], [(0.0, 1.3, 0.0), (1.3, 2.0, 5.0)]) == 2
    # A phrase alone in its window with no words is what Whisper heard (a cough), not a skip; a loop in it still is.
    assert file_transcription.doubtful_phrases([], [(0.0, 2.0, 0.0)]) == 0
    assert file_transcription.doubtful_phrases([(0.1 * i, 0.1 * i + 0.1, " dog") for i in range(20)], [(0.0, 2.0, 0.0)]) == 1


def test_a_window_with_a_skipped_sentence_is_decoded_again_on_its_own(workspace, recording, monkeypatch):
    """The batched decode of the first window loses its second sentence's words (as tiny.en sometimes does on a full
    window); the window is decoded again alone and the sentence comes back in its own phrase."""
    path, spans = recording
    monkeypatch.setattr(file_transcription, "GROUP_S", 12.0)
    recognizer = _whisper(workspace)
    decode = recognizer.recognize_words_batch
    lost: list[str] = []
    decoded: list[tuple[float, float, str]] = []

    def skipping(inputs, alone=True, timestamps=False):
        found = decode(inputs, alone, timestamps)
        decoded.extend(w for window in found if window for w in window)
        if not lost:  # the file's first window: drop the words of its second phrase
            first = found[0] or []
            cut = [w for w in first if w[0] > 2.5 and w[1] < 6.0]
            lost.extend(w[2] for w in cut)
            found[0] = [w for w in first if w not in cut]
        return found

    monkeypatch.setattr(recognizer, "recognize_words_batch", skipping)
    transcriber = FileTranscriber(recognizer, None)
    result = transcriber.run(path)
    assert lost and transcriber.windows_redone >= 1
    # Punctuation is joined to its word (a lone "." timed at a phrase's start would begin that line).
    assert decoded and all(any(ch.isalnum() for ch in w[2]) for w in decoded), [w for w in decoded if not w[2].strip(" ").isalnum()]
    second = " ".join(p.text for p in result.segments if spans[1][0] - 0.5 <= p.start < spans[1][1])
    assert word_errors(second, SENTENCES[1]) <= 3, (second, result.segments)


def test_stop_mid_file_keeps_the_phrases_done(workspace, recording, tmp_path, monkeypatch):
    """Stop after the first batch: its phrases are kept (with those already cut), the rest of the file is not read."""
    path, _ = recording
    monkeypatch.setattr(file_transcription, "GROUP_S", 5.0)
    speech = read_audio(path)
    long_path = tmp_path / "twice.wav"
    sf.write(long_path, np.concatenate([speech, speech]), SAMPLE_RATE, subtype="PCM_16")  # about 80 s
    cancel = threading.Event()
    updates: list[list[Phrase]] = []

    def on_segments(found: list[Phrase]) -> None:
        updates.append(found)
        cancel.set()  # the user presses Stop as the first phrases appear

    transcriber = FileTranscriber(_whisper(workspace), workspace.cache, batch_size=2)
    result = transcriber.run(long_path, on_segments=on_segments, cancel=cancel)
    assert result.stopped and not result.cached
    first = updates[0]
    assert first and result.segments[: len(first)] == first, "the phrases done before Stop are kept as they were"
    assert word_errors(" ".join(p.text for p in first), " ".join(SENTENCES)) < len(" ".join(SENTENCES).split())
    notice = next(n for n in result.notices if n.startswith("Stopped at"))
    stopped_at = notice.split()[2]
    minutes, seconds = stopped_at.split(":")
    assert 60 * int(minutes) + int(seconds) < result.duration_s - 20, notice
    assert result.segments[-1].end < result.duration_s - 20
    assert workspace.cache.stats().entries_on_disk == 0


def test_the_compute_type_choice_is_measured_once_and_kept(tmp_path):
    loads: list[str] = []
    timings = {"int8": 0.9, "float32": 0.6}

    def load(compute_type: str) -> str:
        loads.append(compute_type)
        return compute_type

    chosen = choose_compute_type(tmp_path, "cpu-key", "cpu", load, measure=lambda model: timings[model])
    assert chosen.compute_type == "float32" and chosen.measured_now
    assert sorted(loads) == ["float32", "int8"]
    assert "float32" in chosen.reason and "fastest" in chosen.reason and "int8 0.90 s" in chosen.reason
    stored = json.loads((tmp_path / CHOICES_FILE).read_text(encoding="utf-8"))
    assert stored["cpu-key"]["compute_type"] == "float32" and stored["cpu-key"]["seconds"] == timings
    again = choose_compute_type(tmp_path, "cpu-key", "cpu", load, measure=lambda model: 1 / 0)
    assert again.compute_type == "float32" and not again.measured_now and len(loads) == 2
    # Another machine (or model) is another key: measured on its own, the first one kept.
    timings["int8"] = 0.3
    other = choose_compute_type(tmp_path, "other-cpu-key", "cpu", load, measure=lambda model: timings[model])
    assert other.compute_type == "int8" and other.measured_now
    stored = json.loads((tmp_path / CHOICES_FILE).read_text(encoding="utf-8"))
    assert {k: v["compute_type"] for k, v in stored.items()} == {"cpu-key": "float32", "other-cpu-key": "int8"}
    gpu = choose_compute_type(tmp_path, "gpu-key", "cuda", load, measure=lambda model: {"float16": 0.2, "int8_float16": 0.1}[model])
    assert gpu.compute_type == "int8_float16" and loads[-2:] == ["int8_float16", "float16"]


def test_whisper_measures_its_compute_type_once_per_machine_and_a_forced_one_wins(workspace):
    from desktop_ai import paths

    loaded = workspace.store.loaded
    auto = _whisper(workspace, "auto")
    cpu_types = {"cpu": ("int8", "float32"), "cuda": ("int8_float16", "float16")}[auto.device]
    assert auto.compression in cpu_types and auto.compute_measured_now
    assert auto.compute_reason.startswith(f"{auto.compression}: the fastest on this machine")
    assert len(loaded) == 1, "the slower candidate is not kept loaded"
    stored = json.loads((paths.cache_dir() / CHOICES_FILE).read_text(encoding="utf-8"))
    (key, entry), = stored.items()
    assert processor_name() in key and "whisper-tiny.en" in key and entry["compute_type"] == auto.compression
    assert set(entry["seconds"]) == set(cpu_types)
    loads = loaded.loads
    again = _whisper(workspace, "auto")
    assert again.compression == auto.compression and not again.compute_measured_now and loaded.loads == loads
    # The stored choice is what is used: rewritten to the other type, the next recognizer follows it unmeasured.
    other = next(c for c in cpu_types if c != auto.compression)
    entry["compute_type"] = other
    (paths.cache_dir() / CHOICES_FILE).write_text(json.dumps({key: entry}), encoding="utf-8")
    follows = _whisper(workspace, "auto")
    assert follows.compression == other and not follows.compute_measured_now
    # A compression the user picks wins over the measured one, and says so.
    forced = _whisper(workspace, {"int8": "none", "float32": "int8", "int8_float16": "none", "float16": "int8"}[other])
    assert forced.compression == auto.compression and forced.compression != other
    assert "as chosen" in forced.compute_reason
