"""A recording of several minutes for bench --task transcribe, built when the bench runs (never committed).

Fifty Harvard sentences (IEEE 1969, public domain: the phonetically balanced lists speech research uses) and the
ten bench sentences, spoken by espeak-ng in four voices at four speeds, with pauses from a quarter of a second (two
sentences run into one phrase, as people do) to two and a half seconds, over a -65 dBFS noise floor. A user's
recording has long stretches of speech and few silences; this has both, and its reference text gives a word
error rate over about 600 words instead of the 90 of the short recording.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import ModelUnavailableError

HARVARD_SENTENCES = (
    # List 1
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "these days a chicken leg is a rare dish",
    "rice is often served in round bowls",
    "the juice of lemons makes fine punch",
    "the box was thrown beside the parked truck",
    "the hogs were fed chopped corn and garbage",
    "four hours of steady work faced us",
    "a large size in stockings is hard to sell",
    # List 2
    "the boy was there when the sun rose",
    "a rod is used to catch pink salmon",
    "the source of the huge river is the clear spring",
    "kick the ball straight and follow through",
    "help the woman get back to her feet",
    "a pot of tea helps to pass the evening",
    "smoky fires lack flame and heat",
    "the soft cushion broke the man's fall",
    "the salt breeze came across from the sea",
    "the girl at the booth sold fifty bonds",
    # List 3
    "the small pup gnawed a hole in the sock",
    "the fish twisted and turned on the bent hook",
    "press the pants and sew a button on the vest",
    "the swan dive was far short of perfect",
    "the beauty of the view stunned the young boy",
    "two blue fish swam in the tank",
    "her purse was full of useless trash",
    "the colt reared and threw the tall rider",
    "it snowed rained and hailed the same morning",
    "read verse out loud for pleasure",
    # List 4
    "hoist the load to your left shoulder",
    "take the winding path to reach the lake",
    "note closely the size of the gas tank",
    "wipe the grease off his dirty face",
    "mend the coat before you go out",
    "the wrist was badly strained and hung limp",
    "the stray cat gave birth to kittens",
    "the young girl gave no clear response",
    "the meal was cooked before the bell rang",
    "what joy there is in living",
    # List 5
    "a king ruled the state in the early days",
    "the ship was torn apart on the sharp reef",
    "sickness kept him home the third week",
    "the wide road shimmered in the hot sun",
    "the lazy cow lay in the cool grass",
    "lift the square stone over the fence",
    "the rope will bind the seven books at once",
    "hop over the fence and plunge in",
    "the friendly gang left the drug store",
    "mesh wire keeps chicks inside",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3")
SPEEDS = (140, 150, 160, 175)
PAUSES_S = (0.25, 0.8, 1.2, 0.3, 2.5, 0.6, 1.6, 0.25, 1.0, 0.5)  # under 0.45 s the next sentence joins the phrase
NOISE_DBFS = -65.0


def long_sentences(short: tuple[str, ...]) -> tuple[str, ...]:
    """The Harvard sentences with the short recording's sentences woven in, one after every fifth."""
    merged: list[str] = []
    extra = list(short)
    for index, sentence in enumerate(HARVARD_SENTENCES):
        merged.append(sentence)
        if index % 5 == 4 and extra:
            merged.append(extra.pop(0))
    return tuple(merged + extra)


