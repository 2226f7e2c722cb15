"""The `desktop-ai` command: the window when run bare, headless jobs as sub-commands.

The sub-commands run the same engine as the window (generate, classify, recognize images, translate, transcribe
audio files, dictate from the microphone, list models, bench, install the menu entry), so a script, a server
without a display, or a GPU machine without Qt can use them.
Qt is imported only when the window is asked for.

Output rules, so scripts can rely on them: results go to stdout (plain text, or JSON with --json);
notices, progress and errors go to stderr; a user error is one "error: ..." line and exit code 2, an
unexpected failure exit code 1 with the traceback in the log file, Ctrl+C exit code 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

from desktop_ai import __version__
from desktop_ai.engine.marian_stand_in import SHAPES as MARIAN_SHAPES  # imports no torch

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Kept here rather than imported, so building the parser (and --help) never imports torch;
# tests/test_cli.py checks they match desktop_ai.engine.devices and desktop_ai.engine.compression.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
COMPRESSION_CHOICES = ("none", "int8", "fp16", "prune")
TASK_CHOICES = ("generate", "classify", "recognize", "translate", "transcribe")
# tests/test_cli.py checks this matches desktop_ai.engine.transcription.ENGINES.
SPEECH_ENGINE_CHOICES = ("whisper", "wav2vec2", "sphinx")


class CliError(Exception):
    """A mistake in what the user asked the CLI itself for (a missing --file, say): exit code 2."""


# --- output -------------------------------------------------------------------------------------

def _out(text: str = "", end: str = "\n", stream: TextIO | None = None) -> None:
    """Results: the one place that writes to stdout."""
    target = stream or sys.stdout
    if target is None:  # a gui-script on Windows (pythonw) has no console at all
        return
    target.write(text + end)
    target.flush()


def _err(text: str) -> None:
    """Errors, notices and progress: the one place that writes to stderr."""
    if sys.stderr is None:
        return
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _notes(notices: Sequence[str]) -> None:
    for notice in notices:
        _err(f"note: {notice}")


def _print_json(data: Any) -> None:
    _out(json.dumps(data, ensure_ascii=False))


class Progress:
    """Loading and download messages for a person watching: shown on a terminal or with --verbose only,
    so a script that captures stderr sees nothing but notes and errors."""

    def __init__(self, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream is not None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open_line = False
        self._last: str | None = None

    def __call__(self, message: str, fraction: float | None = None, *_: Any) -> None:
        if not self.enabled:
            return
        text = f"{message} ({fraction:.0%})" if fraction is not None else message
        if text == self._last:
            return
        self._last = text
        if self._tty and fraction is not None and fraction < 1:
            self.stream.write("\r\x1b[K" + text)  # rewrite one line while a download runs
            self._open_line = True
        else:
            self.stream.write(("\r\x1b[K" if self._open_line else "") + text + "\n")
            self._open_line = False
        self.stream.flush()

    def message(self, text: str) -> None:
        self(text, None)

    def finish(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


# --- parser -------------------------------------------------------------------------------------

def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return number


def _device(value: str) -> str:
    value = value.strip().lower()
    if value in DEVICE_CHOICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(DEVICE_CHOICES)}, or cuda:N)")


def _compression_list(value: str) -> list[str]:
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one compression, for example none,int8")
    unknown = [item for item in items if item not in COMPRESSION_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown compression {', '.join(unknown)} (choose from {', '.join(COMPRESSION_CHOICES)})"
        )
    return list(dict.fromkeys(items))


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be more than 0")
    return number


def _input_device(value: str) -> int | str:
    """A microphone by its index in `dictate --list-devices`, or by (part of) its name."""
    value = value.strip()
    if not value:
        raise argparse.ArgumentTypeError("give a device index or name (see --list-devices)")
    return int(value) if value.lstrip("-").isdigit() else value


def _add_model_options(parser: argparse.ArgumentParser,
                       model_help: str = "catalogue id, Hub id (owner/name), or a model folder or .gguf file",
                       compression_default: str = "none") -> None:
    parser.add_argument("--model", metavar="M", help=model_help)
    parser.add_argument("--device", type=_device, default="auto", metavar="{auto,cpu,cuda,mps}",
                        help="where to run (default: auto, which prefers a GPU)")
    parser.add_argument("--compression", choices=COMPRESSION_CHOICES, default=compression_default,
                        help=f"shrink the model after loading (default: {compression_default})")
    parser.add_argument("--no-cache", action="store_true", help="don't read or write the results cache on disk")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _beam_size(value: str) -> int:
    number = _positive_int(value)
    if number > 10:
        raise argparse.ArgumentTypeError(f"{value} is more than 10")
    return number


def _add_speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=SPEECH_ENGINE_CHOICES, default=None,
                        help="speech recognizer (default: the --model's engine, else whisper)")
    parser.add_argument("--beam-size", type=_beam_size, default=5, metavar="N",
                        help="Whisper beam search width, 1 to 10; 1 is fastest (default: 5)")
    parser.add_argument("--language", metavar="L", default=None,
                        help="Whisper language code such as en or de (default: English for .en models, else detected)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, without importing the engine: `--help` stays instant."""
    parser = argparse.ArgumentParser(
        prog="desktop-ai",
        description="Local AI on your own machine. Without a command, opens the window.",
        epilog="Results go to stdout, notes and errors to stderr. Exit codes: 0 ok, 1 unexpected failure "
        "(see the log file), 2 bad input or model not available, 130 stopped.",
    )
    parser.add_argument("--verbose", action="store_true", help="show debug logging and progress on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # --verbose is accepted after the command too (`desktop-ai generate ... --verbose`); SUPPRESS keeps
    # the sub-command from resetting a --verbose given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show debug logging and progress on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    generate = commands.add_parser("generate", parents=[common], help="continue or answer a prompt, streaming the tokens",
                                   description="Generate text from PROMPT and stream it to stdout as it comes.")
    generate.add_argument("prompt", metavar="PROMPT", help="the prompt, or - to read it from stdin")
    generate.add_argument("--max-new-tokens", type=_positive_int, default=200, metavar="N",
                          help="most tokens to generate (default: 200)")
    generate.add_argument("--temperature", type=float, default=None, metavar="T",
                          help="sampling temperature; 0 is greedy and repeatable (default: 0.7)")
    generate.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling (default: 0.9)")
    generate.add_argument("--seed", type=int, default=None, metavar="S", help="seed for repeatable sampling")
    _add_model_options(generate)
    generate.set_defaults(handler=cmd_generate)

    classify = commands.add_parser("classify", parents=[common], help="sentiment, or zero-shot into labels you give",
                                   description="Classify each TEXT (and each line of --file): sentiment by "
                                   "default, or into --labels.")
    classify.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify; - reads one text per line from stdin")
    classify.add_argument("--labels", metavar="a,b,c", help="comma-separated labels (at least two); default: sentiment")
    classify.add_argument("--file", type=Path, metavar="PATH", help="a UTF-8 text file, one text per line")
    _add_model_options(classify)
    classify.set_defaults(handler=cmd_classify)

    recognize = commands.add_parser("recognize", parents=[common], help="ImageNet top-k labels for image files and folders",
                                    description="Recognise what each image shows (ImageNet-1k classes); folders are "
                                    "searched for image files. Files that cannot be read are reported and skipped.")
    recognize.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders of them")
    recognize.add_argument("--top", type=_positive_int, default=5, metavar="K", help="labels per image (default: 5)")
    recognize.add_argument("--arch", metavar="A",
                           help="torchvision architecture of a state_dict file given with --model (for example mobilenet_v2)")
    recognize.add_argument("--labels", type=Path, metavar="F",
                           help="class names, one per line (default: the labels.txt beside the model file)")
    recognize.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                           help="images per model call (default: 16 on a CPU, 64 on a GPU)")
    _add_model_options(recognize, "catalogue id (see `models --task recognize`), a TorchScript file, or a state_dict "
                       "file with --arch")
    recognize.set_defaults(handler=cmd_recognize)

    translate = commands.add_parser("translate", parents=[common], help="translate text sentence by sentence (opus-mt)",
                                    description="Translate TEXT (the words joined with spaces), a --file, or stdin (-) "
                                    "with a MarianMT opus-mt model; line breaks and spacing are kept.")
    translate.add_argument("texts", nargs="*", metavar="TEXT", help="the text to translate; - reads it from stdin")
    translate.add_argument("--src", default="en", metavar="LANG", help="source language (default: en)")
    translate.add_argument("--tgt", default="de", metavar="LANG", help="target language (default: de)")
    translate.add_argument("--file", type=Path, metavar="PATH", help="a UTF-8 text file to translate")
    translate.add_argument("--beams", type=_positive_int, default=4, metavar="N", help="beam search width, 1 to 16 (default: 4)")
    _add_model_options(translate, "catalogue id (opus-mt-en-de), Hub id, or a MarianMT model folder "
                       "(default: opus-mt-SRC-TGT)")
    translate.set_defaults(handler=cmd_translate)

    speech_model_help = ("catalogue id (see `models --task transcribe`), Hub id, or a model folder "
                         "(default: the engine's own; the engine follows from the model when --engine is not given)")
    transcribe = commands.add_parser("transcribe", parents=[common], help="speech to text for audio files",
                                     description="Transcribe each AUDIO file (WAV, FLAC, MP3, OGG, M4A...) into timed "
                                     "phrases. The model is loaded once for all files; a file that cannot be read is "
                                     "reported and the others still run (the exit code is then 2). Ctrl+C stops and "
                                     "prints the transcript so far.")
    transcribe.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to transcribe")
    _add_speech_options(transcribe)
    _add_model_options(transcribe, speech_model_help, compression_default="int8")
    transcribe.set_defaults(handler=cmd_transcribe)

    dictate = commands.add_parser("dictate", parents=[common], help="live dictation from the microphone",
                                  description="Write what is said into the microphone, one line per phrase as each "
                                  "phrase ends. The audio is recorded and the transcript saved after every phrase, both "
                                  "under the transcripts folder. Stop with Ctrl+C (exit code 0) or --seconds.")
    dictate.add_argument("--device", dest="input_device", type=_input_device, default=None, metavar="N",
                         help="the microphone: an index or (part of) a name from --list-devices (default: the system's)")
    dictate.add_argument("--seconds", type=_positive_float, default=None, metavar="S",
                         help="stop after this many seconds of audio (default: until Ctrl+C)")
    dictate.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    _add_speech_options(dictate)
    dictate.add_argument("--model", metavar="M", help=speech_model_help)
    dictate.add_argument("--compute-device", dest="device", type=_device, default="auto",
                         metavar="{auto,cpu,cuda,mps}", help="where to run the model (default: auto, which prefers a GPU)")
    dictate.add_argument("--compression", choices=COMPRESSION_CHOICES, default="int8",
                         help="shrink the model after loading (default: int8)")
    dictate.add_argument("--json", action="store_true", help="one JSON object per phrase on stdout")
    dictate.set_defaults(handler=cmd_dictate)

    models = commands.add_parser("models", parents=[common], help="list the known models and whether they are ready",
                                 description="List the model catalogue; * marks the default of each task.")
    models.add_argument("--task", choices=TASK_CHOICES, help="only the models of this task")
    models.add_argument("--json", action="store_true", help="a JSON list on stdout")
    models.set_defaults(handler=cmd_models)

    bench = commands.add_parser("bench", parents=[common], help="measure speed and size with each compression",
                                description="Benchmark one task's model with each compression and print a table.")
    bench.add_argument("--task", choices=TASK_CHOICES, required=True, help="which task to benchmark")
    bench.add_argument("--model", metavar="M", help="catalogue id, Hub id, or model folder (default: the task's default)")
    bench.add_argument("--device", type=_device, default="auto", metavar="{auto,cpu,cuda,mps}", help="where to run")
    bench.add_argument("--compressions", type=_compression_list, default=None, metavar="none,int8,prune",
                       help="comma-separated compressions to compare (default: the benchmark's own choice)")
    bench.add_argument("--max-new-tokens", type=_positive_int, default=32, metavar="N",
                       help="tokens per generation run (default: 32)")
    bench.add_argument("--repeats", type=_positive_int, default=3, metavar="N", help="timed runs per setting (default: 3)")
    bench.add_argument("--beams", type=_positive_int, default=4, metavar="N", help="translate: beam search width (default: 4)")
    bench.add_argument("--stand-in", choices=tuple(MARIAN_SHAPES), default=None,
                       help="translate: a MarianMT with random weights of this shape instead of a real model (the "
                            "default when opus-mt-en-de is not downloaded and no --model is given: opus-mt-en-de's shape)")
    bench.add_argument("--images", nargs="+", metavar="IMAGE_OR_FOLDER",
                       help="recognize: the images to time (default: the sample photos of ../shared/models)")
    bench.add_argument("--arch", metavar="A", help="recognize: torchvision architecture of a state_dict --model")
    bench.add_argument("--labels", metavar="F", help="recognize: class names file (default: labels.txt beside the model)")
    bench.add_argument("--audio", metavar="AUDIO",
                       help="transcribe: a recording to time (default: English sentences spoken by espeak-ng)")
    bench.add_argument("--json", action="store_true", help="the report as JSON instead of a Markdown table")
    bench.add_argument("--markdown", type=Path, metavar="PATH", help="also write the Markdown table to this file")
    bench.set_defaults(handler=cmd_bench)

    install = commands.add_parser("install-desktop", parents=[common], help="add desktop-ai to this Linux desktop's application menu",
                                  description="Write the .desktop file and icons into $XDG_DATA_HOME (or ~/.local/share).")
    install.set_defaults(handler=cmd_install_desktop)
    return parser


