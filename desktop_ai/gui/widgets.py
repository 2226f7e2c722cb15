"""Small widgets shared by the tabs: the model picker and the score-bar delegate."""

from __future__ import annotations

import logging

from PySide6.QtCore import QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDragMoveEvent, QDropEvent, QPainter
from PySide6.QtWidgets import QComboBox, QFileDialog, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from desktop_ai.engine.models.catalogue import TASK_RECOGNIZE, entries_for
from desktop_ai.engine.models.compression import COMPRESSION_LABELS, Compression
from desktop_ai.engine.models.store import ModelStore

logger = logging.getLogger(__name__)

FROM_DISK = "__from_disk__"
MANAGE_MODELS = "__manage_models__"
SCORE_ROLE = Qt.ItemDataRole.UserRole + 1


def accept_url_drag(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> bool:
    """Files (and links, which the tabs then refuse with a message) are taken as a copy; anything else is not."""
    if not event.mimeData().hasUrls():
        event.ignore()
        return False
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()
    return True


class ModelPicker(QComboBox):
    """Catalogue models for one task, each marked embedded/downloaded/needs download, plus 'From disk…'."""

    model_changed = Signal(str)

    def __init__(self, task: str, store: ModelStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.setAccessibleName(f"Model for {task}")
        self.setToolTip("Which model runs this job. Embedded models work offline.")
        # Sized for about 36 characters, not for the longest title (which made the Image tab over 700 px wide);
        # the open list still shows every title whole.
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(36)
        self.view().setTextElideMode(Qt.TextElideMode.ElideNone)
        self.store = store
        for entry in entries_for(task):
            self.addItem(f"{entry.title} — {store.availability(entry)}", entry.id)
            self.setItemData(self.count() - 1, f"{entry.description}\n{entry.size_mb:.0f} MB, licence {entry.licence}", Qt.ItemDataRole.ToolTipRole)
        self.addItem("From folder or file…", FROM_DISK)
        self.addItem("Manage models…", MANAGE_MODELS)
        self.refresh_added()
        self._last = store.default_model(task)
        self.select(self._last)
        self.activated.connect(self._on_activated)

    def refresh_added(self) -> None:
        """The user's added models (Models window, `desktop-ai models add`) for this task, before 'From folder…'."""
        from desktop_ai.engine.models.library import ModelLibrary

        try:
            added = [m for m in ModelLibrary().all_models() if m.task == self.task]
        except Exception as error:  # a damaged library file must not stop a tab from opening
            logger.warning("The model library could not be read: %s", error)
            return
        for model in added:
            if self.findData(model.model_ref) < 0:
                self.insertItem(self.findData(FROM_DISK), f"{model.title} — yours, on disk", model.model_ref)

    def model_ref(self) -> str:
        return str(self.currentData())

    def select(self, model_ref: str) -> None:
        index = self.findData(model_ref)
        if index < 0:
            index = self.findData(FROM_DISK)
            self.insertItem(index, f"{model_ref} (from disk)", model_ref)
        self.setCurrentIndex(index)
        self._last = model_ref

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) == MANAGE_MODELS:
            self.select(self._last)
            window = self.window()
            if hasattr(window, "open_models_window"):
                window.open_models_window(self.task)
            return
        if self.itemData(index) != FROM_DISK:
            self._last = self.model_ref()
            self.model_changed.emit(self._last)
            return
        if self.task == TASK_RECOGNIZE:  # image models are one file (TorchScript or state_dict), labels.txt beside it
            folder, _ = QFileDialog.getOpenFileName(
                self, "Choose a model file (TorchScript or state_dict, with labels.txt beside it)",
                filter="PyTorch models (*.pt *.pth *.ts);;All files (*)",
            )
        else:
            folder = QFileDialog.getExistingDirectory(self, "Choose a model folder (with config.json)")
        if not folder and self.task == "generate":
            folder, _ = QFileDialog.getOpenFileName(self, "Or choose a GGUF file", filter="GGUF models (*.gguf)")
        if folder:
            self.select(folder)
            self.model_changed.emit(folder)
        else:
            self.select(self._last)


class CompressionPicker(QComboBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Compression")
        self.setToolTip("int8 is the fastest on a CPU; half precision needs a GPU; pruning zeroes small weights.")
        for method, label in COMPRESSION_LABELS.items():
            self.addItem(label, method.value)

    def compression(self) -> Compression:
        return Compression(self.currentData())

    def select(self, value: str) -> None:
        index = self.findData(value)
        if index >= 0:
            self.setCurrentIndex(index)


class ScoreBarDelegate(QStyledItemDelegate):
    """Paints a score (0..1, in SCORE_ROLE) as a bar behind its percentage."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        score = index.data(SCORE_ROLE)
        if score is None:
            super().paint(painter, option, index)
            return
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        bar = QRect(option.rect.adjusted(2, 3, -2, -3))
        bar.setWidth(int(bar.width() * max(0.0, min(1.0, float(score)))))
        painter.fillRect(bar, QColor(70, 130, 220, 160))
        painter.setPen(option.palette.text().color())
        painter.drawText(option.rect.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{float(score):.1%}")
        painter.restore()
