"""The Speech tab: live dictation from a microphone, and audio files dropped or opened, into one editable
transcript that is autosaved after every phrase and every edit (engine.transcript)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.models.catalogue import TASK_TRANSCRIBE, find_entry
from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.audio.transcript import Phrase, TranscriptAutosave, TranscriptDocument, latest_autosave, new_autosave_path
from desktop_ai.engine.tasks.transcription import ENGINE_DEFAULT_MODELS, ENGINE_KINDS, ENGINE_RUNTIMES, ENGINE_TITLES, ENGINES
from desktop_ai.gui.read_aloud import SpeakerButton
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.settings import read
from desktop_ai.gui.widgets import CompressionPicker, ModelPicker, accept_url_drag
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif")
AUDIO_FILTER = "Audio files (" + " ".join(f"*{s}" for s in AUDIO_SUFFIXES) + ");;All files (*)"
NOT_LOCAL_MESSAGE = "Only files on this computer can be transcribed; save the audio first, then drop the saved file."
SYSTEM_DEFAULT = -1  # the device picker's data for "the system's default input"
INPUT_TIP = "Which input records. The system default follows your desktop's sound settings."
METER_FLOOR_DB = -60.0


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


class TranscriptView(QTableWidget):
    """Start, end and text of each phrase; the text is edited in place. Also the drop area for audio files."""

    urls_dropped = Signal(list)  # list[QUrl]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 3, parent)
        self.setAccessibleName("Transcript")
        self.setHorizontalHeaderLabels(["Start", "End", "Text"])
        self.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        self.setWordWrap(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setToolTip("Double-click a phrase to correct it. Drop audio files here to transcribe them.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        accept_url_drag(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        accept_url_drag(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if accept_url_drag(event):
            self.urls_dropped.emit(list(event.mimeData().urls()))

    def show_document(self, document: TranscriptDocument) -> None:
        self.blockSignals(True)
        self.setRowCount(0)
        for phrase in document.phrases:
            self._append(phrase)
        self.blockSignals(False)
        self.scrollToBottom()

    def add_phrase(self, phrase: Phrase) -> None:
        self.blockSignals(True)
        self._append(phrase)
        self.blockSignals(False)
        self.scrollToBottom()

    def _append(self, phrase: Phrase) -> None:
        row = self.rowCount()
        self.insertRow(row)
        for column, text in enumerate((_clock(phrase.start), _clock(phrase.end))):
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.setItem(row, column, item)
        self.setItem(row, 2, QTableWidgetItem(phrase.text))


class SpeechTab(JobPage):
    document_changed = Signal()  # after every change that was autosaved (tests wait on it)

    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.setAccessibleName("Speech")
        self.job_kind: str | None = None
        self._devices_job: int | None = None
        self._devices_listed = False
        self._partial_text = ""
        self._offset_s = 0.0  # a new recording continues the document's clock
        self.recording_paths: list[Path] = []

        self.input_picker = QComboBox()
        self.input_picker.setAccessibleName("Microphone")
        self.input_picker.setToolTip(INPUT_TIP)
        self.input_picker.addItem("System default microphone", SYSTEM_DEFAULT)
        self.refresh_button = labelled_button("Refres&h", "List the microphones again (after plugging one in)")
        self.level_meter = QProgressBar()
        self.level_meter.setAccessibleName("Input level")
        self.level_meter.setRange(int(METER_FLOOR_DB), 0)
        self.level_meter.setValue(int(METER_FLOOR_DB))
        self.level_meter.setFormat("%v dB")
        self.level_meter.setMaximumWidth(200)
        self.record_button = labelled_button("&Record", "Start dictating (Ctrl+R); press again to stop")
        self.engine_picker = QComboBox()
        self.engine_picker.setAccessibleName("Speech engine")
        self.engine_picker.setToolTip("Whisper is the most accurate; wav2vec2 needs a download; PocketSphinx is the lightest.")
        for name in ENGINES:
            self.engine_picker.addItem(ENGINE_TITLES[name], name)
        self.model_picker = ModelPicker(TASK_TRANSCRIBE, store)
        self.compression_picker = CompressionPicker()
        # Issue 31: Whisper's compute type measured on this machine, unless the user forces one (dictation: int8).
        self.compression_picker.insertItem(0, "Fastest here (measured)", "auto")
        self.compression_picker.select("auto")
        self.open_button = labelled_button("&Open audio…", "Transcribe audio files (wav, flac, mp3, ogg, m4a)")
        self.stop_button = labelled_button("&Stop", "Stop recording or transcribing; everything so far is kept (Esc)")
        self.stop_button.setEnabled(False)
        self.transcript = TranscriptView()
        self.partial_label = QLabel()
        self.partial_label.setAccessibleName("Phrase in progress")
        self.partial_label.setWordWrap(True)
        self.partial_label.setStyleSheet("color: palette(mid); font-style: italic;")
        self.new_button = labelled_button("&New", "Start a new transcript (the current one stays saved)")
        self.export_button = labelled_button("&Export…", "Save the transcript as text (.txt) or subtitles (.srt, .vtt)")
        self.copy_button = labelled_button("&Copy all", "Copy the whole transcript to the clipboard")
        self.saved_label = QLabel()
        self.saved_label.setAccessibleName("Autosave")
        self.saved_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        options = QFormLayout()
        microphone = QHBoxLayout()
        microphone.addWidget(self.input_picker, 1)
        microphone.addWidget(self.refresh_button)
        microphone.addWidget(QLabel("Level"))
        microphone.addWidget(self.level_meter)
        microphone.addWidget(self.record_button)
        options.addRow("Microphone", microphone)
        recognizer = QHBoxLayout()
        recognizer.addWidget(self.engine_picker)
        recognizer.addWidget(self.model_picker, 1)
        options.addRow("Engine", recognizer)
        compression = QHBoxLayout()  # a row of its own, so that the window fits a small screen
        compression.addWidget(self.compression_picker)
        compression.addStretch(1)
        options.addRow("Compression", compression)
        files = QHBoxLayout()
        files.addWidget(self.open_button)
        files.addWidget(self.stop_button)
        files.addWidget(self.progress_bar, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.saved_label, 1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.copy_button)
        self.speak_button = SpeakerButton(lambda: self.document.text(), "transcript")
        buttons.addWidget(self.speak_button)
        layout = QVBoxLayout(self)
        layout.addLayout(options)
        layout.addLayout(files)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.partial_label)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)

        self.refresh_button.clicked.connect(self.refresh_devices)
        self.record_button.clicked.connect(self.toggle_recording)
        self.stop_button.clicked.connect(self.stop)
        self.open_button.clicked.connect(self.open_files)
        self.new_button.clicked.connect(self.new_document)
        self.export_button.clicked.connect(self.export)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.document.text()))
        self.engine_picker.activated.connect(self._on_engine_chosen)
        self.model_picker.model_changed.connect(self._on_model_chosen)
        self.transcript.urls_dropped.connect(self._on_urls_dropped)
        self.transcript.itemChanged.connect(self._on_item_edited)
        engine.finished_job.connect(self._on_devices_listed)
        engine.failed.connect(self._on_devices_failed)
        QShortcut(QKeySequence("Ctrl+R"), self, self.toggle_recording)
        QShortcut(QKeySequence("Escape"), self, self.stop)

        self.document = TranscriptDocument(source="microphone")
        self.autosave = TranscriptAutosave(self.document)

    # --- microphones ---------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        """The sound system is asked for its microphones the first time the tab is shown, not at start-up."""
        super().showEvent(event)
        if not self._devices_listed:
            self._devices_listed = True
            self.refresh_devices()

    def refresh_devices(self) -> None:
        if self._devices_job is None:
            self._devices_job = self.engine.submit("listing microphones", "audio_devices", {})

    def _on_devices_listed(self, job_id: int, devices: Any) -> None:
        if job_id != self._devices_job:
            return
        self._devices_job = None
        self.input_picker.setToolTip(INPUT_TIP)
        chosen = self.input_picker.currentData()
        self.input_picker.clear()
        self.input_picker.addItem("System default microphone", SYSTEM_DEFAULT)
        for device in devices:
            label = f"{device['name']} ({device['host_api']}, {device['default_samplerate'] / 1000:g} kHz)"
            self.input_picker.addItem(label + (" — default" if device["is_default"] else ""), device["index"])
        index = self.input_picker.findData(chosen)
        self.input_picker.setCurrentIndex(max(index, 0))

    def _on_devices_failed(self, job_id: int, message: str) -> None:
        """Said in the tab and on the picker; the status bar keeps what the last transcription said (the listing
        runs beside it and can finish later)."""
        if job_id == self._devices_job:
            self._devices_job = None
            self.input_picker.setToolTip(message)
            self.show_notice(message, status_bar=False)

    def input_device(self) -> int | None:
        data = self.input_picker.currentData()
        return None if data in (None, SYSTEM_DEFAULT) else int(data)

    # --- engine and model ----------------------------------------------------------------
    def speech_engine(self) -> str:
        return str(self.engine_picker.currentData())

    def select_engine(self, name: str) -> None:
        index = self.engine_picker.findData(name)
        if index >= 0:
            self.engine_picker.setCurrentIndex(index)

    def _on_engine_chosen(self, _index: int) -> None:
        """A new engine starts on its own default model."""
        entry = find_entry(self.model_picker.model_ref())
        if entry is None or entry.kind != ENGINE_KINDS[self.speech_engine()]:
            self.model_picker.select(ENGINE_DEFAULT_MODELS[self.speech_engine()])

    def _on_model_chosen(self, model: str) -> None:
        entry = find_entry(model)
        if entry is not None:
            for name, kind in ENGINE_KINDS.items():
                if kind == entry.kind:
                    self.select_engine(name)

    def _recognizer_params(self) -> dict[str, Any]:
        return {
            "engine": self.speech_engine(), "model": self.model_picker.model_ref(), "device": self.device_preference(),
            "compression": self.compression_picker.currentData(),
        }

    def live_params(self) -> dict[str, Any]:
        """What a dictation into a text box uses: this tab's engine, model, compression and microphone."""
        return self._recognizer_params() | {"input_device": self.input_device()}

    # --- dictation -----------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.running and self.job_kind == "dictate"

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop()
        elif not self.running:
            self.start_recording()

    def start_recording(self) -> None:
        if self.document.source != "microphone" and self.document.phrases:
            self.new_document()
        self.document.source = "microphone"
        self._offset_s = self.document.phrases[-1].end if self.document.phrases else 0.0
        recording = self.autosave.path.with_name(f"{self.autosave.path.stem}-{len(self.recording_paths) + 1}.wav")
        self.recording_paths.append(recording)
        params = self._recognizer_params() | {"input_device": self.input_device(), "recording_path": str(recording)}
        self.job_kind = "dictate"
        self.model_in_use.emit(self.model_picker.model_ref())
        self.runtime_used.emit(ENGINE_RUNTIMES[self.engine_picker.currentData()])
        self.submit("dictation", "dictate", params)
        self.status_message.emit("Recording… press Stop or Ctrl+R to finish.")

    def _on_dictation_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "level":
            self.level_meter.setValue(int(max(METER_FLOOR_DB, min(0.0, event["rms_db"]))))
            backlog = event.get("backlog_s", 0.0)
            self.level_meter.setToolTip(f"{event['rms_db']:.0f} dBFS" + (f"; {backlog:.1f} s of speech waiting to be recognised" if backlog >= 1 else ""))
        elif kind == "partial":
            self._partial_text = event["text"]
            self.partial_label.setText(self._partial_text)
        elif kind == "final":
            self._partial_text = ""
            self.partial_label.clear()
            segment = event.get("segment")
            if segment:
                self._add_phrase(Phrase(segment["start"] + self._offset_s, segment["end"] + self._offset_s, segment["text"]))
        elif kind == "status":
            self.status_message.emit(event["message"])
            if event.get("notices"):
                self.show_notice(" ".join(event["notices"]))

    def _keep_partial(self) -> bool:
        """The words of a phrase that never got its final text become a phrase of their own (timed at the end)."""
        if not self._partial_text:
            return False
        at = max(self.document.phrases[-1].end if self.document.phrases else 0.0, self._offset_s)
        self._add_phrase(Phrase(at, at, self._partial_text))
        self._partial_text = ""
        self.partial_label.clear()
        return True

    def _add_phrase(self, phrase: Phrase) -> None:
        self.document.add(phrase)
        self.transcript.add_phrase(phrase)
        self.save_document()

    # --- files ---------------------------------------------------------------------------
    def open_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Transcribe audio files", "", AUDIO_FILTER)
        if paths:
            self.transcribe_files(paths)

    def _on_urls_dropped(self, urls: list[QUrl]) -> None:
        local = [url.toLocalFile() for url in urls if url.isLocalFile()]
        if len(local) < len(urls):
            self.show_notice(NOT_LOCAL_MESSAGE, error=True)
        files: list[str] = []
        folder = any(Path(p).is_dir() for p in local)
        for path in map(Path, local):
            if path.is_dir():
                files.extend(str(p) for p in sorted(path.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES)
            else:
                files.append(str(path))
        if files:
            self.transcribe_files(files, folder)

    def transcribe_files(self, paths: list[str], folder_job: bool = False) -> None:
        """Each file becomes its own transcript, autosaved beside the dictations; the last one stays on screen."""
        if self.running:
            self.show_notice("Wait for the current job to finish (or stop it) before starting another.", error=True)
            return
        self.job_kind = "transcribe"
        self.model_in_use.emit(self.model_picker.model_ref())
        self.runtime_used.emit(ENGINE_RUNTIMES[self.engine_picker.currentData()])
        self.submit(f"transcribing {len(paths)} file(s)", "transcribe",
                    self._recognizer_params() | {"paths": list(paths)} | self.cluster_params(folder_job))

    def _start_file_document(self, path: str) -> None:
        if self.document.phrases or self.document.source not in (None, "microphone"):
            self.document = TranscriptDocument(title=Path(path).name, source=path)
            self.autosave = TranscriptAutosave(self.document, new_autosave_path("file"))
        else:  # the empty document on screen takes the file
            self.document.title, self.document.source = Path(path).name, path
        self.transcript.show_document(self.document)
        self._update_saved_label()

    def _on_file_segments(self, update: dict[str, Any]) -> None:
        if update.get("error"):
            self.show_notice(update["error"], error=True)
            return
        path = update["path"]
        if self.document.source != path:
            self._start_file_document(path)
        self.document.phrases = [Phrase(s["start"], s["end"], s["text"]) for s in update["segments"]]
        self.transcript.show_document(self.document)
        self.save_document()

    # --- job signals -------------------------------------------------------------------------
    def _on_partial(self, job_id: int, payload: Any) -> None:
        if not self._mine(job_id) or not isinstance(payload, dict):
            return
        if self.job_kind == "dictate":
            self._on_dictation_event(payload)
        else:
            self._on_file_segments(payload)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        recording = running and self.job_kind == "dictate"
        self.record_button.setText("■ Stop &recording" if recording else "&Record")
        self.record_button.setAccessibleName("Stop recording" if recording else "Record")
        self.record_button.setEnabled(not running or recording)
        self.stop_button.setEnabled(running)
        self.open_button.setEnabled(not running)
        self.new_button.setEnabled(not running)
        self.engine_picker.setEnabled(not running)
        self.model_picker.setEnabled(not running)
        self.compression_picker.setEnabled(not running)
        self.input_picker.setEnabled(not running)
        if not running:
            self.level_meter.setValue(int(METER_FLOOR_DB))

    def handle_result(self, result: Any) -> None:
        kind, self.job_kind = self.job_kind, None
        self._keep_partial()  # a phrase the engine could not finish (it was stopped hard): keep its words
        if kind == "dictate":
            notes = list(result.get("notices", []))
            if result.get("error"):
                notes.insert(0, result["error"])
            self.show_notice(" ".join(notes), error=bool(result.get("error")))
            self.status_message.emit(f"Recorded {result['duration_s']:.1f} s, {len(result['segments'])} phrase(s); saved to {self.autosave.path}")
            return
        errors = [r["error"] for r in result if r.get("error")]
        notes = [n for r in result for n in r.get("notices", [])]
        self.show_notice(" ".join(errors + notes), error=bool(errors))
        done = [r for r in result if not r.get("error")]
        if done:
            last = done[-1]
            source = "from the cache" if last["cached"] else f"{last['real_time_factor']:.2f}× real time"
            how = f", {last['compute_reason']}" if last.get("compute_reason") else ""
            self.status_message.emit(f"Transcribed {len(done)} file(s) with {last['engine']} ({source}{how}); saved to {self.autosave.path.parent}")

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._mine(job_id):
            self.job_kind = None
        super()._on_failed(job_id, message)

    # --- the document --------------------------------------------------------------------------
    def _on_item_edited(self, item: QTableWidgetItem) -> None:
        if item.column() == 2 and item.row() < len(self.document.phrases):
            self.document.set_text(item.row(), item.text())
            self.save_document()

    def save_document(self) -> None:
        try:
            self.autosave.save_now()
        except EngineError as error:
            self.show_notice(f"{error} Your transcript is still in the window: export it somewhere else.", error=True)
            return
        self._update_saved_label()
        self.document_changed.emit()

    def _update_saved_label(self) -> None:
        if self.document.phrases:
            self.saved_label.setText(f"Autosaved: {self.autosave.path.name}")
            self.saved_label.setToolTip(str(self.autosave.path))
        else:
            self.saved_label.setText("Nothing dictated yet")

    def new_document(self) -> None:
        if self.running:
            return
        self._drop_empty_reservation()
        self.document = TranscriptDocument(source="microphone")
        self.autosave = TranscriptAutosave(self.document)
        self.recording_paths = []
        self.transcript.show_document(self.document)
        self._update_saved_label()

    def _drop_empty_reservation(self) -> None:
        """new_autosave_path() reserves a file name at once; one that never got a phrase is removed again."""
        path = self.autosave.path
        if not self.document.phrases and path.is_file() and path.stat().st_size == 0:
            self.autosave.discard()

    def load_document(self, path: Path) -> bool:
        try:
            document = TranscriptDocument.load(path)
        except EngineError as error:
            self.show_notice(str(error), error=True)
            return False
        self._drop_empty_reservation()
        self.document = document
        self.autosave = TranscriptAutosave(document, path)
        self.transcript.show_document(document)
        self._update_saved_label()
        return True

    def export(self) -> None:
        if not self.document.phrases:
            self.show_notice("Nothing to export yet: dictate or transcribe something first.", error=True)
            return
        name = Path(self.document.title if self.document.source != "microphone" else self.autosave.path.stem).stem
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the transcript", f"{name}.txt", "Text (*.txt);;SubRip subtitles (*.srt);;WebVTT subtitles (*.vtt)"
        )
        if path:
            try:
                self.document.export(path)
            except EngineError as error:
                self.show_notice(str(error), error=True)
                return
            self.status_message.emit(f"Exported {path}")

    # --- settings ------------------------------------------------------------------------------
    def save_settings(self, settings: QSettings) -> None:
        """Called when the window closes: the phrase still being spoken is kept too."""
        if not self._keep_partial() and self.document.phrases:
            self.save_document()
        self._drop_empty_reservation()
        settings.setValue("speech/engine", self.speech_engine())
        settings.setValue("speech/model", self.model_picker.model_ref())
        settings.setValue("speech/compression", self.compression_picker.currentData())
        settings.setValue("speech/document", str(self.autosave.path) if self.document.phrases else "")

    def load_settings(self, settings: QSettings) -> None:
        self.select_engine(read(settings, "speech/engine", "whisper"))
        model = read(settings, "speech/model", "")
        if model:
            self.model_picker.select(model)
        self.compression_picker.select(read(settings, "speech/compression", "auto"))
        document = read(settings, "speech/document", "")
        if not settings.contains("speech/document"):
            # The window never closed normally (a crash, a power cut): bring back the newest autosave.
            document = str(latest_autosave() or "")
        if document and Path(document).is_file():
            self.load_document(Path(document))
        self._update_saved_label()
