"""Speech to text: the embedded Whisper tiny.en and PocketSphinx on espeak-ng speech, a tiny wav2vec2 built offline,
file transcription with its cache, progress and Stop, and the errors a user can cause."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from desktop_ai.engine.audio.audio_files import read_audio
from desktop_ai.bench.transcribe import word_errors
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.audio.transcript import Phrase
from desktop_ai.engine.tasks.transcription import (
    FileTranscriber,
    SphinxRecognizer,
    TranscriptionOptions,
    Wav2Vec2Recognizer,
    WhisperRecognizer,
    engine_for_model,
    make_recognizer,
)

SENTENCE = "the quick brown fox jumps over the lazy dog"
TOOLS = ("espeak-ng", "sox")
SAMPLE_RATE = 16000

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="needs espeak-ng and sox")


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=60)


def _word_errors(text: str, reference: str = SENTENCE) -> int:
    return word_errors(text, reference)


def test_word_errors_counts_what_it_should():
    assert _word_errors("The quick brown fox jumps over the lazy dog.") == 0
    assert _word_errors("The quick brown fox jump over the lazy dog") == 1
    assert _word_errors("quick brown fox jumps over a lazy dog, yes") == 3
    assert _word_errors("") == 9


def _noise(seconds: float, dbfs: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    shape = (int(seconds * SAMPLE_RATE), channels) if channels > 1 else int(seconds * SAMPLE_RATE)
    return np.random.default_rng(seed).normal(0.0, 10 ** (dbfs / 20), shape).astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("transcription-speech")
    files = {"raw": folder / "espeak.wav"}
    _run("espeak-ng", "-w", files["raw"], "-v", "en-us", "-s", "150", "-g", "5", SENTENCE)
    # The sentence with a second of quiet on each side, as a recording would have it.
    files["wav"] = folder / "sentence.wav"
    _run("sox", files["raw"], files["wav"], "pad", "1", "1")
    files["wav8k"] = folder / "sentence-8k.wav"
    _run("sox", files["wav"], "-r", "8000", files["wav8k"])
    files["wav44k_stereo"] = folder / "sentence-44k-stereo.wav"
    _run("sox", files["wav"], "-r", "44100", "-c", "2", files["wav44k_stereo"])
    files["flac48k"] = folder / "sentence-48k.flac"
    _run("sox", files["wav"], "-r", "48000", files["flac48k"])
    files["long_flac"] = folder / "sentence-x4.flac"
    _run("sox", files["raw"], files["long_flac"], "repeat", "4")
    return files


def _whisper(ws, **kwargs) -> WhisperRecognizer:
    recognizer = make_recognizer(ws.store, **kwargs)
    assert isinstance(recognizer, WhisperRecognizer)
    return recognizer


def _assert_inside(segments: list[Phrase], duration_s: float) -> None:
    for segment in segments:
        assert 0.0 <= segment.start < segment.end <= duration_s + 1e-6


# --- Whisper tiny.en (embedded) ---------------------------------------------------------------


def test_whisper_tiny_en_transcribes_the_sentence(workspace, speech):
    recognizer = _whisper(workspace)
    assert (recognizer.engine, recognizer.model_id) == ("whisper", "whisper-tiny.en")
    # README: "int8 on the CPU, int8 weights with float16 arithmetic (`int8_float16`) on a GPU"
    assert recognizer.compression == {"cpu": "int8", "cuda": "int8_float16"}[recognizer.device]
    seen: list[list[Phrase]] = []
    result = FileTranscriber(recognizer, workspace.cache).run(speech["wav"], on_segments=seen.append)
    assert _word_errors(result.text) <= 2, result.text
    assert result.segments and not result.stopped and not result.cached
    assert result.duration_s == pytest.approx(sf.info(str(speech["wav"])).duration)
    _assert_inside(result.segments, result.duration_s)
    # The words are spoken from 1 s on: the segment does not start in the leading quiet by much.
    assert result.segments[0].start >= 0.5
    assert seen and seen[-1] == result.segments
    assert (result.engine, result.model_id, result.compression) == ("whisper", "whisper-tiny.en", recognizer.compression)
    assert "No speech was found in this file." not in result.notices


def test_whisper_loads_once_and_reports_its_compute_type(workspace, speech):
    loaded = workspace.store.loaded
    first = _whisper(workspace)
    second = _whisper(workspace, options=TranscriptionOptions(beam_size=1))
    assert len(loaded) == 1 and loaded.loads == 1
    assert second.model is first.model
    fp32 = _whisper(workspace, compression="none")
    assert fp32.compression == {"cpu": "float32", "cuda": "float16"}[fp32.device]
    assert fp32.compression != first.compression
    assert len(loaded) == 2 and loaded.loads == 2
    assert fp32.model is not first.model
    result = FileTranscriber(fp32, workspace.cache).run(speech["wav"])
    assert _word_errors(result.text) <= 2, result.text
    assert result.compression == fp32.compression


def test_whisper_recognize_keeps_offsets_and_drops_what_it_invents_past_the_audio(workspace, speech):
    recognizer = _whisper(workspace)
    samples = read_audio(speech["raw"])
    segments = recognizer.recognize(samples, offset_s=10.0)
    assert _word_errors(" ".join(s.text for s in segments)) <= 2
    _assert_inside([Phrase(s.start - 10.0, s.end - 10.0, s.text) for s in segments], len(samples) / SAMPLE_RATE)
    assert segments, "the sentence came back as segments"
    assert segments[0].start >= 10.0 and segments[-1].end > segments[0].start, "times are offset by 10 s"
    # Three seconds of faint noise, sent straight to the model: tiny.en writes " ." pieces timed up to 28 s.
    for segment in recognizer.recognize(_noise(3.0, -50.0), offset_s=5.0):
        assert 5.0 <= segment.start < segment.end <= 8.0
        assert any(ch.isalnum() for ch in segment.text)
    # Issue 17: the loop above passes when nothing comes back, so the speech is also sent with noise after it,
    # where the invented part must be dropped and the words kept, inside the audio.
    padded = np.concatenate([samples, _noise(3.0, -50.0)])
    kept = recognizer.recognize(padded, offset_s=5.0)
    assert kept and _word_errors(" ".join(s.text for s in kept)) <= 2, kept
    _assert_inside([Phrase(s.start - 5.0, s.end - 5.0, s.text) for s in kept], len(padded) / SAMPLE_RATE)


def test_second_run_is_a_cache_hit_and_changes_are_misses(workspace, speech, tmp_path):
    recognizer = _whisper(workspace)
    transcriber = FileTranscriber(recognizer, workspace.cache)
    first = transcriber.run(speech["wav"])
    assert not first.cached and transcriber.phrases_recognized == 1
    seen: list[list[Phrase]] = []
    again = transcriber.run(speech["wav"], on_segments=seen.append)
    assert again.cached and transcriber.phrases_recognized == 1
    assert again.segments == first.segments and again.text == first.text
    assert seen == [first.segments]
    assert workspace.cache.stats().hits >= 1
    # Another beam size is another result.
    beam1 = FileTranscriber(_whisper(workspace, options=TranscriptionOptions(beam_size=1)), workspace.cache)
    other = beam1.run(speech["wav"])
    assert not other.cached and beam1.phrases_recognized == 1
    assert _word_errors(other.text) <= 2
    # The same audio with other bytes (an edit: a little more quiet at the end) is a new file.
    edited = tmp_path / "sentence.wav"
    data, rate = sf.read(str(speech["wav"]), dtype="int16")
    sf.write(str(edited), np.concatenate([data, np.zeros(rate // 2, dtype=np.int16)]), rate, subtype="PCM_16")
    result = transcriber.run(edited)
    assert not result.cached and transcriber.phrases_recognized == 2
    assert _word_errors(result.text) <= 2
    # ... and the cache survives the process: a new transcriber over the same disk cache hits.
    workspace.cache.forget_memory()
    fresh = FileTranscriber(recognizer, workspace.cache)
    assert fresh.run(speech["wav"]).cached and fresh.phrases_recognized == 0


@pytest.mark.parametrize("key", ["wav44k_stereo", "flac48k"])
def test_other_rates_channels_and_formats_transcribe_the_same(workspace, speech, key):
    result = FileTranscriber(_whisper(workspace, options=TranscriptionOptions(beam_size=1))).run(speech[key])
    assert _word_errors(result.text) <= 2, result.text
    assert result.duration_s == pytest.approx(sf.info(str(speech["wav"])).duration, abs=0.01)
    _assert_inside(result.segments, result.duration_s)


def test_telephone_rate_8k_keeps_the_words_the_band_keeps(workspace, speech):
    """At 8 kHz espeak loses everything above 4 kHz, and tiny.en hears "quick round box jump over the lady dog"
    (measured; the same words when the whole file is given to the model without voice activity, so the loss is
    the model's, not the pipeline's); a fresh CI run heard "quick round box jump over my lady dog" (6 errors):
    CTranslate2's multi-threaded int8 kernels are not bit-identical run to run, and on audio this degraded
    the greedy choice can flip. What is asserted is a floor, not the goal."""
    result = FileTranscriber(_whisper(workspace, options=TranscriptionOptions(beam_size=1))).run(speech["wav8k"])
    assert _word_errors(result.text) <= 6, result.text
    assert {"quick", "over", "dog"} <= set(re.sub(r"[^a-z ]+", " ", result.text.lower()).split())
    assert result.duration_s == pytest.approx(sf.info(str(speech["wav"])).duration, abs=0.01)
    _assert_inside(result.segments, result.duration_s)


def _empty(path: Path) -> Path:
    path = path / "empty.wav"
    path.touch()
    return path


def _text(path: Path) -> Path:
    path = path / "notes.wav"
    path.write_text("Meeting notes: buy milk, call Anna.\n" * 20, encoding="utf-8")
    return path


def _scrambled(path: Path, source: Path) -> Path:
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path = path / "scrambled.flac"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder, speech: _empty(folder), '"empty.wav" is empty'),
        (lambda folder, speech: _text(folder), '"notes.wav" is not an audio file'),
        (lambda folder, speech: _scrambled(folder, speech["long_flac"]), '"scrambled.flac" is damaged or truncated'),
    ],
    ids=["empty-wav", "text-as-wav", "corrupt-flac"],
)
def test_bad_files_are_invalid_input_naming_the_file(workspace, speech, tmp_path, make, message):
    path = make(tmp_path, speech)
    transcriber = FileTranscriber(_whisper(workspace), workspace.cache)
    with pytest.raises(InvalidInputError) as caught:
        transcriber.run(path)
    assert message in str(caught.value)
    assert path.name in str(caught.value)
    assert workspace.cache.stats().entries_on_disk == 0


@pytest.mark.parametrize(
    ("seconds", "rate", "channels", "dbfs"),
    [(600, 16000, 1, None), (120, 44100, 2, -50.0), (3, 16000, 1, -50.0)],
    ids=["10min-digital-silence", "2min-noise-44k-stereo", "3s-noise"],
)
def test_no_speech_means_no_segments_and_full_progress(workspace, tmp_path, seconds, rate, channels, dbfs):
    path = tmp_path / "quiet.wav"
    frames = seconds * rate
    if dbfs is None:
        sf.write(str(path), np.zeros((frames, channels), dtype=np.int16), rate, subtype="PCM_16")
    else:
        noise = np.random.default_rng(11).normal(0.0, 10 ** (dbfs / 20), (frames, channels)).astype(np.float32)
        sf.write(str(path), noise, rate, subtype="PCM_16")
    transcriber = FileTranscriber(_whisper(workspace), workspace.cache)
    reports: list[tuple[str, float | None]] = []
    result = transcriber.run(path, progress=lambda message, fraction: reports.append((message, fraction)))
    # Whisper never sees silence, so it cannot make text up from it.
    assert result.segments == [] and result.text == ""
    assert transcriber.phrases_recognized == 0
    assert any("No speech was found" in notice for notice in result.notices)
    assert result.duration_s == pytest.approx(seconds)
    fractions = [fraction for _, fraction in reports]
    assert len(fractions) == -(-seconds // 30)  # one report per 30 s chunk
    assert all(b > a for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] == 1.0
    clock = f"{seconds // 60}:{seconds % 60:02d}"
    assert reports[-1][0] == f"{clock} of {clock}"


def test_stop_from_the_progress_callback_keeps_the_text_so_far_and_caches_nothing(workspace, speech, tmp_path):
    path = tmp_path / "long.wav"
    sentence = read_audio(speech["wav"])
    audio = np.concatenate([sentence, _noise(75.0 - len(sentence) / SAMPLE_RATE, -50.0, seed=2)])
    sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    cancel = threading.Event()
    reports: list[float | None] = []

    def progress(message: str, fraction: float | None) -> None:
        reports.append(fraction)
        cancel.set()

    transcriber = FileTranscriber(_whisper(workspace), workspace.cache)
    result = transcriber.run(path, progress=progress, cancel=cancel)
    assert result.stopped and not result.cached
    assert reports == [pytest.approx(30 / 75)]  # it stopped after the first chunk
    assert _word_errors(result.text) <= 2  # the sentence in the first chunk was already written
    assert transcriber.phrases_recognized == 1
    assert any(notice.startswith("Stopped at 0:30 of 1:15") for notice in result.notices)
    assert not any("No speech was found" in notice for notice in result.notices)
    assert workspace.cache.stats().entries_on_disk == 0
    # Nothing was cached: a run stopped before it starts is not a hit.
    again = transcriber.run(path, cancel=cancel)
    assert again.stopped and not again.cached and again.segments == []


# --- wav2vec2 (tiny, random weights) ----------------------------------------------------------


def test_wav2vec2_from_a_folder_runs_end_to_end(workspace, speech, tiny_wav2vec2_dir):
    model = str(tiny_wav2vec2_dir)
    assert engine_for_model(workspace.store, model) == "wav2vec2"
    recognizers = {}
    for compression in ("int8", "none"):
        recognizer = make_recognizer(workspace.store, model=model, device="cpu", compression=compression)
        assert isinstance(recognizer, Wav2Vec2Recognizer)
        assert (recognizer.engine, recognizer.model_id, recognizer.device) == ("wav2vec2", model, "cpu")
        assert recognizer.compression == compression
        recognizers[compression] = recognizer
    assert workspace.store.loaded.loads == 2
    quantized = [type(m).__module__ for m in recognizers["int8"].loaded.model.modules() if "quantized" in type(m).__module__]
    assert quantized  # int8 really swapped the Linear layers
    assert not any("quantized" in type(m).__module__ for m in recognizers["none"].loaded.model.modules())
    for compression, recognizer in recognizers.items():
        seen: list[list[Phrase]] = []
        result = FileTranscriber(recognizer, workspace.cache).run(speech["wav"], on_segments=seen.append)
        assert (result.engine, result.compression) == ("wav2vec2", compression)
        assert isinstance(result.text, str) and not result.stopped
        assert len(result.segments) == 1  # one phrase in, one line out (random weights: the words are noise)
        assert isinstance(result.segments[0].text, str) and result.segments[0].text
        _assert_inside(result.segments, result.duration_s)
        assert seen[-1] == result.segments
    # Different compression, different cache entry.
    assert workspace.cache.stats().entries_on_disk == 2


# --- PocketSphinx (embedded) ------------------------------------------------------------------


SPHINX_NUMBERS = "one two three four five six seven"


def sphinx_speech(path: Path) -> Path:
    """Counting in espeak-ng's en-us+m3 voice: what PocketSphinx's acoustic model hears (measured: "One two three
    four five to seven", one word wrong); it hears nothing right of the fox sentence in any espeak voice tried."""
    _run("espeak-ng", "-w", path, "-v", "en-us+m3", "-s", "150", "-g", "10", SPHINX_NUMBERS)
    return path


def test_sphinx_returns_a_timed_phrase(workspace, speech, tmp_path):
    """Issue 17 (weak assertions): the words are checked, not only that some capitalised text came back."""
    recognizer = make_recognizer(workspace.store, model="pocketsphinx-en-us")
    assert isinstance(recognizer, SphinxRecognizer)
    assert (recognizer.engine, recognizer.device, recognizer.compression) == ("sphinx", "cpu", "none")
    samples = read_audio(sphinx_speech(tmp_path / "numbers.wav"))
    (phrase,) = recognizer.recognize(samples, offset_s=2.0)
    assert phrase.text[0].isupper()
    assert word_errors(phrase.text, SPHINX_NUMBERS) <= 2, phrase.text
    assert phrase.start == 2.0
    assert phrase.end == pytest.approx(2.0 + len(samples) / SAMPLE_RATE)



@pytest.mark.parametrize("engine", ["whisper", "sphinx"])
def test_digital_silence_is_not_sent_to_a_model(workspace, engine):
    """Given a few seconds of zeros, tiny.en writes "You" and PocketSphinx "Dog"; the recognizers return nothing."""
    recognizer = make_recognizer(workspace.store, engine=engine)
    assert recognizer.recognize(np.zeros(3 * SAMPLE_RATE, dtype=np.float32), offset_s=1.0) == []
    assert recognizer.recognize(np.zeros(0, dtype=np.float32)) == []


# --- make_recognizer errors -------------------------------------------------------------------


def test_unknown_engine(workspace):
    with pytest.raises(InvalidInputError, match="Unknown speech engine 'kaldi'.*whisper, wav2vec2, sphinx"):
        make_recognizer(workspace.store, engine="kaldi")


def test_a_whisper_model_with_the_wav2vec2_engine(workspace):
    with pytest.raises(InvalidInputError) as caught:
        make_recognizer(workspace.store, engine="wav2vec2", model="whisper-tiny.en")
    assert "whisper-tiny.en" in str(caught.value)
    assert "whisper engine" in str(caught.value) and "wav2vec2" in str(caught.value)
    assert workspace.store.loaded.loads == 0


def test_a_folder_that_is_not_a_speech_model(workspace, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}', encoding="utf-8")
    with pytest.raises(ModelUnavailableError, match="is not a speech model"):
        make_recognizer(workspace.store, model=str(folder))
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        make_recognizer(workspace.store, model=str(tmp_path))


@pytest.mark.parametrize("model", ["wav2vec2-base-960h", "whisper-base"])
def test_a_hub_model_offline_says_what_to_do(workspace, model, tmp_path, monkeypatch):
    """Issue 17 (skips): an empty Hugging Face cache of its own, so it runs even where the model is cached."""
    from huggingface_hub import constants

    from desktop_ai.engine.models.catalogue import find_entry

    empty = tmp_path / "hf-home"
    (empty / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(empty))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(empty / "hub"))
    assert workspace.store.availability(find_entry(model)) == "needs download"
    with pytest.raises(ModelUnavailableError) as caught:
        make_recognizer(workspace.store, model=model)
    message = str(caught.value)
    assert "offline" in message and "download" in message and "folder" in message
    assert workspace.store.loaded.loads == 0


