"""Wayland: no client may read keys or type into other windows by itself, so this module drives the tools that can.

- typing: `wtype` (the virtual-keyboard protocol: Sway, Hyprland, river, other wlroots compositors; any Unicode),
  else `ydotool` (a uinput device through ydotoold: every compositor, GNOME and KDE included; it types by the
  US key layout), else the clipboard (`wl-copy`) and a paste with whichever of the two tools exists;
- the focused window: `swaymsg` or `hyprctl` where the compositor has them; elsewhere the focus cannot be read
  and a phrase cannot be held back when the focus moves (limits() says so);
- the global shortcut: the desktop's own keyboard settings run `desktop-ai dictate --type --toggle`.
These are separate programs (run, never imported), whatever their licences.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable

from desktop_ai.anywhere.desktop import DesktopUnavailable

logger = logging.getLogger(__name__)

_TIMEOUT_S = 10.0
_YDOTOOL_BACKSPACE = "14"  # Linux input event codes
_YDOTOOL_CTRL, _YDOTOOL_V = "29", "47"


class WaylandDesktop:
    name = "Wayland"

    def __init__(self) -> None:
        self.wtype = shutil.which("wtype")
        self.ydotool = shutil.which("ydotool")
        self.wl_copy = shutil.which("wl-copy")
        self.swaymsg = shutil.which("swaymsg")
        self.hyprctl = shutil.which("hyprctl")
        if not (self.wtype or self.ydotool or self.wl_copy):
            raise DesktopUnavailable("typing on Wayland needs wtype, ydotool or wl-copy (wl-clipboard); none is "
                                     "installed")

    def _run(self, *command: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as failure:
            raise DesktopUnavailable(f"{command[0]} failed: {failure}") from None
        if done.returncode != 0:
            raise DesktopUnavailable(f"{command[0]} failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def type_text(self, text: str) -> None:
        if self.wtype:
            self._run(self.wtype, "--", text)
        elif self.ydotool and text.isascii():
            self._run(self.ydotool, "type", "--key-delay", "2", "--", text)
        elif self.ydotool:  # ydotool cannot type it: the clipboard and a paste
            self.copy_to_clipboard(text)
            self.paste()
        else:
            self.copy_to_clipboard(text)
            raise DesktopUnavailable("no tool here can type (wtype or ydotool): the phrase is on the clipboard, "
                                     "paste it with Ctrl+V")

    def press_backspace(self, count: int) -> None:
        if count <= 0:
            return
        if self.wtype:
            self._run(self.wtype, *(["-k", "BackSpace"] * count))
        elif self.ydotool:
            self._run(self.ydotool, "key", *([f"{_YDOTOOL_BACKSPACE}:1", f"{_YDOTOOL_BACKSPACE}:0"] * count))
        else:
            raise DesktopUnavailable("deleting a phrase (\"scratch that\") needs wtype or ydotool")

    def copy_to_clipboard(self, text: str) -> None:
        if not self.wl_copy:
            raise DesktopUnavailable("the clipboard on Wayland needs wl-copy (wl-clipboard)")
        self._run(self.wl_copy, "--", text)

    def paste(self) -> None:
        if self.wtype:
            self._run(self.wtype, "-M", "ctrl", "v", "-m", "ctrl")
        elif self.ydotool:
            self._run(self.ydotool, "key", f"{_YDOTOOL_CTRL}:1", f"{_YDOTOOL_V}:1", f"{_YDOTOOL_V}:0", f"{_YDOTOOL_CTRL}:0")
        else:
            raise DesktopUnavailable("pasting on Wayland needs wtype or ydotool")

    def focused_window(self) -> str | None:
        try:
            if self.swaymsg:
                return _sway_focused(json.loads(self._run(self.swaymsg, "-t", "get_tree", "-r")))
            if self.hyprctl:
                return str(json.loads(self._run(self.hyprctl, "activewindow", "-j")).get("address") or "") or None
        except (DesktopUnavailable, ValueError) as failure:
            logger.warning("cannot read the focused window: %s", failure)
        return None

    def grab_hotkey(self, spec: str, callback: Callable[[], None]) -> None:
        raise DesktopUnavailable(f"Wayland lets no app grab {spec} for itself: bind it in the desktop's keyboard "
                                 "settings to run `desktop-ai dictate --type --toggle`")

    def limits(self) -> list[str]:
        said = []
        if not (self.swaymsg or self.hyprctl):
            said.append("On this Wayland desktop the focused window cannot be read, so a phrase is typed even if "
                        "the focus moved while it was spoken.")
        if not (self.wtype or self.ydotool):
            said.append("Neither wtype nor ydotool is installed: phrases go to the clipboard only (wl-copy); paste "
                        "them with Ctrl+V.")
        elif not self.wtype:
            said.append("ydotool types by the US key layout: text that is not ASCII goes through the clipboard.")
        return said

    def close(self) -> None:
        """Nothing is held: each tool ran and exited."""


def _sway_focused(node: dict) -> str | None:
    if node.get("focused"):
        return str(node.get("id"))
    for child in node.get("nodes", []) + node.get("floating_nodes", []):
        found = _sway_focused(child)
        if found:
            return found
    return None
