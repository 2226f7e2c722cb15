"""Photo labels: the Image side's labels of the user's own. Photos dropped on a label (or a folder with one
subfolder per label) teach it; Train runs in the engine lane on EfficientNet-Lite0's features and shows the
cross-validated accuracy and confusion table; photos dropped on the results are recognised with the user's labels
first and ImageNet's beside; a double-click on the right label corrects; Sort into folders sorts by the labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.image_results import ImageResult, RecognitionBatch
from desktop_ai.engine.tasks.photo_sorting import SortReport
from desktop_ai.engine.tasks.taught_classifiers import TASK_PHOTO, TeachResult
from desktop_ai.gui.image_drop_view import ImageDropView
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.taught_labels import describe_report, fill_confusion
from desktop_ai.gui.worker import EngineThread


class PhotoLabelsPage(JobPage):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.photos: dict[str, list[str]] = {}
        self.last_batch: RecognitionBatch | None = None
        self.last_sort: SortReport | None = None
        self._last_paths: list[str] = []
        self.name = QComboBox()
        self.name.setEditable(True)
        self.name.setAccessibleName("Photo classifier name")
        self.name.setCurrentText("my-photos")
        self.labels = ImageDropView()
        self.labels.setAccessibleName("Photo labels (drop photos on a label)")
        self.labels.setHeaderLabels(["Label (drop photos here)", "Photos"])
        self.labels.setRootIsDecorated(False)
        self.new_label = QLineEdit()
        self.new_label.setAccessibleName("New photo label")
        self.new_label.setPlaceholderText("a label, then Enter")
        self.folder_button = labelled_button("Labels from a folder…", "A folder with one subfolder of photos per label")
        self.train_button = labelled_button("&Train", "Train on these photos and save the classifier")
        self.accuracy = QLabel()
        self.accuracy.setAccessibleName("Photo accuracy")
        self.accuracy.setWordWrap(True)
        self.confusion = QTableWidget()
        self.confusion.setAccessibleName("Photo confusion table")
        self.confusion.setMaximumHeight(140)
        self.results = ImageDropView()
        self.results.setAccessibleName("Photo labels results (drop photos to recognise)")
        self.results.setHeaderLabels(["Photo / label (double-click a label to correct)", "Best label", "Score"])
        self.sort_button = labelled_button("Sort into folders…", "Copy the photos into one folder per label")

        left = QVBoxLayout()
        left.addWidget(self.labels, 1)
        left.addWidget(self.new_label)
        left.addWidget(self.folder_button)
        row = QHBoxLayout()
        row.addWidget(self.train_button)
        row.addWidget(self.progress_bar, 1)
        left.addLayout(row)
        left.addWidget(self.accuracy)
        left.addWidget(self.confusion)
        left_widget = QWidget()
        left_widget.setLayout(left)
        right = QVBoxLayout()
        right.addWidget(self.results, 1)
        right.addWidget(self.sort_button)
        right_widget = QWidget()
        right_widget.setLayout(right)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left_widget)
        split.addWidget(right_widget)
        form = QFormLayout()
        form.addRow("Classifier", self.name)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(split, 1)
        layout.addWidget(self.notice)

        self.new_label.returnPressed.connect(lambda: (self.add_label(self.new_label.text()), self.new_label.clear()))
        self.labels.urls_dropped.connect(lambda urls: self.add_photos(self.selected_label(), [u.toLocalFile() for u in urls]))
        self.results.urls_dropped.connect(lambda urls: self.recognize([u.toLocalFile() for u in urls]))
        self.folder_button.clicked.connect(self._choose_folder)
        self.train_button.clicked.connect(self.train)
        self.sort_button.clicked.connect(self._choose_sort_target)
        self.results.itemDoubleClicked.connect(self._on_double_click)

    # --- teaching data (paths only; nothing is opened here) --------------------------------------------
    def add_label(self, label: str) -> None:
        label = " ".join(label.split())
        if label and label not in self.photos:
            self.photos[label] = []
            self.labels.addTopLevelItem(QTreeWidgetItem([label, "0"]))
        self._select(label)

    def _select(self, label: str) -> None:
        for i in range(self.labels.topLevelItemCount()):
            if self.labels.topLevelItem(i).text(0) == label:
                self.labels.setCurrentItem(self.labels.topLevelItem(i))

    def selected_label(self) -> str:
        item = self.labels.currentItem()
        return item.text(0) if item is not None else ""

    def add_photos(self, label: str, paths: list[str]) -> None:
        if not label:
            self.show_notice("Add a label first, select it, then drop its photos on it.", error=True)
            return
        local = [p for p in paths if p]
        self.photos[label].extend(local)
        for i in range(self.labels.topLevelItemCount()):
            item = self.labels.topLevelItem(i)
            item.setText(1, str(len(self.photos[item.text(0)])))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder with one subfolder of photos per label")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> None:
        from desktop_ai.engine.tasks.taught_photos import read_photo_examples

        try:
            examples = read_photo_examples(folder)
        except InvalidInputError as error:
            self.show_notice(str(error), error=True)
            return
        for example in examples:
            self.add_label(example.label)
            self.add_photos(example.label, [example.text])

    # --- jobs -----------------------------------------------------------------------------------------
    def _params(self, action: str, **more: Any) -> dict[str, Any]:
        return {"action": action, "task": TASK_PHOTO, "name": self.name.currentText().strip(), **more}

    def train(self) -> None:
        if self.running:
            return
        rows = [(path, label) for label, paths in self.photos.items() for path in paths]
        self.submit("teaching photo labels", "taught", self._params("teach", examples=rows))

    def recognize(self, paths: list[str]) -> None:
        if self.running:
            return
        paths = [p for p in paths if p]
        if not paths:
            self.show_notice("Only files on this computer can be recognised.", error=True)
            return
        self._last_paths = paths
        self.submit("recognising with photo labels", "taught", self._params("recognize", paths=paths))

    def correct(self, path: str, label: str) -> None:
        if not self.running:
            self.submit("correcting a photo label", "taught", self._params("correct", text=path, label=label))

    def sort_into(self, target: Path) -> None:
        if self.last_batch is None or self.running:
            return
        plain = [ImageResult(r.path, r.predictions, r.error) for r in self.last_batch.results]
        self.submit("sorting photos", "sort_photos", {"results": plain, "target": str(target), "move": False, "min_score": 0.0})

    def _choose_sort_target(self) -> None:
        target = QFileDialog.getExistingDirectory(self, "Sort into this folder")
        if target:
            self.sort_into(Path(target))

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        parent = item.parent()
        if parent is not None and item.text(1) != "ImageNet":
            self.correct(parent.text(0), item.text(0))

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        for button in (self.train_button, self.sort_button):
            button.setEnabled(not running)

    def handle_result(self, result: Any) -> None:
        if isinstance(result, TeachResult):
            self.accuracy.setText(describe_report(result.report))
            fill_confusion(self.confusion, result.report)
            self.show_notice(" ".join(result.notices))
        elif isinstance(result, RecognitionBatch):
            self.show_results(result)
        elif isinstance(result, SortReport):
            self.last_sort = result
            self.show_notice(result.describe())
        else:  # a correction: recognise the same photos again with the corrected classifier
            self.show_notice(" ".join(result) or "Learned.")
            self.recognize(self._last_paths)

    def show_results(self, batch: RecognitionBatch) -> None:
        self.last_batch = batch
        self.results.clear()
        for result in batch.results:
            if not result.ok:
                self.results.addTopLevelItem(QTreeWidgetItem([result.path, "", result.error or ""]))
                continue
            best = result.predictions[0]
            top = QTreeWidgetItem([result.path, best.label, f"{100 * best.score:.0f} %"])
            for score in result.predictions:
                top.addChild(QTreeWidgetItem([score.label, "", f"{100 * score.score:.0f} %"]))
            if result.imagenet:
                top.addChild(QTreeWidgetItem([", ".join(f"{p.label} {100 * p.score:.0f} %" for p in result.imagenet), "ImageNet", ""]))
            self.results.addTopLevelItem(top)
        self.results.expandAll()
        self.show_notice(" ".join(batch.notices))

    def result_labels(self) -> dict[str, str]:
        return {self.results.topLevelItem(i).text(0): self.results.topLevelItem(i).text(1)
                for i in range(self.results.topLevelItemCount())}