# --- commands -----------------------------------------------------------------------------------

def _progress_for(args: argparse.Namespace) -> Progress:
    return Progress(enabled=args.verbose or bool(getattr(sys.stderr, "isatty", lambda: False)()))


def _quiet_libraries(verbose: bool) -> None:
    """transformers and torch write their own warnings and progress bars to stderr, which a script
    capturing stderr would take for trouble; keep them for --verbose. Call it before importing the engine."""
    if verbose:
        return
    # torch's C++ warnings (the int8 TorchScript's "quantize_per_tensor is deprecated") bypass Python's warnings
    # and go straight to stderr; this level is read when torch is first imported, so it must be set before.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    # torchao, imported while loading, warns about deprecated torch.compile registrations.
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    import warnings

    # MarianTokenizer recommends an optional package at every load; the translation does not need it.
    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _device_notice(requested: str, choice: Any) -> list[str]:
    """A GPU that was asked for and is missing must be said, never silently replaced."""
    if requested != "auto" and choice.device != requested:
        return [choice.reason]
    return []


def _read_prompt(prompt: str) -> str:
    return sys.stdin.read() if prompt == "-" else prompt


def cmd_generate(args: argparse.Namespace) -> int:
    """Stream tokens as they come, because a reader wants the first words now, not after the last."""
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.text_generation import GenerationOptions, TextGenerator
    from desktop_ai.engine.workspace import open_workspace

    prompt = _read_prompt(args.prompt)
    options = GenerationOptions(max_new_tokens=args.max_new_tokens, seed=args.seed)
    if args.temperature is not None:
        options.temperature = args.temperature
    if args.top_p is not None:
        options.top_p = args.top_p
    progress = _progress_for(args)
    streamed: list[str] = []

    def on_partial(text: str) -> None:
        progress.finish()
        streamed.append(text)
        _out(text, end="")

    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        generator = TextGenerator(workspace.store, workspace.cache, model=args.model, device=args.device,
                                  compression=args.compression)
        device_notices = _device_notice(args.device, generator.device)
        if not args.json:
            _notes(device_notices)
        progress.message(f"Using {generator.entry.title} on {generator.device.describe()}")
        try:
            result = generator.run(prompt, options, on_partial=None if args.json else on_partial, progress=progress)
        except KeyboardInterrupt:
            if streamed:
                _out()
            raise
    finally:
        progress.finish()
        workspace.close()
    if args.json:
        result.notices = device_notices + result.notices
        _print_json(result.to_dict())
    else:
        if streamed:
            _out()
        _notes(result.notices)
        source = "from the cache" if result.from_cache else f"on {result.device}"
        progress.message(f"{result.new_tokens} tokens in {result.seconds:.2f} s "
                         f"({result.tokens_per_second:.1f} tokens/s) {source}")
    return EXIT_OK


