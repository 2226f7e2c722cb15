"""Text → Classify: one page, two ways to classify. Sentiment or labels typed on the spot (zero-shot, ClassifyPage),
or labels taught by examples (My labels, MyLabelsPage). A switch at the top shows one of them; both keep their
state while the other is shown."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QStackedWidget, QVBoxLayout, QWidget

from desktop_ai.gui.settings import read
from desktop_ai.gui.taught_labels import MyLabelsPage


class ClassifySection(QWidget):
    def __init__(self, classify_page: QWidget, my_labels_page: MyLabelsPage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Classify")
        self.classify_page = classify_page
        self.my_labels_page = my_labels_page
        self.typed_button = QRadioButton("Sentiment or labels you type")
        self.typed_button.setAccessibleName("Classify by sentiment or typed labels")
        self.taught_button = QRadioButton("My labels (taught by examples)")
        self.taught_button.setAccessibleName("Classify with my labels")
        self.taught_button.setToolTip("Labels of your own, taught by a few examples each and corrected with a click")
        self.group = QButtonGroup(self)
        self.group.addButton(self.typed_button, 0)
        self.group.addButton(self.taught_button, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(classify_page)
        self.stack.addWidget(my_labels_page)
        switch = QHBoxLayout()
        switch.addWidget(QLabel("Classify with:"))
        switch.addWidget(self.typed_button)
        switch.addWidget(self.taught_button)
        switch.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(switch)
        layout.addWidget(self.stack, 1)
        self.typed_button.setChecked(True)
        self.group.idToggled.connect(lambda index, on: on and self.stack.setCurrentIndex(index))

    def show_typed(self) -> None:
        self.typed_button.setChecked(True)

    def show_my_labels(self) -> None:
        self.taught_button.setChecked(True)

    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("classify/section", self.stack.currentIndex())

    def load_settings(self, settings: QSettings) -> None:
        button = self.group.button(read(settings, "classify/section", 0, int))
        if button is not None:
            button.setChecked(True)
