"""The Image tab's results list, which is also its drop area, and how its rows draw (thumbnails, score bars).
Image → My photo labels uses the same view."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QIcon,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QAbstractItemView, QStyle, QStyleOptionViewItem, QTreeWidget, QWidget

from desktop_ai.gui.widgets import ScoreBarDelegate, accept_url_drag

ICON_SIZE = 64
PLACEHOLDER = "Drop photos or folders here, or use Open…"


class ImageDropView(QTreeWidget):
    """The results list, which is also the drop area: files and folders dropped on it are recognised."""

    urls_dropped = Signal(list)  # list[QUrl]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self._hovering = False

    def _hover(self, on: bool) -> None:
        if self._hovering != on:
            self._hovering = on
            self.viewport().update()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self._hover(accept_url_drag(event))

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        accept_url_drag(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._hover(False)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        self._hover(False)
        if accept_url_drag(event):
            self.urls_dropped.emit(list(event.mimeData().urls()))

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.topLevelItemCount() and not self._hovering:
            return
        painter = QPainter(self.viewport())
        area = self.viewport().rect().adjusted(8, 8, -8, -8)
        if self._hovering:
            pen = QPen(self.palette().highlight().color(), 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRoundedRect(area, 8, 8)
        if not self.topLevelItemCount():
            painter.setPen(self.palette().placeholderText().color())
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.2)
            painter.setFont(font)
            painter.drawText(QRect(area), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, PLACEHOLDER)
        painter.end()


class CompactScoreBar(ScoreBarDelegate):
    """The shared score bar, kept to one text line high in rows that are as tall as a thumbnail."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        height = option.fontMetrics.height() + 8
        if option.rect.height() > height:
            option = QStyleOptionViewItem(option)
            rect = QRect(option.rect)
            rect.setTop(option.rect.top() + (option.rect.height() - height) // 2)
            rect.setHeight(height)
            option.rect = rect
        super().paint(painter, option, index)


def centred_icon(small: QPixmap) -> QIcon:
    """A picture centred on a square canvas of the icon size, so that every row's file name lines up."""
    if small.width() > ICON_SIZE or small.height() > ICON_SIZE:
        small = small.scaled(ICON_SIZE, ICON_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    canvas = QPixmap(ICON_SIZE, ICON_SIZE)
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.drawPixmap((ICON_SIZE - small.width()) // 2, (ICON_SIZE - small.height()) // 2, small)
    painter.end()
    return QIcon(canvas)


def thumbnail_icon(png: bytes | None) -> QIcon | None:
    """The engine's small PNG thumbnail as an icon (already decoded and shrunk there: cheap here)."""
    if not png:
        return None
    pixmap = QPixmap()
    return centred_icon(pixmap) if pixmap.loadFromData(png, "PNG") else None


def warning_icon(style: QStyle) -> QIcon:
    """The standard warning sign at half the thumbnail size, so failed rows stand out but line up."""
    return centred_icon(style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(ICON_SIZE // 2, ICON_SIZE // 2))

