"""Read aloud in the window: one controller per window that runs the engine lane's "speak" job, and one speaker
button that any text view adds beside its text (chat answers, generated text, translations, transcripts).

The GUI thread never synthesises: it submits the job (the whole text, or an answer fed token by token while it
streams) and listens. One reading at a time: starting another, or Stop, ends the one before at once. Voice, speed
and output device are settings (Settings → Read aloud…), saved with the window's other settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QPushButton,
    QWidget,
)

from desktop_ai.engine.audio.echo import SoundEnvelope
from desktop_ai.gui.settings import read

logger = logging.getLogger(__name__)

READ_LABEL, STOP_LABEL = "Read aloud", "Stop reading"
PLAYED_KEPT_S = 60.0  # the played sound's envelope is kept this long, for voice chat's echo check


class ReadAloud(QObject):
    """The window's reader. `owner` is whatever started a reading (a SpeakerButton), so it can show Stop."""

    state_changed = Signal(object, bool)  # owner, speaking
    sentence_spoken = Signal(str)
    failed = Signal(str)

    shared: ReadAloud | None = None  # the window's, found by buttons made before or after it

    def __init__(self, engine: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.voice: str | None = None  # None: the embedded voice
        self.speed = 1.0
        self.device: str | None = None  # None: the system's default output
        self.job_id: int | None = None
        self.owner: object | None = None
        self.streaming = False
        self.last_report: dict | None = None
        self.played: list[SoundEnvelope] = []  # the loudness of what was read lately (engine/audio/echo.py)
        engine.partial.connect(self._on_partial)
        engine.finished_job.connect(self._on_finished)
        engine.failed.connect(self._on_failed)
        ReadAloud.shared = self

    # ------------------------------------------------------------ settings
    def load_settings(self, settings: QSettings) -> None:
        self.voice = read(settings, "read_aloud/voice", "") or None
        self.speed = min(4.0, max(0.25, read(settings, "read_aloud/speed", 1.0, float)))
        self.device = read(settings, "read_aloud/device", "") or None

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("read_aloud/voice", self.voice or "")
        settings.setValue("read_aloud/speed", self.speed)
        settings.setValue("read_aloud/device", self.device or "")

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"voice": self.voice, "speed": self.speed, "device": self.device, **extra}

    # ------------------------------------------------------------ readings
    @property
    def speaking(self) -> bool:
        return self.job_id is not None

    def speak(self, text: str, owner: object | None = None) -> int:
        """Read a whole text; a reading already going is stopped first."""
        self.stop()
        return self._start(owner, self._params(text=text), streaming=False)

    def start_stream(self, owner: object | None = None, text: str = "") -> int:
        """Read an answer while it is written: feed() its pieces, end_stream() when it is done."""
        self.stop()
        return self._start(owner, self._params(text=text, stream=True), streaming=True)

    def feed(self, text: str) -> None:
        if self.streaming and self.job_id is not None and text:
            self.engine.feed(self.job_id, text)

    def end_stream(self) -> None:
        if self.streaming and self.job_id is not None:
            self.engine.feed(self.job_id, None)
            self.streaming = False

    def stop(self) -> None:
        """Silence now (the engine aborts the sound stream); the button shows Read aloud again at once."""
        if self.job_id is None:
            return
        job_id, owner = self.job_id, self.owner
        self.job_id, self.owner, self.streaming = None, None, False
        self.engine.cancel(job_id)
        self.state_changed.emit(owner, False)

    def _start(self, owner: object | None, params: dict[str, Any], streaming: bool) -> int:
        self.owner, self.streaming = owner, streaming
        self.job_id = self.engine.submit("reading aloud", "speak", params)
        self.state_changed.emit(owner, True)
        return self.job_id

    def _on_partial(self, job_id: int, payload: object) -> None:
        if not isinstance(payload, dict):
            return
        if "played" in payload:  # even from a reading just stopped: its last sound may still be in the microphone
            self.played.extend(SoundEnvelope.from_json(envelope) for envelope in payload["played"])
            newest = max(envelope.end for envelope in self.played)
            self.played = [envelope for envelope in self.played if envelope.end > newest - PLAYED_KEPT_S]
        if job_id == self.job_id and "sentence" in payload:
            self.sentence_spoken.emit(payload["sentence"])

    def _on_finished(self, job_id: int, result: object) -> None:
        if job_id == self.job_id:
            self.last_report = result if isinstance(result, dict) else None
            self._ended()

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id == self.job_id:
            self._ended()
            self.failed.emit(message)

    def _ended(self) -> None:
        owner = self.owner
        self.job_id, self.owner, self.streaming = None, None, False
        self.state_changed.emit(owner, False)


def _forget_reader() -> None:
    """The window that owned the shared reader is gone (tests open many windows): buttons find none until the next."""
    import shiboken6

    if ReadAloud.shared is not None and not shiboken6.isValid(ReadAloud.shared):
        ReadAloud.shared = None


