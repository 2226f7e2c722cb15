"""The Image tab's "Sort into folders…" dialog: where, copy or move, and the confidence for 'unsure'."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QSpinBox, QWidget

from desktop_ai.engine.tasks.photo_sorting import UNSURE
from desktop_ai.gui.job_page import labelled_button


class SortDialog(QDialog):
    """Where to sort, copy or move, and the confidence below which a photo goes into 'unsure'."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sort into folders")
        self.target = QLineEdit()
        self.target.setAccessibleName("Folder to sort into")
        browse = labelled_button("&Browse…", "Choose the folder")
        browse.clicked.connect(self._browse)
        self.move_check = QCheckBox("&Move the photos (instead of copying them)")
        self.min_score = QSpinBox()
        self.min_score.setRange(0, 100)
        self.min_score.setSuffix(" %")
        self.min_score.setValue(40)
        self.min_score.setAccessibleName("Unsure below")
        self.min_score.setToolTip(f"Photos whose top label scores less than this go into a folder named '{UNSURE}'.")
        where = QHBoxLayout()
        where.addWidget(self.target, 1)
        where.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("Into", where)
        form.addRow("", self.move_check)
        form.addRow(f"'{UNSURE}' below", self.min_score)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sort the photos into")
        if folder:
            self.target.setText(folder)
