"""What every command shares: stdout for results and stderr for the rest, JSON lines, progress lines, exit
codes, the user error type, reading text files, Ctrl+C, and quieting the libraries' own chatter."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A mistake in what the user asked the CLI itself for (a missing --file, say): exit code 2."""


def out(text: str = "", end: str = "\n", stream: TextIO | None = None) -> None:
    """Results: the one place that writes to stdout."""
    target = stream or sys.stdout
    if target is None:  # a gui-script on Windows (pythonw) has no console at all
        return
    target.write(text + end)
    target.flush()


def err(text: str) -> None:
    """Errors, notices and progress: the one place that writes to stderr."""
    if sys.stderr is None:
        return
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def notes(notices: Sequence[str]) -> None:
    for notice in notices:
        err(f"note: {notice}")


def print_json(data: Any) -> None:
    out(json.dumps(data, ensure_ascii=False))


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


def progress_for(args: argparse.Namespace) -> Progress:
    return Progress(enabled=args.verbose or bool(getattr(sys.stderr, "isatty", lambda: False)()))


def quiet_libraries(verbose: bool) -> None:
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


def device_notice(requested: str, choice: Any) -> list[str]:
    """A GPU that was asked for and is missing must be said, never silently replaced."""
    if requested != "auto" and choice.device != requested:
        return [choice.reason]
    return []


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"The file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise CliError(f"The file {path} is not UTF-8 text.") from None
    except OSError as error:
        raise CliError(f"The file {path} cannot be read: {error.strerror or error}.") from None


@contextmanager
def stop_on_ctrl_c(cancel: threading.Event, message: str | None = None) -> Iterator[None]:
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
            err(message)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
