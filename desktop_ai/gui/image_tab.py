"""The Image tab: ImageNet top-k labels for photos and folders, dropped on the results or opened.

The window never decodes the photos: the engine process reads them, runs the model and sends back a
small PNG thumbnail with each result, so a folder of a thousand 12 MP photos costs the window nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QSize, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QMessageBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.models.catalogue import TASK_RECOGNIZE, find_entry
from desktop_ai.engine.tasks.image_classification import IMAGE_SUFFIXES, ImageResult, RecognitionBatch
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.photo_sorting import SortReport
from desktop_ai.gui.sort_dialog import SortDialog
from desktop_ai.gui.settings import read
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.widgets import CompressionPicker, FROM_DISK, ModelPicker, SCORE_ROLE
from desktop_ai.gui.worker import EngineThread
from desktop_ai.gui.image_drop_view import ICON_SIZE, PLACEHOLDER, CompactScoreBar, ImageDropView, thumbnail_icon
from desktop_ai.gui.image_drop_view import warning_icon as _warning_icon
from desktop_ai.gui.image_results_file import results_as_tsv, save_image_results
from desktop_ai.gui.photo_labels_picker import PhotoLabelsPicker
from desktop_ai.engine.tasks.taught_classifiers import TASK_PHOTO

logger = logging.getLogger(__name__)

ARCHITECTURES = ("auto", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50", "efficientnet_b0")
RESULT_ROLE = Qt.ItemDataRole.UserRole + 2  # the ImageResult behind a top-level row
ERROR_COLOUR = "#b00020"
NOT_LOCAL_MESSAGE = "Only files on this computer can be recognised; save the image first, then drop the saved file."


class ImageTab(JobPage):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.setAccessibleName("Image")
        self.model_picker = ModelPicker(TASK_RECOGNIZE, store)
        self.model_picker.setToolTip(
            "Which model recognises the images. EfficientNet-Lite0 comes with the app and works offline; the torchvision "
            "models are online choices; 'From folder or file…' takes a TorchScript or state_dict file with a labels.txt beside it."
        )
        self.arch_combo = QComboBox()
        self.arch_combo.setEditable(True)
        self.arch_combo.addItems(ARCHITECTURES)
        self.arch_combo.setAccessibleName("Architecture")
        self.arch_combo.lineEdit().setAccessibleName("Architecture")
        self.arch_combo.setToolTip(
            "For a state_dict file only: the torchvision architecture it belongs to. "
            "'auto' means none (TorchScript files carry their own)."
        )
        self.compression_picker = CompressionPicker()
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 20)
        self.top_k.setValue(5)
        self.top_k.setAccessibleName("Top labels")
        self.top_k.setToolTip("How many labels to show for each image.")

        self.results = ImageDropView()
        self.results.setAccessibleName("Image results")
        self.results.setAccessibleDescription(PLACEHOLDER)
        self.results.setColumnCount(3)
        self.results.setHeaderLabels(["Image", "Label", "Score"])
        self.results.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.results.setItemDelegateForColumn(2, CompactScoreBar(self.results))
        header = self.results.header()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.results.setColumnWidth(0, 280)
        self.results.setColumnWidth(2, 180)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)

        self.open_files_button = labelled_button("Open &files…", "Choose photos to recognise (Ctrl+O)")
        self.open_folder_button = labelled_button("Open fol&der…", "Recognise every photo in a folder and its subfolders")
        self.stop_button = labelled_button("&Stop", "Stop; the results so far are kept (Esc)")
        self.stop_button.setEnabled(False)
        self.copy_button = labelled_button("&Copy results", "Copy the results as tab-separated text")
        self.export_button = labelled_button("&Export CSV…", "Save the results as a CSV file")
        self.clear_button = labelled_button("C&lear", "Remove all results from the list")
        self.sort_button = labelled_button("S&ort into folders…", "Copy (or move) each photo into a folder named after its label")
        self.sort_button.setEnabled(False)
        self.last_sort: Any = None
        self._sorting = False
        self.stats = QLabel()
        self.stats.setAccessibleName("Recognition statistics")
        self.last_batch: RecognitionBatch | None = None
        self._queued: list[str] = []  # dropped while a job ran: recognised next
        self._job_rows: list[QTreeWidgetItem] = []
        self._expand_new = False
        self._carried_notice = ""  # said when a drop is made, repeated with the job's own notices
        self._warning_icon: QIcon | None = None

        self.labels_picker = PhotoLabelsPicker()
        form = QFormLayout()
        form.addRow("Model", self.model_picker)
        form.addRow("Labels", self.labels_picker)
        row = QHBoxLayout()
        for label, widget in (("Architecture", self.arch_combo), ("Compression", self.compression_picker), ("Top", self.top_k)):
            caption = QLabel(label)
            caption.setBuddy(widget)
            row.addWidget(caption)
            row.addWidget(widget)
        row.addStretch(1)
        form.addRow(row)
        buttons = QHBoxLayout()
        for button in (self.open_files_button, self.open_folder_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress_bar, 1)
        buttons.addStretch(1)
        for button in (self.sort_button, self.copy_button, self.export_button, self.clear_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.results, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.stats)

        self.results.urls_dropped.connect(self.drop_urls)
        self.open_files_button.clicked.connect(self.open_files)
        self.open_folder_button.clicked.connect(self.open_folder)
        self.stop_button.clicked.connect(self.stop)
        self.copy_button.clicked.connect(self.copy_results)
        self.export_button.clicked.connect(self.export)
        self.clear_button.clicked.connect(self.clear)
        self.sort_button.clicked.connect(self.ask_sort)
        self.model_picker.currentIndexChanged.connect(lambda _: self._update_arch_enabled())
        QShortcut(QKeySequence("Ctrl+O"), self, self.open_files)
        QShortcut(QKeySequence("Escape"), self, self.stop)
        self._update_arch_enabled()

    # --- options ----------------------------------------------------------------------------
    def model_from_disk(self) -> bool:
        ref = self.model_picker.model_ref()
        return ref != FROM_DISK and find_entry(ref) is None

    def _update_arch_enabled(self) -> None:
        self.arch_combo.setEnabled(self.model_from_disk())

    def architecture(self) -> str | None:
        text = self.arch_combo.currentText().strip()
        return None if not text or text.lower() == "auto" else text

    # --- input ------------------------------------------------------------------------------
    def open_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Choose photos to recognise", "", f"Images ({patterns});;All files (*)")
        if files:
            self.recognize(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of photos")
        if folder:
            self.recognize([folder])

    def drop_urls(self, urls: Sequence[QUrl]) -> None:
        """Local files and folders are recognised; web addresses (a browser's drag) are listed, not fetched."""
        local = [url.toLocalFile() for url in urls if url.isLocalFile() and url.toLocalFile()]
        remote = [url.toString() for url in urls if not url.isLocalFile()]
        if local:
            self.recognize(local)
        if remote:
            for address in remote:
                self._add_row(ImageResult(address, error=NOT_LOCAL_MESSAGE), name=address)
            shown = ", ".join(remote[:3]) + (" …" if len(remote) > 3 else "")
            self._carried_notice = f"{NOT_LOCAL_MESSAGE} Not recognised: {shown}"
            self.show_notice(self._carried_notice, error=True)

    def recognize(self, paths: Sequence[str | Path]) -> None:
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return
        if self.running:
            self._queued.extend(paths)
            self.status_message.emit(f"{len(paths)} more item(s) will be recognised when the current images are done.")
            return
        taught = self.labels_picker.classifier()
        if taught is not None:  # the user's labels: the taught job (ImageNet's best come beside each result)
            self.model_in_use.emit(f"your labels: {taught}")
            self.stats.clear()
            self._job_rows = []
            self._expand_new = len(paths) <= 5 and all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)
            self._carried_notice = ""
            self.submit("recognizing with your labels", "taught",
                        {"action": "recognize", "task": TASK_PHOTO, "name": taught, "paths": paths})
            return
        model = self.model_picker.model_ref()
        params = {
            "model": model,
            "arch": self.architecture() if self.model_from_disk() else None,
            "labels": None,
            "device": self.device_preference(),
            "compression": self.compression_picker.compression().value,
            "top_k": self.top_k.value(),
            "paths": paths,
            "thumbnails": True,
        } | self.cluster_params(any(Path(p).is_dir() for p in paths))
        self.model_in_use.emit(self.model_picker.currentText().split(" — ")[0])
        self.stats.clear()
        self._job_rows = []
        self._expand_new = len(paths) <= 5 and all(Path(p).suffix.lower() in IMAGE_SUFFIXES for p in paths)
        self._carried_notice = ""
        self.submit("recognizing images", "recognize", params)

    def stop(self) -> None:
        self._queued.clear()
        super().stop()

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.stop_button.setEnabled(running)
        self.clear_button.setEnabled(not running)
        self.sort_button.setEnabled(not running and any(r.ok for r in self.result_list()))

    # --- results ----------------------------------------------------------------------------
    def _add_row(self, result: ImageResult, name: str | None = None) -> QTreeWidgetItem:
        name = name or Path(result.path).name or result.path
        item = QTreeWidgetItem([name, "", ""])
        item.setData(0, RESULT_ROLE, result)
        details = result.path
        if result.width and result.height:
            details += f"\n{result.width} × {result.height} pixels"
        if result.from_cache:
            details += "\n(from the result cache)"
        item.setToolTip(0, details)
        if result.ok and result.predictions:
            icon = thumbnail_icon(result.thumbnail_png)
            if icon is not None:
                item.setIcon(0, icon)
            top = result.predictions[0]
            item.setText(1, top.label)
            item.setToolTip(1, top.label)
            item.setData(2, SCORE_ROLE, top.score)
            bold = QFont()
            bold.setBold(True)
            item.setFont(1, bold)
            for rank, prediction in enumerate(result.predictions, 1):
                child = QTreeWidgetItem([f"{rank}.", prediction.label, ""])
                child.setTextAlignment(0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                child.setData(2, SCORE_ROLE, prediction.score)
                child.setToolTip(1, prediction.label)
                item.addChild(child)
            for prediction in result.imagenet:  # beside the user's labels: ImageNet's best for the same photo
                child = QTreeWidgetItem(["ImageNet", prediction.label, ""])
                child.setTextAlignment(0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                child.setData(2, SCORE_ROLE, prediction.score)
                child.setToolTip(1, f"ImageNet's label: {prediction.label}")
                item.addChild(child)
        else:
            reason = result.error or "no result"
            if self._warning_icon is None:
                self._warning_icon = _warning_icon(self.style())
            item.setIcon(0, self._warning_icon)
            item.setText(1, reason)
            item.setForeground(1, QColor(ERROR_COLOUR))
            for column in range(3):
                item.setToolTip(column, f"{result.path}\n{reason}")
        self.results.addTopLevelItem(item)
        if self._expand_new and item.childCount():
            item.setExpanded(True)
        return item

    def _on_partial(self, job_id: int, payload: Any) -> None:
        if not self._mine(job_id) or not isinstance(payload, list):
            return
        for result in payload:
            if isinstance(result, ImageResult):
                self._job_rows.append(self._add_row(result))

    def _reconcile(self, batch: RecognitionBatch) -> None:
        """Rows arrive as results are ready (failures and cache hits first); put them in the order given."""
        rows = list(self._job_rows)
        by_path: dict[str, list[QTreeWidgetItem]] = {}
        for item in rows:
            by_path.setdefault(item.data(0, RESULT_ROLE).path, []).append(item)
        ordered: list[QTreeWidgetItem] = []
        for result in batch.results:
            waiting = by_path.get(result.path)
            ordered.append(waiting.pop(0) if waiting else self._add_row(result))
        extra = [item for items in by_path.values() for item in items]  # never expected: keep them, after
        ordered += extra
        current = [self.results.indexOfTopLevelItem(item) for item in ordered]
        if current == sorted(current):
            return
        start = min(current)
        expanded = {id(item): item.isExpanded() for item in ordered}
        for item in ordered:
            self.results.takeTopLevelItem(self.results.indexOfTopLevelItem(item))
        for offset, item in enumerate(ordered):
            self.results.insertTopLevelItem(start + offset, item)
            item.setExpanded(expanded[id(item)])

    def handle_result(self, batch: Any) -> None:
        if isinstance(batch, SortReport):
            self._sort_done(batch)
            return
        self.last_batch = batch
        if batch.model_title:
            self.model_in_use.emit(f"{batch.model_title} · {batch.runtime or batch.device}")
            self.runtime_used.emit(batch.runtime or "pytorch")
        self._reconcile(batch)
        self._job_rows = []
        count = len(batch.results)
        failed = sum(1 for r in batch.results if not r.ok)
        cached = sum(1 for r in batch.results if r.from_cache)
        summary = (
            f"{count} image(s), {failed} failed, {batch.images_per_second:.1f} images/s, {cached} from cache, "
            f"on {batch.device} ({batch.runtime or 'pytorch'}), compression {batch.compression}"
        )
        self.stats.setText(summary)
        carried, self._carried_notice = self._carried_notice, ""
        self.show_notice(" ".join([*batch.notices, carried]).strip(), error=bool(carried))
        self.status_message.emit(f"Stopped: {summary}; the results so far are kept." if batch.stopped else f"Recognised {summary}.")
        if self._queued:
            queued, self._queued = self._queued, []
            self.recognize(queued)

    def _on_failed(self, job_id: int, message: str) -> None:
        mine = self._mine(job_id)
        super()._on_failed(job_id, message)
        if mine:
            self._job_rows = []
            self._queued.clear()

    def result_list(self) -> list[ImageResult]:
        return [self.results.topLevelItem(i).data(0, RESULT_ROLE) for i in range(self.results.topLevelItemCount())]

    def results_as_tsv(self) -> str:
        return results_as_tsv(self.result_list())

    def copy_results(self) -> None:
        results = self.result_list()
        if not results:
            self.show_notice("Nothing to copy yet: drop or open some photos first.", error=True)
            return
        QGuiApplication.clipboard().setText(results_as_tsv(results))
        self.status_message.emit(f"Copied {len(results)} result(s).")

    def export(self) -> None:
        if not self.results.topLevelItemCount():
            self.show_notice("Nothing to export yet: drop or open some photos first.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the results", "images.csv", "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> None:
        try:
            save_image_results(path, self.result_list())
        except OSError as error:
            self.show_notice(f"Could not save {path}: {error.strerror or error}", error=True)
            return
        self.status_message.emit(f"Saved {path}")

    # --- sorting into folders ---------------------------------------------------------------
    def ask_sort(self) -> None:
        """The dialog: where, copy or move (a move asks again), and the confidence below which photos are 'unsure'."""
        dialog = SortDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        target = dialog.target.text().strip()
        if not target:
            self.show_notice("Choose a folder to sort the photos into.", error=True)
            return
        move = dialog.move_check.isChecked()
        if move:
            count = sum(1 for r in self.result_list() if r.ok)
            answer = QMessageBox.question(
                self, "Move the photos?", f"Move {count} photo(s) out of where they are now, into folders in {target}?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self.status_message.emit("Not moved: nothing was changed.")
                return
        self.sort_into(target, move, dialog.min_score.value() / 100)

    def sort_into(self, target: str, move: bool = False, min_score: float = 0.0) -> None:
        results = [r for r in self.result_list() if r.ok and Path(r.path).is_absolute()]
        if not results or self.running:
            return
        plain = [ImageResult(r.path, r.predictions, r.error) for r in results]  # no thumbnails to the engine
        self.submit("sorting photos", "sort_photos", {"results": plain, "target": target, "move": move, "min_score": min_score})

    def _sort_done(self, report: SortReport) -> None:
        self.last_sort = report
        moved = {photo.source: photo.destination for photo in report.done} if report.move else {}
        for index in range(self.results.topLevelItemCount()):
            item = self.results.topLevelItem(index)
            result = item.data(0, RESULT_ROLE)
            if result.path in moved:  # the row follows its photo, so a second sort or export is right
                result.path = moved[result.path]
                item.setData(0, RESULT_ROLE, result)
                item.setToolTip(0, result.path)
        text = report.describe()
        self.show_notice(text, error=bool(report.skipped))
        self.status_message.emit(text)

    def clear(self) -> None:
        if self.running:
            return
        self.results.clear()
        self.last_batch = None
        self.stats.clear()
        self.show_notice("")

    # --- settings ---------------------------------------------------------------------------
    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("image/model", self.model_picker.model_ref())
        settings.setValue("image/arch", self.arch_combo.currentText().strip() or "auto")
        settings.setValue("image/compression", self.compression_picker.compression().value)
        settings.setValue("image/top_k", self.top_k.value())
        settings.setValue("image/labels", self.labels_picker.classifier() or "")

    def load_settings(self, settings: QSettings) -> None:
        model = read(settings, "image/model", "")
        if model and model != FROM_DISK:
            self.model_picker.select(model)
        self.arch_combo.setCurrentText(read(settings, "image/arch", "auto"))
        self.compression_picker.select(read(settings, "image/compression", "none"))
        self.top_k.setValue(read(settings, "image/top_k", 5, int))
        self.labels_picker.select(read(settings, "image/labels", "") or None)
        self._update_arch_enabled()
