"""`bench --task voice`: reading aloud with a Piper voice on the CPU.

Two numbers, each against a plain baseline in the same process, interleaved run by run:
- the real-time factor (seconds of computing per second of speech) of the whole text-to-speech path (sentences,
  espeak-ng phonemes, Piper's rules, ONNX Runtime) against the bare VITS model run on the same sentences' phoneme
  ids prepared beforehand (what Piper's model costs alone; goal for the embedded voice: under 0.1);
- the time from the first complete sentence of a streamed answer to its first sound (the output device taking its
  first samples; goal: under 0.5 s), against synthesising that sentence alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb

TASK_VOICE = "voice"
BENCH_TEXT = (
    "The museum opens at nine in the morning and closes at six in the evening. "
    "Tickets can be bought at the door, or online a day before your visit. "
    "Children under twelve go in for free, and there is a small cafe on the top floor. "
    "Please leave large bags in the lockers beside the main entrance."
)
STREAMED_ANSWER = ("Paris is the capital of France. It lies on the river Seine, in the north of the country, and about "
                   "two million people live in the city itself. Millions of visitors come every year.")


class _ClockedNullStream:
    """A stand-in output device for machines without one: pulls 20 ms blocks on a real-time clock, like a sound card."""

    def __init__(self, *, samplerate: int, blocksize: int, callback: Callable, finished_callback: Callable, **_: Any) -> None:
        self.rate, self.blocksize, self.callback, self.finished = samplerate, blocksize, callback, finished_callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import sounddevice

        buffer = np.zeros((self.blocksize, 1), dtype=np.float32)
        started, blocks = time.monotonic(), 0
        while not self._stop.is_set():
            try:
                self.callback(buffer, self.blocksize, None, None)
            except sounddevice.CallbackStop:
                break
            blocks += 1
            self._stop.wait(max(0.0, started + blocks * self.blocksize / self.rate - time.monotonic()))
        self.finished()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    abort = stop

    def close(self) -> None:
        self._stop.set()


def _player_factory(sample_rate: int) -> tuple[Callable[[], Any], str]:
    from desktop_ai.engine.audio.synthesis import playback

    try:
        device = playback.resolve_output_device()
        return (lambda: playback.SpeechPlayer(sample_rate)), f"the output device “{device.name}”"
    except playback.PlaybackError:
        fake = playback.OutputDevice(-1, "clocked null output", "none", 1, float(sample_rate), True)

        def make() -> Any:
            return playback.SpeechPlayer(sample_rate, fake, stream_factory=lambda **kw: _ClockedNullStream(**kw))

        return make, "no output device here: a stand-in device pulling 20 ms blocks on a real-time clock"


def _first_sound_latency(synthesizer: Any, make_player: Callable[[], Any]) -> float:
    from desktop_ai.engine.audio.synthesis.read_aloud import StreamingReader

    player = make_player()
    reader = StreamingReader(synthesizer, player=player).start()
    words = STREAMED_ANSWER.split(" ")
    for index, word in enumerate(words):
        reader.feed(word if index == 0 else " " + word)
        if reader.report.first_sentence_at is not None:
            break
    player.sounding.wait(30)
    reader.stop()
    reader.wait(30)
    latency = reader.report.first_sound_latency_s
    if latency is None:
        raise RuntimeError(f"no sound came within 30 s ({reader.report.error or 'no error'})")
    return latency


def bench_voice(voice: str | None, repeats: int, say: Callable[[str], None]) -> BenchReport:
    from desktop_ai.engine.audio.synthesis.phonemes import phoneme_ids, phonemize
    from desktop_ai.engine.audio.synthesis.synthesizer import SpeechSynthesizer

    say("Loading the voice")
    synthesizer = SpeechSynthesizer(voice)
    config = synthesizer.voice.config
    report = BenchReport(TASK_VOICE, synthesizer.voice.describe(), "cpu (ONNX Runtime)", environment=environment())
    sentences = synthesizer.sentences(BENCH_TEXT)
    prepared = [phoneme_ids(phonemize(s, config.espeak_voice), config.phoneme_id_map) for s in sentences]
    session = synthesizer.model.session
    scales = np.asarray([config.noise_scale, config.length_scale, config.noise_w], dtype=np.float32)

    def bare_model() -> tuple[float, float]:
        started, samples = time.perf_counter(), 0
        for ids in prepared:
            audio = session.run(None, {"input": np.asarray([ids], dtype=np.int64),
                                       "input_lengths": np.asarray([len(ids)], dtype=np.int64), "scales": scales})[0]
            samples += audio.size
        return time.perf_counter() - started, samples / config.sample_rate

    def ours() -> tuple[float, float]:
        result = synthesizer.synthesize(BENCH_TEXT)
        return result.synthesis_s, result.duration_s

    def first_sentence_alone() -> float:
        started = time.perf_counter()
        synthesizer.model.sentence_audio(synthesizer.sentences(STREAMED_ANSWER)[0])
        return time.perf_counter() - started

    make_player, where = _player_factory(config.sample_rate)
    bare_model(), ours(), first_sentence_alone()  # warm-up: ONNX Runtime's first run allocates
    samples: dict[str, list[float]] = {"bare": [], "ours": [], "alone": [], "latency": []}
    speech_s = 0.0
    for rep in range(repeats):
        say(f"Round {rep + 1} of {repeats}")
        seconds, audio_s = bare_model()
        samples["bare"].append(seconds / audio_s)
        seconds, speech_s = ours()
        samples["ours"].append(seconds / speech_s)
        samples["alone"].append(first_sentence_alone())
        samples["latency"].append(_first_sound_latency(synthesizer, make_player))
    bare, full = median(samples["bare"]), median(samples["ours"])
    report.rows.append(BenchRow("baseline: the bare VITS model on prepared phoneme ids", "none", {
        "real-time factor": bare, "x baseline": 1.0}))
    report.rows.append(BenchRow("desktop-ai SpeechSynthesizer: text to speech (goal RTF < 0.1)", "none", {
        "real-time factor": full, "x baseline": bare / full}))
    alone, latency = median(samples["alone"]), median(samples["latency"])
    report.rows.append(BenchRow("baseline: the first sentence synthesised alone", "none", {
        "seconds to first sound": alone, "x baseline": 1.0}))
    report.rows.append(BenchRow("desktop-ai StreamingReader: first complete sentence to first sound (goal < 0.5 s)",
                                "none", {"seconds to first sound": latency, "x baseline": alone / latency}))
    report.notes.append(f"{len(sentences)} sentences, {speech_s:.1f} s of speech; {repeats} interleaved rounds, medians; "
                        f"x baseline above 1 is faster than the baseline.")
    report.notes.append(f"First sound: {where}; the streamed answer's first sentence is "
                        f"“{synthesizer.sentences(STREAMED_ANSWER)[0]}”.")
    report.notes.append(f"Process memory: {rss_mb():.0f} MB RSS.")
    return report
