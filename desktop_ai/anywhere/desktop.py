"""The one small interface every platform module implements, and the choice of module for this session."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol


class DesktopUnavailable(RuntimeError):
    """No desktop session this process can type into (no DISPLAY/WAYLAND_DISPLAY, or its tools are missing)."""


class Desktop(Protocol):
    """Typing into whatever window has the focus, on one windowing system."""

    name: str

    def focused_window(self) -> str | None:
        """An id of the window that has the keyboard focus, or None where the platform cannot tell."""

    def type_text(self, text: str) -> None:
        """Type `text` (any Unicode, "\\n" as Return) into the focused window."""

    def press_backspace(self, count: int) -> None:
        """Delete `count` characters before the cursor of the focused window."""

    def copy_to_clipboard(self, text: str) -> None:
        """Put `text` on the clipboard (where a paste, Ctrl+V, finds it)."""

    def paste(self) -> None:
        """Paste the clipboard into the focused window (Ctrl+V)."""

    def grab_hotkey(self, spec: str, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the key combination `spec` ("ctrl+alt+d") is pressed, in any window."""

    def limits(self) -> list[str]:
        """What does not work on this platform or with the tools found, said once to the user."""

    def close(self) -> None:
        """Release the grabs and connections; the clipboard's text may go with them (see limits())."""


def open_desktop(environ: dict[str, str] | None = None) -> Desktop:
    """X11 where DISPLAY is set and WAYLAND_DISPLAY is not (XWayland windows do not get XTest keys from here on
    Wayland, so Wayland wins when both are set); raises DesktopUnavailable with the reason otherwise."""
    env = os.environ if environ is None else environ
    if env.get("WAYLAND_DISPLAY"):
        from desktop_ai.anywhere.wayland import WaylandDesktop

        return WaylandDesktop()
    if env.get("DISPLAY"):
        from desktop_ai.anywhere.x11 import X11Desktop

        return X11Desktop(env["DISPLAY"])
    raise DesktopUnavailable("typing into other apps needs a desktop session: neither DISPLAY (X11) nor "
                             "WAYLAND_DISPLAY (Wayland) is set")
