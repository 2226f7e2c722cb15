"""Text to speech with a Piper voice: sentences, Piper's phonemes (phonemes.py), then the VITS model on ONNX Runtime.

The model's inputs are Piper's: `input` (1 x ids, int64), `input_lengths` and `scales` = [noise_scale, length_scale,
noise_w] (float32); speed is the length scale divided. Each sentence is one inference, as Piper does, and its audio
is normalised to a fixed peak as Piper's audio_float_to_int16 does (VITS output has no fixed level).
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop_ai.engine.audio.synthesis.phonemes import phoneme_ids, phonemize, split_sentences
from desktop_ai.engine.audio.synthesis.voices import Voice, VoiceError, find_voice, installed_voices
from desktop_ai.engine.errors import CancelledError, InvalidInputError

logger = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 4.0
SENTENCE_SILENCE_S = 0.2  # between sentences, as Piper's own program puts it
PEAK = 0.9  # Piper scales each sentence to full scale; a little headroom is kept for the sound server's resampler
LANGUAGE_CHECK_MIN_WORDS = 6  # shorter texts are too short for a reliable guess: they are spoken as they are
LANGUAGE_CHECK_MIN_PROBABILITY = 0.9
_MODEL_INPUTS = {"input", "input_lengths", "scales"}

# The writing system each Piper language family is written in; Latin for every other.
_SCRIPTS = {"ru": "CYRILLIC", "uk": "CYRILLIC", "bg": "CYRILLIC", "kk": "CYRILLIC", "sr": "CYRILLIC", "el": "GREEK",
            "zh": "CJK", "ja": "CJK", "ar": "ARABIC", "fa": "ARABIC", "ka": "GEORGIAN", "ne": "DEVANAGARI",
            "hi": "DEVANAGARI", "he": "HEBREW", "ko": "HANGUL"}
_SCRIPT_LANGUAGES = {"CYRILLIC": "Russian or another Cyrillic-script language", "GREEK": "Greek",
                     "CJK": "Chinese or Japanese", "ARABIC": "Arabic or Persian", "GEORGIAN": "Georgian",
                     "DEVANAGARI": "Hindi or Nepali", "HEBREW": "Hebrew", "HANGUL": "Korean",
                     "LATIN": "a Latin-script language"}


@dataclass
class SpeechResult:
    """Synthesised speech: mono float32 samples at the voice's rate, and what it took."""

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    voice: str
    text: str
    sentences: list[str]
    speed: float
    synthesis_s: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Seconds of computing per second of speech: under 1 is faster than speaking it."""
        return self.synthesis_s / self.duration_s if self.duration_s else 0.0


def check_speed(speed: float) -> float:
    if not MIN_SPEED <= float(speed) <= MAX_SPEED:
        raise InvalidInputError(f"The speed {speed} is out of range: choose between {MIN_SPEED} and {MAX_SPEED} (1 is normal).")
    return float(speed)


def _script_of(character: str) -> str:
    name = unicodedata.name(character, "")
    for script in ("LATIN", "CYRILLIC", "GREEK", "ARABIC", "GEORGIAN", "DEVANAGARI", "HEBREW", "HANGUL"):
        if name.startswith(script):
            return script
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
        return "CJK"
    return "OTHER"


def _detect_language(text: str) -> tuple[str | None, str]:
    """(language code or None, a name for messages): the writing system first, then langdetect on longer texts."""
    scripts: dict[str, int] = {}
    for character in text:
        if character.isalpha():
            script = _script_of(character)
            scripts[script] = scripts.get(script, 0) + 1
    if not scripts:
        return None, ""
    script = max(scripts, key=scripts.__getitem__)
    if script != "LATIN" or len(text.split()) < LANGUAGE_CHECK_MIN_WORDS:
        return None, script
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # the same answer for the same text, every time
    try:
        guesses = detect_langs(text)
    except LangDetectException:
        return None, script
    best = guesses[0]
    if best.prob < LANGUAGE_CHECK_MIN_PROBABILITY:
        return None, script
    return best.lang.split("-")[0], script


def check_language(text: str, voice: Voice) -> None:
    """Refuse text the voice cannot speak, naming the installed voices that can (espeak-ng would spell it out)."""
    family = voice.config.language_family
    code, script = _detect_language(text)
    expected = _SCRIPTS.get(family, "LATIN")
    if script and script not in (expected, "OTHER"):
        wrong = _SCRIPT_LANGUAGES.get(script, script.title())
        speakers = [v for v in installed_voices() if _SCRIPTS.get(v.config.language_family, "LATIN") == script]
    elif code and code != family:
        from desktop_ai.engine.models.catalogue import LANGUAGE_NAMES

        wrong = f"{LANGUAGE_NAMES.get(code, code)} ({code})"
        speakers = [v for v in installed_voices() if v.config.language_family == code]
    else:
        return
    if speakers:
        others = "Voices that speak it: " + ", ".join(v.id for v in speakers) + "."
    else:
        others = "No installed voice speaks it; more Piper voices download in the Models window."
    raise InvalidInputError(f"This text looks like {wrong}, and the voice {voice.id} speaks "
                            f"{voice.config.language_name} ({voice.config.language}). {others}")


class PiperModel:
    """A loaded Piper voice: its ONNX Runtime session and its config. Thread-safe to run."""

    def __init__(self, voice: Voice) -> None:
        import onnxruntime

        self.voice = voice
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle ONNX Runtime threads must not spin: the lane's chat model writes the answer beside this voice.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(voice.model_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf classes
            raise VoiceError(f"The voice file {voice.model_path} is damaged or is not an ONNX model ({error}); download "
                             "or install the voice again.") from error
        names = {i.name for i in self.session.get_inputs()}
        if not _MODEL_INPUTS <= names:
            raise VoiceError(f"{voice.model_path.name} is an ONNX model but not a Piper voice (its inputs are "
                             f"{', '.join(sorted(names))}).")
        self._has_speaker = "sid" in names

    def sentence_audio(self, sentence: str, speed: float = 1.0) -> np.ndarray:
        """One sentence's speech (float32, the voice's rate), or an empty array when it has nothing to say."""
        config = self.voice.config
        ids = phoneme_ids(phonemize(sentence, config.espeak_voice), config.phoneme_id_map)
        if len(ids) <= 3:  # BOS, pad, EOS: only punctuation or symbols espeak-ng had no sound for
            return np.zeros(0, dtype=np.float32)
        inputs: dict[str, Any] = {
            "input": np.asarray([ids], dtype=np.int64),
            "input_lengths": np.asarray([len(ids)], dtype=np.int64),
            "scales": np.asarray([config.noise_scale, config.length_scale / speed, config.noise_w], dtype=np.float32),
        }
        if self._has_speaker:
            inputs["sid"] = np.asarray([0], dtype=np.int64)
        audio = np.asarray(self.session.run(None, inputs)[0], dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        return audio * (PEAK / max(0.01, peak))


class SpeechSynthesizer:
    """Text in, speech out, with one voice; the model loads once per store (per engine lane)."""

    def __init__(self, voice: str | Voice | None = None, store: Any = None) -> None:
        self.voice = voice if isinstance(voice, Voice) else find_voice(voice)
        self.model: PiperModel = _load(self.voice, store)

    @property
    def sample_rate(self) -> int:
        return self.voice.config.sample_rate

    def check(self, text: str) -> str:
        """The text stripped, or InvalidInputError: empty, or in a language the voice does not speak."""
        text = (text or "").strip()
        if not any(character.isalnum() for character in text):
            raise InvalidInputError("There is no text to read aloud: type or paste some words first.")
        check_language(text, self.voice)
        return text

    def sentences(self, text: str) -> list[str]:
        return split_sentences(text, self.voice.config.language_family)

    def stream(self, text: str, speed: float = 1.0, cancel: threading.Event | None = None,
               check: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        """(sentence, its audio followed by the pause between sentences), one sentence at a time."""
        speed = check_speed(speed)
        if check:
            text = self.check(text)
        silence = np.zeros(int(SENTENCE_SILENCE_S * self.sample_rate), dtype=np.float32)
        for sentence in self.sentences(text):
            if cancel is not None and cancel.is_set():
                raise CancelledError("Stopped.")
            audio = self.model.sentence_audio(sentence, speed)
            if audio.size:
                yield sentence, np.concatenate([audio, silence])

    def synthesize(self, text: str, speed: float = 1.0, cancel: threading.Event | None = None,
                   progress: Callable[[str, float | None], None] | None = None) -> SpeechResult:
        """The whole text as one clip."""
        started = time.perf_counter()
        text = self.check(text)
        total = max(1, len(self.sentences(text)))
        pieces, spoken = [], []
        for index, (sentence, audio) in enumerate(self.stream(text, speed, cancel, check=False)):
            pieces.append(audio)
            spoken.append(sentence)
            if progress is not None:
                progress(f"Sentence {index + 1} of {total}", (index + 1) / total)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return SpeechResult(audio, self.sample_rate, self.voice.id, text, spoken, speed, time.perf_counter() - started)


_local_models: dict[str, PiperModel] = {}
_local_lock = threading.Lock()


def _load(voice: Voice, store: Any) -> PiperModel:
    """Through the lane's loaded-model table when there is one (memory budget, status bar), else once per process."""
    key = ("voice:" + voice.id, str(voice.model_path))
    if store is not None:
        size = voice.model_path.stat().st_size
        return store.loaded.get_or_load(key, lambda: (PiperModel(voice), size), estimate_bytes=size)
    with _local_lock:
        if key[1] not in _local_models:
            _local_models[key[1]] = PiperModel(voice)
        return _local_models[key[1]]
