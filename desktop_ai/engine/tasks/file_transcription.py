"""Audio files to timed phrases: cut at pauses by voice activity, neighbouring phrases joined into full Whisper
windows, the windows decoded in batches (whisper_batch), each word put back in the phrase it was spoken in.

Progress is reported per 30 s chunk read; Stop is honoured between batches, and the phrases already cut are still
decoded, so a stopped file keeps everything heard up to there. Finished files are cached by their bytes and options.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.audio.transcript import Phrase
from desktop_ai.engine.audio.voice_activity import SAMPLE_RATE, PhraseSegmenter, SpeechPhrase, VadSettings
from desktop_ai.engine.cache import KeySpec, ResultCache
from desktop_ai.engine.errors import CancelledError, InvalidInputError
from desktop_ai.engine.models.catalogue import TASK_TRANSCRIBE
from desktop_ai.engine.models.store import ProgressCallback
from desktop_ai.engine.tasks.transcription import (
    Recognizer,
    TranscriptionOptions,
    TranscriptionResult,
    _check_stop,
    join_segments,
    recognize_phrase,
)
from desktop_ai.engine.tasks.whisper_batch import BATCH_SIZE

FILE_CHUNK_S = 30.0
# Whisper reads 30 s windows however short the input: neighbouring phrases of a file are decoded together,
# up to this much speech, and their words mapped back (one encoder pass instead of one per phrase). Full windows
# also give Whisper the most context: on the bench's long recordings (tiny.en, int8) 24 s windows made 12.8-13.4 %
# word errors where 29.5 s ones made 9.6-11.6 %, and each phrase decoded alone 22.8 %.
GROUP_S = 29.5
# Silence put between grouped phrases. None: each phrase already carries the pause around it (FILE_VAD's pre-roll
# and tail of real room sound); 0.3 s of digital silence more made tiny.en skip a sentence of a full window (12.6 %
# against 10.6 % word errors on the long recording).
GROUP_GAP_S = 0.0
# The pause kept around each phrase: the voice activity's defaults (250 ms before, 200 ms after), as dictation.
# More made no difference within tiny.en's noise on three four-minute recordings (tiny.en, int8: 10.6, 10.6, 10.2 %
# word errors with 250/200; 9.6, 11.2, 10.4 with 400/400 as in faster-whisper's batched pipeline; 9.8, 9.8, 10.6
# with 350/350; the batched pipeline itself 9.3, 8.5, 11.4), and with 400/400 a phrase decoded on its own heard
# "quick groundhog stumps" for "quick brown fox jumps" (350/350: "lazy log" in the 8 kHz telephone test).
FILE_VAD = VadSettings()
# A phrase of a joined window that got fewer words than this per second of its speech was most likely skipped:
# Whisper sometimes drops a sentence of a long window (or ends early), and the alignment then stretches a
# neighbour's word over it (bench recording: "the birch canoe slid on the smooth planks", 3.6 s, came back as
# "Blue machine"); one that got more than REPEATED_WORDS_PER_S holds a repetition loop (a sentence said seven
# times came back nine times, two of them in one phrase). Speech runs at two to four words a second; a false
# alarm costs the window's decode again (with timestamp tokens, then phrase by phrase if still doubtful).
SKIPPED_WORDS_PER_S = 1.0
REPEATED_WORDS_PER_S = 5.0
RELATIVE_REPEAT = 1.75  # or more than this times the window's median words a second (three phrases or more)
SPEECH_MARGIN_S = 0.1  # how much earlier (later) than the voice activity heard speech a line may start (end)


def join_group(phrases: list[SpeechPhrase]) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Phrases joined into one Whisper input with a short silence between them; returns the audio and, per
    phrase, (start in the joined audio, end there, start in the file)."""
    gap = np.zeros(int(GROUP_GAP_S * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    spans: list[tuple[float, float, float]] = []
    position = 0.0
    for phrase in phrases:
        pieces += [phrase.samples, gap]
        spans.append((position, position + phrase.duration_s, phrase.start_s))
        position += phrase.duration_s + GROUP_GAP_S
    return np.concatenate(pieces), spans


def assign_words(
    words: list[tuple[float, float, str]], spans: list[tuple[float, float, float]]
) -> dict[int, list[tuple[float, float, str]]]:
    """Each word (timed in the joined input) to the phrase it was spoken in: the span nearest its middle."""
    mine: dict[int, list[tuple[float, float, str]]] = {}
    for word in words:
        middle = (word[0] + word[1]) / 2
        index = min(range(len(spans)), key=lambda i: max(spans[i][0] - middle, middle - spans[i][1], 0.0))
        mine.setdefault(index, []).append(word)
    return mine


def doubtful_phrases(
    words: list[tuple[float, float, str]], spans: list[tuple[float, float, float]], padding_s: float = 0.0
) -> int:
    """How many of a joined input's phrases look skipped or repeated: fewer words than SKIPPED_WORDS_PER_S, or more
    than REPEATED_WORDS_PER_S, a second of their speech (their length less `padding_s`, the quiet kept around each,
    so that a one-word phrase is no skip). A phrase alone in its window is never a skip: nothing else in the window
    took its words, Whisper heard none (a cough, a noise)."""
    mine = assign_words(words, spans)
    counts = [sum(any(ch.isalnum() for ch in w[2]) for w in mine.get(i, [])) for i in range(len(spans))]
    speech = [max(end - start - padding_s, 0.5) for start, end, _ in spans]
    # A speaker's own pace: a phrase with far more words a second than the window's median phrase holds a
    # repetition (the same sentence twice, aligned into one phrase) even where the speaker is slow.
    most = min(REPEATED_WORDS_PER_S, RELATIVE_REPEAT * float(np.median([n / s for n, s in zip(counts, speech)])))
    if len(spans) < 3:
        most = REPEATED_WORDS_PER_S
    fewest = SKIPPED_WORDS_PER_S if len(spans) > 1 else 0.0
    return sum(not fewest * s <= n <= most * s + 1 for n, s in zip(counts, speech))


def words_to_phrases(
    words: list[tuple[float, float, str]], spans: list[tuple[float, float, float]], quiet: tuple[float, float] = (0.0, 0.0)
) -> list[Phrase]:
    """Whisper's segment times drift by seconds over a joined input; its word times do not. Each word goes to the
    phrase it was spoken in, and each phrase's words become its line of the transcript, timed in the file.

    `quiet`: the pause kept before and after each phrase's speech (the voice activity's pre-roll and tail). The
    alignment often starts a phrase's first word at the start of that pause; a line's times stay within the speech
    the voice activity heard, less SPEECH_MARGIN_S."""
    mine = assign_words(words, spans)

    def in_file(i: int, t: float) -> float:
        joined_start, joined_end, file_start = spans[i]
        first = min(max(quiet[0] - SPEECH_MARGIN_S, 0.0), joined_end - joined_start)
        last = max(joined_end - joined_start - max(quiet[1] - SPEECH_MARGIN_S, 0.0), first)
        return file_start + min(max(t - joined_start, first), last)

    found = []
    for index in sorted(mine):
        phrase_words = mine[index]
        text = "".join(w[2] for w in phrase_words).strip()
        if any(ch.isalnum() for ch in text):
            start = in_file(index, phrase_words[0][0])
            found.append(Phrase(float(start), float(max(in_file(index, phrase_words[-1][1]), start)), text))
    return found


def recognize_group(recognizer: Any, phrases: list[SpeechPhrase], quiet: tuple[float, float] = (0.0, 0.0)) -> list[Phrase]:
    """Decode several phrases as one input (a recognizer with recognize_words: Whisper), one line per phrase."""
    audio, spans = join_group(phrases)
    return words_to_phrases(recognizer.recognize_words(audio), spans, quiet)


class FileTranscriber:
    """Audio files, in chunks: progress per chunk, Stop between batches, cached by file bytes and options."""

    def __init__(
        self, recognizer: Recognizer, cache: ResultCache | None = None, vad: VadSettings | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.recognizer = recognizer
        self.cache = cache
        self.vad = vad or FILE_VAD
        # Whisper decodes this many groups of phrases in one batch (whisper_batch); 1 decodes them one by one.
        self.batch_size = batch_size
        self.phrases_recognized = 0  # model inputs (a group of phrases is one), for tests and the benchmark
        self.batch_sizes: list[int] = []  # windows in each decode of the latest run, for tests and the benchmark
        self.windows_redone = 0  # windows decoded again with timestamps (a doubtful decode)
        self.phrases_redone = 0  # phrases decoded again on their own (their window was still doubtful)

    @property
    def batches(self) -> int:
        return len(self.batch_sizes)

    def _next_batch(self) -> int:
        """The first batch of a file holds one window, the next ones batch_size: the first phrases appear (and Stop
        answers) after one window's decode. (Ramping up 1, 2, 4, 8 cost 40 % more time on a four-minute file.)"""
        return 1 if not self.batch_sizes else self.batch_size

    def _decode_windows(self, groups: list[list[SpeechPhrase]], quiet: tuple[float, float]) -> list[Phrase]:
        """Groups of phrases joined into windows and decoded in one batch, each word back in its phrase.

        A window whose decode was unsure (Whisper's log-probability check), or left a phrase (nearly) empty or
        overfull, is decoded again with timestamp tokens (one batch for all such windows), and if that still looks
        wrong, phrase by phrase. Whisper's compression-ratio check is not used on joined windows: speech that
        repeats itself fails it (the same sentence said seven times), and a real repetition loop overfills a phrase.
        """
        r = self.recognizer
        joined = [join_group(g) for g in groups]
        words = r.recognize_words_batch([audio for audio, _ in joined], alone=False)

        def doubtful(i: int) -> bool:
            return words[i] is None or doubtful_phrases(words[i], joined[i][1], sum(quiet)) > 0

        again = [i for i in range(len(groups)) if doubtful(i)]
        if again:
            self.windows_redone += len(again)
            for i, found in zip(again, r.recognize_words_batch([joined[i][0] for i in again], alone=False, timestamps=True)):
                words[i] = found
        phrases: list[Phrase] = []
        for i, (group, (_, spans)) in enumerate(zip(groups, joined)):
            if not doubtful(i):
                phrases.extend(words_to_phrases(words[i], spans, quiet))
                continue
            self.phrases_redone += len(group)
            for phrase, alone in zip(group, r.recognize_words_batch([p.samples for p in group])):
                phrases.extend(words_to_phrases(alone, [(0.0, phrase.duration_s, phrase.start_s)], quiet))
        return phrases

    def key_spec(self) -> KeySpec:
        """How a file's digest (audio_files.file_digest) is keyed in the result cache; the cluster driver uses it."""
        r = self.recognizer
        options = asdict(getattr(r, "options", TranscriptionOptions())) | {"vad": asdict(self.vad)}
        return KeySpec(TASK_TRANSCRIBE, f"{r.engine}:{r.model_id}", getattr(r, "revision", ""), r.compression, options)

    def run(
        self,
        path: str | Path,
        on_segments: Callable[[list[Phrase]], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TranscriptionResult:
        """`on_segments` gets all segments found so far, after every phrase."""
        from desktop_ai.engine.audio.audio_files import file_digest, iter_audio_chunks, probe_audio

        started = time.perf_counter()
        path = Path(path)
        info = probe_audio(path)
        key = self.key_spec().key(file_digest(path))
        r = self.recognizer
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            segments = [Phrase(**s) for s in hit["segments"]]
            if on_segments is not None:
                on_segments(segments)
            return TranscriptionResult(
                str(path), join_segments(segments), segments, info.duration_s, r.engine, r.model_id, r.device, r.compression,
                time.perf_counter() - started, cached=True, notices=list(r.notices),
                compute_reason=getattr(r, "compute_reason", ""),
            )
        segmenter = PhraseSegmenter(self.vad)
        quiet = (self.vad.pre_roll_ms / 1000, self.vad.tail_ms / 1000)
        self.batch_sizes = []
        self.windows_redone = self.phrases_redone = 0
        segments: list[Phrase] = []
        group: list[SpeechPhrase] = []  # the group of phrases being filled
        waiting: list[list[SpeechPhrase]] = []  # full groups, not decoded yet
        batched = self.batch_size > 0 and getattr(r, "timed_segments", False) and hasattr(r, "recognize_words_batch")
        stopped, damaged = False, None

        def flush(check: bool = True, whole: bool = False) -> None:
            """Decode the groups waiting; `whole`: the group being filled too (end of file, Stop, damage)."""
            if whole and group:
                waiting.append(list(group))
                group.clear()
            if not waiting:
                return
            if check:
                _check_stop(cancel)
            if batched:
                first = 0
                while first < len(waiting):
                    groups = waiting[first : first + self._next_batch()]
                    first += len(groups)
                    segments.extend(self._decode_windows(groups, quiet))
                    self.phrases_recognized += len(groups)
                    self.batch_sizes.append(len(groups))
                    if on_segments is not None and first < len(waiting):
                        on_segments(list(segments))  # each batch's phrases as soon as they are decoded
            else:
                for phrases in waiting:
                    if len(phrases) == 1 or not getattr(r, "timed_segments", False) or not hasattr(r, "recognize_words"):
                        for phrase in phrases:
                            segments.extend(recognize_phrase(r, phrase))
                            self.phrases_recognized += 1
                    else:
                        segments.extend(recognize_group(r, phrases, quiet))
                        self.phrases_recognized += 1
            waiting.clear()
            if on_segments is not None:
                on_segments(list(segments))

        def take(phrases: list[SpeechPhrase]) -> None:
            for phrase in phrases:
                if group and sum(p.duration_s for p in group) + phrase.duration_s + GROUP_GAP_S * len(group) > GROUP_S:
                    waiting.append(list(group))
                    group.clear()
                    if len(waiting) >= (self._next_batch() if batched else 1):
                        flush()
                group.append(phrase)

        try:
            for chunk in iter_audio_chunks(path, FILE_CHUNK_S):
                _check_stop(cancel)
                take(segmenter.feed(chunk.samples))
                if progress is not None:
                    done = min(chunk.start_s + len(chunk.samples) / SAMPLE_RATE, info.duration_s)
                    progress(f"{_clock(done)} of {_clock(info.duration_s)}", done / info.duration_s if info.duration_s else None)
            last = segmenter.flush()
            take([last] if last is not None else [])
            flush(whole=True)
        except CancelledError:
            stopped = True
            flush(check=False, whole=True)  # the phrases already cut (at most one batch) are the transcript so far
        except InvalidInputError as error:  # damaged part-way: keep what was heard before the damage
            if not segments and not group and not waiting:
                raise
            damaged = str(error)
            last = segmenter.flush()
            take([last] if last is not None else [])
            flush(whole=True)
        notices = list(r.notices)
        if stopped:
            notices.append(f"Stopped at {_clock(segmenter.time_s)} of {_clock(info.duration_s)}; the transcript so far is kept.")
        elif damaged:
            notices.append(f"{damaged} The transcript up to there is kept.")
        elif not segments:
            notices.append("No speech was found in this file.")
        if not stopped and not damaged and self.cache is not None:
            self.cache.put(key, {"segments": [asdict(s) for s in segments]})
        return TranscriptionResult(
            str(path), join_segments(segments), segments, info.duration_s, r.engine, r.model_id, r.device, r.compression,
            time.perf_counter() - started, stopped=stopped, notices=notices, compute_reason=getattr(r, "compute_reason", ""),
        )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
