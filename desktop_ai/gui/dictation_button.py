"""A microphone on a text box: click, speak, and the words arrive at the cursor (the phrase in progress in grey).

One `BoxDictation` per window runs one dictation at a time on the live lane with the Speech tab's engine, model,
compression and microphone; each `DictationButton` sits in the top-right corner of its box (a child of it, so a tab
needs no layout change: `attach_dictation_button(box, service, "Prompt")`). Esc in the box or a second click stops.
The spoken commands ("new line", "scratch that"...) work as in `dictate --type`, and every phrase also goes into
the transcript history with its audio, like the Speech tab's dictations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QToolButton

from desktop_ai.engine.audio.transcript import Phrase, TranscriptAutosave, TranscriptDocument, new_autosave_path
from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.tasks.dictation_commands import COMMAND_PROMPT, DictationCommands
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)

MICROPHONE = "🎤"
PARTIAL_COLOR = QColor("gray")


class BoxDictation(QObject):
    """The live lane, the Speech tab's settings, and which box is listening now."""

    notice = Signal(str)  # for the status bar: why a dictation did not start, or what it left behind

    def __init__(self, engine: EngineThread, params: Callable[[], dict[str, Any]],
                 busy: Callable[[], bool] = lambda: False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.params = params  # the Speech tab's engine, model, compression, device and microphone
        self.busy = busy  # the Speech tab is recording on the same lane
        self.active: Any = None  # a DictationButton, or the AnywhereDictation sink
        self.job_id: int | None = None
        self.autosave: TranscriptAutosave | None = None
        engine.partial.connect(self._on_partial)
        engine.finished_job.connect(self._on_done)
        engine.failed.connect(self._on_failed)

    def start(self, button: Any) -> bool:
        if self.active is not None:
            self.stop()
            return False
        if self.busy():
            self.notice.emit("The Speech tab is recording: stop it first to dictate into a text box.")
            return False
        path = new_autosave_path("dictation")
        self.autosave = TranscriptAutosave(TranscriptDocument(title=f"Dictation into {button.box_name} "
                                                              f"{datetime.now():%Y-%m-%d %H:%M}", source="microphone"),
                                           path)
        # the spoken commands are on: Whisper is told to expect them ("scratch that" was misheard without)
        params = self.params() | {"recording_path": str(path.with_suffix(".wav")), "prompt": COMMAND_PROMPT}
        self.active = button
        self.job_id = self.engine.submit(f"dictation into {button.box_name}", "dictate", params)
        self.notice.emit(f"Dictating into {button.box_name}… Esc stops.")
        return True

    def stop(self) -> None:
        if self.job_id is not None:
            self.engine.cancel(self.job_id)

    def _on_partial(self, job_id: int, event: Any) -> None:
        if job_id != self.job_id or self.active is None or not isinstance(event, dict):
            return
        kind = event.get("type")
        hook = getattr(self.active, "on_event", None)  # dictate anywhere: the level, and where a phrase began
        if hook is not None:
            hook(event)
        if kind == "partial":
            self.active.show_partial(str(event.get("text", "")))
        elif kind == "final":
            segment = event.get("segment")
            self.active.show_final(str(segment["text"]) if segment else "")
            if segment and self.autosave is not None:
                self.autosave.document.add(Phrase(segment["start"], segment["end"], segment["text"]))
                try:
                    self.autosave.save_now()
                except EngineError as error:
                    self.notice.emit(str(error))
        elif kind == "status" and event.get("notices"):
            self.notice.emit(" ".join(event["notices"]))

    def _finish(self, job_id: int, message: str | None) -> None:
        if job_id != self.job_id:
            return
        button, self.active, self.job_id = self.active, None, None
        if button is not None:
            button.finished()
        if message:
            self.notice.emit(message)
        if self.autosave is not None and not self.autosave.document.phrases:
            self.autosave.discard()

    def _on_done(self, job_id: int, result: Any) -> None:
        error = result.get("error") if isinstance(result, dict) else None
        saved = self.autosave.path if self.autosave is not None and self.autosave.document.phrases else None
        self._finish(job_id, error or (f"Dictation saved to {saved}" if saved else None))

    def _on_failed(self, job_id: int, message: str) -> None:
        self._finish(job_id, message)


class DictationButton(QToolButton):
    """The microphone in a box's corner; the box keeps the keyboard focus (the button never takes it)."""

    def __init__(self, box: QPlainTextEdit, service: BoxDictation, box_name: str) -> None:
        super().__init__(box)
        self.box, self.service, self.box_name = box, service, box_name
        self.setText(MICROPHONE)
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName(f"Dictate into {box_name}")
        self.setToolTip(f"Dictate into {box_name} at the cursor (Esc stops); uses the Speech tab's model and microphone")
        self.setCursor(Qt.CursorShape.ArrowCursor)
        self.commands = DictationCommands()
        self._partial_start: int | None = None  # where the grey phrase in progress begins
        self._partial_length = 0
        self.clicked.connect(self._on_clicked)
        box.installEventFilter(self)
        self._place()

    @property
    def listening(self) -> bool:
        return self.service.active is self

    def _on_clicked(self) -> None:
        if self.listening:
            self.service.stop()
            return
        self.commands = DictationCommands()
        self.setChecked(self.service.start(self))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.box:
            if event.type() == QEvent.Type.Resize:
                self._place()
            elif (event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) and self.listening
                  and isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Escape):
                if event.type() == QEvent.Type.ShortcutOverride:
                    event.accept()  # the tab's own Esc shortcut (stop the job) waits: this Esc is for the dictation
                    return True
                self.service.stop()
                return True  # Esc stops the dictation, not whatever else the box does with it
        return False

    def _place(self) -> None:
        self.adjustSize()
        self.move(self.box.width() - self.width() - 4 - self.box.verticalScrollBar().sizeHint().width(), 4)
        self.raise_()

    # --- the text ------------------------------------------------------------------------------------------
    def _take_partial(self) -> QTextCursor:
        """Remove the grey phrase in progress; a cursor where it was (or at the box's cursor if there was none)."""
        cursor = self.box.textCursor()
        if self._partial_start is not None:
            cursor.setPosition(self._partial_start)
            cursor.setPosition(self._partial_start + self._partial_length, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            self._partial_start, self._partial_length = None, 0
        return cursor

    def show_partial(self, text: str) -> None:
        cursor = self._take_partial()
        words = " ".join(text.split())
        if not words:
            return
        grey = QTextCharFormat()
        grey.setForeground(PARTIAL_COLOR)
        shown = self._separator(cursor) + words
        self._partial_start = cursor.position()
        self._partial_length = len(shown)
        cursor.insertText(shown, grey)

    def show_final(self, text: str) -> None:
        cursor = self._take_partial()
        step = self.commands.step(text)
        if step.backspaces:
            cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor,
                                min(step.backspaces, cursor.position()))
            cursor.removeSelectedText()
        typed = step.text
        if typed and not self.commands.typed:  # the first phrase: a space after the text already there
            typed = self._separator(cursor) + typed.lstrip(" ")
        cursor.insertText(typed, QTextCharFormat())
        self.box.setTextCursor(cursor)
        self.commands.done(step)
        if self.commands.typed and typed != step.text:
            self.commands.typed[-1] = typed  # "scratch that" removes the space it added too

    def _separator(self, cursor: QTextCursor) -> str:
        text = self.box.toPlainText()
        before = text[cursor.position() - 1] if cursor.position() > 0 else ""
        return " " if before and not before.isspace() else ""

    def finished(self) -> None:
        self._take_partial()
        self.setChecked(False)


def attach_dictation_button(box: QPlainTextEdit, service: BoxDictation, box_name: str) -> DictationButton:
    """Put the microphone on `box` (one line per box where the window is built)."""
    return DictationButton(box, service, box_name)
