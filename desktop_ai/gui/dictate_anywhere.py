"""Dictate anywhere from the window: a global shortcut starts and stops live dictation, and each finished phrase
is typed into whatever window has the focus (desktop_ai.anywhere); a small floating overlay shows the level and
the phrase in progress and never takes the focus (a tool window that does not accept it, shown without
activation). It runs on the live lane like a text box's microphone (BoxDictation), so the Speech tab's settings
apply and every phrase is kept in the transcript history with its audio.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QApplication, QInputDialog, QLabel, QProgressBar, QVBoxLayout, QWidget

from desktop_ai.anywhere.desktop import Desktop, DesktopUnavailable, open_desktop
from desktop_ai.anywhere.typist import PhraseTypist
from desktop_ai.engine.tasks.dictation_commands import DictationCommands
from desktop_ai.gui.dictation_button import BoxDictation
from desktop_ai.gui.settings import read

logger = logging.getLogger(__name__)

SHORTCUT_SETTING = "dictate_anywhere/shortcut"
DEFAULT_SHORTCUT = "ctrl+alt+d"
METER_FLOOR_DB = -60


class DictationOverlay(QWidget):
    """The level and the phrase in progress, on top of every window, never focused."""

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.Tool | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint | Qt.WindowType.WindowDoesNotAcceptFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName("Dictation overlay")
        self.setWindowTitle("desktop-ai dictation")
        layout = QVBoxLayout(self)
        self.level = QProgressBar()
        self.level.setRange(METER_FLOOR_DB, 0)
        self.level.setTextVisible(False)
        self.level.setMaximumHeight(6)
        self.phrase = QLabel("Listening…")
        self.phrase.setMinimumWidth(360)
        self.phrase.setWordWrap(True)
        layout.addWidget(self.level)
        layout.addWidget(self.phrase)

    def place(self) -> None:
        screen = QApplication.primaryScreen()
        if screen is not None:
            area = screen.availableGeometry()
            self.adjustSize()
            self.move(area.center().x() - self.width() // 2, area.bottom() - self.height() - 48)


class AnywhereDictation(QObject):
    """A BoxDictation sink that types into other apps instead of a box of this window."""

    box_name = "the focused window"
    hotkey_pressed = Signal()  # emitted from the X event thread; handled on the GUI thread (queued)

    def __init__(self, service: BoxDictation, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.settings = settings
        self.shortcut = read(settings, SHORTCUT_SETTING, DEFAULT_SHORTCUT)
        self.overlay = DictationOverlay()
        self.desktop: Desktop | None = None
        self.typist: PhraseTypist | None = None
        self.hotkey_pressed.connect(self.toggle, Qt.ConnectionType.QueuedConnection)

    def start_with_the_window(self) -> None:
        """On a real desktop (not offscreen), grab the shortcut; what does not work is logged, not shown."""
        from PySide6.QtGui import QGuiApplication

        if QGuiApplication.platformName() not in ("xcb", "wayland"):
            return
        problem = self.start_desktop()
        if problem:
            logger.info(problem)

    def start_desktop(self, desktop: Desktop | None = None) -> str | None:
        """Open the desktop and grab the shortcut; returns why it cannot work here, or None."""
        try:
            self.desktop = desktop or open_desktop()
        except DesktopUnavailable as error:
            return f"Dictate anywhere is off: {error}."
        self.typist = PhraseTypist(self.desktop, DictationCommands(), on_notice=self.service.notice.emit)
        return self.grab(self.shortcut)

    def grab(self, shortcut: str) -> str | None:
        if not shortcut or self.desktop is None:
            return None
        try:
            self.desktop.grab_hotkey(shortcut, self.hotkey_pressed.emit)
        except (ValueError, DesktopUnavailable) as error:
            return f"The dictate-anywhere shortcut {shortcut} does not work: {error}"
        return None

    @property
    def listening(self) -> bool:
        return self.service.active is self

    def toggle(self) -> None:
        if self.listening:
            self.service.stop()
        elif self.typist is not None and self.service.start(self):
            self.typist.commands = DictationCommands()
            self.overlay.phrase.setText("Listening…")
            self.overlay.place()
            self.overlay.show()

    # --- what BoxDictation calls --------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "speech" and self.typist is not None:
            self.typist.phrase_started()
        elif event.get("type") == "level":
            self.overlay.level.setValue(int(max(METER_FLOOR_DB, min(0.0, float(event.get("rms_db", -120))))))

    def show_partial(self, text: str) -> None:
        self.overlay.phrase.setText(" ".join(text.split()) or "Listening…")

    def show_final(self, text: str) -> None:
        self.overlay.phrase.setText("Listening…")
        if text and self.typist is not None:
            self.typist.phrase_final(text)

    def finished(self) -> None:
        self.overlay.hide()

    def ask_shortcut(self, parent: QWidget) -> None:
        """Settings ▸ Dictate anywhere shortcut…: keys such as ctrl+alt+d; empty turns it off."""
        text, ok = QInputDialog.getText(parent, "Dictate anywhere", "Global shortcut (for example ctrl+alt+d; empty: "
                                        "off). On Wayland, bind `desktop-ai dictate --type --toggle` in the desktop's "
                                        "keyboard settings instead.", text=self.shortcut)
        if not ok:
            return
        self.set_shortcut(text.strip().lower())

    def set_shortcut(self, shortcut: str) -> str | None:
        if self.desktop is not None and self.shortcut:
            release = getattr(self.desktop, "release_hotkeys", None)
            if release is not None:
                release()
        self.shortcut = shortcut
        self.settings.setValue(SHORTCUT_SETTING, shortcut)
        problem = self.grab(shortcut)
        self.service.notice.emit(problem or (f"Dictate anywhere: {shortcut} starts and stops it." if shortcut
                                             else "Dictate anywhere: no shortcut."))
        return problem

    def close(self) -> None:
        self.overlay.close()
        if self.desktop is not None:
            self.desktop.close()
            self.desktop = None
