"""The Models window: every model by task with its state, sizes, where it lives, the memory it needs and
whether it fits; download with progress, pause and cancel (resumable), remove, add files and folders,
browse the Hub, and the mirror and proxy used by every download.

Downloads, Hub calls and checks run in worker threads (plain HTTP and hashing; no model is loaded and
torch is never imported here); results come back to the GUI thread through queued signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.errors import CancelledError, EngineError
from desktop_ai.engine.models import downloads
from desktop_ai.engine.models.catalogue import TASKS
from desktop_ai.engine.models.inventory import STATE_DOWNLOADING, Inventory, ModelRow
from desktop_ai.engine.models.library import ModelLibrary
from desktop_ai.engine.models.store import ModelStore, hub_reachable
from desktop_ai.gui.taught_models import TaughtClassifiersBox

logger = logging.getLogger(__name__)

TASK_TITLES = {"generate": "Text generation", "classify": "Text classification", "recognize": "Image recognition",
               "translate": "Translation", "transcribe": "Speech to text"}
TASK_TITLES["speak"] = "Voices (read aloud)"
COLUMNS = ("Model", "State", "On disk", "To download", "Memory", "Fits this machine", "Licence", "Where")
ID_ROLE = Qt.ItemDataRole.UserRole


def _mb(value: float) -> str:
    return f"{value:.1f} MB" if value >= 0.1 else f"{value * 1000:.0f} kB"


class _Bridge(QObject):
    """Carries a worker thread's results to the GUI thread (queued connection)."""

    done = Signal(object, object)  # callback, value
    failed = Signal(object, str)