def test_prune_is_not_for_whisper_so_int8_is_used_and_said(workspace):
    recognizer = _whisper(workspace, compression="prune")
    assert recognizer.compression == {"cpu": "int8", "cuda": "int8_float16"}[recognizer.device]
    assert any("Pruning does not apply" in notice and "int8" in notice for notice in recognizer.notices)


# --- grouped decoding and damaged files ------------------------------------------------------------


def test_neighbouring_phrases_are_decoded_together_at_their_own_times(workspace, speech, tmp_path):
    import soundfile as sf

    sentence = read_audio(speech["raw"])
    pause = _noise(1.5, -65)
    audio = np.concatenate([pause, sentence, pause, sentence, pause, sentence, pause])
    path = tmp_path / "three.wav"
    sf.write(path, audio, SAMPLE_RATE)
    starts = [1.5 + i * (len(sentence) / SAMPLE_RATE + 1.5) for i in range(3)]
    transcriber = FileTranscriber(_whisper(workspace), None)
    result = transcriber.run(path)
    assert transcriber.phrases_recognized == 1, "three short phrases make one Whisper input"
    # Whisper may time a sentence as one segment or as two; either way every segment must land inside its own
    # sentence, and each sentence's segments together hold it from start to end. Word accuracy is asserted on
    # the single sentence above: tiny.en's int8 decode of espeak-ng's voice varies between runs and processes.
    length = len(sentence) / SAMPLE_RATE
    for start in starts:
        mine = [seg for seg in result.segments if start - 0.5 <= seg.start < start + length]
        assert mine, (start, result.segments)
        assert abs(mine[0].start - start) < 0.5 and mine[-1].end <= start + length + 0.4, (start, mine)
        words = set(re.sub(r"[^a-z ]+", " ", " ".join(seg.text for seg in mine).lower()).split())
        assert words & {"quick", "brown", "fox", "jump", "jumps"} and words & {"lazy", "dog"}, mine
    assert all(any(st - 0.5 <= seg.start < st + length for st in starts) for seg in result.segments), result.segments


