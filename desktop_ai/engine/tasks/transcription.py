"""Speech to text: three recognizers behind one small surface (audio files: file_transcription).

Every recognizer takes one phrase of 16 kHz mono float32 audio and returns timed segments. Files and the
microphone go through the same voice-activity cuts (voice_activity.PhraseSegmenter), so a file is never
split in the middle of a word and silence is never sent to a model (which is where Whisper invents text).

- Whisper through faster-whisper (CTranslate2): kept loaded; int8 on the CPU and int8_float16 on a GPU unless
  compression "auto" picks the compute type measured fastest here (whisper_compute).
- wav2vec2 CTC through transformers: int8 dynamic quantization on the CPU (compression.compress).
- PocketSphinx through SpeechRecognition's recognize_sphinx: offline and light, less accurate.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from desktop_ai.engine.models.catalogue import KIND_SPEECH_CTC, KIND_SPHINX, KIND_WHISPER, TASK_TRANSCRIBE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import cpu_fallback_notice, cpu_threads, is_out_of_memory, pick_device
from desktop_ai.engine.errors import CancelledError, InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.store import ModelStore, ProgressCallback
from desktop_ai.engine.audio.transcript import Phrase
from desktop_ai.engine.tasks.whisper_compute import AUTO
from desktop_ai.engine.audio.voice_activity import DIGITAL_SILENCE, SAMPLE_RATE, SpeechPhrase

logger = logging.getLogger(__name__)

ENGINES = ("whisper", "wav2vec2", "sphinx")
ENGINE_DEFAULT_MODELS = {"whisper": "whisper-tiny.en", "wav2vec2": "wav2vec2-base-960h", "sphinx": "pocketsphinx-en-us"}
ENGINE_KINDS = {"whisper": KIND_WHISPER, "wav2vec2": KIND_SPEECH_CTC, "sphinx": KIND_SPHINX}
ENGINE_TITLES = {"whisper": "Whisper (faster-whisper)", "wav2vec2": "wav2vec2 (transformers)", "sphinx": "PocketSphinx"}
ENGINE_RUNTIMES = {"whisper": "faster-whisper", "wav2vec2": "transformers", "sphinx": "PocketSphinx"}  # for the status bar
SHORT_CONTEXT_MAX_S = 28.0  # live phrases up to this long are encoded at their own length (see _recognize_short)
# Two seconds of padding after the phrase: with less, tiny.en often says the phrase twice (measured on the bench
# sentences: 6 of 80 decodes with 1 s, none with 2 s); a decode that still repeats itself is redone at 30 s.
SHORT_CONTEXT_PAD_FRAMES = 200
# And never less than 10 s of encoder context: below that, tiny.en told to expect the spoken commands (COMMAND_PROMPT)
# copies the prompt's pattern. On phrases cut from a real virtual-microphone recording, "open every window" came
# out twice or four times in 15 of 24 decodes and "scratch that" as "Sc Sh Sh Sh" in 5 of 12; with 10 s, all 24
# were right (a 30 s window agrees). On the bench sentences and the commands, word errors fell from 8.2% to 4.1%
# with the prompt and from 9.0% to 5.7% without, for ~25 ms more a phrase and no slow 30 s redos.
SHORT_CONTEXT_MIN_FRAMES = 1000


@dataclass
class TranscriptionOptions:
    language: str | None = None  # None: English for .en models, detected for multilingual Whisper
    beam_size: int = 5
    # Whisper retries a doubtful phrase at higher temperatures: better text, but a half-spoken word can cost
    # six decodes. Live dictation turns it off so every partial has a bounded cost.
    temperature_fallback: bool = True
    timestamps: bool = True  # Whisper's own timestamps inside a phrase (the phrase's times come from voice activity)
    initial_prompt: str | None = None  # words Whisper reads first (names, spelling); the API server's `prompt`

    def validate(self) -> None:
        if not 1 <= self.beam_size <= 10:
            raise InvalidInputError("Beam size must be between 1 and 10.")


def live_options(language: str | None = None, prompt: str | None = None) -> TranscriptionOptions:
    """What dictation uses: one decode per phrase and no timestamps, so the final text keeps up with the speaker
    (partials are greedy drafts on top of this). `prompt`: words Whisper should expect (the spoken commands)."""
    return TranscriptionOptions(language=language, beam_size=5, temperature_fallback=False, timestamps=False,
                                initial_prompt=prompt or None)


@dataclass
class TranscriptionResult:
    path: str
    text: str
    segments: list[Phrase]
    duration_s: float
    engine: str
    model_id: str
    device: str
    compression: str
    seconds: float
    cached: bool = False
    stopped: bool = False
    notices: list[str] = field(default_factory=list)
    compute_reason: str = ""  # Whisper: which compute type ran and why (measured, or chosen by the user)

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["real_time_factor"] = round(self.real_time_factor, 4)
        return data


class Recognizer(Protocol):
    engine: str
    model_id: str
    device: str
    compression: str
    notices: list[str]

    def recognize(self, samples: np.ndarray, offset_s: float = 0.0, draft: bool = False) -> list[Phrase]:
        """`draft`: a partial hypothesis that a final will replace; an engine may trade accuracy for speed."""
        ...


def _is_silent(samples: np.ndarray) -> bool:
    """Nothing, or digital silence: there is nothing to hear, and every engine makes text up from it
    (Whisper tiny.en writes "You", PocketSphinx "Dog"), so no model is run."""
    return len(samples) == 0 or float(np.max(np.abs(samples))) < DIGITAL_SILENCE


ENGINE_MODEL_NEEDS = {
    "whisper": "a faster-whisper model (a folder with model.bin and config.json)",
    "wav2vec2": "a CTC speech model such as wav2vec2",
    "sphinx": "a PocketSphinx model",
}


def _engine_entry(store: ModelStore, engine: str, model: str | None) -> Any:
    entry = store.resolve_entry(model or ENGINE_DEFAULT_MODELS[engine], TASK_TRANSCRIBE)
    if entry.kind != ENGINE_KINDS[engine]:
        raise ModelUnavailableError(f"{entry.title} is not {ENGINE_MODEL_NEEDS[engine]}.")
    return entry


def _repeats_itself(text: str, n: int = 4) -> bool:
    """Whisper's failure mode of saying a phrase twice: some run of n words occurs twice."""
    words = [w.strip(".,!?;:\"'").lower() for w in text.split()]
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def _check_stop(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise CancelledError("Stopped.")


class WhisperRecognizer:
    engine = "whisper"

    @property
    def timed_segments(self) -> bool:
        """Whisper times its own segments, so phrases can be decoded in groups (FileTranscriber)."""
        return self.options.timestamps

    def __init__(
        self,
        store: ModelStore,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.INT8,
        options: TranscriptionOptions | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.entry = _engine_entry(store, "whisper", model)
        self.model_id = self.entry.id
        self.options = options or TranscriptionOptions()
        self.notices: list[str] = []
        self.location = store.locate(self.entry, progress, cancel)
        self.revision = self.location.revision
        choice = pick_device(device)
        self.device = "cuda" if choice.device == "cuda" else "cpu"  # CTranslate2 has no MPS backend
        self.gpu_name = choice.describe() if self.device == "cuda" else None
        try:
            self.compute_measured_now = False  # compression "auto" measured the candidates in this call
            if str(getattr(compression, "value", compression)) == AUTO:
                self.compute_type, self.compute_reason = self._measured_compute_type(store, progress)
            else:
                self.compute_type = self._compute_type(Compression.parse(compression))
                self.compute_reason = f"{self.compute_type}: as chosen (compression {Compression.parse(compression).value})"
            self.compression = self.compute_type
            self.model = self._load(store, progress)
        except Exception as error:
            if self.device == "cpu" or not is_out_of_memory(error):
                raise
            self.notices.append(cpu_fallback_notice(self.device))
            self.device, self.compute_type = "cpu", "int8"
            self.compute_reason = "int8: the GPU ran out of memory"
            self.compression = self.compute_type
            self.model = self._load(store, progress)

    def _compute_type(self, compression: Compression) -> str:
        if compression is Compression.PRUNE:
            self.notices.append("Pruning does not apply to CTranslate2 Whisper models; int8 was used instead.")
            compression = Compression.INT8
        if self.device == "cuda":
            return "int8_float16" if compression is Compression.INT8 else "float16"
        if compression is Compression.FP16:
            self.notices.append("Half precision needs a GPU; Whisper ran in float32 on the CPU.")
        return "int8" if compression is Compression.INT8 else "float32"

    def _measured_compute_type(self, store: ModelStore, progress: ProgressCallback | None) -> tuple[str, str]:
        """compression "auto": the compute type measured fastest on this machine (whisper_compute), the others
        unloaded again."""
        from desktop_ai import paths
        from desktop_ai.engine.tasks.whisper_compute import choice_key, choose_compute_type

        def load(compute_type: str) -> Any:
            if progress:
                progress(f"Measuring {compute_type} for {self.entry.title} (once on this machine)", None)
            return self._load(store, progress, compute_type)

        key = choice_key(self.device, f"{self.entry.id}@{self.revision}", cpu_threads(), self.gpu_name)
        chosen = choose_compute_type(paths.cache_dir(), key, self.device, load)
        self.compute_measured_now = chosen.measured_now
        if chosen.measured_now:
            store.loaded.drop(lambda k: k[:4] == ("whisper", self.entry.id, self.revision, self.device) and k[4] != chosen.compute_type)
        return chosen.compute_type, chosen.reason

    def _load(self, store: ModelStore, progress: ProgressCallback | None, compute_type: str | None = None) -> Any:
        compute_type = compute_type or self.compute_type
        key = ("whisper", self.entry.id, self.revision, self.device, compute_type)

        def load() -> tuple[Any, int]:
            from faster_whisper import WhisperModel

            if progress:
                progress(f"Loading {self.entry.title}", None)
            path = self.location.path
            try:
                model = WhisperModel(str(path), device=self.device, compute_type=compute_type, cpu_threads=cpu_threads())
            except Exception as error:
                if is_out_of_memory(error):
                    raise
                raise ModelUnavailableError(
                    f"{self.entry.title} could not be loaded from {path}: {error}. The files may be incomplete or "
                    "corrupt: download it again or pick another folder."
                ) from error
            size = (path / "model.bin").stat().st_size if (path / "model.bin").exists() else 0
            logger.info("Loaded %s on %s (%s)", self.entry.id, self.device, compute_type)
            return model, size

        return store.loaded.get_or_load(key, load)

    def recognize(self, samples: np.ndarray, offset_s: float = 0.0, draft: bool = False) -> list[Phrase]:
        if _is_silent(samples):
            return []
        language = self.options.language
        if language is None and not self.model.model.is_multilingual:
            language = "en"  # an .en model: skip language detection
        if not self.options.timestamps and language is not None and len(samples) <= SHORT_CONTEXT_MAX_S * SAMPLE_RATE:
            short = self._recognize_short(samples, offset_s, draft, language)
            if not short or not _repeats_itself(short[0].text):
                return short
            logger.debug("Short-context decode repeated itself (%r); decoding with the full window", short[0].text)
        duration = len(samples) / SAMPLE_RATE
        segments = []
        for piece in self._pieces(samples, language, draft):
            start = max(0.0, piece.start)
            end = min(max(piece.end, start), duration)
            segments.append(Phrase(offset_s + start, offset_s + end, piece.text.strip()))
        return segments

    def _pieces(self, samples: np.ndarray, language: str | None, draft: bool, words: bool = False) -> list[Any]:
        """faster-whisper's segments, less what Whisper makes up in silence and in the padding."""
        pieces, _ = self.model.transcribe(
            np.asarray(samples, dtype=np.float32),
            language=language,
            beam_size=1 if draft else self.options.beam_size,  # drafts are greedy: the partial line must keep up
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if self.options.temperature_fallback else 0.0,
            without_timestamps=not self.options.timestamps,
            word_timestamps=words,
            condition_on_previous_text=False,  # each phrase stands alone: an error cannot snowball
            vad_filter=False,  # the phrase was cut by voice activity already
            initial_prompt=self.options.initial_prompt,
        )
        duration = len(samples) / SAMPLE_RATE
        kept = []
        for piece in pieces:
            text = piece.text.strip()
            # Whisper's own rule for text made up in silence: likely no speech and not confident.
            if not text or (piece.no_speech_prob > 0.6 and piece.avg_logprob < -1.0):
                continue
            # Whisper reads the phrase padded to 30 s: in the padding it writes lone punctuation (" .") with
            # times past the end of the audio. Such pieces hold no words; real ones are kept inside the phrase.
            if not any(ch.isalnum() for ch in text) or piece.start >= duration:
                continue
            kept.append(piece)
        return kept

    def recognize_words(self, samples: np.ndarray) -> list[tuple[float, float, str]]:
        """Each word with its time (cross-attention alignment): far more exact than Whisper's segment times."""
        if _is_silent(samples):
            return []
        language = self.options.language or (None if self.model.model.is_multilingual else "en")
        return [(w.start, w.end, w.word) for piece in self._pieces(samples, language, False, words=True) for w in piece.words or []]

    def recognize_words_batch(self, inputs: list[np.ndarray], alone: bool = True, timestamps: bool = False) -> list[Any]:
        """recognize_words for several inputs (each at most 30 s) in one batch (whisper_batch.decode_batch). An input
        whose batched decode fails Whisper's checks is decoded again alone with the temperature fallback. With
        `alone` False, an unsure one comes back as None and a repetitive one as it is (FileTranscriber checks each
        phrase's words and decodes the phrases one by one where they look wrong)."""
        from desktop_ai.engine.tasks.whisper_batch import decode_batch

        language = self.options.language or (None if self.model.model.is_multilingual else "en")
        audible = [i for i, x in enumerate(inputs) if not _is_silent(x)]
        windows = decode_batch(self.model, [inputs[i] for i in audible], language, self.options.beam_size,
                               self.options.temperature_fallback, timestamps)
        found: list[Any] = [[] for _ in inputs]
        for index, window in zip(audible, windows):
            if window.redo or (window.repetitive and alone):
                found[index] = self.recognize_words(inputs[index]) if alone else None
            else:
                found[index] = window.words
        return found

    def _recognize_short(self, samples: np.ndarray, offset_s: float, draft: bool, language: str) -> list[Phrase]:
        """Live phrases: encode only the phrase plus 2 s of padding instead of a whole 30 s window.

        faster-whisper's transcribe() always pads to 30 s, and on a 2-core CPU that encoder pass alone takes
        ~0.5 s (tiny.en), whatever the phrase's length; the encoder accepts shorter inputs (whisper.cpp calls this
        audio_ctx): a phrase of up to 8 s is encoded in a 10 s window, ~3x cheaper. Decoding uses the same model
        and tokenizer.
        """
        from faster_whisper.tokenizer import Tokenizer

        whisper = self.model
        features = whisper.feature_extractor(np.asarray(samples, dtype=np.float32))
        frames = int(np.ceil((features.shape[-1] + SHORT_CONTEXT_PAD_FRAMES) / 100.0)) * 100
        frames = min(3000, max(frames, SHORT_CONTEXT_MIN_FRAMES))
        features = features[:, :frames]
        features = np.pad(features, ((0, 0), (0, frames - features.shape[-1])))
        encoded = whisper.encode(features)
        tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe", language=language)
        duration = len(samples) / SAMPLE_RATE
        prompt: list[int] = []
        if self.options.initial_prompt:  # Whisper's previous-text slot, as transcribe() fills it
            prompt = [tokenizer.sot_prev] + tokenizer.encode(" " + self.options.initial_prompt.strip())[-111:]
        result = whisper.model.generate(
            encoded,
            [prompt + list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]],
            beam_size=1 if draft else self.options.beam_size,
            max_length=min(224, 16 + int(duration * 8)),  # ~3 tokens a second of speech, with room to spare
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        text = tokenizer.decode(ids).strip()
        if not any(ch.isalnum() for ch in text) or (result.no_speech_prob > 0.6 and result.scores[0] < -1.0):
            return []
        return [Phrase(offset_s, offset_s + duration, text)]


class Wav2Vec2Recognizer:
    engine = "wav2vec2"

    def __init__(
        self,
        store: ModelStore,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.INT8,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForCTC

        from desktop_ai.engine.models.loading import load_pretrained

        self.entry = _engine_entry(store, "wav2vec2", model)
        self.model_id = self.entry.id
        choice = pick_device(device)
        compression = Compression.parse(compression)
        if compression is Compression.INT8 and choice.device != "cpu":
            compression = Compression.FP16  # dynamic int8 is a CPU kernel; on a GPU half precision is the fast path
        self.loaded = load_pretrained(store, self.entry, AutoModelForCTC, choice, compression, progress, cancel)
        self.revision = self.loaded.location.revision
        self.device = self.loaded.device
        self.compression = self.loaded.compression.method
        self.notices = list(self.loaded.notices)
        try:
            self.features = AutoFeatureExtractor.from_pretrained(self.loaded.location.path)
        except Exception as error:
            raise ModelUnavailableError(f"{self.entry.title} has no usable preprocessor_config.json: {error}") from error

    def recognize(self, samples: np.ndarray, offset_s: float = 0.0, draft: bool = False) -> list[Phrase]:
        import torch

        if _is_silent(samples):
            return []
        inputs = self.features(np.asarray(samples, dtype=np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        values = inputs["input_values"].to(self.device)
        if self.compression == "fp16":
            values = values.half()
        with torch.inference_mode():
            logits = self.loaded.model(values).logits
        ids = torch.argmax(logits, dim=-1)
        text = self.loaded.tokenizer.batch_decode(ids)[0].strip()
        if not text:
            return []
        text = text.lower()  # wav2vec2-base-960h writes capitals only; sentence case reads better
        text = text[0].upper() + text[1:]
        return [Phrase(offset_s, offset_s + len(samples) / SAMPLE_RATE, text)]


class SphinxRecognizer:
    engine = "sphinx"
    device = "cpu"
    compression = "none"

    def __init__(self, store: ModelStore, model: str | None = None, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> None:
        self.entry = _engine_entry(store, "sphinx", model)
        self.model_id = self.entry.id
        self.location = store.locate(self.entry, progress, cancel)
        self.revision = self.location.revision
        self.notices: list[str] = []
        folder = Path(self.location.path)
        self.paths = (str(folder / "en-us"), str(folder / "en-us.lm.bin"), str(folder / "cmudict-en-us.dict"))

    def recognize(self, samples: np.ndarray, offset_s: float = 0.0, draft: bool = False) -> list[Phrase]:
        import speech_recognition as sr

        if _is_silent(samples):
            return []
        pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            text = sr.Recognizer().recognize_sphinx(sr.AudioData(pcm, SAMPLE_RATE, 2), language=self.paths)
        except sr.UnknownValueError:
            return []
        except sr.RequestError as error:
            raise ModelUnavailableError(f"PocketSphinx could not run: {error}") from error
        text = text.strip()
        if not text:
            return []
        return [Phrase(offset_s, offset_s + len(samples) / SAMPLE_RATE, text[0].upper() + text[1:])]


def engine_for_model(store: ModelStore, model: str) -> str:
    """The engine a model needs, so `--model` alone is enough."""
    kind = store.resolve_entry(model, TASK_TRANSCRIBE).kind
    return next(name for name, engine_kind in ENGINE_KINDS.items() if engine_kind == kind)


def choose_engine(store: ModelStore, engine: str | None, model: str | None) -> str:
    """The engine to use, checked against the model before anything loads (the CLI asks before it records)."""
    if engine is None:
        return engine_for_model(store, model) if model else "whisper"
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown speech engine {engine!r}: use one of {', '.join(ENGINES)}.")
    if model and store.resolve_entry(model, TASK_TRANSCRIBE).kind != ENGINE_KINDS[engine]:
        raise InvalidInputError(f"{model} is a model for the {engine_for_model(store, model)} engine, not for {engine}.")
    return engine


def make_recognizer(
    store: ModelStore,
    engine: str | None = None,
    model: str | None = None,
    device: str = "auto",
    compression: Compression | str = Compression.INT8,
    options: TranscriptionOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Recognizer:
    """`compression` "auto": Whisper's compute type is measured (whisper_compute); the other engines use int8."""
    engine = choose_engine(store, engine, model)
    if engine == "whisper":
        return WhisperRecognizer(store, model, device, compression, options, progress, cancel)
    if str(getattr(compression, "value", compression)) == AUTO:
        compression = Compression.INT8
    if engine == "wav2vec2":
        return Wav2Vec2Recognizer(store, model, device, compression, progress, cancel)
    return SphinxRecognizer(store, model, progress, cancel)


def join_segments(segments: list[Phrase]) -> str:
    return "\n".join(segment.text for segment in segments)


def recognize_phrase(recognizer: Recognizer, phrase: SpeechPhrase, draft: bool = False) -> list[Phrase]:
    """One phrase's segments; a phrase Whisper returns as several pieces stays one line of the transcript."""
    segments = recognizer.recognize(phrase.samples, phrase.start_s, draft)
    if len(segments) <= 1:
        return segments
    return [Phrase(segments[0].start, segments[-1].end, " ".join(s.text for s in segments))]


def __getattr__(name: str) -> Any:
    """FileTranscriber lives in file_transcription (which imports this module); it stays importable from here."""
    if name == "FileTranscriber":
        from desktop_ai.engine.tasks.file_transcription import FileTranscriber

        return FileTranscriber
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
