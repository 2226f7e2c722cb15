"""One logging setup for the window and the CLI: a rotating file in the user log dir plus the console."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from desktop_ai import paths

LOG_FILE_NAME = "desktop-ai.log"


def log_file() -> Path:
    return paths.log_dir() / LOG_FILE_NAME


def configure_logging(verbose: bool = False) -> Path:
    """Idempotent, so tests and repeated CLI calls in one process don't stack handlers."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_desktop_ai", False):
            root.removeHandler(handler)
    path = log_file()
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    for handler in (file_handler, console):
        handler._desktop_ai = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for noisy in ("urllib3", "httpx", "httpcore", "filelock", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