def test_a_file_damaged_part_way_keeps_what_came_before(workspace, speech, tmp_path):
    import soundfile as sf

    sentence = read_audio(speech["raw"])
    audio = np.concatenate([_noise(1.0, -65), sentence, _noise(80.0, -65)])  # damage after the first 30 s chunk
    whole = tmp_path / "whole.flac"
    sf.write(whole, audio, SAMPLE_RATE)
    data = whole.read_bytes()
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(data[: len(data) * 7 // 10])
    result = FileTranscriber(_whisper(workspace), workspace.cache).run(damaged)
    assert _word_errors(result.text) <= 2, result.text
    assert any("damaged.flac" in n and "is damaged or truncated" in n and "kept" in n for n in result.notices), result.notices
    again = FileTranscriber(_whisper(workspace), workspace.cache).run(damaged)
    assert not again.cached, "a damaged file's partial transcript is not cached as if it were whole"


def test_a_live_decode_that_repeats_itself_is_redone_with_the_full_window(workspace, speech, monkeypatch):
    from desktop_ai.engine.tasks.transcription import _repeats_itself, live_options

    assert _repeats_itself("The quick brown fox jumps. The quick brown fox jumps.")
    assert not _repeats_itself("The quick brown fox jumps over the lazy dog.")
    recognizer = _whisper(workspace, engine="whisper", options=live_options())
    samples = read_audio(speech["wav"])
    monkeypatch.setattr(recognizer, "_recognize_short", lambda s, o, d, lang: [Phrase(o, o + 1.0, "the dog the dog the dog the dog")])
    found = recognizer.recognize(samples, 0.0)
    assert len(found) == 1 and _word_errors(found[0].text) <= 2, found


def test_live_decodes_of_short_commands_with_the_command_prompt_say_each_once(workspace, tmp_path):
    """Told to expect the spoken commands, tiny.en copied the prompt's pattern when it saw only the phrase's own
    length of audio ("Comma. Comma.", "Full stop. Full stop.", "Sc Sh Sh Sh"): live phrases get 10 s of context."""
    from desktop_ai.engine.tasks.dictation_commands import COMMAND_PROMPT
    from desktop_ai.engine.tasks.transcription import live_options

    recognizer = _whisper(workspace, engine="whisper", options=live_options(prompt=COMMAND_PROMPT))
    heard = {}
    for spoken in ("comma", "full stop", "scratch that", "open every window"):
        wav = tmp_path / f"{spoken.replace(' ', '-')}.wav"
        _run("espeak-ng", "-w", wav, "-v", "en-us", "-s", "150", "-g", "5", spoken)
        samples = read_audio(wav)
        quiet = np.zeros(SAMPLE_RATE // 4, dtype=np.float32)  # the 250 ms before speech a phrase keeps
        heard[spoken] = " ".join(p.text for p in recognizer.recognize(np.concatenate([quiet, samples, quiet]), 0.0))
    for spoken, text in heard.items():
        assert re.sub(r"[^a-z ]", "", text.lower()).split() == spoken.split(), heard
