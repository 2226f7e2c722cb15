"""Argument types and the option groups several commands share. The choices are kept here rather than imported,
so building the parser (and --help) never imports torch; tests/test_cli.py checks they match the engine."""

from __future__ import annotations

import argparse

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
COMPRESSION_CHOICES = ("none", "int8", "fp16", "prune")
# tests/test_cli.py checks this matches desktop_ai.engine.runtimes.causal_lm.RUNTIME_CHOICES.
RUNTIME_CHOICES = ("auto", "llama.cpp", "ctranslate2", "transformers")
TASK_CHOICES = ("generate", "classify", "recognize", "translate", "transcribe")
TASK_CHOICES += ("speak",)
# tests/test_cli.py checks this matches desktop_ai.bench.BENCH_TASKS (chat runs the generate task's models).
BENCH_TASK_CHOICES = ("generate", "chat", "classify", "recognize", "translate", "transcribe", "teach")
BENCH_TASK_CHOICES += ("dictate-anywhere",)
BENCH_TASK_CHOICES += ("voice",)
BENCH_TASK_CHOICES += ("serve",)
BENCH_TASK_CHOICES += ("documents",)
# tests/test_cli.py checks this matches desktop_ai.engine.tasks.transcription.ENGINES.
SPEECH_ENGINE_CHOICES = ("whisper", "wav2vec2", "sphinx")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return number


def device_name(value: str) -> str:
    value = value.strip().lower()
    if value in DEVICE_CHOICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(DEVICE_CHOICES)}, or cuda:N)")


def compression_list(value: str) -> list[str]:
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one compression, for example none,int8")
    unknown = [item for item in items if item not in COMPRESSION_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown compression {', '.join(unknown)} (choose from {', '.join(COMPRESSION_CHOICES)})"
        )
    return list(dict.fromkeys(items))


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be more than 0")
    return number


def input_device(value: str) -> int | str:
    """A microphone by its index in `dictate --list-devices`, or by (part of) its name."""
    value = value.strip()
    if not value:
        raise argparse.ArgumentTypeError("give a device index or name (see --list-devices)")
    return int(value) if value.lstrip("-").isdigit() else value


def model_ref(value: str) -> str:
    """An added model's id (`desktop-ai models add`) becomes its path; anything else passes unchanged."""
    from desktop_ai.engine.models.library import expand_model_ref

    return expand_model_ref(value) or value


def add_model_options(parser: argparse.ArgumentParser,
                       model_help: str = "catalogue id, Hub id (owner/name), or a model folder or .gguf file",
                       compression_default: str = "none") -> None:
    parser.add_argument("--model", metavar="M", type=model_ref, help=model_help + ", or the id of a model you added")
    parser.add_argument("--device", type=device_name, default="auto", metavar="{auto,cpu,cuda,mps}",
                        help="where to run (default: auto, which prefers a GPU)")
    parser.add_argument("--compression", choices=COMPRESSION_CHOICES, default=compression_default,
                        help=f"shrink the model after loading (default: {compression_default})")
    parser.add_argument("--no-cache", action="store_true", help="don't read or write the results cache on disk")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def beam_size(value: str) -> int:
    number = positive_int(value)
    if number > 10:
        raise argparse.ArgumentTypeError(f"{value} is more than 10")
    return number


def add_speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=SPEECH_ENGINE_CHOICES, default=None,
                        help="speech recognizer (default: the --model's engine, else whisper)")
    parser.add_argument("--beam-size", type=beam_size, default=5, metavar="N",
                        help="Whisper beam search width, 1 to 10; 1 is fastest (default: 5)")
    parser.add_argument("--language", metavar="L", default=None,
                        help="Whisper language code such as en or de (default: English for .en models, else detected)")