def _read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"The file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise CliError(f"The file {path} is not UTF-8 text.") from None
    except OSError as error:
        raise CliError(f"The file {path} cannot be read: {error.strerror or error}.") from None


def _read_texts(args: argparse.Namespace) -> list[str]:
    texts: list[str] = []
    for text in args.texts:
        texts.extend(sys.stdin.read().splitlines() if text == "-" else [text])
    if args.file is not None:
        texts.extend(_read_text_file(args.file).splitlines())
    return texts


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _classification_table(results: Sequence[Any]) -> list[str]:
    rows = [(_shorten(r.text, 50), r.label, f"{r.scores[0].score:.3f}",
             "  ".join(f"{s.label} {s.score:.3f}" for s in r.scores)) for r in results]
    headers = ("text", "label", "score", "all scores")
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[3]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(headers[3]))
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    return lines


def cmd_classify(args: argparse.Namespace) -> int:
    """One result per text, in the order given: JSON lines for scripts, a table for people."""
    texts = _read_texts(args)
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.text_classification import TextClassifier
    from desktop_ai.engine.workspace import open_workspace

    progress = _progress_for(args)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        classifier = TextClassifier(workspace.store, workspace.cache, model=args.model, device=args.device,
                                    compression=args.compression)
        _notes(_device_notice(args.device, classifier.device))
        progress.message(f"Using {classifier.entry.title} on {classifier.device.describe()}")
        batch = classifier.run(texts, labels=args.labels, progress=progress)
    finally:
        progress.finish()
        workspace.close()
    if args.json:
        for result in batch.results:
            _print_json(result.to_dict())
    else:
        for line in _classification_table(batch.results):
            _out(line)
    _notes(batch.notices)
    hits = sum(1 for r in batch.results if r.from_cache)
    progress.message(f"{len(batch.results)} texts in {batch.seconds:.2f} s on {batch.device}"
                     + (f" ({hits} from the cache)" if hits else ""))
    return EXIT_OK


