"""The `desktop-ai` command: the window when run bare, headless jobs as sub-commands.

The sub-commands run the same engine as the window (generate, chat, classify, recognize images, translate, transcribe
audio files, dictate from the microphone, list models, bench, install the menu entry), so a script, a server
without a display, or a GPU machine without Qt can use them.
Qt is imported only when the window is asked for.

Output rules, so scripts can rely on them: results go to stdout (plain text, or JSON with --json);
notices, progress and errors go to stderr; a user error is one "error: ..." line and exit code 2, an
unexpected failure exit code 1 with the traceback in the log file, Ctrl+C exit code 130.

The parser and `main` live here; each command family has its own module beside this one, and output.py
holds what they share."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from desktop_ai import __version__
from desktop_ai.cli import bench, chat, desktop, images, models, speech, teach, text, translation
from desktop_ai.cli import docs, serve, speak
from desktop_ai.cli.output import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    err,
)

logger = logging.getLogger(__name__)

COMMAND_FAMILIES = (text, chat, images, translation, speech, models, bench, desktop, teach)
COMMAND_FAMILIES += (speak, serve, docs)


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
    for family in COMMAND_FAMILIES:
        family.add_parsers(commands, common)
    return parser


def _open_window(rest: list[str]) -> int:
    """Imported here so that headless commands never load Qt. Arguments the CLI does not know
    (Qt's own, like -platform offscreen) are handed to the window's QApplication."""
    from desktop_ai.app import main as app_main

    return app_main(rest)


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
    if index < len(argv) and argv[index] not in _command_names() and _looks_like_file(argv[index]):
        return argv[:index], argv[index:]  # `desktop-ai PHOTO AUDIO` (the desktop entry's %F): files for the window
    return argv, []


def _command_names() -> set[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def _looks_like_file(argument: str) -> bool:
    return Path(argument).expanduser().exists() or os.sep in argument or bool(Path(argument).suffix)


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
        err(f"note: logging to a file is off: {error}")
    _keep_crashes_off_console()
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    try:
        if handler is None:
            return _open_window(rest)
        return handler(args)
    except KeyboardInterrupt:
        err("stopped")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `desktop-ai models | head`: the reader left, which is not an error here
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        except OSError:
            pass
        return EXIT_FAILURE
    except CliError as error:
        err(f"error: {error}")
        return EXIT_USAGE
    except Exception as error:
        from desktop_ai.engine.errors import EngineError

        if isinstance(error, (EngineError, ValueError)):
            logger.info("%s failed: %s", args.command or "window", error)
            err(f"error: {error}")
            return EXIT_USAGE
        logger.exception("Unexpected failure in %s", args.command or "the window", extra={"file_only": True})
        err(f"error: unexpected failure ({type(error).__name__}: {error}). Details are in {_log_path(log_file)}")
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
