"""What a model file or folder on disk is, read from its first bytes or its config.json. Both the store (models
the user points at) and the library (models the user adds) ask; neither imports the other for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.catalogue import (
    KIND_CAUSAL_LM,
    KIND_SENTENCE_EMBEDDING,
    KIND_SEQUENCE_CLASSIFIER,
    KIND_SPEECH_CTC,
    KIND_TRANSLATION,
    KIND_WHISPER,
    TASK_CLASSIFY,
    TASK_TRANSCRIBE,
    TASK_TRANSLATE,
)

GGUF_MAGIC = b"GGUF"


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def kind_from_config(config_file: Path, task: str) -> str:
    """The kind of model a folder holds, read from its config.json, for the job it is asked to do."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(f"{config_file} is not a valid model config: {error}") from error
    if not isinstance(config, dict):
        raise ModelUnavailableError(f"{config_file} is not a valid model config.")
    architectures = " ".join(config.get("architectures") or [])
    if task == TASK_TRANSLATE:
        if config.get("model_type") == "marian" or "MarianMTModel" in architectures:
            return KIND_TRANSLATION
        raise ModelUnavailableError(
            f"{config_file.parent} is not a MarianMT translation model (its config says {config.get('model_type')!r})."
        )
    if task == TASK_TRANSCRIBE:
        if (config_file.parent / "model.bin").is_file() and "alignment_heads" in config:
            return KIND_WHISPER
        if "ForCTC" in architectures or config.get("model_type") in ("wav2vec2", "hubert", "wavlm"):
            return KIND_SPEECH_CTC
        raise ModelUnavailableError(
            f"{config_file.parent} is not a speech model: pick a faster-whisper folder (model.bin + config.json) "
            "or a wav2vec2 CTC model folder."
        )
    if task == TASK_CLASSIFY:
        if "SequenceClassification" in architectures:
            return KIND_SEQUENCE_CLASSIFIER
        return KIND_SENTENCE_EMBEDDING
    # A folder whose config names only non-generating architectures (a BERT classifier or encoder) would load
    # as a causal LM with a random head and write nonsense; give it its own kind so the task refuses it.
    if architectures and not any(word in architectures for word in ("CausalLM", "LMHead", "ConditionalGeneration")):
        return KIND_SEQUENCE_CLASSIFIER if "SequenceClassification" in architectures else KIND_SENTENCE_EMBEDDING
    return KIND_CAUSAL_LM
