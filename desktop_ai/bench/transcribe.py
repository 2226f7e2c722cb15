"""bench --task transcribe: real-time factor and WER of our recognizers against each library's plain defaults,
the cached file, and end-of-phrase latency of live dictation replayed in real time."""

from __future__ import annotations

import gc
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.catalogue import (
    TASK_TRANSCRIBE,
)
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.models.store import ModelStore

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- transcribe

BENCH_SPEECH = (
    "the quick brown fox jumps over the lazy dog",
    "please call stella and ask her to bring these things with her from the store",
    "the weather is nice today so we will walk to the park",
    "i would like a cup of coffee with milk and sugar",
    "the meeting starts early in the morning on monday",
    "she opened the window and looked at the mountains",
    "we need to buy bread cheese and apples for dinner",
    "my brother plays the guitar in a small band",
    "the train to london leaves from the main platform",
    "thank you for listening and have a good day",
)
BENCH_PAUSE_S = 1.2
LATENCY_PHRASES = 4  # the latency run replays this many phrases in real time


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level edit distance, after lower-casing and dropping punctuation."""
    def words(text: str) -> list[str]:
        return "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()

    hyp, ref = words(hypothesis), words(reference)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def bench_speech(folder: Path, sentences: tuple[str, ...] = BENCH_SPEECH) -> tuple[Path, Any, list[tuple[float, float]]]:
    """Sentences spoken by espeak-ng with pauses and a low noise floor, as one 16 kHz recording.
    Returns the WAV, its samples and each sentence's (start, end) in seconds."""
    import subprocess

    import numpy as np
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng") is None:
        raise ModelUnavailableError("bench --task transcribe speaks its test sentences with espeak-ng, which is not installed "
                                    "(apt install espeak-ng), or pass --audio FILE with speech of your own.")
    rng = np.random.default_rng(0)
    pause = np.zeros(int(BENCH_PAUSE_S * 16000), dtype=np.float32)
    pieces, times, position = [pause], [], len(pause)
    for index, sentence in enumerate(sentences):
        wav = folder / f"sentence-{index}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "-v", "en-us", "-s", "150", "-g", "5", sentence], check=True, capture_output=True)
        speech, rate = sf.read(wav, dtype="float32")
        speech = soxr.resample(speech, rate, 16000).astype(np.float32)
        pieces += [speech, pause]
        times.append((position / 16000, (position + len(speech)) / 16000))
        position += len(speech) + len(pause)
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 10 ** (-65 / 20), len(audio)).astype(np.float32)  # a quiet room, not digital silence
    path = folder / "bench-speech.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path, audio, times


class _RealTimeReplay:
    """Plays samples to a DictationSession at the pace a microphone would deliver them (the latency run)."""

    def __init__(self, samples: Any, block_s: float = 0.05) -> None:
        self.samples = samples
        self.block = int(block_s * 16000)
        self.position = 0
        self.started = 0.0
        self.active = False
        self.error = None
        self.dropped_seconds = 0.0
        self.pending_seconds = 0.0
        self.device = None

    def start(self) -> None:
        self.started, self.active = time.perf_counter(), True

    def stop(self) -> None:
        self.active = False

    def level(self) -> Any:
        import numpy as np

        from desktop_ai.engine.audio.microphone import Level

        recent = self.samples[max(0, self.position - 1600) : self.position]
        rms = float(np.sqrt(np.mean(recent**2))) if len(recent) else 0.0
        return Level(20 * math.log10(rms) if rms > 0 else -120.0, float(np.max(np.abs(recent))) if len(recent) else 0.0)

    def read(self, timeout: float | None = 0.05) -> Any:
        deadline = time.perf_counter() + (timeout or 0.0)
        while True:
            due = int((time.perf_counter() - self.started) * 16000) // self.block * self.block
            due = min(due, len(self.samples))
            if due > self.position or time.perf_counter() >= deadline or not self.active:
                break
            time.sleep(0.005)
        chunk = self.samples[self.position : due] if self.active else self.samples[self.position :]
        self.position += len(chunk)
        if self.position >= len(self.samples):
            self.active = False  # played to the end, like a microphone that was switched off
        return chunk


def bench_transcribe(
    store: ModelStore, model: str | None, device: str, methods: list[Compression], audio: list[str] | None,
    spoken: tuple[str, ...], repeats: int, say: Callable[[str], None],
) -> BenchReport:
    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-") as scratch:
        return _bench_transcribe_in(store, model, device, methods, audio, spoken, repeats, say, Path(scratch), TASK_TRANSCRIBE)


