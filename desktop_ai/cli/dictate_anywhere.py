"""`desktop-ai dictate --type`: each finished phrase typed into the focused window of any app.

Kept apart from cli/speech.py, which calls `open_typing` and feeds the returned typist its events. `--toggle`
is what a desktop's own shortcut setting runs (Wayland has no global hotkey for apps): the first press starts
dictating, the next one stops the dictation that is running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_ai.cli.output import CliError, err, notes


def _pid_file() -> Path:
    from desktop_ai.paths import cache_dir

    return cache_dir() / "dictate-type.pid"


def stop_running_dictation() -> int | None:
    """SIGINT to a `dictate --type --toggle` that is running (it stops as after Ctrl+C); its pid, or None."""
    path = _pid_file()
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:  # a stale file from a crash
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return None
    return pid


@contextlib.contextmanager
def toggle_pid_file() -> Iterator[None]:
    path = _pid_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()


class CliTyping:
    """The desktop, the typist and the shortcut for one `dictate --type` run."""

    def __init__(self, args: argparse.Namespace, cancel: threading.Event) -> None:
        from desktop_ai.anywhere.desktop import DesktopUnavailable, open_desktop
        from desktop_ai.anywhere.typist import PhraseTypist
        from desktop_ai.engine.tasks.dictation_commands import DictationCommands

        try:
            self.desktop = open_desktop()
        except DesktopUnavailable as error:
            raise CliError(str(error)) from None
        self.typist = PhraseTypist(self.desktop, DictationCommands(enabled=not args.no_commands),
                                   on_notice=lambda notice: err(f"note: {notice}"))
        if args.hotkey:
            try:
                self.desktop.grab_hotkey(args.hotkey, cancel.set)
            except (ValueError, DesktopUnavailable) as error:
                self.desktop.close()
                raise CliError(f"--hotkey: {error}") from None
        notes(self.desktop.limits())

    def on_event(self, event: dict[str, Any]) -> None:
        """Before the caller's own handling: a phrase began (remember the focus)."""
        if event.get("type") == "speech":
            self.typist.phrase_started()

    def on_final(self, text: str) -> None:
        self.typist.phrase_final(text)

    def close(self) -> None:
        self.desktop.close()


def add_typing_options(dictate: argparse.ArgumentParser) -> None:
    group = dictate.add_argument_group("dictate anywhere")
    group.add_argument("--type", action="store_true",
                       help="type each phrase into the window that has the focus, in any app (X11; Wayland with wtype, "
                       "ydotool or wl-copy), until Ctrl+C")
    group.add_argument("--no-commands", action="store_true",
                       help="type \"new line\", \"comma\", \"scratch that\"... as words instead of obeying them")
    group.add_argument("--hotkey", metavar="KEYS", default=None,
                       help="with --type on X11: a global shortcut such as ctrl+alt+d that stops dictating")
    group.add_argument("--toggle", action="store_true",
                       help="with --type: stop the `dictate --type --toggle` already running, else start one "
                       "(bind it to a key in the desktop's shortcut settings)")
