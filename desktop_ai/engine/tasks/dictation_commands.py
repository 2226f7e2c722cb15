"""Spoken commands for dictating into a text field: "new line", "comma", "scratch that"...

Pure text logic, no desktop: each final phrase becomes one `TypingStep` (so many BackSpaces, then this text),
and the steps actually typed are remembered, so "scratch that" knows how many characters the phrase before it
left in the field. The recognizer punctuates on its own ("New line." or "Hello, comma."): the command's own
words and the punctuation Whisper hung on them are dropped.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

NEW_LINE = "\n"
NEW_PARAGRAPH = "\n\n"
SCRATCH = object()  # removes the phrase before it

# Word sequences (lower case, without punctuation) and what each one stands for.
COMMANDS: dict[tuple[str, ...], object] = {
    ("new", "paragraph"): NEW_PARAGRAPH,
    ("new", "line"): NEW_LINE,
    ("newline",): NEW_LINE,
    ("full", "stop"): ".",
    ("period",): ".",
    ("comma",): ",",
    ("question", "mark"): "?",
    ("scratch", "that"): SCRATCH,
}
_LONGEST = max(len(words) for words in COMMANDS)
# Whisper's previous-text slot while commands are on: without it tiny.en wrote "Crash mode", "Scratch mat" for
# "scratch that" (3 right of 24 espeak-ng voices and rates through the microphone path); with it 22 of 24, and
# on 30 ordinary sentences it wrote no command word and no worse words (word error rate 0.27 against 0.31).
COMMAND_PROMPT = "New line. Scratch that. Comma."
_SENTENCE_ENDS = ".?!"
_SOFT_PUNCTUATION = ",;:"  # what Whisper adds at a pause, replaced by a spoken mark or a line break
_STRIP = string.punctuation + "“”‘’…"


@dataclass
class TypingStep:
    """What to do in the field for one phrase: delete `backspaces` characters, then type `text`."""

    backspaces: int
    text: str
    scratched: str = ""  # the earlier text that the BackSpaces remove (for the notice / history)


@dataclass
class DictationCommands:
    """Turns final phrases into typing steps; `enabled=False` types every phrase as it was heard."""

    enabled: bool = True
    typed: list[str] = field(default_factory=list)  # each typed step's text, newest last (what "scratch that" undoes)

    def step(self, phrase: str) -> TypingStep:
        """The step for `phrase`, given what was typed so far; nothing is remembered until `done(step)`."""
        words = phrase.split()
        if not words:
            return TypingStep(0, "")
        before = "".join(self.typed)
        if not self.enabled:
            return TypingStep(0, _separator(before, words[0]) + " ".join(words))
        pieces: list[str] = []  # this phrase's words and marks, joined at the end
        history = list(self.typed)
        backspaces = 0
        scratched = ""
        capitalize = False
        last_command: object | None = None
        index = 0
        while index < len(words):
            command, length = _command_at(words, index)
            if command is None:
                last_command = None
                word = words[index]
                pieces.append(word[:1].upper() + word[1:] if capitalize else word)
                capitalize = False
                index += 1
                continue
            index += length
            if command == last_command:
                # "Scratch that. Scratch that." or "New line. New line." in one phrase is Whisper repeating a short
                # phrase far more often than a request (two lines are "new paragraph"): deleting or breaking more
                # than meant is worse than having to say it again.
                continue
            last_command = command
            if command is SCRATCH:
                if pieces:
                    pieces = []  # "... scratch that" within one phrase drops the words before it
                    capitalize = True
                elif history:
                    last = history.pop()
                    backspaces += len(last)
                    scratched = last + scratched
                    before = "".join(history)
                continue
            mark = str(command)
            strip = _SOFT_PUNCTUATION + (_SENTENCE_ENDS if mark.strip() else "")
            if pieces and pieces[-1] not in (NEW_LINE, NEW_PARAGRAPH):
                pieces[-1] = pieces[-1].rstrip(strip)
                if not pieces[-1]:
                    pieces.pop()
            elif not pieces and mark.strip() and before and before[-1] in strip:
                backspaces += 1  # "Hello." then "comma": the recognizer's full stop becomes the spoken comma
                scratched = before[-1] + scratched
                before = before[:-1]
            pieces.append(mark)
            capitalize = mark.strip() in ("", ".", "?")
        return TypingStep(backspaces, _join(pieces, before), scratched)

    def done(self, step: TypingStep) -> None:
        """Remember a step that was typed (a phrase that went to the clipboard instead is not in the field)."""
        left = step.backspaces
        while left > 0 and self.typed:
            last = self.typed.pop()
            if len(last) > left:
                self.typed.append(last[: len(last) - left])
            left -= len(last)
        if step.text:
            self.typed.append(step.text)
        del self.typed[:-100]  # "scratch that" reaches back phrase by phrase; a long session keeps the recent ones


def _command_at(words: list[str], index: int) -> tuple[object | None, int]:
    for length in range(_LONGEST, 0, -1):
        chunk = words[index : index + length]
        if len(chunk) < length:
            continue
        key = tuple(part for word in chunk for part in _core(word).split("-") if part)
        if key in COMMANDS:
            return COMMANDS[key], length
    return None, 0


def _core(word: str) -> str:
    return word.strip(_STRIP).lower()


def _ends_line(text: str) -> bool:
    return not text or text.endswith("\n")


def _separator(before: str, first: str) -> str:
    """A space between a phrase and the text before it, except at the start of a line or before punctuation."""
    if _ends_line(before) or before.endswith(" ") or first[:1] in ".,?!;:" or first in (NEW_LINE, NEW_PARAGRAPH):
        return ""
    return " "


def _join(pieces: list[str], before: str) -> str:
    text = ""
    for piece in pieces:
        if piece in (NEW_LINE, NEW_PARAGRAPH):
            text = text.rstrip(" ") + piece
        elif piece in (".", ",", "?"):
            text = text.rstrip(" ") + piece
        else:
            text += _separator(before + text, piece) + piece
    return text