def _recognition_lines(result: Any) -> list[str]:
    """The path, then one indented "label  score%" line per prediction, labels aligned."""
    width = max((len(p.label) for p in result.predictions), default=0)
    return [result.path] + [f"  {p.label.ljust(width)}  {100 * p.score:.1f}%" for p in result.predictions]


class _InOrder:
    """Results arrive batch by batch (cache hits and unreadable files at once, the others when their batch
    is done); hand them on in the order the files were given, each as soon as all before it are out."""

    def __init__(self, paths: Sequence[Path], emit: Callable[[Any], None]) -> None:
        self._expected = [str(p) for p in paths]
        self._next = 0
        self._waiting: dict[str, list[Any]] = {}
        self._emit = emit

    def __call__(self, results: Sequence[Any]) -> None:
        for result in results:
            self._waiting.setdefault(result.path, []).append(result)
        while self._next < len(self._expected) and self._waiting.get(self._expected[self._next]):
            self._emit(self._waiting[self._expected[self._next]].pop(0))
            self._next += 1

    def rest(self, results: Sequence[Any]) -> None:
        """Whatever is still held once the run is over (none, unless the engine skipped one)."""
        for result in results[self._next:]:
            self._emit(result)


def cmd_recognize(args: argparse.Namespace) -> int:
    """One result per image in the order given, streamed as batches finish: JSON lines for scripts, labels for
    people. A file that cannot be recognised is a note, not a failure, unless every file failed."""
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.image_classification import ImageClassifier, collect_images
    from desktop_ai.engine.workspace import open_workspace

    files = collect_images(args.images)
    if not files:
        raise CliError("No images to recognise: " + ", ".join(args.images) + " holds no image files.")

    def emit(result: Any) -> None:
        progress.finish()
        if args.json:
            _print_json(result.to_dict())
        elif result.ok:
            for line in _recognition_lines(result):
                _out(line)
        elif len(files) > 1:  # a single file that fails is the error line itself
            _err(f"note: {result.path}: {result.error}")

    progress = _progress_for(args)
    in_order = _InOrder(files, emit)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        classifier = ImageClassifier(workspace.store, workspace.cache, model=args.model, device=args.device,
                                     compression=args.compression, arch=args.arch, labels=args.labels)
        _notes(_device_notice(args.device, classifier.device))
        progress.message(f"Using {classifier.entry.title} on {classifier.device.describe()}")
        batch = classifier.run(files, top_k=args.top, batch_size=args.batch_size, on_results=in_order, progress=progress)
        in_order.rest(batch.results)
    finally:
        progress.finish()
        workspace.close()
    failed = [r for r in batch.results if not r.ok]
    if batch.results and len(failed) == len(batch.results):
        if len(failed) == 1:
            raise CliError(f"{failed[0].path}: {failed[0].error}")
        raise CliError(f"None of the {len(failed)} files could be recognised; each one says why.")
    _notes(batch.notices)
    hits = sum(1 for r in batch.results if r.from_cache)
    progress.message(f"{len(batch.results) - len(failed)} images in {batch.seconds:.2f} s "
                     f"({batch.images_per_second:.1f} images/s) on {batch.device}" + (f" ({hits} from the cache)" if hits else ""))
    return EXIT_OK


