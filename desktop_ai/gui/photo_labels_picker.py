"""The Image tab's choice of labels: ImageNet's (the model's own) or one of the user's taught photo classifiers.
Recognition and Sort into folders then use the chosen labels; with the user's, ImageNet's best come beside."""

from __future__ import annotations

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QComboBox, QWidget

from desktop_ai.engine.tasks.taught_classifiers import TASK_PHOTO, TaughtLibrary

IMAGENET_TEXT = "ImageNet's labels (the model's own)"


class PhotoLabelsPicker(QComboBox):
    def __init__(self, library: TaughtLibrary | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setAccessibleName("Labels")
        self.setToolTip("Which labels recognition and Sort into folders use: ImageNet's, or labels you taught "
                        "(Image → My photo labels); yours show ImageNet's best beside them.")
        self.addItem(IMAGENET_TEXT, None)
        self.refresh()

    def classifier(self) -> str | None:
        """The chosen taught classifier's name, or None for ImageNet's labels."""
        return self.currentData()

    def refresh(self) -> None:
        """Re-read the names (only the small description of each file), keeping the choice where it still exists."""
        chosen = self.classifier()
        names = (self.library or TaughtLibrary()).names(TASK_PHOTO)
        self.blockSignals(True)
        while self.count() > 1:
            self.removeItem(1)
        for name in names:
            self.addItem(f"Your labels: {name}", name)
        index = self.findData(chosen) if chosen is not None else 0
        self.setCurrentIndex(max(index, 0))
        self.blockSignals(False)

    def select(self, name: str | None) -> None:
        index = self.findData(name) if name is not None else 0
        if index < 0:
            self.refresh()
            index = self.findData(name)
        if index >= 0:
            self.setCurrentIndex(index)

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self.refresh()  # a classifier taught since the last look is offered
        super().showPopup()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        self.refresh()
        super().showEvent(event)
