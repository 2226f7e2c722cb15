"""X11: XTest key events into the focused window, XGrabKey for the global shortcut, and the CLIPBOARD selection.

Characters the keyboard map has no key for (é, —, “, emoji) are typed as xdotool does: a spare keycode (one with
no keysym) is given the character's keysym, pressed, and kept for the rest of the session, so an app that reloads
its keymap a little late still reads the right character (reassigning a keycode at once would race with that).
The map is put back on close(). Uses python-xlib (LGPL-2.1, imported as a library).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from desktop_ai.anywhere.desktop import DesktopUnavailable

logger = logging.getLogger(__name__)

_SPECIAL_KEYSYMS = {"\n": 0xFF0D, "\r": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08}  # Return, Tab, BackSpace
_SHIFT_L = 0xFFE1
_CONTROL_L = 0xFFE3
_MODIFIER_NAMES = {"ctrl": "ControlMask", "control": "ControlMask", "shift": "ShiftMask", "alt": "Mod1Mask",
                   "super": "Mod4Mask", "win": "Mod4Mask", "meta": "Mod4Mask"}


def keysym_for(char: str) -> int:
    """The X keysym of one character: Latin-1 keysyms are the code point, the rest 0x01000000 + the code point."""
    if char in _SPECIAL_KEYSYMS:
        return _SPECIAL_KEYSYMS[char]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 | code


class X11Desktop:
    """One connection for typing (the caller's thread) and one for the clipboard and the hotkey (a thread)."""

    name = "X11"

    def __init__(self, display_name: str | None = None) -> None:
        try:
            from Xlib import X, display, error  # noqa: F401  (python-xlib)
        except ImportError as missing:  # never expected: it is a dependency
            raise DesktopUnavailable(f"typing on X11 needs python-xlib ({missing})") from None
        self._X = X
        name = display_name or os.environ.get("DISPLAY")
        try:
            self._display = display.Display(name)
            self._events = display.Display(name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as failure:
            raise DesktopUnavailable(f"cannot open the X display {name!r}: {failure}") from None
        if not self._display.query_extension("XTEST"):
            self._display.close()
            self._events.close()
            raise DesktopUnavailable(f"the X server on {name!r} has no XTEST extension, so keys cannot be typed")
        self._read_keymap()
        self._assigned: OrderedDict[int, int] = OrderedDict()  # keysym → spare keycode given to it, oldest first
        self._lock = threading.Lock()  # guards self._events, which the event thread reads
        self._clipboard_text: bytes | None = None
        self._hotkeys: dict[tuple[int, int], Callable[[], None]] = {}
        root = self._events.screen().root
        self._owner = root.create_window(0, 0, 1, 1, 0, self._events.screen().root_depth)
        atom = self._events.intern_atom
        self._atoms = {name: atom(name) for name in ("CLIPBOARD", "TARGETS", "UTF8_STRING", "TEXT", "STRING",
                                                     "_NET_ACTIVE_WINDOW")}
        self._atoms["STRING"] = 31  # XA_STRING
        self._wake_read, self._wake_write = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="x11-events", daemon=True)
        self._thread.start()

    # keyboard map ------------------------------------------------------------------------------------------
    def _read_keymap(self) -> None:
        info = self._display.display.info
        self._min_keycode, self._max_keycode = info.min_keycode, info.max_keycode
        rows = self._display.get_keyboard_mapping(self._min_keycode, self._max_keycode - self._min_keycode + 1)
        self._original_rows = {self._min_keycode + i: list(row) for i, row in enumerate(rows)}
        self._keys: dict[int, tuple[int, bool]] = {}  # keysym → (keycode, needs Shift)
        self._spare: list[int] = []
        for keycode, row in self._original_rows.items():
            if not any(row):
                self._spare.append(keycode)
                continue
            for level, keysym in enumerate(row[:2]):
                if keysym and keysym not in self._keys:
                    self._keys[keysym] = (keycode, level == 1)
        self._shift = self._keys.get(_SHIFT_L, (0, False))[0]
        self._control = self._keys.get(_CONTROL_L, (0, False))[0]

    def _keycode_for(self, keysym: int) -> tuple[int, bool]:
        found = self._keys.get(keysym)
        if found is not None:
            return found
        if keysym in self._assigned:
            self._assigned.move_to_end(keysym)
            return self._assigned[keysym], False
        if self._spare:
            keycode = self._spare.pop()
        else:  # every spare keycode holds a character already: reuse the one used longest ago
            if not self._assigned:
                raise DesktopUnavailable("the keyboard map has no spare keycode for characters it lacks")
            self._display.sync()
            _, keycode = self._assigned.popitem(last=False)
        self._display.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._display.sync()
        self._assigned[keysym] = keycode
        return keycode, False

    # typing ------------------------------------------------------------------------------------------------
    def _tap(self, keycode: int, shift: bool = False, control: bool = False) -> None:
        from Xlib.ext import xtest

        X = self._X
        held = [code for code, wanted in ((self._control, control), (self._shift, shift)) if wanted and code]
        for code in held:
            xtest.fake_input(self._display, X.KeyPress, code)
        xtest.fake_input(self._display, X.KeyPress, keycode)
        xtest.fake_input(self._display, X.KeyRelease, keycode)
        for code in reversed(held):
            xtest.fake_input(self._display, X.KeyRelease, code)

    def type_text(self, text: str) -> None:
        for char in text:
            keycode, shift = self._keycode_for(keysym_for(char))
            self._tap(keycode, shift)
        self._display.sync()  # every key is with the server when this returns

    def press_backspace(self, count: int) -> None:
        keycode, _ = self._keycode_for(_SPECIAL_KEYSYMS["\b"])
        for _ in range(count):
            self._tap(keycode)
        self._display.sync()

    def paste(self) -> None:
        keycode, _ = self._keycode_for(ord("v"))
        self._tap(keycode, control=True)
        self._display.sync()

    # focus -------------------------------------------------------------------------------------------------
    def focused_window(self) -> str | None:
        """The window manager's active window where there is one (_NET_ACTIVE_WINDOW), else the input focus."""
        X = self._X
        root = self._display.screen().root
        active = root.get_full_property(self._atoms["_NET_ACTIVE_WINDOW"], X.AnyPropertyType)
        if active is not None and len(active.value) and active.value[0]:
            return f"0x{int(active.value[0]):x}"
        focus = self._display.get_input_focus().focus
        if focus == X.PointerRoot:
            focus = root.query_pointer().child
        if not focus or focus == X.NONE:
            return None
        return f"0x{focus.id:x}"

    # the clipboard and the hotkey (served by the event thread) ---------------------------------------------
    def copy_to_clipboard(self, text: str) -> None:
        with self._lock:
            self._clipboard_text = text.encode("utf-8")
            self._owner.set_selection_owner(self._atoms["CLIPBOARD"], self._X.CurrentTime)
            self._events.flush()
        os.write(self._wake_write, b"c")

    def grab_hotkey(self, spec: str, callback: Callable[[], None]) -> None:
        X = self._X
        modifiers, keysym = parse_hotkey(spec)
        mask = 0
        for name in modifiers:
            mask |= getattr(X, _MODIFIER_NAMES[name])
        keycode = self._events.keysym_to_keycode(keysym)
        if not keycode:
            raise ValueError(f"the keyboard has no key for {spec!r}")
        errors: list[Any] = []
        with self._lock:
            root = self._events.screen().root
            for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):  # with Caps Lock / Num Lock on too
                root.grab_key(keycode, mask | extra, True, X.GrabModeAsync, X.GrabModeAsync,
                              onerror=lambda err, *_: errors.append(err))
            self._events.sync()
            self._hotkeys[(keycode, mask)] = callback
        if errors:
            raise ValueError(f"the shortcut {spec} is taken by another program (X error: {errors[0]})")
        os.write(self._wake_write, b"h")

    def release_hotkeys(self) -> None:
        """Give back every grabbed shortcut (before grabbing a new one)."""
        X = self._X
        with self._lock:
            root = self._events.screen().root
            for keycode, mask in self._hotkeys:
                for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
                    root.ungrab_key(keycode, mask | extra)
            self._hotkeys.clear()
            self._events.sync()

    def _serve(self) -> None:
        X = self._X
        relevant = X.ShiftMask | X.ControlMask | X.Mod1Mask | X.Mod4Mask
        fd = self._events.fileno()
        while not self._stop.is_set():
            with self._lock:
                pending = self._events.pending_events()
            if not pending:
                ready, _, _ = select.select([fd, self._wake_read], [], [], 0.5)
                if self._wake_read in ready:
                    os.read(self._wake_read, 64)
                continue
            with self._lock:
                event = self._events.next_event()
                if event.type == X.SelectionRequest:
                    self._answer(event)
                    callback = None
                elif event.type == X.SelectionClear:
                    self._clipboard_text = None
                    callback = None
                elif event.type == X.KeyPress:
                    callback = self._hotkeys.get((event.detail, event.state & relevant))
                else:
                    callback = None
            if callback is not None:
                try:
                    callback()
                except Exception:  # a failing callback must not end the event thread
                    logger.exception("the shortcut's action failed")

    def _answer(self, request: Any) -> None:
        """Give the clipboard's text to a program that asked for it (a paste)."""
        from Xlib import X, Xatom
        from Xlib.protocol import event as xevent

        atoms = self._atoms
        target, prop = request.target, request.property or request.target
        text = self._clipboard_text
        if text is None or request.selection != atoms["CLIPBOARD"]:
            prop = X.NONE
        elif target == atoms["TARGETS"]:
            request.requestor.change_property(prop, Xatom.ATOM, 32,
                                              [atoms["TARGETS"], atoms["UTF8_STRING"], atoms["TEXT"], atoms["STRING"]])
        elif target in (atoms["UTF8_STRING"], atoms["TEXT"], atoms["STRING"]):
            kind = atoms["UTF8_STRING"] if target == atoms["TEXT"] else target
            request.requestor.change_property(prop, kind, 8, text)
        else:
            prop = X.NONE
        notify = xevent.SelectionNotify(time=request.time, requestor=request.requestor, selection=request.selection,
                                        target=target, property=prop)
        request.requestor.send_event(notify)
        self._events.flush()

    def limits(self) -> list[str]:
        return ["On X11 the clipboard keeps a phrase while desktop-ai runs (or until a clipboard manager takes it)."]

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_write, b"q")
        self._thread.join(timeout=2)
        try:
            for keysym, keycode in self._assigned.items():  # put the keyboard map back as it was
                self._display.change_keyboard_mapping(keycode, [tuple(self._original_rows[keycode][:2])])
            self._display.sync()
        finally:
            self._display.close()
            self._events.close()
            os.close(self._wake_read)
            os.close(self._wake_write)


def parse_hotkey(spec: str) -> tuple[list[str], int]:
    """"ctrl+alt+d" → (["ctrl", "alt"], keysym of d); raises ValueError with what is wrong."""
    from Xlib import XK

    parts = [part.strip().lower() for part in spec.replace("-", "+").split("+") if part.strip()]
    if not parts:
        raise ValueError("an empty shortcut")
    *modifiers, key = parts
    unknown = [name for name in modifiers if name not in _MODIFIER_NAMES]
    if unknown:
        raise ValueError(f"unknown modifier {unknown[0]!r} in {spec!r} (use ctrl, alt, shift, super)")
    keysym = XK.string_to_keysym(key) or XK.string_to_keysym(key.upper() if len(key) > 1 else key)
    if not keysym and len(key) > 1:
        keysym = XK.string_to_keysym(key.capitalize())
    if not keysym:
        raise ValueError(f"unknown key {key!r} in {spec!r}")
    return modifiers, keysym