def _read_translation_text(args: argparse.Namespace) -> str:
    if args.file is not None:
        if args.texts:
            raise CliError("Give the text either as TEXT or with --file, not both.")
        return _read_text_file(args.file)
    if args.texts == ["-"]:
        return sys.stdin.read()
    return " ".join(args.texts)


def cmd_translate(args: argparse.Namespace) -> int:
    """The whole translation on stdout (or one JSON object): line breaks and spacing kept as they were."""
    text = _read_translation_text(args)
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.translation import TranslationOptions, Translator
    from desktop_ai.engine.workspace import open_workspace

    progress = _progress_for(args)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        translator = Translator(workspace.store, workspace.cache, model=args.model, src=args.src, tgt=args.tgt,
                                device=args.device, compression=args.compression)
        device_notices = _device_notice(args.device, translator.device)
        progress.message(f"Using {translator.entry.title} on {translator.device.describe()}")
        result = translator.run(text, TranslationOptions(beams=args.beams), progress=progress)
    finally:
        progress.finish()
        workspace.close()
    notices = device_notices + result.notices
    if args.json:
        _print_json({
            "text": result.text, "source_text": result.source_text, "model_id": result.model_id, "device": result.device,
            "compression": result.compression, "sentences": result.sentences, "translated": result.translated,
            "cached": result.cached, "seconds": result.seconds, "notices": notices, "stopped": result.stopped,
        })
    else:
        _out(result.text.rstrip("\n"))
        _notes(notices)
    progress.message(f"{result.sentences} sentences in {result.seconds:.2f} s on {result.device}"
                     + (f" ({result.cached} from the cache)" if result.cached else ""))
    return EXIT_OK


@contextmanager
def _stop_on_ctrl_c(cancel: threading.Event, message: str | None = None) -> Iterator[None]:
    """The first Ctrl+C asks the job to stop where it is (so what it has is kept); a second one quits at once.
    Signal handlers can only be set from the main thread; elsewhere Ctrl+C keeps its usual meaning."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        if message:
            _err(message)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _clock_tenths(seconds: float) -> str:
    """0:01.2, or 1:02:03.4 past an hour: short enough to put in front of every phrase."""
    tenths = max(0, round(seconds * 10))
    hours, tenths = divmod(tenths, 36000)
    minutes, tenths = divmod(tenths, 600)
    secs, tenth = divmod(tenths, 10)
    return f"{hours}:{minutes:02d}:{secs:02d}.{tenth}" if hours else f"{minutes}:{secs:02d}.{tenth}"


def _segment_line(segment: Any) -> str:
    return f"[{_clock_tenths(segment.start)} → {_clock_tenths(segment.end)}] {segment.text}"


def _speech_options(args: argparse.Namespace, live: bool = False) -> Any:
    """Files get Whisper's full decoding; dictation the live options (one decode a phrase, phrase-length context)."""
    from dataclasses import replace

    from desktop_ai.engine.transcription import TranscriptionOptions, live_options

    base = live_options() if live else TranscriptionOptions()
    return replace(base, language=args.language or None, beam_size=args.beam_size)


def _speech_device_notice(requested: str, recognizer: Any) -> list[str]:
    """Say so when the recognizer runs elsewhere than asked (no GPU, or an engine that has no backend for it)."""
    actual = str(recognizer.device)
    if requested == "auto" or actual.split(":")[0] == requested.split(":")[0]:
        return []
    if any("ran out of memory" in notice for notice in recognizer.notices):
        return []  # the engine has said why already
    from desktop_ai.engine.devices import pick_device
    from desktop_ai.engine.transcription import ENGINE_TITLES

    choice = pick_device(requested)
    if choice.device != requested:
        return [choice.reason]
    return [f"{ENGINE_TITLES.get(recognizer.engine, recognizer.engine)} cannot run on {requested}; it ran on {actual}."]