def _bench_transcribe_in(
    store: ModelStore, model: str | None, device: str, methods: list[Compression], audio: list[str] | None,
    spoken: tuple[str, ...], repeats: int, say: Callable[[str], None], scratch: Path, task: str,
) -> BenchReport:
    from desktop_ai.engine.audio.audio_files import probe_audio, read_audio
    from desktop_ai.engine.tasks.dictation import DictationSession
    from desktop_ai.engine.tasks.transcription import (
        ENGINE_DEFAULT_MODELS,
        FileTranscriber,
        TranscriptionOptions,
        engine_for_model,
        live_options,
        make_recognizer,
    )

    if audio:
        path, reference = Path(audio[0]), None
        samples = read_audio(path)
        times: list[tuple[float, float]] = []
        say(f"Audio: {path}")
    else:
        say("Speaking the test sentences with espeak-ng")
        path, samples, times = bench_speech(scratch, spoken)
        reference = " ".join(spoken)
    duration = probe_audio(path).duration_s
    engines = [engine_for_model(store, model)] if model else ["whisper", "wav2vec2", "sphinx"]
    choice = pick_device(device)
    report = BenchReport(task, "speech recognizers" if not model else model, choice.describe(), environment=environment())
    notes: list[str] = []

    def accuracy(text: str, against: str | None = reference) -> str:
        if against is None:
            return "n/a"
        return f"{100 * word_errors(text, against) / len(against.split()):.1f}%"

    def timed(run: Callable[[], str]) -> tuple[float, str]:
        runs, text = [], ""
        for _ in range(repeats):
            started = time.perf_counter()
            text = run()
            runs.append(time.perf_counter() - started)
        return median(runs), text

    def row(name: str, compression: str, seconds: float, text: str, extra: dict[str, float | str] | None = None) -> BenchRow:
        values: dict[str, float | str] = {"real-time factor": seconds / duration, "x baseline": float("nan"), "WER": accuracy(text)}
        return BenchRow(name, compression, values | (extra or {}))

    whisper_int8_rtf: float | None = None
    for engine in engines:
        engine_model = model or ENGINE_DEFAULT_MODELS[engine]
        try:
            entry = store.resolve_entry(engine_model, task)
            location = store.locate(entry) if entry.source != "hub" or store.availability(entry) == "downloaded" else None
        except ModelUnavailableError as error:
            location, unavailable = None, str(error)
        else:
            unavailable = f"{entry.title} is not downloaded (this machine cannot reach the Hub); pass --model FOLDER to include it"
        if location is None:
            notes.append(f"{engine}: skipped: {unavailable}.")
            continue
        say(f"{engine}: loading the baseline")
        if engine == "whisper":
            from faster_whisper import WhisperModel

            plain = WhisperModel(str(location.path), device="cuda" if choice.device == "cuda" else "cpu")

            def baseline() -> str:
                segments, _ = plain.transcribe(str(path))
                return " ".join(s.text for s in segments)

            baseline_name = "baseline: faster-whisper WhisperModel(path).transcribe(file), defaults"
            baseline_compression = "default (model file's type)"
            variants = [m for m in methods if m is not Compression.PRUNE]
        elif engine == "wav2vec2":
            from transformers import pipeline

            asr = pipeline("automatic-speech-recognition", model=str(location.path), device=choice.device if choice.is_gpu else -1)

            def baseline() -> str:
                return asr(str(path))["text"]

            baseline_name = "baseline: transformers pipeline('automatic-speech-recognition'), defaults"
            baseline_compression = "none (fp32)"
            variants = [m for m in methods if m is not Compression.PRUNE]
        else:
            import speech_recognition as sr

            def baseline() -> str:
                with sr.AudioFile(str(path)) as source:
                    data = sr.Recognizer().record(source)
                try:
                    return sr.Recognizer().recognize_sphinx(data)
                except sr.UnknownValueError:
                    return ""

            baseline_name = "baseline: SpeechRecognition recognize_sphinx(whole file), defaults"
            baseline_compression = "none"
            variants = [Compression.NONE]
        say(f"{engine}: warming up")
        baseline()
        base_seconds, base_text = timed(baseline)
        base_row = row(baseline_name, baseline_compression, base_seconds, base_text)
        base_row.values["x baseline"] = 1.0
        report.rows.append(base_row)
        for method in variants:
            say(f"{engine}: ours, {method.value}")
            recognizer = make_recognizer(store, engine, engine_model, device, method, TranscriptionOptions())
            transcriber = FileTranscriber(recognizer, None)
            transcriber.run(path)  # warm-up
            seconds, text = timed(lambda: transcriber.run(path).text)
            ours = row(f"desktop-ai {engine} (voice-activity phrases)", recognizer.compression, seconds, text)
            ours.values["x baseline"] = base_seconds / seconds
            report.rows.append(ours)
            if engine == "whisper" and recognizer.compression == "int8":
                whisper_int8_rtf = seconds / duration
        if engine == "whisper":
            cached = FileTranscriber(make_recognizer(store, engine, engine_model, device, Compression.INT8), ResultCache(None))
            cached.run(path)
            hit_seconds, _ = timed(lambda: cached.run(path).text)
            report.rows.append(BenchRow("desktop-ai whisper, same file again (cache)", "int8", {
                "real-time factor": hit_seconds / duration, "x baseline": base_seconds / hit_seconds, "ms": 1000 * hit_seconds,
            }))
            del plain
        gc.collect()

    whisper_ran = any(r.name.startswith("desktop-ai whisper") for r in report.rows)
    if whisper_ran and reference is not None:  # issue 31: minutes of speech, and faster-whisper's batched pipeline
        from desktop_ai.bench.long_speech import bench_long_recording

        long_model = model or ENGINE_DEFAULT_MODELS["whisper"]
        long_rows, long_notes = bench_long_recording(store, long_model, device, repeats, say, scratch, spoken, word_errors)
        report.rows.extend(long_rows)
        notes.extend(long_notes)

    latency_note = ""
    if "whisper" in engines and times:
        phrases = min(LATENCY_PHRASES, len(times))
        say(f"whisper: end-of-phrase latency, replaying {phrases} phrases in real time")
        end = int((times[phrases - 1][1] + BENCH_PAUSE_S) * 16000)
        replay = _RealTimeReplay(samples[:end])
        whisper_model = model if model and engine_for_model(store, model) == "whisper" else ENGINE_DEFAULT_MODELS["whisper"]
        session = DictationSession(replay, lambda: make_recognizer(store, "whisper", whisper_model, device, Compression.INT8, live_options()))
        result = session.run(lambda event: None, threading.Event(), max_seconds=end / 16000)
        latencies = result.latencies_s
        report.rows.append(BenchRow("desktop-ai dictation: end-of-phrase latency (end of speech → final text)", "int8", {
            "median latency s": median(latencies), "max latency s": max(latencies) if latencies else float("nan"),
            "WER": accuracy(" ".join(p.text for p in result.segments), " ".join(spoken[:phrases])),
            "partials": session.partials, "finals from partial": session.finals_from_partial,
        }))
        latency = median(latencies)
        latency_note = f"; end-of-phrase latency {latency:.2f} s ({'met' if latency < 1.0 else 'not met'})"
    rtf_note = (f"whisper int8 real-time factor {whisper_int8_rtf:.3f} ({'met' if whisper_int8_rtf < 0.15 else 'not met'})"
                if whisper_int8_rtf is not None else "whisper int8 was not run")
    notes.insert(0, (
        f"Audio: {path.name}, {duration:.1f} s" + (f", {len(spoken)} espeak-ng sentences with {BENCH_PAUSE_S} s pauses over a "
        "-65 dBFS noise floor" if reference else "") + f"; {repeats} timed runs each, medians, after a warm-up run. Models are loaded "
        "before timing, in ours and the baselines alike. WER: word error rate against the sentences spoken."
    ))
    notes.append(
        "Ours cuts the audio at pauses (Silero voice activity) and sends only speech to the model; Whisper gets int8 "
        "weights on the CPU, beam 5, and no conditioning on the previous phrase. Latency: the time from the end of a "
        "phrase's speech (in the replayed stream) to its final text; it includes the pause the voice activity needs "
        "before it can call a phrase finished."
    )
    notes.append(f"Goal on a 2-core CPU with tiny.en int8 (real-time factor under 0.15, end-of-phrase latency under 1.0 s): {rtf_note}{latency_note}.")
    notes.append(f"Process memory: {rss_mb():.0f} MB RSS.")
    report.notes.extend(notes)
    return report
