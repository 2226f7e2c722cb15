"""Dictate anywhere on X11 (issue 29): keys, the clipboard, the focus and the global shortcut, checked in another
program (desktop_ai.gui.typing_probe, a separate Qt process) on a private Xvfb server. No speech here: the spoken path
is in test_dictate_anywhere_speech.py."""

from __future__ import annotations

import threading

import pytest

from xvfb_display import focus, start_typing_target, start_xvfb


@pytest.fixture(scope="module")
def display():
    with start_xvfb() as name:
        yield name


@pytest.fixture(scope="module")
def target(display, tmp_path_factory):
    with start_typing_target(display, tmp_path_factory.mktemp("typing-target")) as running:
        yield running


@pytest.fixture
def desktop(display):
    from desktop_ai.anywhere.x11 import X11Desktop

    opened = X11Desktop(display)
    yield opened
    opened.close()


def _type_and_read(desktop, target, name: str, text: str) -> tuple[str, str]:
    before = target.text(name)
    desktop.type_text(text)
    return before, target.wait_for(name, lambda now: now == before + text, timeout=15)


def test_unicode_and_punctuation_arrive_in_another_program(display, target, desktop):
    focus(display, target.windows["A"])
    text = "Grüße, “quoted” — ½ € 日本 ok?\nNext line: (a) & [b] {c} <d> 'e' \"f\" @#$%^*_+=|~`"
    before, now = _type_and_read(desktop, target, "A", text)
    assert now == before + text
    desktop.press_backspace(len("`|~"[:2]) + 1)  # three characters
    assert target.wait_for("A", lambda t: t == before + text[:-3], timeout=15) == before + text[:-3]


def test_characters_missing_from_the_keymap_go_through_spare_keycodes_and_the_map_is_restored(display, target):
    from desktop_ai.anywhere.x11 import X11Desktop, keysym_for

    desktop = X11Desktop(display)
    try:
        focus(display, target.windows["A"])
        spare_before = len(desktop._spare)
        _, now = _type_and_read(desktop, target, "A", "ÿ€€ŋ")
        assert now.endswith("ÿ€€ŋ")
        assert len(desktop._spare) == spare_before - 3, "ÿ, € and ŋ each took one spare keycode, € once"
        euro = desktop._assigned[keysym_for("€")]
    finally:
        desktop.close()
    from Xlib import display as xdisplay

    check = xdisplay.Display(display)
    try:
        assert not any(check.get_keyboard_mapping(euro, 1)[0]), "the borrowed keycode is empty again"
    finally:
        check.close()


def test_the_focused_window_is_the_one_given_the_focus(display, target, desktop):
    focus(display, target.windows["A"])
    assert desktop.focused_window() == f"0x{target.windows['A']:x}"
    focus(display, target.windows["B"])
    assert desktop.focused_window() == f"0x{target.windows['B']:x}"


def test_the_clipboard_is_pasted_into_another_program(display, target, desktop):
    focus(display, target.windows["B"])
    before = target.text("B")
    desktop.copy_to_clipboard("Grüße aus dem Clipboard")
    desktop.paste()
    assert target.wait_for("B", lambda t: t == before + "Grüße aus dem Clipboard", timeout=15).endswith("Clipboard")


def test_the_global_shortcut_fires_in_whatever_window_has_the_focus(display, target, desktop):
    from Xlib import X, XK
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    pressed = threading.Event()
    desktop.grab_hotkey("ctrl+alt+d", pressed.set)
    focus(display, target.windows["A"])
    before = target.text("A")
    keyboard = xdisplay.Display(display)
    try:
        codes = [keyboard.keysym_to_keycode(XK.string_to_keysym(name)) for name in ("Control_L", "Alt_L", "d")]
        for code in codes:
            xtest.fake_input(keyboard, X.KeyPress, code)
        for code in reversed(codes):
            xtest.fake_input(keyboard, X.KeyRelease, code)
        keyboard.sync()
    finally:
        keyboard.close()
    assert pressed.wait(10), "the shortcut's callback ran"
    assert target.text("A") == before, "the grabbed keys did not reach the focused program"


def test_a_bad_shortcut_is_one_clear_error(desktop):
    with pytest.raises(ValueError, match="unknown modifier"):
        desktop.grab_hotkey("hyper+d", lambda: None)
    with pytest.raises(ValueError, match="unknown key"):
        desktop.grab_hotkey("ctrl+nosuchkey", lambda: None)


def test_a_phrase_whose_focus_moved_goes_to_the_clipboard_not_into_either_window(display, target, desktop):
    from desktop_ai.anywhere.typist import PhraseTypist

    notices: list[str] = []
    typist = PhraseTypist(desktop, on_notice=notices.append)
    focus(display, target.windows["A"])
    typist.phrase_started()
    first = typist.phrase_final("Open the window.")
    assert first.typed and target.wait_for("A", lambda t: t.endswith("Open the window.")).endswith("Open the window.")
    a_before, b_before = target.text("A"), target.text("B")
    typist.phrase_started()
    focus(display, target.windows["B"])  # the user clicked elsewhere mid-phrase
    moved = typist.phrase_final("Close the door.")
    assert not moved.typed and moved.on_clipboard
    assert notices and "focus moved" in notices[0] and "clipboard" in notices[0]
    typist.phrase_started()
    scratch = typist.phrase_final("Scratch that.")  # the focus stayed on B: this one would act there...
    assert scratch.step.backspaces == 0, "...but nothing was typed into B: A's phrase must not be deleted from B"
    desktop.paste()  # the phrase is on the clipboard
    assert target.wait_for("B", lambda t: t == b_before + "Close the door.", timeout=15) == b_before + "Close the door."
    assert target.text("A") == a_before


def test_dictate_type_without_a_desktop_or_with_a_bad_shortcut_is_one_error_line(display):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "desktop_ai", "dictate", "--type", "--seconds", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: typing into other apps "
                                                                                   "needs a desktop session"), done.stderr
    done = subprocess.run([sys.executable, "-m", "desktop_ai", "dictate", "--type", "--hotkey", "hyper+d", "--seconds",
                           "1"], env=dict(env, DISPLAY=display), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "error: --hotkey: unknown modifier 'hyper'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_scratch_that_deletes_the_phrase_before_it_in_the_other_program(display, target, desktop):
    from desktop_ai.anywhere.typist import PhraseTypist

    focus(display, target.windows["B"])
    typist = PhraseTypist(desktop)
    before = target.text("B")
    for phrase in ("Open the window.", "New line.", "Close the door."):
        typist.phrase_started()
        assert typist.phrase_final(phrase).typed
    typed = before + "Open the window.\nClose the door."  # another app's text before the cursor is unknown: no space
    assert target.wait_for("B", lambda t: t == typed) == typed
    typist.phrase_started()
    scratch = typist.phrase_final("Scratch that.")
    assert scratch.typed and scratch.step.backspaces == len("Close the door.")
    assert target.wait_for("B", lambda t: t == typed[: -len("Close the door.")]) == typed[: -len("Close the door.")]
