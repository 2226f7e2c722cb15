"""The Text tab: generate (streamed, stoppable) and classify (sentiment or your own labels)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QFont, QGuiApplication, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.models.catalogue import TASK_CLASSIFY, TASK_GENERATE, find_entry
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.runtimes.causal_lm import RUNTIME_AUTO, RUNTIME_CTRANSLATE2, RUNTIME_LLAMA_CPP, RUNTIME_TRANSFORMERS
from desktop_ai.engine.runtimes.llama_cpp import INSTALL_HINT
from desktop_ai.engine.tasks.text_classification import ClassificationBatch
from desktop_ai.engine.tasks.text_generation import GenerationOptions, GenerationResult
from desktop_ai.gui.read_aloud import SpeakerButton
from desktop_ai.gui.chat.chat_page import ChatPage
from desktop_ai.gui.classify_section import ClassifySection
from desktop_ai.gui.job_page import JobPage, labelled_button, save_text
from desktop_ai.gui.settings import read
from desktop_ai.gui.taught_labels import MyLabelsPage
from desktop_ai.gui.widgets import SCORE_ROLE, CompressionPicker, ModelPicker, ScoreBarDelegate
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)


RUNTIME_LABELS = {
    RUNTIME_AUTO: "Auto (fastest for the model)",
    RUNTIME_LLAMA_CPP: "llama.cpp",
    RUNTIME_CTRANSLATE2: "CTranslate2",
    RUNTIME_TRANSFORMERS: "transformers (reference)",
}
GGUF_COMPRESSION_TIP = "A GGUF file is already quantized: llama.cpp runs it as it is, so compression does not apply."
PRUNE_TIP = "CTranslate2 does not prune: choose the transformers runtime for pruning."


def llama_cpp_installed() -> bool:
    """Checked without importing it (the window loads no model library)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # ValueError: hidden with sys.modules["llama_cpp"] = None
        return False


def is_gguf(model_ref: str) -> bool:
    entry = find_entry(model_ref)
    if entry is not None:
        return entry.gguf_file is not None
    return model_ref.lower().endswith(".gguf")