class ModelsWindow(QDialog):
    models_changed = Signal()  # a model was added, forgotten, downloaded or removed: pickers refresh

    def __init__(self, store: ModelStore, parent: QWidget | None = None, inventory: Inventory | None = None,
                 online: bool | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setAccessibleName("Models")
        self.resize(1100, 640)
        self.store = store
        self.inventory = inventory or Inventory(store, ModelLibrary())
        self.online = online
        self.confirm_remove: Callable[[str], bool] = self._ask_remove
        self._cancel: threading.Event | None = None
        self._stop_reason = ""
        self._downloading: str | None = None
        self._bridge = _Bridge()
        self._bridge.done.connect(self._deliver)
        self._bridge.failed.connect(self._deliver)

        self.offline_label = QLabel()
        self.offline_label.setAccessibleName("Offline notice")
        self.offline_label.setWordWrap(True)
        self.offline_label.setVisible(False)
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Models by task")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.itemSelectionChanged.connect(self._update_buttons)

        self.download_button = QPushButton("&Download")
        self.pause_button = QPushButton("&Pause")
        self.cancel_button = QPushButton("&Cancel download")
        self.remove_button = QPushButton("&Remove")
        self.add_file_button = QPushButton("Add &file…")
        self.add_folder_button = QPushButton("Add f&older…")
        for button, tip in (
            (self.download_button, "Download the selected model (resumes what a stopped download left)"),
            (self.pause_button, "Stop the download; what has arrived is kept and Download resumes from it"),
            (self.cancel_button, "Stop the download; what has arrived is kept until you Remove it"),
            (self.remove_button, "Delete a downloaded model, or forget one you added (your files stay)"),
            (self.add_file_button, "A .gguf file, or a TorchScript / ONNX image model with labels.txt beside it"),
            (self.add_folder_button, "A model folder, or a folder of models (LM Studio, GPT4All, Ollama): listed in place"),
        ):
            button.setToolTip(tip)
            button.setAccessibleName(button.text().replace("&", ""))
        self.download_button.clicked.connect(self.download_selected)
        self.pause_button.clicked.connect(lambda: self.stop_download("Paused"))
        self.cancel_button.clicked.connect(lambda: self.stop_download("Cancelled"))
        self.remove_button.clicked.connect(self.remove_selected)
        self.add_file_button.clicked.connect(self._choose_file)
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Download progress")
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.progress_label = QLabel()
        self.progress_label.setAccessibleName("Download speed and time left")
        self.status = QLabel()
        self.status.setAccessibleName("Models status")
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        for button in (self.download_button, self.pause_button, self.cancel_button, self.remove_button,
                       self.add_file_button, self.add_folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.offline_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.progress_label)
        layout.addLayout(progress_row)
        layout.addWidget(self.status)
        layout.addWidget(self._build_hub_box())
        layout.addWidget(self._build_network_box())
        self.taught_box = TaughtClassifiersBox(self._run)
        layout.addWidget(self.taught_box)
        self.refresh()
        if self.online is None:
            self._run(hub_reachable, self._on_reachability, lambda message: self._on_reachability(False))
        else:
            self._on_reachability(self.online)

    @Slot(object, object)
    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        """Runs in the GUI thread: the bridge's signals are queued to this window."""
        callback(value)

    # --- building ---------------------------------------------------------------------------------------------
    def _build_hub_box(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.search_kind = QComboBox()
        self.search_kind.setAccessibleName("Kind of Hub model")
        for kind, label in (("gguf", "GGUF chat models"), ("whisper", "faster-whisper speech"), ("opus-mt", "opus-mt translation")):
            self.search_kind.addItem(label, kind)
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search the Hugging Face Hub by name")
        self.search_box.setAccessibleName("Search the Hub")
        self.search_button = QPushButton("&Search")
        self.search_button.clicked.connect(self.search)
        self.search_box.returnPressed.connect(self.search)
        self.results = QListWidget()
        self.results.setAccessibleName("Hub search results")
        self.results.setMaximumHeight(110)
        self.results.currentItemChanged.connect(lambda *_: self._on_result_chosen())
        self.quant = QComboBox()
        self.quant.setAccessibleName("GGUF file to download")
        self.quant.setEnabled(False)
        self.get_button = QPushButton("Download &this")
        self.get_button.setEnabled(False)
        self.get_button.clicked.connect(self.download_search_result)
        left = QVBoxLayout()
        top = QHBoxLayout()
        for widget in (self.search_kind, self.search_box, self.search_button):
            top.addWidget(widget)
        left.addLayout(top)
        left.addWidget(self.results)
        right = QVBoxLayout()
        right.addWidget(QLabel("File (quantization):"))
        right.addWidget(self.quant)
        right.addWidget(self.get_button)
        right.addStretch(1)
        row.addLayout(left, 3)
        row.addLayout(right, 1)
        return box

    def _build_network_box(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        settings = downloads.load_network_settings()
        self.mirror_edit = QLineEdit(settings.endpoint)
        self.mirror_edit.setPlaceholderText("https://huggingface.co (or a mirror such as https://hf-mirror.com)")
        self.mirror_edit.setAccessibleName("Hugging Face mirror")
        self.proxy_edit = QLineEdit(settings.proxy)
        self.proxy_edit.setPlaceholderText("http://proxy.example:3128 (empty: the system's)")
        self.proxy_edit.setAccessibleName("HTTP proxy")
        save = QPushButton("Save network settings")
        save.clicked.connect(self.save_network)
        line = QHBoxLayout()
        line.addWidget(self.proxy_edit, 1)
        line.addWidget(save)
        form.addRow("Mirror (HF_ENDPOINT):", self.mirror_edit)
        form.addRow("Proxy:", line)
        return box

    # --- listing ----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read every state (added folders are re-scanned, so new files appear)."""
        selected = self.selected_id()
        self.tree.clear()
        self.rows: dict[str, ModelRow] = {}
        groups: dict[str, QTreeWidgetItem] = {}
        for task in TASKS:
            group = QTreeWidgetItem([TASK_TITLES.get(task, task)])
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            groups[task] = group
            self.tree.addTopLevelItem(group)
        for row in self.inventory.rows():
            self.rows[row.id] = row
            item = QTreeWidgetItem(self._cells(row))
            item.setData(0, ID_ROLE, row.id)
            item.setToolTip(0, row.id)
            item.setToolTip(1, row.how_to_get or row.state)
            groups[row.task].addChild(item)
            if row.id == selected:
                item.setSelected(True)
        self.tree.expandAll()
        for column in range(len(COLUMNS) - 1):
            self.tree.resizeColumnToContents(column)
        self._update_buttons()

    def _cells(self, row: ModelRow) -> list[str]:
        state = row.state
        if row.kept_mb and state != STATE_DOWNLOADING:
            state += f" ({_mb(row.kept_mb)} kept to resume)"
        if row.how_to_get and self.online is False and row.state != STATE_DOWNLOADING:
            state += f": {row.how_to_get}"
        return [row.title, state, _mb(row.size_on_disk_mb) if row.size_on_disk_mb else "—",
                f"{row.download_mb:.0f} MB" if row.download_mb else "—", f"about {row.memory_mb:.0f} MB",
                row.fits, row.licence, row.where]

    def item_for(self, model_id: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, ID_ROLE) == model_id:
                    return group.child(j)
        return None

    def state_of(self, model_id: str) -> str:
        item = self.item_for(model_id)
        return item.text(1) if item else ""

    def select(self, model_id: str) -> None:
        item = self.item_for(model_id)
        if item is not None:
            self.tree.setCurrentItem(item)

    def selected_id(self) -> str | None:
        items = self.tree.selectedItems() if hasattr(self, "tree") else []
        return items[0].data(0, ID_ROLE) if items else None

    def _update_buttons(self) -> None:
        row = self.rows.get(self.selected_id() or "")
        busy = self._downloading is not None
        self.download_button.setEnabled(bool(row and row.download_mb and not busy and self.online is not False))
        self.pause_button.setEnabled(busy)
        self.cancel_button.setEnabled(busy)
        self.remove_button.setEnabled(bool(row and row.removable and row.id != self._downloading))

    def _on_reachability(self, online: bool) -> None:
        self.online = bool(online)
        if not self.online:
            endpoint = downloads.load_network_settings().resolved_endpoint()
            self.offline_label.setText(
                f"Offline: {endpoint} cannot be reached. Embedded models and your own work; each model that needs a "
                "download says how to get it. Set a mirror or proxy below if your network needs one."
            )
        self.offline_label.setVisible(not self.online)
        self.refresh()

    # --- background work ----------------------------------------------------------------------------------------
    def _run(self, work: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[str], None]) -> None:
        def target() -> None:
            try:
                value = work()
            except CancelledError as error:
                self._bridge.failed.emit(on_error, f"cancelled: {error}")
            except (EngineError, ValueError, OSError) as error:
                self._bridge.failed.emit(on_error, str(error))
            except Exception as error:  # a worker must never die silently
                logger.exception("Models window task failed")
                self._bridge.failed.emit(on_error, f"unexpected failure: {error}")
            else:
                self._bridge.done.emit(on_done, value)

        threading.Thread(target=target, name="models-window", daemon=True).start()

    # --- downloads ----------------------------------------------------------------------------------------------
    def download_selected(self) -> None:
        model_id = self.selected_id()
        if model_id is None or self._downloading is not None:
            return
        self._start_download(model_id, lambda cancel, report: self.inventory.download(model_id, report, cancel))

    def _start_download(self, model_id: str, work: Callable[[threading.Event, Callable], Any]) -> None:
        self._downloading = model_id
        self._cancel = threading.Event()
        self.inventory.downloading.add(model_id)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.progress_label.setText("starting…")
        self.status.setText(f"Downloading {model_id}…")
        cancel = self._cancel
        self.refresh()
        self._run(lambda: work(cancel, lambda event: self._bridge.done.emit(self._on_progress, event)),
                  self._on_downloaded, self._on_download_failed)

    def _on_progress(self, event: downloads.DownloadProgress) -> None:
        self.progress.setValue(int(event.fraction * 1000))
        self.progress_label.setText(event.describe())

    def stop_download(self, reason: str = "Cancelled") -> None:
        if self._cancel is not None:
            self._stop_reason = reason
            self._cancel.set()

    def _finish(self) -> None:
        if self._downloading:
            self.inventory.downloading.discard(self._downloading)
        self._downloading = None
        self._cancel = None
        self.progress.setVisible(False)
        self.refresh()
        self.models_changed.emit()

    def _on_downloaded(self, result: downloads.DownloadResult) -> None:
        model_id = self._downloading
        self.status.setText(f"{model_id} downloaded to {result.path} ({result.downloaded_bytes / 1e6:.1f} MB fetched"
                            + (f", {result.resumed_bytes / 1e6:.1f} MB resumed)" if result.resumed_bytes else ")"))
        self._finish()

    def _on_download_failed(self, message: str) -> None:
        model_id = self._downloading
        if message.startswith("cancelled"):
            message = f"{self._stop_reason or 'Stopped'}: {model_id}. What has arrived is kept; Download resumes from it."
        else:
            message = f"Download of {model_id} failed: {message}"
        self.status.setText(message)
        self._finish()

    # --- remove and add -----------------------------------------------------------------------------------------
    def _ask_remove(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Remove model", text)
        return answer == QMessageBox.StandardButton.Yes

    def remove_selected(self) -> None:
        row = self.rows.get(self.selected_id() or "")
        if row is None or not row.removable:
            return
        question = (f"Forget {row.title}? Its files stay in {row.where}." if row.source == "local"
                    else f"Delete {row.title} ({row.size_on_disk_mb + row.kept_mb:.1f} MB) from {row.where}?")
        if not self.confirm_remove(question):
            return
        try:
            message, _freed = self.inventory.remove(row.id)
        except (EngineError, OSError) as error:
            message = f"Could not remove {row.title}: {error}"
        self.status.setText(message)
        self.refresh()
        self.models_changed.emit()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model file", filter="Models (*.gguf *.pt *.pth *.ts *.onnx);;All files (*)")
        if path:
            self.add_path(Path(path))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a model folder, or a folder of models")
        if path:
            self.add_path(Path(path))

    def add_path(self, path: Path) -> None:
        """A model file or folder is checked and added; a folder without config.json is listed in place."""
        library = self.inventory.library

        def work() -> str:
            if path.is_dir() and not (path / "config.json").is_file():
                found = library.add_folder(path)
                return f"{len(found)} model(s) found in {path}, listed in place (re-scanned each time this window opens)."
            model = library.add(path)
            return f"Added {model.title} as {model.id} ({model.task})."

        self.status.setText(f"Checking {path}…")
        self._run(work, self._on_added, lambda message: self.status.setText(f"Not added: {message}"))

    def _on_added(self, message: str) -> None:
        self.status.setText(message)
        self.refresh()
        self.models_changed.emit()

    # --- the Hub --------------------------------------------------------------------------------------------------
    def search(self) -> None:
        query, kind = self.search_box.text(), self.search_kind.currentData()
        self.status.setText("Searching the Hub…")
        self._run(lambda: downloads.search_hub(query, kind), self._on_results, lambda m: self.status.setText(m))

    def _on_results(self, found: list[downloads.HubModel]) -> None:
        self.results.clear()
        for model in found:
            item = QListWidgetItem(f"{model.repo_id} — {model.downloads:,} downloads")
            item.setData(ID_ROLE, model)
            self.results.addItem(item)
        self.status.setText(f"{len(found)} model(s) found." if found else "Nothing found on the Hub.")

    def _on_result_chosen(self) -> None:
        item = self.results.currentItem()
        self.quant.clear()
        self.get_button.setEnabled(False)
        if item is None:
            return
        model: downloads.HubModel = item.data(ID_ROLE)
        patterns = None if model.kind == "gguf" else ["*.json", "*.bin", "*.txt", "*.spm", "*.safetensors", "*.model"]
        self._run(lambda: downloads.plan_download(model.repo_id, patterns=patterns), self._on_plan,
                  lambda m: self.status.setText(m))

    def _on_plan(self, plan: downloads.DownloadPlan) -> None:
        self._plan = plan
        quants = downloads.gguf_files(plan)
        self.quant.clear()
        if quants:
            for remote in quants:
                self.quant.addItem(f"{remote.name} ({remote.size / 1e6:.0f} MB)", remote.name)
        else:
            self.quant.addItem(f"all files ({plan.total_bytes / 1e6:.0f} MB)", None)
        self.quant.setEnabled(bool(quants))
        self.get_button.setEnabled(True)

    def download_search_result(self) -> None:
        plan = getattr(self, "_plan", None)
        if plan is None or self._downloading is not None:
            return
        name = self.quant.currentData()
        if name:
            plan = downloads.DownloadPlan(plan.repo_id, plan.revision, plan.commit,
                                          tuple(f for f in plan.files if f.name == name), plan.endpoint)
        library = self.inventory.library

        def work(cancel: threading.Event, report: Callable) -> Any:
            result = downloads.download(plan, report, cancel)
            target = result.path / name if name else result.path
            library.add(target)
            return result

        self._start_download(plan.repo_id, work)

    def save_network(self) -> None:
        try:
            downloads.save_network_settings(downloads.NetworkSettings(self.mirror_edit.text().strip(), self.proxy_edit.text().strip()))
        except ValueError as error:
            self.status.setText(str(error))
            return
        self.status.setText("Network settings saved; every download uses them.")
        self._run(hub_reachable, self._on_reachability, lambda message: self._on_reachability(False))

    def closeEvent(self, event: Any) -> None:
        self.stop_download("Paused")
        super().closeEvent(event)