class SpeakerButton(QPushButton):
    """Reads `text_source()` aloud; shows Stop while its own reading goes on. Add one beside any text."""

    def __init__(self, text_source: Callable[[], str], what: str = "text", parent: QWidget | None = None) -> None:
        super().__init__(READ_LABEL, parent)
        self.text_source = text_source
        self.setAccessibleName(f"Read {what} aloud")
        self.setToolTip(f"Read the {what} aloud (voice and speed: Settings → Read aloud…); click again to stop")
        self.clicked.connect(self.toggle)
        self._connected: ReadAloud | None = None
        self.reader()  # follows the reader's state from now on (a chat answer read along shows Stop)

    def reader(self) -> ReadAloud | None:
        _forget_reader()
        reader = ReadAloud.shared
        if reader is not None and reader is not self._connected:
            reader.state_changed.connect(self._on_state)
            self._connected = reader
        return reader

    def toggle(self) -> None:
        reader = self.reader()
        if reader is None:
            return
        if reader.speaking and reader.owner is self:
            reader.stop()
            return
        text = self.text_source().strip()
        if text:
            reader.speak(text, self)

    def _on_state(self, owner: object, speaking: bool) -> None:
        if owner is self:
            self.setText(STOP_LABEL if speaking else READ_LABEL)
            self.setAccessibleName(self.accessibleName())  # the label changed; the name stays what it does


class ReadAloudSettingsDialog(QDialog):
    """Voice, speed and output device; the voice and device lists come from the engine lane (never this thread)."""

    def __init__(self, reader: ReadAloud, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Read aloud")
        self.reader = reader
        self.voice = QComboBox()
        self.voice.setAccessibleName("Voice")
        self.voice.addItem("en_US-joe-medium (embedded)", "")
        self.device = QComboBox()
        self.device.setAccessibleName("Output device")
        self.device.addItem("System default", "")
        self.speed = QDoubleSpinBox()
        self.speed.setAccessibleName("Speed")
        self.speed.setRange(0.25, 4.0)
        self.speed.setSingleStep(0.1)
        self.speed.setValue(reader.speed)
        for combo, value in ((self.voice, reader.voice), (self.device, reader.device)):
            if value:
                combo.addItem(value, value)
                combo.setCurrentIndex(combo.count() - 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Voice", self.voice)
        form.addRow("Speed", self.speed)
        form.addRow("Output device", self.device)
        form.addRow(buttons)
        self._jobs = {reader.engine.submit("listing voices", "voices", {}): self._fill_voices,
                      reader.engine.submit("listing sound outputs", "audio_outputs", {}): self._fill_devices}
        reader.engine.finished_job.connect(self._on_finished)

    def _on_finished(self, job_id: int, result: object) -> None:
        fill = self._jobs.pop(job_id, None)
        if fill is not None and isinstance(result, list):
            fill(result)

    def _fill_voices(self, voices: list[dict]) -> None:
        for voice in voices:
            if voice["source"] != "embedded" and self.voice.findData(voice["id"]) < 0:
                self.voice.addItem(f"{voice['id']} ({voice['language_name']})", voice["id"])

    def _fill_devices(self, devices: list[dict]) -> None:
        for device in devices:
            if self.device.findData(device["name"]) < 0:
                self.device.addItem(device["name"], device["name"])

    def accept(self) -> None:
        self.reader.voice = self.voice.currentData() or None
        self.reader.device = self.device.currentData() or None
        self.reader.speed = self.speed.value()
        super().accept()


class ChatReadAlong(QObject):
    """Chat's "Read answers aloud": each answer is spoken while it streams, from its first complete sentence; the
    answer's own speaker button shows Stop meanwhile, and the chat's Stop silences it too."""

    def __init__(self, page: Any) -> None:
        super().__init__(page)
        from PySide6.QtWidgets import QCheckBox

        self.page = page
        self.checkbox = QCheckBox("Read answers aloud")
        self.checkbox.setAccessibleName("Read answers aloud")
        self.checkbox.setToolTip("Speak each answer while it is written (voice and speed: Settings → Read aloud…)")
        page.composer.add_mode(self.checkbox)
        self.chat_job: int | None = None  # the chat job being read along
        page.engine.partial.connect(self._on_partial)
        page.engine.finished_job.connect(self._on_ended)
        page.engine.failed.connect(self._on_ended)
        page.stop_button.clicked.connect(self.stop)

    @property
    def enabled(self) -> bool:
        return self.checkbox.isChecked()

    def stop(self) -> None:
        reader = ReadAloud.shared
        if reader is not None and self.chat_job is not None:
            reader.stop()
        self.chat_job = None

    def _on_partial(self, job_id: int, payload: object) -> None:
        reader = ReadAloud.shared
        if (reader is None or job_id != self.page.job_id or not isinstance(payload, dict) or "message_id" not in payload
                or not self.enabled):
            return
        piece = str(payload.get("text") or "")
        if self.chat_job != job_id or payload.get("restarted"):  # a new answer (or one begun again): read it afresh
            self.chat_job = job_id
            widget = self.page.message_view.find(int(payload["message_id"]))
            reader.start_stream(getattr(widget, "speak_button", None), piece)
        else:
            reader.feed(piece)

    def _on_ended(self, job_id: int, _result: object) -> None:
        if job_id == self.chat_job:
            self.chat_job = None
            if ReadAloud.shared is not None:
                ReadAloud.shared.end_stream()
