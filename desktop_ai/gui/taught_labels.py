"""Text → Classify → My labels: labels of the user's own, taught by examples (typed, pasted lines, or a CSV / JSON lines
file), trained with a click (cross-validated accuracy and a confusion table), used to classify, and corrected
with a click on the right label in the results. Every step runs in the engine lane as a "taught" job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.taught_classifiers import TASK_TEXT, TeachResult, TrainingReport, describe_choice
from desktop_ai.engine.tasks.text_classification import ClassificationBatch
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.widgets import SCORE_ROLE, ScoreBarDelegate
from desktop_ai.gui.worker import EngineThread


def fill_confusion(table: QTableWidget, report: TrainingReport) -> None:
    """Rows: the examples' labels; columns: what cross-validation predicted for them."""
    table.clear()
    table.setRowCount(len(report.labels))
    table.setColumnCount(len(report.labels))
    table.setHorizontalHeaderLabels(report.labels)
    table.setVerticalHeaderLabels(report.labels)
    for r, row in enumerate(report.confusion):
        for c, value in enumerate(row):
            item = QTableWidgetItem(str(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if r == c:
                font = QFont()
                font.setBold(True)
                item.setFont(font)
            table.setItem(r, c, item)


def describe_report(report: TrainingReport) -> str:
    if report.accuracy is None:
        return f"Trained on {report.examples} example(s); too few to measure accuracy."
    return (f"Cross-validated accuracy: {100 * report.accuracy:.1f} % over {report.examples} examples "
            f"({report.folds} folds; each example judged by a classifier that did not see it). "
            f"Classifier: {describe_choice(report.kind, report.choices)}.")


class MyLabelsPage(JobPage):
    """Teach, train, classify and correct, for texts."""

    examples_loaded = Signal(int)  # a file's examples joined the lists (how many)

    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.examples: dict[str, list[str]] = {}
        self._action = ""
        self._correcting: tuple[str, str] | None = None
        self.name = QComboBox()
        self.name.setEditable(True)
        self.name.setAccessibleName("Classifier name")
        self.name.setCurrentText("my-labels")
        self.label_list = QListWidget()
        self.label_list.setAccessibleName("Labels")
        self.new_label = QLineEdit()
        self.new_label.setAccessibleName("New label")
        self.new_label.setPlaceholderText("a label, then Enter")
        self.remove_label_button = labelled_button("Remove label", "Forget the selected label and its examples")
        self.example_box = QPlainTextEdit()
        self.example_box.setAccessibleName("Examples of the selected label")
        self.example_box.setPlaceholderText("Examples of the selected label, one a line (type or paste).")
        self.load_button = labelled_button("Load examples…", "Read a CSV (text,label) or JSON lines file of examples")
        self.train_button = labelled_button("&Train", "Train the classifier on these examples and save it")
        self.accuracy = QLabel()
        self.accuracy.setAccessibleName("Accuracy")
        self.accuracy.setWordWrap(True)
        self.confusion = QTableWidget()
        self.confusion.setAccessibleName("Confusion table")
        self.confusion.setMaximumHeight(160)
        self.input = QPlainTextEdit()
        self.input.setAccessibleName("Texts to classify with my labels")
        self.input.setPlaceholderText("Texts to classify with this classifier, one a line.")
        self.classify_button = labelled_button("C&lassify", "Classify the texts with this classifier")
        self.results = QTreeWidget()
        self.results.setAccessibleName("My labels results")
        self.results.setColumnCount(3)
        self.results.setHeaderLabels(["Text / label (double-click a label to correct)", "Best label", "Score"])
        self.results.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results.setItemDelegateForColumn(2, ScoreBarDelegate(self.results))
        self.results.setColumnWidth(2, 180)

        labels_side = QVBoxLayout()
        labels_side.addWidget(self.label_list, 1)
        labels_side.addWidget(self.new_label)
        labels_side.addWidget(self.remove_label_button)
        labels_widget = QWidget()
        labels_widget.setLayout(labels_side)
        examples_side = QVBoxLayout()
        examples_side.addWidget(self.example_box, 1)
        row = QHBoxLayout()
        row.addWidget(self.load_button)
        row.addWidget(self.train_button)
        row.addWidget(self.progress_bar, 1)
        examples_side.addLayout(row)
        examples_side.addWidget(self.accuracy)
        examples_side.addWidget(self.confusion)
        examples_widget = QWidget()
        examples_widget.setLayout(examples_side)
        teach = QSplitter(Qt.Orientation.Horizontal)
        teach.addWidget(labels_widget)
        teach.addWidget(examples_widget)
        teach.setStretchFactor(1, 3)
        use = QSplitter(Qt.Orientation.Vertical)
        use.addWidget(self.input)
        use.addWidget(self.results)
        form = QFormLayout()
        form.addRow("Classifier", self.name)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(teach, 2)
        layout.addWidget(self.classify_button)
        layout.addWidget(use, 2)
        layout.addWidget(self.notice)

        self.new_label.returnPressed.connect(self._add_label_from_field)
        self.remove_label_button.clicked.connect(self.remove_selected_label)
        self.label_list.currentTextChanged.connect(self._show_label)
        self.example_box.textChanged.connect(self._keep_examples)
        self.load_button.clicked.connect(self._choose_file)
        self.train_button.clicked.connect(self.train)
        self.classify_button.clicked.connect(self.classify)
        self.results.itemDoubleClicked.connect(self._on_double_click)

    # --- examples (plain data on the GUI thread; nothing is embedded here) ------------------------------
    def add_label(self, label: str) -> None:
        label = " ".join(label.split())
        if label and label not in self.examples:
            self.examples[label] = []
            self.label_list.addItem(label)
        matches = self.label_list.findItems(label, Qt.MatchFlag.MatchExactly)
        if matches:
            self.label_list.setCurrentItem(matches[0])

    def _add_label_from_field(self) -> None:
        self.add_label(self.new_label.text())
        self.new_label.clear()

    def remove_selected_label(self) -> None:
        item = self.label_list.currentItem()
        if item is not None:
            self.examples.pop(item.text(), None)
            self.label_list.takeItem(self.label_list.row(item))

    def _show_label(self, label: str) -> None:
        self.example_box.blockSignals(True)
        self.example_box.setPlainText("\n".join(self.examples.get(label, [])))
        self.example_box.blockSignals(False)

    def _keep_examples(self) -> None:
        item = self.label_list.currentItem()
        if item is not None:
            self.examples[item.text()] = [l.strip() for l in self.example_box.toPlainText().splitlines() if l.strip()]

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Examples", "", "Examples (*.csv *.tsv *.jsonl *.json);;All files (*)")
        if path:
            self.load_file(Path(path))

    def load_file(self, path: Path) -> None:
        """The file is read in the engine lane (a large CSV would freeze the window); its examples join the labels'
        lists when it is done (`examples_loaded`)."""
        if self.running:
            return
        self._action = "read"
        self.submit("reading examples", "taught", {"action": "read", "task": TASK_TEXT, "path": str(path)})

    def _add_read_examples(self, result: dict[str, Any]) -> None:
        rows = result.get("examples", [])
        for text, label in rows:
            self.add_label(label)
            self.examples[label].append(text)
        self._show_label(self.label_list.currentItem().text() if self.label_list.currentItem() else "")
        self.show_notice(f"Read {len(rows)} example(s) from {Path(result.get('path', '')).name}.")
        self.examples_loaded.emit(len(rows))

    # --- jobs -----------------------------------------------------------------------------------------
    def classifier_name(self) -> str:
        return self.name.currentText().strip()

    def train(self) -> None:
        if self.running:
            return
        if not self.classifier_name():
            self.show_notice("Name the classifier first.", error=True)
            return
        rows = [(text, label) for label, texts in self.examples.items() for text in texts]
        self._action = "teach"
        self.submit("teaching", "taught", {"action": "teach", "task": TASK_TEXT, "name": self.classifier_name(),
                                           "examples": rows, "labels": list(self.examples), "device": self.device_preference()})

    def classify(self) -> None:
        if self.running:
            return
        texts = [l.strip() for l in self.input.toPlainText().splitlines() if l.strip()]
        if not texts:
            self.show_notice("There is no text to classify: type or paste at least one line.", error=True)
            return
        self._action = "classify"
        self.submit("classifying", "taught", {"action": "classify", "task": TASK_TEXT, "name": self.classifier_name(),
                                              "texts": texts, "device": self.device_preference()})

    def correct(self, text: str, label: str) -> None:
        """The text becomes an example of `label`; when the lane is done, the texts are classified again."""
        if self.running:
            return
        self._action = "correct"
        self._correcting = (text, label)
        self.submit("correcting", "taught", {"action": "correct", "task": TASK_TEXT, "name": self.classifier_name(),
                                             "text": text, "label": label, "device": self.device_preference()})

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        parent = item.parent()
        if parent is not None:  # a label row under a text: "this text is that label"
            self.correct(parent.text(0), item.text(0))

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        for button in (self.train_button, self.classify_button, self.load_button):
            button.setEnabled(not running)

    def handle_result(self, result: Any) -> None:
        if self._action == "read" and isinstance(result, dict):
            self._add_read_examples(result)
        elif isinstance(result, TeachResult):
            self.accuracy.setText(describe_report(result.report))
            fill_confusion(self.confusion, result.report)
            self.show_notice(" ".join(result.notices))
            if self.name.findText(result.classifier["name"]) < 0:
                self.name.addItem(result.classifier["name"])
            self.status_message.emit(f"Trained {result.classifier['name']!r}.")
        elif isinstance(result, ClassificationBatch):
            self.show_results(result)
        elif self._action == "correct":
            text, label = self._correcting or ("", "")
            self.show_notice(" ".join(result) or f"Learned: {text!r} is {label!r}.")
            self.classify()  # show what the corrected classifier says now

    def show_results(self, batch: ClassificationBatch) -> None:
        self.results.clear()
        bold = QFont()
        bold.setBold(True)
        for result in batch.results:
            top = QTreeWidgetItem([result.text, result.label, ""])
            top.setData(2, SCORE_ROLE, result.scores[0].score)
            top.setFont(1, bold)
            for score in result.scores:
                child = QTreeWidgetItem([score.label, "", ""])
                child.setData(2, SCORE_ROLE, score.score)
                child.setToolTip(0, f"Double-click: this text is {score.label!r}")
                top.addChild(child)
            self.results.addTopLevelItem(top)
        self.results.expandAll()
        self.status_message.emit(f"Classified {len(batch.results)} text(s) with {self.classifier_name()!r}.")

    def result_labels(self) -> list[tuple[str, str]]:
        return [(self.results.topLevelItem(i).text(0), self.results.topLevelItem(i).text(1))
                for i in range(self.results.topLevelItemCount())]
