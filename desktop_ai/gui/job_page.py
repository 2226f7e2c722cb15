"""What every tab that runs jobs shares: the job plumbing of a page, labelled buttons, and safe saving."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QWidget

from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.worker import EngineThread


def labelled_button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(text.replace("&", ""))
    button.setToolTip(tip)
    return button


class JobPage(QWidget):
    """Common plumbing of a page that runs one job at a time on the engine thread."""

    status_message = Signal(str)
    model_in_use = Signal(str)  # a job of this page starts (or ran) on this model: the runtime is not known yet
    runtime_used = Signal(str)  # ... and this runtime ran it; the status bar shows both, for the page's lane

    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.store = store
        self.device_preference = device_preference  # a callable returning "auto" / "cpu" / ...
        self.cluster_address: Callable[[], str] = lambda: ""  # the window's Settings → Cluster; "" runs jobs here
        self.job_id: int | None = None
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Progress")
        self.progress_bar.setVisible(False)
        self.notice = QLabel()
        self.notice.setAccessibleName("Messages")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        engine.started_job.connect(self._on_started)
        engine.progress.connect(self._on_progress)
        engine.partial.connect(self._on_partial)
        engine.finished_job.connect(self._on_finished)
        engine.failed.connect(self._on_failed)

    @property
    def running(self) -> bool:
        return self.job_id is not None

    def show_notice(self, text: str, error: bool = False, status_bar: bool = True) -> None:
        """status_bar=False for what a background check found: it must not replace what the user's last job said."""
        colour = "#b00020" if error else "#7a5a00"
        self.notice.setText(f"<span style='color:{colour}'>{text}</span>" if text else "")
        self.notice.setToolTip(text)
        if text and status_bar:
            self.status_message.emit(text)

    def cluster_params(self, folder_job: bool) -> dict[str, Any]:
        """What a folder job adds to its params when a cluster is set: the engine lane runs it there."""
        address = self.cluster_address().strip()
        return {"cluster": address} if folder_job and address else {}

    def submit(self, name: str, kind: str, params: dict[str, Any]) -> None:
        self.show_notice("")
        self.job_id = self.engine.submit(name, kind, params)
        self.set_running(True)

    def stop(self) -> None:
        if self.job_id is not None:
            self.engine.cancel(self.job_id)
            self.status_message.emit("Stopping…")

    def set_running(self, running: bool) -> None:
        self.progress_bar.setVisible(running)
        if running:
            self.progress_bar.setRange(0, 0)

    def _mine(self, job_id: int) -> bool:
        return job_id == self.job_id

    def _on_started(self, job_id: int, name: str) -> None:
        if self._mine(job_id):
            self.status_message.emit(f"Working: {name}…")

    def _on_progress(self, job_id: int, message: str, fraction: float) -> None:
        if not self._mine(job_id):
            return
        if fraction < 0:
            self.progress_bar.setRange(0, 0)
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(fraction * 1000))
        self.progress_bar.setFormat(message)
        self.status_message.emit(message)

    def _on_partial(self, job_id: int, text: str) -> None:  # pragma: no cover - overridden
        pass

    def _on_finished(self, job_id: int, result: Any) -> None:
        if self._mine(job_id):
            self.job_id = None
            self.set_running(False)
            self.handle_result(result)

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._mine(job_id):
            self.job_id = None
            self.set_running(False)
            self.show_notice(message, error=True)

    def handle_result(self, result: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError



def save_text(path: Path, text: str) -> None:
    """Write to a temporary file and rename, so a failed save never destroys an older file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