def long_speech(folder: Path, short: tuple[str, ...]) -> tuple[Path, str, float]:
    """Speak the sentences into one 16 kHz WAV in folder; returns its path, the reference text and its length in s."""
    import numpy as np
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng") is None:
        raise ModelUnavailableError("bench --task transcribe speaks its recordings with espeak-ng, which is not installed "
                                    "(apt install espeak-ng), or pass --audio FILE with speech of your own.")
    sentences = long_sentences(short)
    rng = np.random.default_rng(1)
    pieces: list[Any] = [np.zeros(16000, dtype=np.float32)]
    for index, sentence in enumerate(sentences):
        wav = folder / f"long-{index}.wav"
        voice, speed = VOICES[index % len(VOICES)], SPEEDS[(index // 2) % len(SPEEDS)]
        subprocess.run(["espeak-ng", "-w", str(wav), "-v", voice, "-s", str(speed), "-g", "4", sentence],
                       check=True, capture_output=True)
        speech, rate = sf.read(wav, dtype="float32")
        speech = soxr.resample(speech, rate, 16000).astype(np.float32)
        gain = 10 ** (rng.uniform(-6.0, 0.0) / 20)  # speakers are not all equally loud
        pieces += [speech * gain, np.zeros(int(PAUSES_S[index % len(PAUSES_S)] * 16000), dtype=np.float32)]
    audio = np.concatenate(pieces + [np.zeros(16000, dtype=np.float32)])
    audio += rng.normal(0, 10 ** (NOISE_DBFS / 20), len(audio)).astype(np.float32)
    path = folder / "bench-long-speech.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path, " ".join(sentences), len(audio) / 16000


def bench_long_recording(
    store: Any, model: str, device: str, repeats: int, say: Callable[[str], None], scratch: Path, short: tuple[str, ...],
    word_errors: Callable[[str, str], int],
) -> tuple[list[Any], list[str]]:
    """Whisper on the long recording: faster-whisper's plain defaults, its BatchedInferencePipeline (batch 8, the
    same model and compute type as ours) and ours with the measured compute type, each timed in this process.
    Returns the report rows and notes."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from desktop_ai.bench.report import BenchRow, median
    from desktop_ai.engine.tasks.transcription import FileTranscriber, make_recognizer
    from desktop_ai.engine.tasks.whisper_compute import AUTO

    say("Speaking the long recording with espeak-ng")
    path, reference, duration = long_speech(scratch, short)
    say("whisper, long recording: measuring the compute type (once per machine)")
    ours = make_recognizer(store, "whisper", model, device, AUTO)
    transcriber = FileTranscriber(ours, None)
    location = ours.location.path
    plain = WhisperModel(str(location), device=ours.device)
    batched = BatchedInferencePipeline(WhisperModel(str(location), device=ours.device, compute_type=ours.compute_type))

    def run_plain() -> str:
        return " ".join(s.text for s in plain.transcribe(str(path))[0])

    def run_batched() -> str:
        return " ".join(s.text for s in batched.transcribe(str(path), batch_size=8)[0])

    def run_ours() -> str:
        return transcriber.run(path).text

    runs = {"plain": run_plain, "batched": run_batched, "ours": run_ours}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    texts: dict[str, str] = {}
    say("whisper, long recording: warming up")
    for run in runs.values():
        run()
    for repeat in range(repeats):  # interleaved, so a burst of load on a shared machine hits all three alike
        for name, run in runs.items():
            say(f"whisper, long recording: {name} ({repeat + 1} of {repeats})")
            started = time.perf_counter()
            texts[name] = run()
            seconds[name].append(time.perf_counter() - started)
    took = {name: median(values) for name, values in seconds.items()}

    def row(name: str, compression: str, key: str) -> Any:
        wer = 100 * word_errors(texts[key], reference) / len(reference.split())
        return BenchRow(name, compression, {
            "real-time factor": took[key] / duration, "x baseline": took["plain"] / took[key],
            "x batched": took["batched"] / took[key], "WER": f"{wer:.1f}%",
            "spread s": f"{min(seconds[key]):.2f}-{max(seconds[key]):.2f}",
        })

    rows = [
        row("long recording: baseline faster-whisper WhisperModel(path).transcribe(file), defaults", "default (model file's type)", "plain"),
        row("long recording: baseline faster-whisper BatchedInferencePipeline, batch_size=8", ours.compute_type, "batched"),
        row(f"long recording: desktop-ai whisper (phrases in batches of {transcriber.batch_size})", ours.compute_type, "ours"),
    ]
    notes = [
        f"Long recording: {path.name}, {duration:.0f} s, {len(reference.split())} words: the Harvard sentences and the "
        "short recording's, espeak-ng in four voices at four speeds, pauses of 0.25-2.5 s (desktop_ai/bench/long_speech.py). "
        f"The three runs are interleaved, {repeats} of each after a warm-up; medians, and the spread of the timed runs.",
        f"Compute type (ours and the batched pipeline): {ours.compute_reason}.",
    ]
    return rows, notes
