"""Dictate anywhere on Wayland (issue 29): no compositor here, so the tools it drives (wtype, ydotool, wl-copy,
swaymsg) are stand-in scripts on PATH that log how they were called. What is checked is this module's part: which
tool it picks, with which arguments, and what it says does not work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop_ai.anywhere.desktop import DesktopUnavailable, open_desktop
from desktop_ai.anywhere.wayland import WaylandDesktop


def _tools(folder: Path, names: list[str], log: Path, swaymsg_tree: dict | None = None) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        script = folder / name
        reply = f"printf '%s' '{json.dumps(swaymsg_tree)}'\n" if name == "swaymsg" and swaymsg_tree else ""
        script.write_text(f"#!/bin/sh\nprintf '%s\\0' {name} \"$@\" >> {log}\nprintf '\\036' >> {log}\n{reply}")
        script.chmod(0o755)


def _calls(log: Path) -> list[list[str]]:
    return [call.rstrip("\0").split("\0") for call in log.read_text().split("\x1e") if call]  # RS between calls


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    def install(*names: str, tree: dict | None = None) -> Path:
        log = tmp_path / "calls.log"
        log.write_text("")
        _tools(tmp_path / "bin", list(names), log, tree)
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        return log
    return install


def test_wayland_is_chosen_over_x11_and_wtype_types_unicode_and_deletes(path_with):
    log = path_with("wtype", "wl-copy")
    desktop = open_desktop({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})
    assert isinstance(desktop, WaylandDesktop)
    desktop.type_text("Grüße,\nneue Zeile")
    desktop.press_backspace(2)
    desktop.copy_to_clipboard("moved")
    desktop.paste()
    assert _calls(log) == [["wtype", "--", "Grüße,\nneue Zeile"], ["wtype", "-k", "BackSpace", "-k", "BackSpace"],
                           ["wl-copy", "--", "moved"], ["wtype", "-M", "ctrl", "v", "-m", "ctrl"]]
    assert any("focused window cannot be read" in said for said in desktop.limits())


def test_ydotool_types_ascii_and_pastes_the_rest(path_with):
    log = path_with("ydotool", "wl-copy")
    desktop = WaylandDesktop()
    desktop.type_text("plain text")
    desktop.type_text("café")
    assert _calls(log) == [["ydotool", "type", "--key-delay", "2", "--", "plain text"], ["wl-copy", "--", "café"],
                           ["ydotool", "key", "29:1", "47:1", "47:0", "29:0"]]
    assert any("US key layout" in said for said in desktop.limits())


def test_only_the_clipboard_says_so_and_sway_tells_the_focused_window(path_with):
    tree = {"id": 1, "nodes": [{"id": 7, "focused": False, "nodes": [{"id": 42, "focused": True, "nodes": []}]}]}
    path_with("wl-copy", "swaymsg", tree=tree)
    desktop = WaylandDesktop()
    assert desktop.focused_window() == "42"
    with pytest.raises(DesktopUnavailable, match="on the clipboard"):
        desktop.type_text("hello")
    assert any("clipboard only" in said for said in desktop.limits())
    with pytest.raises(DesktopUnavailable, match="keyboard settings"):
        desktop.grab_hotkey("ctrl+alt+d", lambda: None)


def test_no_tool_and_no_session_are_one_clear_message(path_with):
    path_with()
    with pytest.raises(DesktopUnavailable, match="wtype, ydotool or wl-copy"):
        WaylandDesktop()
    with pytest.raises(DesktopUnavailable, match="neither DISPLAY"):
        open_desktop({})