def _model_title(recognizer: Any) -> str:
    entry = getattr(recognizer, "entry", None)
    return getattr(entry, "title", None) or recognizer.model_id


def _transcription_json(result: Any) -> dict[str, Any]:
    data = result.to_json()
    data["model"] = result.model_id
    return data


def cmd_transcribe(args: argparse.Namespace) -> int:
    """One result per file, in the order given: JSON lines for scripts, timed phrases for people (streamed as
    each phrase is recognised, because a long file takes a while). The model is loaded once for every file."""
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.errors import CancelledError, InvalidInputError
    from desktop_ai.engine.transcription import FileTranscriber, make_recognizer
    from desktop_ai.engine.workspace import open_workspace

    options = _speech_options(args)
    files = [str(path) for path in args.audio]
    progress = _progress_for(args)
    cancel = threading.Event()
    failed: list[tuple[str, str]] = []
    stopped = False
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        with _stop_on_ctrl_c(cancel, "stopping after this phrase (Ctrl+C again to quit at once)"):
            try:
                recognizer = make_recognizer(workspace.store, args.engine, args.model, args.device, args.compression,
                                             options, progress, cancel)
            except CancelledError:
                raise KeyboardInterrupt from None
            if cancel.is_set():  # Ctrl+C while the model was loading: there is nothing to keep yet
                raise KeyboardInterrupt
            device_notices = _speech_device_notice(args.device, recognizer)
            if not args.json:  # with --json they go in each result's "notices", as translate does
                _notes(device_notices)
            progress.message(f"Using {_model_title(recognizer)} on {recognizer.device} ({recognizer.compression})")
            transcriber = FileTranscriber(recognizer, workspace.cache)
            for number, path in enumerate(files, start=1):
                name = f"{path} ({number} of {len(files)})" if len(files) > 1 else path
                printed = 0
                header_done = False

                def header(path: str = path, number: int = number) -> None:
                    """The file's path above its phrases (a blank line between files), once."""
                    nonlocal header_done
                    if not header_done:
                        progress.finish()
                        if number > 1:
                            _out()
                        _out(path)
                        header_done = True

                def on_segments(segments: list[Any]) -> None:
                    nonlocal printed
                    if args.json:
                        return
                    header()
                    for segment in segments[printed:]:
                        _out(_segment_line(segment))
                    printed = len(segments)

                def on_progress(message: str, fraction: float | None = None, *_: Any, name: str = name) -> None:
                    progress(f"{name}: {message}", fraction)

                try:
                    result = transcriber.run(path, on_segments, on_progress, cancel)
                except InvalidInputError as error:  # a bad file: say why, go on with the others
                    progress.finish()
                    failed.append((path, str(error)))
                    if args.json:
                        _print_json({"path": path, "error": str(error)})
                    elif len(files) > 1:
                        _err(f"error: {path}: {error}")
                    continue
                progress.finish()
                if args.json:
                    result.notices = device_notices + result.notices
                    _print_json(_transcription_json(result))
                else:
                    header()
                    for segment in result.segments[printed:]:  # a cache hit, or anything not streamed
                        _out(_segment_line(segment))
                    _notes(result.notices)
                progress.message(f"{name}: {_clock_tenths(result.duration_s)} of audio " + (
                    "from the cache" if result.cached
                    else f"in {result.seconds:.2f} s ({result.real_time_factor:.2f}× real time) on {result.device}"))
                if result.stopped:
                    stopped = True
                    break
    finally:
        progress.finish()
        workspace.close()
    if stopped:
        _err("stopped")
        return EXIT_INTERRUPTED
    if failed:
        if len(files) == 1:
            raise CliError(f"{failed[0][0]}: {failed[0][1]}")
        raise CliError(f"{len(failed)} of {len(files)} files could not be transcribed"
                       + ("; each one's \"error\" says why." if args.json else "; see above."))
    return EXIT_OK


