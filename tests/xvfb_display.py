"""A private X server (Xvfb) and another program to type into (desktop_ai.gui.typing_probe), for the
dictate-anywhere tests (issue 29); both are bench --task dictate-anywhere's own, wrapped for pytest."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@contextlib.contextmanager
def start_xvfb() -> Iterator[str]:
    """Yields the display name (":N") of a private Xvfb (bench --task dictate-anywhere's own)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (the Makefile's system-deps install it)")
    from desktop_ai.bench.dictate_anywhere import private_x_server

    with private_x_server() as display:
        yield display


@dataclass
class TypingTarget:
    """The other program: windows A and B, each a text field whose text is read back from its file."""

    folder: Path
    process: subprocess.Popen
    windows: dict[str, int]

    def text(self, name: str) -> str:
        path = self.folder / f"{name}.txt"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def wait_for(self, name: str, condition, timeout: float = 30.0) -> str:
        """Wait until the field's text satisfies `condition` (polls its file); returns the text either way."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(name)
            if condition(text) or time.monotonic() > deadline:
                return text
            assert self.process.poll() is None, "the typing target exited"
            time.sleep(0.01)


@contextlib.contextmanager
def start_typing_target(display: str, folder: Path) -> Iterator[TypingTarget]:
    from desktop_ai.bench.dictate_anywhere import typing_probe

    with typing_probe(display, folder) as (process, windows):
        yield TypingTarget(folder, process, windows)


def focus(display: str, window: int) -> None:
    """Give `window` the keyboard focus, as a click would (there is no window manager on this server)."""
    from desktop_ai.bench.dictate_anywhere import focus_window

    focus_window(display, window)
