"""Where a chat message is written: the box (Enter sends, Shift+Enter a new line, Esc stops) and the turn
buttons, and the editing of your last message (the box holds it, Send becomes Resend, Cancel edit restores
what you had typed before)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QVBoxLayout, QWidget

from desktop_ai.gui.job_page import labelled_button


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line, Esc stops the answer (or leaves editing)."""

    submitted = Signal()
    escape_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escape_pressed.emit()
            return
        super().keyPressEvent(event)


class Composer(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editing = False
        self._draft_before_edit = ""
        self.input = MessageInput()
        self.input.setAccessibleName("Message")
        self.input.setPlaceholderText("Message… (Enter sends, Shift+Enter for a new line, Esc stops)")
        self.input.setMaximumHeight(110)
        self.send_button = labelled_button("S&end", "Send the message (Enter)")
        self.stop_button = labelled_button("&Stop", "Stop the answer; the text so far is kept (Esc)")
        self.regenerate_button = labelled_button("&Regenerate", "Answer your last message again")
        self.edit_button = labelled_button("&Edit last message", "Change your last message and send it again")
        self.cancel_edit_button = labelled_button("Cancel edit", "Leave your last message as it was (Esc)")
        self.cancel_edit_button.setVisible(False)
        self.buttons = QHBoxLayout()
        for button in (self.send_button, self.stop_button, self.regenerate_button, self.edit_button, self.cancel_edit_button):
            self.buttons.addWidget(button)
        # The chat's modes (read aloud, voice chat, documents) on a row of their own, so the window stays narrow
        # enough for a small screen.
        self.modes = QHBoxLayout()
        self.modes.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.input)
        layout.addLayout(self.buttons)
        layout.addLayout(self.modes)

    def add_mode(self, widget: QWidget) -> None:
        self.modes.insertWidget(self.modes.count() - 1, widget)

    def begin_edit(self, text: str) -> None:
        """The last message in the box to change; what was typed before comes back on cancel."""
        self._draft_before_edit = self.input.toPlainText()
        self.editing = True
        self.input.setPlainText(text)
        self.input.setFocus()
        self.send_button.setText("R&esend")
        self.send_button.setAccessibleName("Resend")
        self.cancel_edit_button.setVisible(True)

    def cancel_edit(self) -> bool:
        if not self.editing:
            return False
        self.input.setPlainText(self._draft_before_edit)
        self.leave_edit()
        return True

    def leave_edit(self) -> None:
        self.editing = False
        self.send_button.setText("S&end")
        self.send_button.setAccessibleName("Send")
        self.cancel_edit_button.setVisible(False)

    def draft(self) -> str:
        """What to keep of the box when leaving the conversation (an edit in progress is not a draft)."""
        return "" if self.editing else self.input.toPlainText()
