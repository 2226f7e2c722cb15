"""The Translate tab: opus-mt pairs (or a MarianMT folder), sentence by sentence, streamed, stoppable, cached."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.models.catalogue import LANGUAGE_NAMES, TRANSLATION_PAIRS, find_entry
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.translation import MAX_CHARS, TranslationResult
from desktop_ai.gui.read_aloud import SpeakerButton
from desktop_ai.gui.settings import read
from desktop_ai.gui.job_page import JobPage, labelled_button, save_text
from desktop_ai.gui.widgets import FROM_DISK, MANAGE_MODELS, CompressionPicker
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)

HUB_PAIR = ""  # the model picker's data for "the catalogue model of the chosen pair"
MAX_FILE_BYTES = 4 * MAX_CHARS  # UTF-8 takes at most four bytes a character


def pair_model(src: str, tgt: str) -> str:
    return f"opus-mt-{src}-{tgt}"


class TranslationModelPicker(QComboBox):
    """'Hub model for the chosen pair', then a chosen folder (if any), then 'From folder…'."""

    def __init__(self, store: ModelStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setAccessibleName("Translation model")
        self.setToolTip(
            "The Helsinki-NLP opus-mt model of the chosen languages (downloaded once from the Hugging Face Hub), "
            "or a MarianMT folder on disk."
        )
        self.addItem("Hub model for the chosen pair", HUB_PAIR)
        self.addItem("From folder…", FROM_DISK)
        self.addItem("Manage models…", MANAGE_MODELS)
        self._last = HUB_PAIR
        self.activated.connect(self._on_activated)

    def folder(self) -> str:
        """The chosen folder, or "" for the catalogue model of the pair."""
        data = self.currentData()
        return "" if data in (HUB_PAIR, FROM_DISK, MANAGE_MODELS, None) else str(data)

    def select(self, folder: str) -> None:
        if not folder:
            self.setCurrentIndex(0)
            self._last = HUB_PAIR
            return
        index = self.findData(folder)
        if index < 0:
            if self.count() == 4:  # one remembered folder at a time
                self.removeItem(1)
            self.insertItem(1, f"{folder} (from disk)", folder)
            self.setItemData(1, folder, Qt.ItemDataRole.ToolTipRole)
            index = 1
        self.setCurrentIndex(index)
        self._last = folder

    def describe_pair(self, src: str, tgt: str) -> None:
        """Say which catalogue model the first entry means, and whether it is on disk."""
        entry = find_entry(pair_model(src, tgt))
        if entry is None:
            text = f"Hub model for the chosen pair (none listed for {src} → {tgt})"
        else:
            try:
                availability = self.store.availability(entry)
            except Exception:  # a broken Hub cache must not break the window
                logger.exception("Could not check whether %s is downloaded", entry.id)
                availability = "unknown"
            text = f"Hub model for the chosen pair ({entry.id} — {availability})"
        self.setItemText(0, text)

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) == MANAGE_MODELS:
            self.select(self._last if self._last != HUB_PAIR else "")
            window = self.window()
            if hasattr(window, "open_models_window"):
                window.open_models_window("translate")
            return
        if self.itemData(index) != FROM_DISK:
            self._last = self.folder()
            return
        folder = QFileDialog.getExistingDirectory(self, "Choose a MarianMT model folder (with config.json)")
        self.select(folder or self._last)


class TranslateTab(JobPage):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.setAccessibleName("Translate")
        self.src_combo = self._language_combo("Source language", "The language of the text you type or open.")
        self.tgt_combo = self._language_combo("Target language", "The language to translate into.")
        self.select_languages("en", "de")
        self.swap_button = labelled_button("S&wap", "Swap the languages and move the translation into the input")
        self.model_picker = TranslationModelPicker(store)
        self.compression_picker = CompressionPicker()
        self.beams = QSpinBox()
        self.beams.setRange(1, 8)
        self.beams.setValue(4)
        self.beams.setAccessibleName("Beams")
        self.beams.setToolTip("More beams weigh more candidate translations: often better, always slower. 1 is greedy.")

        self.input = QPlainTextEdit()
        self.input.setAccessibleName("Text to translate")
        self.input.setPlaceholderText("Type, paste or open the text to translate… (Ctrl+Enter to translate)")
        self.output = QPlainTextEdit()
        self.output.setAccessibleName("Translation")
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("The translation appears here, sentence by sentence.")
        self.translate_button = labelled_button("&Translate", "Translate the text (Ctrl+Enter)")
        self.stop_button = labelled_button("&Stop", "Stop translating; the sentences done so far are kept (Esc)")
        self.stop_button.setEnabled(False)
        self.open_button = labelled_button("&Open .txt…", "Load a UTF-8 text file into the input")
        self.save_button = labelled_button("Sa&ve…", "Save the translation to a text file")
        self.copy_button = labelled_button("&Copy", "Copy the translation to the clipboard")
        self.stats = QLabel()
        self.stats.setAccessibleName("Translation statistics")

        options = QFormLayout()
        languages = QHBoxLayout()
        languages.addWidget(QLabel("From"))
        languages.addWidget(self.src_combo)
        languages.addWidget(self.swap_button)
        languages.addWidget(QLabel("to"))
        languages.addWidget(self.tgt_combo)
        languages.addStretch(1)
        options.addRow("Languages", languages)
        options.addRow("Model", self.model_picker)
        row = QHBoxLayout()
        for label, widget in (("Compression", self.compression_picker), ("Beams", self.beams)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        options.addRow(row)
        buttons = QHBoxLayout()
        for button in (self.translate_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress_bar, 1)
        buttons.addStretch(1)
        for button in (self.open_button, self.save_button, self.copy_button):
            buttons.addWidget(button)
        self.speak_button = SpeakerButton(self.output.toPlainText, "translation")
        buttons.addWidget(self.speak_button)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.input)
        splitter.addWidget(self.output)
        splitter.setSizes([500, 500])
        layout = QVBoxLayout(self)
        layout.addLayout(options)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.stats)

        self.src_combo.currentIndexChanged.connect(self._on_languages_changed)
        self.tgt_combo.currentIndexChanged.connect(self._on_languages_changed)
        self.swap_button.clicked.connect(self.swap)
        self.translate_button.clicked.connect(self.translate)
        self.stop_button.clicked.connect(self.stop)
        self.open_button.clicked.connect(self.open_file)
        self.save_button.clicked.connect(self.save)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.output.toPlainText()))
        QShortcut(QKeySequence("Ctrl+Return"), self, self.translate)
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.translate)
        QShortcut(QKeySequence("Escape"), self, self.stop)
        self._on_languages_changed()

    @staticmethod
    def _language_combo(name: str, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.setAccessibleName(name)
        combo.setToolTip(tip)
        for code, language in LANGUAGE_NAMES.items():
            combo.addItem(language, code)
        return combo

    # --- languages -----------------------------------------------------------------------
    def languages(self) -> tuple[str, str]:
        return str(self.src_combo.currentData()), str(self.tgt_combo.currentData())

    def select_languages(self, src: str, tgt: str) -> None:
        for combo, code in ((self.src_combo, src), (self.tgt_combo, tgt)):
            index = combo.findData(code)
            if index >= 0:
                combo.setCurrentIndex(index)

    def _on_languages_changed(self, *_: Any) -> None:
        if hasattr(self, "model_picker"):
            self.model_picker.describe_pair(*self.languages())

    def swap(self) -> None:
        if self.running:
            self.show_notice("Wait for the translation to finish (or stop it) before swapping.", error=True)
            return
        src, tgt = self.languages()
        self.select_languages(tgt, src)
        translation = self.output.toPlainText()
        if translation.strip():
            self.input.setPlainText(translation)
            self.output.clear()
            self.stats.clear()
        if self.model_picker.folder():
            self.show_notice("The chosen model folder is still used: it translates one way only. Choose the "
                             "folder for the other direction, or the Hub model for the chosen pair.")

    # --- translating ---------------------------------------------------------------------
    def translate(self) -> None:
        if self.running:
            return
        text = self.input.toPlainText()
        if not text.strip():
            self.show_notice("There is nothing to translate: type, paste or open some text.", error=True)
            return
        src, tgt = self.languages()
        folder = self.model_picker.folder()
        if not folder:
            if src == tgt:
                self.show_notice(f"The source and target language are both {LANGUAGE_NAMES[src]}: choose two different languages.", error=True)
                return
            if (src, tgt) not in TRANSLATION_PAIRS:
                self.show_notice(
                    f"There is no catalogue model for {LANGUAGE_NAMES[src]} → {LANGUAGE_NAMES[tgt]}. "
                    f"Choose 'From folder…' with an {pair_model(src, tgt)} (MarianMT) model, or another pair. "
                    f"Listed pairs: {', '.join(f'{a}→{b}' for a, b in TRANSLATION_PAIRS)}.",
                    error=True,
                )
                return
        model = folder or pair_model(src, tgt)
        self.output.clear()
        self.stats.clear()
        self.model_in_use.emit(Path(folder).name if folder else model)
        params = {
            "model": model, "src": src, "tgt": tgt, "device": self.device_preference(),
            "compression": self.compression_picker.compression().value, "text": text, "beams": self.beams.value(),
        }
        self.submit(f"translating {src} → {tgt}", "translate", params)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.translate_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.swap_button.setEnabled(not running)
        self.open_button.setEnabled(not running)

    def _on_partial(self, job_id: int, text: Any) -> None:
        if self._mine(job_id) and isinstance(text, str):
            self.output.setPlainText(text)  # the translation of the page so far: it replaces, not appends

    def handle_result(self, result: TranslationResult) -> None:
        self.output.setPlainText(result.text)
        if result.runtime:
            self.runtime_used.emit(result.runtime)
        self.stats.setText(
            f"{result.sentences} sentences, {result.translated} translated, {result.cached} from the cache, "
            f"on {result.device} with {result.runtime}, {result.compression}, {result.seconds:.1f} s"
        )
        self.show_notice(" ".join(result.notices))
        if result.stopped:
            self.status_message.emit("Stopped; the sentences translated so far are kept.")
        else:
            self.status_message.emit(
                f"{result.sentences} sentences, {result.translated} translated, {result.cached} from the cache, "
                f"on {result.device} ({result.runtime})"
            )

    # --- files ---------------------------------------------------------------------------
    def open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text file", "", "Text files (*.txt);;All files (*)")
        if path:
            self.load_file(Path(path))

    def load_file(self, path: Path) -> bool:
        """Put a UTF-8 text file into the input; anything else is a message, and the input is left as it was."""
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.show_notice(f"{path.name} is {size / 1e6:.0f} MB: too big to translate at once.", error=True)
                return False
            data = path.read_bytes()
        except OSError as error:
            self.show_notice(f"Cannot read {path}: {error.strerror or error}.", error=True)
            return False
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text:
            self.show_notice(f"{path.name} is not a UTF-8 text file: open a plain .txt file saved as UTF-8.", error=True)
            return False
        self.input.setPlainText(text)
        self.show_notice("")
        self.status_message.emit(f"Opened {path}")
        return True

    def save(self) -> None:
        if not self.output.toPlainText():
            self.show_notice("Nothing to save yet: translate some text first.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the translation", "translation.txt", "Text files (*.txt);;All files (*)")
        if path:
            try:
                save_text(Path(path), self.output.toPlainText())
            except OSError as error:
                self.show_notice(f"Could not save {path}: {error.strerror or error}.", error=True)
                return
            self.status_message.emit(f"Saved {path}")

    # --- settings ------------------------------------------------------------------------
    def save_settings(self, settings: QSettings) -> None:
        src, tgt = self.languages()
        settings.setValue("translate/src", src)
        settings.setValue("translate/tgt", tgt)
        settings.setValue("translate/folder", self.model_picker.folder())
        settings.setValue("translate/compression", self.compression_picker.compression().value)
        settings.setValue("translate/beams", self.beams.value())
        settings.setValue("translate/input", self.input.toPlainText())
        settings.setValue("translate/output", self.output.toPlainText())

    def load_settings(self, settings: QSettings) -> None:
        self.select_languages(read(settings, "translate/src", "en"), read(settings, "translate/tgt", "de"))
        self.model_picker.select(read(settings, "translate/folder", ""))
        self.compression_picker.select(read(settings, "translate/compression", "none"))
        self.beams.setValue(read(settings, "translate/beams", 4, int))
        self.input.setPlainText(read(settings, "translate/input", ""))
        self.output.setPlainText(read(settings, "translate/output", ""))