def _list_input_devices(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from desktop_ai.engine.microphone import list_input_devices

    devices = list_input_devices()
    if args.json:
        _print_json([asdict(device) for device in devices])
        return EXIT_OK
    width = max(len(str(device.index)) for device in devices)
    for device in devices:
        mark = "*" if device.is_default else " "
        _out(f"{mark} {str(device.index).rjust(width)}  {device.name}  ({device.host_api}, {device.channels} ch, "
             f"{device.default_samplerate:.0f} Hz)")
    _out("\n* the default input device")
    return EXIT_OK


class _PartialLine:
    """The phrase in progress, rewritten in place on a terminal's stderr; never written anywhere else."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr is not None and bool(getattr(sys.stderr, "isatty", lambda: False)())
        self._open = False

    def show(self, text: str) -> None:
        if not self.enabled or not text.strip():
            return
        import shutil

        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        line = "… " + " ".join(text.split())
        if len(line) > width:
            line = "… " + line[len(line) - width + 2:]  # the newest words matter most
        sys.stderr.write("\r\x1b[K" + line)
        sys.stderr.flush()
        self._open = True

    def clear(self) -> None:
        if self._open:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._open = False


def cmd_dictate(args: argparse.Namespace) -> int:
    """Each phrase on stdout as soon as it is final, and on disk (transcript and audio) at the same moment, so a
    crash or a lost microphone never costs what was already said."""
    if args.list_devices:
        return _list_input_devices(args)
    from desktop_ai.engine.microphone import MicrophoneStream

    # The microphone first, before the slow imports and the model (seconds): what is said from here on waits
    # in the stream's buffer, so a speaker who starts at once loses no words.
    stream = MicrophoneStream(args.input_device)
    stream.start()
    try:
        _quiet_libraries(args.verbose)
        from datetime import datetime

        from desktop_ai.engine.dictation import DictationSession
        from desktop_ai.engine.errors import EngineError
        from desktop_ai.engine.transcript import Phrase, TranscriptDocument, new_autosave_path
        from desktop_ai.engine.transcription import choose_engine, make_recognizer
        from desktop_ai.engine.workspace import open_workspace

        options = _speech_options(args, live=True)
        workspace = open_workspace(use_disk_cache=False)
    except BaseException:
        stream.stop()
        raise
    progress = _progress_for(args)
    partial = _PartialLine(enabled=not args.json)
    cancel = threading.Event()
    transcript_path: Path | None = None
    recording_path: Path | None = None
    loaded: list[Any] = []
    save_failed: list[str] = []
    document = TranscriptDocument(title=f"Dictation {datetime.now():%Y-%m-%d %H:%M}", source="microphone")
    try:
        choose_engine(workspace.store, args.engine, args.model)  # a wrong --model fails before any file is made
        transcript_path = new_autosave_path("dictation")
        recording_path = transcript_path.with_suffix(".wav")

        def recognizer() -> Any:
            built = make_recognizer(workspace.store, args.engine, args.model, args.device, args.compression, options,
                                    progress, None)
            loaded.append(built)
            progress.message(f"Using {_model_title(built)} on {built.device} ({built.compression})")
            return built

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("type")
            if kind == "partial":
                partial.show(str(event.get("text", "")))
            elif kind == "status":
                partial.clear()
                progress.message(str(event.get("message", "")))
            elif kind == "final":
                partial.clear()
                segment = event.get("segment")
                if not segment:
                    return
                phrase = Phrase(float(segment["start"]), float(segment["end"]), str(segment["text"]))
                if args.json:
                    _print_json({"start": phrase.start, "end": phrase.end, "text": phrase.text})
                else:
                    _out(phrase.text)
                document.add(phrase)
                try:
                    document.save(transcript_path)
                except EngineError as error:  # keep dictating: stdout and the recording still have it
                    if not save_failed:
                        _err(f"error: {error}")
                    save_failed.append(str(error))

        session = DictationSession(stream, recognizer, recording_path=recording_path)
        progress.message("Recording" + (f" for {args.seconds:g} s" if args.seconds else "") + "; Ctrl+C stops")
        with _stop_on_ctrl_c(cancel):
            result = session.run(on_event, cancel, args.seconds)
    except BaseException as error:
        partial.clear()
        stream.stop()
        if not loaded and not isinstance(error, KeyboardInterrupt):  # a wrong --model, say: nothing worth keeping
            for path in (transcript_path, recording_path):
                if path is not None:
                    path.unlink(missing_ok=True)
        else:
            if transcript_path is not None and document.phrases and not save_failed:
                _err(f"note: transcript saved to {transcript_path}")
            elif transcript_path is not None:
                transcript_path.unlink(missing_ok=True)
            if recording_path is not None and recording_path.is_file():
                _err(f"note: recording saved to {recording_path}")
        raise
    finally:
        progress.finish()
        workspace.close()
    partial.clear()
    _notes(result.notices)  # stderr in both modes: --json has no summary object to carry them
    phrases = len(result.segments)
    _err(f"note: {_clock_tenths(result.duration_s)} dictated from “{result.device}”, "
         f"{phrases} phrase{'' if phrases == 1 else 's'}.")
    if document.phrases and not save_failed:
        _err(f"note: transcript saved to {transcript_path}")
    elif transcript_path is not None and not document.phrases:
        transcript_path.unlink(missing_ok=True)  # the empty reservation: an autosave with nothing in it is clutter
        _err("note: no speech was heard.")
    if result.recording:
        _err(f"note: recording saved to {result.recording}")
    if result.error:
        raise CliError(result.error)
    if save_failed:  # already said, when it happened
        return EXIT_USAGE
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """What is known, what is ready offline, and what would need a download: before choosing, not after."""
    from desktop_ai.engine.catalogue import CATALOGUE, TASKS
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace(use_disk_cache=False)
    try:
        defaults = {task: workspace.store.default_model(task) for task in TASKS}
        rows = [
            {
                "id": entry.id,
                "task": entry.task,
                "title": entry.title,
                "size_mb": entry.size_mb,
                "licence": entry.licence,
                "source": entry.source,
                "location": entry.location,
                "availability": workspace.store.availability(entry),
                "default": defaults.get(entry.task) == entry.id,
            }
            for entry in CATALOGUE
            if args.task is None or entry.task == args.task
        ]
    finally:
        workspace.close()
    if args.json:
        _print_json(rows)
        return EXIT_OK
    columns = ("id", "task", "size", "licence", "source", "availability", "title")
    table = [
        (("* " if row["default"] else "  ") + row["id"], row["task"], f"{row['size_mb']:.0f} MB", row["licence"],
         row["source"], row["availability"], row["title"])
        for row in rows
    ]
    header = ("  " + columns[0],) + columns[1:]
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i]) for i in range(len(header))]
    for line in [header, *table]:
        _out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    _out("\n* the default model of its task")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    """Numbers measured on this machine, because compression pays off differently on each one."""
    _quiet_libraries(args.verbose)
    from desktop_ai.engine.benchmark import run_benchmark

    progress = _progress_for(args)
    try:
        report = run_benchmark(
            args.task,
            model=args.model,
            device=args.device,
            compressions=args.compressions,
            max_new_tokens=args.max_new_tokens,
            repeats=args.repeats,
            progress=progress,
            images=args.images,
            arch=args.arch,
            labels=args.labels,
            beams=args.beams,
            audio=[args.audio] if args.audio else None,
            stand_in=args.stand_in,
        )
    finally:
        progress.finish()
    markdown = report.to_markdown()
    if args.markdown is not None:
        try:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown if markdown.endswith("\n") else markdown + "\n", encoding="utf-8")
        except OSError as error:
            raise CliError(f"Cannot write {args.markdown}: {error.strerror or error}.") from None
        progress.message(f"Wrote {args.markdown}")
    if args.json:
        _print_json(report.to_dict())
    else:
        _out(markdown.rstrip("\n"))
    return EXIT_OK


def cmd_install_desktop(args: argparse.Namespace) -> int:
    """pip puts the script in a venv that no application menu knows; this puts it in the menu."""
    from desktop_ai.desktop_entry import install_desktop_entry

    try:
        written = install_desktop_entry()
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from None
    for path in written:
        _out(str(path))
    return EXIT_OK


def _open_window(rest: list[str]) -> int:
    """Imported here so that headless commands never load Qt. Arguments the CLI does not know
    (Qt's own, like -platform offscreen) are handed to the window's QApplication."""
    from desktop_ai.app import main as app_main

    return app_main(rest)


# --- entry point --------------------------------------------------------------------------------

def _file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def _keep_crashes_off_console() -> None:
    """A traceback belongs in the log file; the console gets one line that says where it is."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_desktop_ai", False) and not isinstance(handler, logging.FileHandler):
            if _file_only not in handler.filters:
                handler.addFilter(_file_only)


def _split_window_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """Without a command, everything after the global flags belongs to the window (Qt's `-style fusion`,
    `-platform offscreen`), whose values argparse would otherwise take for an unknown command."""
    index = 0
    while index < len(argv) and argv[index] == "--verbose":
        index += 1
    if index < len(argv) and argv[index].startswith("-") and argv[index] not in ("-h", "--help", "--version"):
        return argv[:index], argv[index:]
    return argv, []


def _log_path(log_file: Callable[[], Path]) -> str:
    try:
        return str(log_file())
    except OSError:
        return "the log file (which could not be opened)"


def main(argv: list[str] | None = None) -> int:
    """The `desktop-ai` entry point; returns the exit code instead of raising SystemExit."""
    import multiprocessing

    multiprocessing.freeze_support()  # the window's engine process, in frozen (PyInstaller) builds
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, rest = _split_window_arguments(argv)
    try:
        args = parser.parse_args(ours)
    except SystemExit as exit_:  # argparse: --help, --version, or a usage error it already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE

    from desktop_ai.logging_setup import configure_logging, log_file

    try:
        configure_logging(args.verbose)
    except OSError as error:  # a read-only home must not stop a headless job
        _err(f"note: logging to a file is off: {error}")
    _keep_crashes_off_console()
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    try:
        if handler is None:
            return _open_window(rest)
        return handler(args)
    except KeyboardInterrupt:
        _err("stopped")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `desktop-ai models | head`: the reader left, which is not an error here
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        except OSError:
            pass
        return EXIT_FAILURE
    except CliError as error:
        _err(f"error: {error}")
        return EXIT_USAGE
    except Exception as error:
        from desktop_ai.engine.errors import EngineError

        if isinstance(error, (EngineError, ValueError)):
            logger.info("%s failed: %s", args.command or "window", error)
            _err(f"error: {error}")
            return EXIT_USAGE
        logger.exception("Unexpected failure in %s", args.command or "the window", extra={"file_only": True})
        _err(f"error: unexpected failure ({type(error).__name__}: {error}). Details are in {_log_path(log_file)}")
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
