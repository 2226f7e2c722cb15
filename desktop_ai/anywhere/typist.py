"""Each finished phrase into the focused window, never into the wrong one.

The focused window is read when a phrase's speech starts; when its text is final, the focus is read again. If it
moved (the user clicked elsewhere while speaking), the phrase is not typed: it goes to the clipboard and the
caller gets a notice, so nothing lands in a window it was not meant for and nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from desktop_ai.anywhere.desktop import Desktop, DesktopUnavailable
from desktop_ai.engine.tasks.dictation_commands import DictationCommands, TypingStep

logger = logging.getLogger(__name__)


@dataclass
class TypedPhrase:
    """What became of one phrase: typed, put on the clipboard (with why), or nothing to do."""

    heard: str
    step: TypingStep
    typed: bool
    on_clipboard: bool = False
    notice: str | None = None
    typed_at: float | None = None  # perf_counter() when the last key was with the X server / the tool returned


class PhraseTypist:
    def __init__(self, desktop: Desktop, commands: DictationCommands | None = None,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.desktop = desktop
        self.commands = commands or DictationCommands()
        self.on_notice = on_notice or (lambda _: None)
        self._window_at_start: str | None = None
        self._started = False
        self._typed_into: str | None = None  # the window that commands.typed was typed into

    def phrase_started(self) -> None:
        """Speech began: remember where the user is writing."""
        self._window_at_start = self.desktop.focused_window()
        self._started = True

    def phrase_final(self, text: str) -> TypedPhrase:
        """Type the phrase (or its command) if the focus is where it was when the phrase began."""
        window_now = self.desktop.focused_window()
        window_then = self._window_at_start if self._started else window_now
        self._started = False
        if window_now != self._typed_into:
            # What was typed elsewhere is not before this cursor: "scratch that" must not delete this window's text.
            self.commands.typed.clear()
            self._typed_into = window_now
        step = self.commands.step(text)
        if not step.text and not step.backspaces:
            return TypedPhrase(text, step, typed=False)
        if window_then != window_now:
            return self._to_clipboard(text, step, "The focus moved while you spoke, so the phrase was not typed: "
                                                  "it is on the clipboard.")
        try:
            if step.backspaces:
                self.desktop.press_backspace(step.backspaces)
            if step.text:
                self.desktop.type_text(step.text)
        except DesktopUnavailable as failure:
            return self._to_clipboard(text, step, f"The phrase could not be typed ({failure}).")
        self.commands.done(step)
        return TypedPhrase(text, step, typed=True, typed_at=time.perf_counter())

    def _to_clipboard(self, text: str, step: TypingStep, notice: str) -> TypedPhrase:
        on_clipboard = False
        words = step.text.strip() or text
        try:
            self.desktop.copy_to_clipboard(words)
            on_clipboard = True
        except DesktopUnavailable as failure:
            notice = f"{notice} It could not go to the clipboard either ({failure}); it is in the transcript."
        logger.info("%s %r", notice, words)
        self.on_notice(notice)
        return TypedPhrase(text, step, typed=False, on_clipboard=on_clipboard, notice=notice)
