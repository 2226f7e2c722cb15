"""A private X server for tests that type into other programs (issue 29): Xvfb on a display it picks itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TARGET = Path(__file__).with_name("typing_target.py")


@contextlib.contextmanager
def start_xvfb() -> Iterator[str]:
    """Yields the display name (":N"); -displayfd makes Xvfb choose a free display and say which."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (the Makefile's system-deps install it)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit code {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    process = subprocess.Popen([sys.executable, str(TARGET), str(folder)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (folder / "windows.json").exists():
            if process.poll() is not None:
                raise RuntimeError(f"the typing target exited: {process.stderr.read().decode(errors='replace')}")
            assert time.monotonic() < deadline, "the typing target never showed its windows"
            time.sleep(0.02)
        yield TypingTarget(folder, process, json.loads((folder / "windows.json").read_text()))
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def focus(display: str, window: int) -> None:
    """Give `window` the keyboard focus, as a click would (there is no window manager on this server)."""
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        connection.create_resource_object("window", window).set_input_focus(X.RevertToParent, X.CurrentTime)
        connection.sync()
    finally:
        connection.close()