class RuntimePicker(QComboBox):
    """Auto, or one runtime forced; llama.cpp is greyed out (with how to get it) when it is not installed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Runtime")
        self.setToolTip("What runs the model. Auto: llama.cpp for a GGUF file, CTranslate2 for a transformers "
                        "folder it converts, transformers otherwise.")
        for runtime, label in RUNTIME_LABELS.items():
            self.addItem(label, runtime)
        self.llama_cpp_installed = llama_cpp_installed()
        if not self.llama_cpp_installed:
            index = self.findData(RUNTIME_LLAMA_CPP)
            self.model().item(index).setEnabled(False)
            self.setItemData(index, "llama-cpp-python is not installed. " + INSTALL_HINT, Qt.ItemDataRole.ToolTipRole)

    def runtime(self) -> str:
        return str(self.currentData())

    def select(self, value: str) -> None:
        index = self.findData(value)
        if index >= 0 and self.model().item(index).isEnabled():
            self.setCurrentIndex(index)


class GeneratePage(JobPage):

    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.model_picker = ModelPicker(TASK_GENERATE, store)
        self.runtime_picker = RuntimePicker()
        self.compression_picker = CompressionPicker()
        self.compression_picker.select(Compression.INT8.value)  # the fastest on a CPU, not fp32
        self._compression_tip = self.compression_picker.toolTip()
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(200)
        self.max_tokens.setAccessibleName("Max new tokens")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.7)
        self.temperature.setAccessibleName("Temperature")
        self.temperature.setToolTip("0 always picks the most likely word (repeatable, cached); higher is more varied.")
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(0.9)
        self.top_p.setAccessibleName("Top-p")
        self.top_p.setToolTip("Sample only from the most likely words that together reach this probability.")
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.seed.setAccessibleName("Seed")
        self.seed.setToolTip("A fixed seed makes sampling repeatable (and cacheable).")

        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("Prompt")
        self.prompt.setPlaceholderText("Ask or instruct the model… (Ctrl+Enter to generate)")
        self.output = QPlainTextEdit()
        self.output.setAccessibleName("Generated text")
        self.output.setReadOnly(True)
        self.output.setPlaceholderText("The answer appears here as it is written.")
        self.generate_button = labelled_button("&Generate", "Generate an answer (Ctrl+Enter)")
        self.stop_button = labelled_button("&Stop", "Stop generating; the text so far is kept (Esc)")
        self.stop_button.setEnabled(False)
        self.copy_button = labelled_button("&Copy", "Copy the answer to the clipboard")
        self.save_button = labelled_button("Sa&ve…", "Save the answer to a text file")
        self.stats = QLabel()
        self.stats.setAccessibleName("Generation statistics")

        options = QFormLayout()
        options.addRow("Model", self.model_picker)
        # Two rows, so that the window fits a small screen (one row made the whole window over 1000 px wide).
        for group in ((("Runtime", self.runtime_picker), ("Compression", self.compression_picker)),
                      (("Max tokens", self.max_tokens), ("Temperature", self.temperature), ("Top-p", self.top_p),
                       ("Seed", self.seed))):
            row = QHBoxLayout()
            for label, widget in group:
                row.addWidget(QLabel(label))
                row.addWidget(widget)
            row.addStretch(1)
            options.addRow(row)
        buttons = QHBoxLayout()
        for button in (self.generate_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress_bar, 1)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        self.speak_button = SpeakerButton(self.output.toPlainText, "generated text")
        buttons.addWidget(self.speak_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.prompt)
        splitter.addWidget(self.output)
        splitter.setSizes([150, 300])
        layout = QVBoxLayout(self)
        layout.addLayout(options)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.stats)

        self.generate_button.clicked.connect(self.generate)
        self.stop_button.clicked.connect(self.stop)
        self.model_picker.model_changed.connect(lambda _: self.update_compression_choices())
        self.model_picker.currentIndexChanged.connect(lambda _: self.update_compression_choices())
        self.runtime_picker.currentIndexChanged.connect(lambda _: self.update_compression_choices())
        self.update_compression_choices()
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.output.toPlainText()))
        self.save_button.clicked.connect(self.save)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.generate)
        QShortcut(QKeySequence("Escape"), self, self.stop)

    def effective_runtime(self) -> str:
        """The runtime the engine will pick, as far as the window can tell without loading anything."""
        runtime = self.runtime_picker.runtime()
        if runtime == RUNTIME_AUTO and is_gguf(self.model_picker.model_ref()):
            return RUNTIME_LLAMA_CPP if self.runtime_picker.llama_cpp_installed else RUNTIME_TRANSFORMERS
        return runtime

    def update_compression_choices(self) -> None:
        """Grey out what does not apply to the runtime, saying why: a GGUF on llama.cpp is already quantized."""
        runtime = self.effective_runtime()
        items = self.compression_picker.model()
        gguf_on_llama = runtime == RUNTIME_LLAMA_CPP
        self.compression_picker.setEnabled(not gguf_on_llama)
        self.compression_picker.setToolTip(GGUF_COMPRESSION_TIP if gguf_on_llama else self._compression_tip)
        for index in range(self.compression_picker.count()):
            method = Compression(self.compression_picker.itemData(index))
            disabled = runtime == RUNTIME_CTRANSLATE2 and method is Compression.PRUNE
            items.item(index).setEnabled(not disabled)
            self.compression_picker.setItemData(index, PRUNE_TIP if disabled else None, Qt.ItemDataRole.ToolTipRole)
        if not items.item(self.compression_picker.currentIndex()).isEnabled():
            self.compression_picker.select(Compression.INT8.value)

    def options(self) -> GenerationOptions:
        seed = self.seed.value()
        return GenerationOptions(
            max_new_tokens=self.max_tokens.value(),
            temperature=round(self.temperature.value(), 3),
            top_p=round(self.top_p.value(), 3),
            seed=None if seed < 0 else seed,
        )

    def generate(self) -> None:
        if self.running:
            return
        prompt = self.prompt.toPlainText()
        if not prompt.strip():
            self.show_notice("The prompt is empty: type something for the model to answer.", error=True)
            return
        model, compression, device, options = self.model_picker.model_ref(), self.compression_picker.compression(), self.device_preference(), self.options()
        self.output.clear()
        self.stats.clear()
        self.model_in_use.emit(self.model_picker.currentText().split(" — ")[0])

        if self.effective_runtime() == RUNTIME_LLAMA_CPP:
            compression = Compression.NONE  # greyed out: the GGUF runs as it is
        params = {"model": model, "device": device, "compression": compression.value, "prompt": prompt,
                  "options": asdict(options), "runtime": self.runtime_picker.runtime()}
        self.submit("generating text", "generate", params)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.generate_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _on_partial(self, job_id: int, text: str) -> None:
        if self._mine(job_id):
            cursor = self.output.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text)
            self.output.setTextCursor(cursor)

    def handle_result(self, result: GenerationResult) -> None:
        if self.output.toPlainText().strip() != result.text.strip():
            self.output.setPlainText(result.text)
        source = "from cache" if result.from_cache else f"{result.tokens_per_second:.1f} tokens/s"
        self.stats.setText(f"{result.new_tokens} tokens, {source}, {result.runtime} on {result.device}, "
                           f"compression {result.compression}")
        self.show_notice(" ".join(result.notices))
        self.runtime_used.emit(result.runtime)
        ran = f" ({result.runtime})" if result.runtime else ""
        self.status_message.emit(f"Stopped; the text so far is kept{ran}." if result.stopped else f"Done{ran}.")

    def save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the answer", "answer.txt", "Text files (*.txt);;All files (*)")
        if path:
            save_text(Path(path), self.output.toPlainText())
            self.status_message.emit(f"Saved {path}")

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("generate/model", self.model_picker.model_ref())
        settings.setValue("generate/compression", self.compression_picker.compression().value)
        settings.setValue("generate/runtime", self.runtime_picker.runtime())
        settings.setValue("generate/max_tokens", self.max_tokens.value())
        settings.setValue("generate/temperature", self.temperature.value())
        settings.setValue("generate/top_p", self.top_p.value())
        settings.setValue("generate/seed", self.seed.value())
        settings.setValue("generate/prompt", self.prompt.toPlainText())
        settings.setValue("generate/output", self.output.toPlainText())

    def load_settings(self, settings: QSettings) -> None:
        model = read(settings, "generate/model", "")
        if model:
            self.model_picker.select(model)
        self.runtime_picker.select(read(settings, "generate/runtime", RUNTIME_AUTO))
        self.compression_picker.select(read(settings, "generate/compression", Compression.INT8.value))
        self.update_compression_choices()
        self.max_tokens.setValue(read(settings, "generate/max_tokens", 200, int))
        self.temperature.setValue(read(settings, "generate/temperature", 0.7, float))
        self.top_p.setValue(read(settings, "generate/top_p", 0.9, float))
        self.seed.setValue(read(settings, "generate/seed", -1, int))
        self.prompt.setPlainText(read(settings, "generate/prompt", ""))
        self.output.setPlainText(read(settings, "generate/output", ""))


class ClassifyPage(JobPage):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.model_picker = ModelPicker(TASK_CLASSIFY, store)
        self.compression_picker = CompressionPicker()
        self.sentiment_radio = QRadioButton("Sentiment")
        self.sentiment_radio.setAccessibleName("Sentiment")
        self.labels_radio = QRadioButton("My labels:")
        self.labels_radio.setAccessibleName("My labels")
        self.sentiment_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.sentiment_radio)
        group.addButton(self.labels_radio)
        self.labels = QLineEdit()
        self.labels.setAccessibleName("Labels")
        self.labels.setPlaceholderText("sport, politics, science")
        self.labels.textEdited.connect(lambda _: self.labels_radio.setChecked(True))
        self.each_line = QCheckBox("Each line is a separate text")
        self.each_line.setAccessibleName("Each line is a separate text")
        self.each_line.setChecked(True)
        self.input = QPlainTextEdit()
        self.input.setAccessibleName("Texts to classify")
        self.input.setPlaceholderText("I love this product\nterrible, a waste of money")
        self.results = QTreeWidget()
        self.results.setAccessibleName("Classification results")
        self.results.setColumnCount(3)
        self.results.setHeaderLabels(["Text / label", "Best label", "Score"])
        self.results.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results.setItemDelegateForColumn(2, ScoreBarDelegate(self.results))
        self.results.setColumnWidth(2, 180)
        self.classify_button = labelled_button("C&lassify", "Classify the texts (Ctrl+Enter)")
        self.stop_button = labelled_button("&Stop", "Stop; results so far are kept")
        self.stop_button.setEnabled(False)
        self.copy_button = labelled_button("&Copy", "Copy the results as tab-separated text")
        self.save_button = labelled_button("Sa&ve…", "Save the results as CSV or JSON")
        self.last_batch: ClassificationBatch | None = None

        form = QFormLayout()
        form.addRow("Model", self.model_picker)
        mode = QHBoxLayout()
        mode.addWidget(self.sentiment_radio)
        mode.addWidget(self.labels_radio)
        mode.addWidget(self.labels, 1)
        mode.addWidget(QLabel("Compression"))
        mode.addWidget(self.compression_picker)
        form.addRow(mode)
        form.addRow(self.each_line)
        buttons = QHBoxLayout()
        buttons.addWidget(self.classify_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.progress_bar, 1)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.input)
        splitter.addWidget(self.results)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)

        self.classify_button.clicked.connect(self.classify)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.results_as_tsv()))
        self.save_button.clicked.connect(self.save)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.classify)

    def texts(self) -> list[str]:
        raw = self.input.toPlainText()
        if self.each_line.isChecked():
            return [line.strip() for line in raw.splitlines() if line.strip()]
        return [raw.strip()] if raw.strip() else []

    def classify(self) -> None:
        if self.running:
            return
        texts = self.texts()
        if not texts:
            self.show_notice("There is no text to classify: type or paste at least one line.", error=True)
            return
        labels = self.labels.text() if self.labels_radio.isChecked() else None
        if labels is not None and not labels.strip():
            self.show_notice("Type at least two labels separated by commas, or choose Sentiment.", error=True)
            return
        model, compression, device = self.model_picker.model_ref(), self.compression_picker.compression(), self.device_preference()
        self.model_in_use.emit(self.model_picker.currentText().split(" — ")[0])
        self.runtime_used.emit("transformers")  # classifiers run on transformers (PyTorch), whatever the model

        params = {"model": model, "device": device, "compression": compression.value, "texts": texts, "labels": labels}
        self.submit("classifying", "classify", params)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.classify_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def handle_result(self, batch: ClassificationBatch) -> None:
        self.last_batch = batch
        self.results.clear()
        bold = QFont()
        bold.setBold(True)
        for result in batch.results:
            top = QTreeWidgetItem([result.text, result.label, ""])
            top.setData(2, SCORE_ROLE, result.scores[0].score)
            top.setFont(1, bold)
            top.setToolTip(0, result.text)
            for score in result.scores:
                child = QTreeWidgetItem([score.label, "", ""])
                child.setData(2, SCORE_ROLE, score.score)
                top.addChild(child)
            self.results.addTopLevelItem(top)
        if len(batch.results) <= 20:
            self.results.expandAll()
        cached = sum(r.from_cache for r in batch.results)
        self.show_notice(" ".join(batch.notices))
        self.status_message.emit(
            f"Classified {len(batch.results)} text(s) in {batch.seconds:.2f} s ({cached} from cache) on {batch.device}."
        )

    def results_as_tsv(self) -> str:
        if self.last_batch is None:
            return ""
        lines = ["text\tlabel\tscore\tall scores"]
        for r in self.last_batch.results:
            scores = "; ".join(f"{s.label}={s.score:.4f}" for s in r.scores)
            lines.append(f"{r.text}\t{r.label}\t{r.scores[0].score:.4f}\t{scores}")
        return "\n".join(lines)

    def save(self) -> None:
        if self.last_batch is None:
            self.show_notice("Nothing to save yet: classify some text first.", error=True)
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Save the results", "classification.csv", "CSV (*.csv);;JSON lines (*.jsonl)")
        if path:
            target = Path(path)
            if not target.suffix:  # a name typed without an extension: the format the user chose in the dialog
                target = target.with_suffix(".jsonl" if "jsonl" in chosen else ".csv")
            save_classification(target, self.last_batch)
            self.status_message.emit(f"Saved {target}")

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("classify/model", self.model_picker.model_ref())
        settings.setValue("classify/compression", self.compression_picker.compression().value)
        settings.setValue("classify/labels", self.labels.text())
        settings.setValue("classify/use_labels", self.labels_radio.isChecked())
        settings.setValue("classify/each_line", self.each_line.isChecked())
        settings.setValue("classify/input", self.input.toPlainText())

    def load_settings(self, settings: QSettings) -> None:
        model = read(settings, "classify/model", "")
        if model:
            self.model_picker.select(model)
        self.compression_picker.select(read(settings, "classify/compression", "none"))
        self.labels.setText(read(settings, "classify/labels", ""))
        (self.labels_radio if read(settings, "classify/use_labels", False, bool) else self.sentiment_radio).setChecked(True)
        self.each_line.setChecked(read(settings, "classify/each_line", True, bool))
        self.input.setPlainText(read(settings, "classify/input", ""))


def save_classification(path: Path, batch: ClassificationBatch) -> None:
    if path.suffix.lower() in (".jsonl", ".json"):
        save_text(path, "".join(json.dumps(r.to_dict()) + "\n" for r in batch.results))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label", "score", *[f"score_{label}" for label in batch.labels]])
    for r in batch.results:
        by_label = {s.label: s.score for s in r.scores}
        writer.writerow([r.text, r.label, f"{r.scores[0].score:.6f}", *[f"{by_label.get(label, 0.0):.6f}" for label in batch.labels]])
    save_text(path, buffer.getvalue())


class TextTab(QTabWidget):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Text")
        self.chat_page = ChatPage(engine, store, device_preference)
        self.generate_page = GeneratePage(engine, store, device_preference)
        self.classify_page = ClassifyPage(engine, store, device_preference)
        self.addTab(self.chat_page, "Chat")
        self.addTab(self.generate_page, "Generate")
        self.my_labels_page = MyLabelsPage(engine, store, device_preference)  # Classify with labels you taught
        # Classify → (sentiment or typed labels | My labels): one page with a switch
        self.classify_section = ClassifySection(self.classify_page, self.my_labels_page)
        self.addTab(self.classify_section, "Classify")

    @property
    def pages(self) -> tuple[ChatPage, GeneratePage, ClassifyPage]:
        return self.chat_page, self.generate_page, self.classify_page

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("text/page", self.currentIndex())
        for page in self.pages:
            page.save_settings(settings)
        self.classify_section.save_settings(settings)

    def load_settings(self, settings: QSettings) -> None:
        for page in self.pages:
            page.load_settings(settings)
        self.classify_section.load_settings(settings)
        self.setCurrentIndex(read(settings, "text/page", 0, int))
