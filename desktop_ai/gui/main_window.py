"""The main window: one tab per job, a status bar that always says device, model, cache and busy/idle."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QIcon
from PySide6.QtWidgets import QInputDialog, QLabel, QMainWindow, QMessageBox, QStackedWidget, QTabWidget, QWidget

from desktop_ai import __version__, paths
from desktop_ai.engine.models.memory import BUDGET_ENV as MEMORY_BUDGET_ENV
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.image_tab import ImageTab
from desktop_ai.gui.job_status import JobStatus
from desktop_ai.gui.settings import app_settings, read
from desktop_ai.gui.speech_tab import SpeechTab
from desktop_ai.gui.status_message import StatusMessage
from desktop_ai.gui.dictation_button import BoxDictation, attach_dictation_button
from desktop_ai.gui.dictate_anywhere import AnywhereDictation
from desktop_ai.gui.taught_photo_labels import PhotoLabelsPage
from desktop_ai.gui.text_tab import TextTab
from desktop_ai.gui.translate_tab import TranslateTab
from desktop_ai.gui.worker import EngineThread
from desktop_ai.gui.read_aloud import ReadAloud, ReadAloudSettingsDialog
from desktop_ai.gui.voice_chat import VoiceChat
from desktop_ai.logging_setup import log_file

logger = logging.getLogger(__name__)

ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "desktop-ai.svg"

class MainWindow(QMainWindow):
    def __init__(self, store: ModelStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle("desktop-ai")
        if ICON_PATH.exists():
            self.setWindowIcon(QIcon(str(ICON_PATH)))
        self.settings = app_settings()
        self.device = read(self.settings, "device", "auto")
        self.memory_budget_mb = read(self.settings, "memory_budget_mb", 0, int)  # 0: the engine's default share of RAM
        self.cluster_address = read(self.settings, "cluster/address", "").strip()  # "": folder jobs run here
        self.store = store or ModelStore(paths.cache_dir() / "converted-models")
        # Two lanes (engine/process.py): dictation in a process of its own, every other job in the other one.
        lane_environment = {MEMORY_BUDGET_ENV: str(self.memory_budget_mb)} if self.memory_budget_mb else {}
        self.engine = EngineThread(self, lane="jobs", environment=lane_environment)
        self.live_engine = EngineThread(self, lane="live", environment=lane_environment)
        self.lanes = [self.engine, self.live_engine]
        self.engine.ready.connect(self._on_engine_ready)
        self.read_aloud = ReadAloud(self.engine, self)  # the speaker buttons' reader: voice, speed, one reading at a time
        self.read_aloud.failed.connect(lambda message: self.show_message(f"Reading aloud: {message}"))

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Jobs")
        self.text_tab = TextTab(self.engine, self.store, lambda: self.device)
        self.translate_tab = TranslateTab(self.engine, self.store, lambda: self.device)
        self.image_tab = ImageTab(self.engine, self.store, lambda: self.device)
        # The Image tab's own labels, taught by photos, beside recognition (as Text → Classify holds My labels)
        self.photo_labels_tab = PhotoLabelsPage(self.engine, self.store, lambda: self.device)
        self.image_side = QTabWidget()
        self.image_side.setAccessibleName("Image")
        self.image_side.addTab(self.image_tab, "Recognize")
        self.image_side.addTab(self.photo_labels_tab, "My photo labels")
        self.tabs.addTab(self.text_tab, "Text")
        self.tabs.addTab(self.translate_tab, "Translate")
        self.tabs.addTab(self.image_side, "Image")
        self.speech_tab = SpeechTab(self.live_engine, self.store, lambda: self.device)
        self.tabs.addTab(self.speech_tab, "Speech")
        self.setCentralWidget(self.tabs)
        self.box_dictation = BoxDictation(self.live_engine, self.speech_tab.live_params,
                                          lambda: self.speech_tab.running, self)
        self.dictation_buttons = [
            attach_dictation_button(box, self.box_dictation, name) for box, name in (
                (self.text_tab.chat_page.input, "the chat message"), (self.text_tab.generate_page.prompt, "the prompt"),
                (self.translate_tab.input, "the text to translate"), (self.text_tab.classify_page.input, "the texts"))]
        self.box_dictation.notice.connect(lambda text: self.show_message(text))
        self.anywhere = AnywhereDictation(self.box_dictation, self.settings, self)
        self.anywhere.start_with_the_window()
        self.voice_chat = VoiceChat(self.text_tab.chat_page, self.live_engine)  # Chat's voice mode (gui/voice_chat.py)
        for page in (self.image_tab, self.speech_tab):  # the folder jobs a cluster can take
            page.cluster_address = lambda: self.cluster_address

        self.job_status = JobStatus(self.lanes, self)
        self.state_label = self.job_status.jobs_label
        self.device_label = QLabel()
        self.device_label.setAccessibleName("Device")
        self.model_label = self.job_status.model_label
        self.runtime_label = self.job_status.runtime_label
        self.cache_label = self.job_status.cache_label
        self.message_label = StatusMessage()
        bar = self.statusBar()
        bar.addWidget(self.message_label, 1)
        for widget in (self.state_label, self.device_label, self.model_label, self.runtime_label,
                       self.job_status.models_label, self.cache_label):
            bar.addPermanentWidget(widget)

        for page in (*self.text_tab.pages, self.translate_tab, self.image_tab, self.speech_tab,
                     self.text_tab.my_labels_page, self.photo_labels_tab):
            page.status_message.connect(self.show_message)
            page.model_in_use.connect(lambda model, lane=page.engine.lane: self.job_status.show_model(lane, model))
            page.runtime_used.connect(lambda runtime, lane=page.engine.lane: self.job_status.show_runtime(lane, runtime))
        for lane in self.lanes:  # a job that failed for want of a download offers it
            lane.failed.connect(lambda _job, message: self.offer_download(message))
        self._build_menus()
        self._update_device_label()
        self._restore()
        self.state_label.setText("Starting engine…")
        for lane in self.lanes:
            lane.ensure_started()

    # --- menus ----------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        quit_action = QAction("&Quit", self, shortcut="Ctrl+Q", triggered=self.close)
        file_menu.addAction(quit_action)
        models_menu = self.menuBar().addMenu("&Models")
        self.models_action = QAction("&Manage models…", self, shortcut="Ctrl+M", triggered=lambda: self.open_models_window())
        models_menu.addAction(self.models_action)
        settings_menu = self.menuBar().addMenu("&Settings")
        device_menu = settings_menu.addMenu("&Device")
        group = QActionGroup(self)
        self.device_actions: dict[str, QAction] = {}
        for value, label in (("auto", "Automatic (GPU if present)"), ("cpu", "CPU"), ("cuda", "NVIDIA GPU (CUDA)"), ("mps", "Apple GPU (MPS)")):
            action = QAction(label, self, checkable=True)
            action.setChecked(value == self.device)
            action.triggered.connect(lambda checked=False, v=value: self.set_device(v))
            group.addAction(action)
            device_menu.addAction(action)
            self.device_actions[value] = action
        settings_menu.addAction(QAction("&Memory budget for models…", self, triggered=self._ask_memory_budget))
        settings_menu.addAction(QAction("C&luster for folder jobs…", self, triggered=self._ask_cluster_address))
        settings_menu.addAction(QAction("Dictate &anywhere shortcut…", self, triggered=lambda: self.anywhere.ask_shortcut(self)))
        clear_cache = QAction("&Clear result cache", self, triggered=self._clear_cache)
        settings_menu.addAction(clear_cache)
        settings_menu.addAction(QAction("&Read aloud (voice, speed, output)…", self,
                                        triggered=lambda: ReadAloudSettingsDialog(self.read_aloud, self).open()))
        server_menu = self.menuBar().addMenu("Se&rver")
        self.server_action = QAction("&Local API server…", self, triggered=self.open_server_dialog)
        server_menu.addAction(self.server_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("Open &log file", self, triggered=self.open_log))
        help_menu.addAction(QAction("&About desktop-ai", self, triggered=self._about))

    def open_models_window(self, task: str | None = None) -> None:
        """One Models window; opened from the menu or a tab's model picker, re-scanned each time it opens."""
        from desktop_ai.gui.models_window import ModelsWindow
        from desktop_ai.gui.widgets import ModelPicker

        if getattr(self, "models_window", None) is None:
            self.models_window = ModelsWindow(self.store, self)
            self.models_window.models_changed.connect(
                lambda: [picker.refresh_added() for picker in self.findChildren(ModelPicker)]
            )
        else:
            self.models_window.refresh()
        if task:
            self.models_window.status.setText(f"Models for {task} are under their task's heading.")
        self.models_window.show()
        self.models_window.raise_()

    def open_server_dialog(self) -> None:
        """The local API server (gui/server_dialog.py): a process of its own, so it never blocks a tab."""
        from desktop_ai.gui.server_dialog import ServerDialog

        if getattr(self, "server_dialog", None) is None:
            self.server_dialog = ServerDialog(self.settings, lambda: self.device, self, lambda: (
                {MEMORY_BUDGET_ENV: str(self.memory_budget_mb)} if self.memory_budget_mb else {}))
            self.server_label = QLabel()
            self.server_label.setAccessibleName("API server")
            self.statusBar().addPermanentWidget(self.server_label)
            self.server_dialog.running_changed.connect(lambda on: self.server_label.setText(
                f"Server: on, {self.server_dialog.served} requests" if on else ""))
            self.server_dialog.served_changed.connect(
                lambda count: self.server_label.setText(f"Server: on, {count} requests"))
        self.server_dialog.show()
        self.server_dialog.raise_()

    def offer_download(self, message: str) -> QMessageBox | None:
        """A job that failed for want of a download offers that download (in the Models window) instead."""
        from desktop_ai.engine.models.catalogue import CATALOGUE

        if "not downloaded yet" not in message:
            return None
        entry = next((e for e in CATALOGUE if e.title in message or e.location in message), None)
        if entry is None:
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Download the model?",
                          f"{entry.title} is not downloaded yet ({entry.size_mb:.0f} MB). Download it now?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)

        def answered(_result: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
                self.open_models_window(entry.task)
                self.models_window.select(entry.id)
                self.models_window.download_selected()

        box.finished.connect(answered)
        box.open()
        self.download_offer = box
        return box

    def set_device(self, value: str) -> None:
        self.device = value
        self.settings.setValue("device", value)
        self._update_device_label()

    def _update_device_label(self) -> None:
        """The engine process reports what each device setting means on this machine (the window has no torch)."""
        info = (self.engine.ready_info or {}).get("devices", {}).get(self.device)
        if info is None:
            self.device_label.setText(f"Device: {self.device} (starting…)")
            return
        self.device_label.setText(f"Device: {info['device']}")
        self.device_label.setToolTip(info["reason"])
        if info["fallback"]:
            self.show_message(info["reason"])

    def open_log(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_file())))

    def set_memory_budget(self, megabytes: int) -> None:
        """Takes effect in each lane when it starts next (a lane restarts when idle: the next job starts it)."""
        self.memory_budget_mb = max(int(megabytes), 0)
        self.settings.setValue("memory_budget_mb", self.memory_budget_mb)
        for lane in self.lanes:
            if self.memory_budget_mb:
                lane.environment[MEMORY_BUDGET_ENV] = str(self.memory_budget_mb)
            else:
                lane.environment.pop(MEMORY_BUDGET_ENV, None)
            if not lane.busy:
                lane.restart()
        self.show_message(f"Memory budget for models: {self.memory_budget_mb:,} MB per lane." if self.memory_budget_mb
                          else "Memory budget for models: the default share of this machine's memory.")

    def _ask_memory_budget(self) -> None:
        value, ok = QInputDialog.getInt(
            self, "Memory budget", "Most memory each lane's loaded models may take, in MB (0: the default, 40 % of RAM):",
            self.memory_budget_mb, 0, 1_000_000, 256,
        )
        if ok:
            self.set_memory_budget(value)

    def set_cluster_address(self, address: str) -> None:
        """Folder jobs (a folder of photos, a folder of recordings) go to this Ray cluster; empty runs them here."""
        self.cluster_address = address.strip()
        self.settings.setValue("cluster/address", self.cluster_address)
        self.show_message(f"Folder jobs run on the Ray cluster at {self.cluster_address}." if self.cluster_address
                          else "Folder jobs run on this machine.")

    def _ask_cluster_address(self) -> None:
        address, ok = QInputDialog.getText(
            self, "Cluster for folder jobs",
            "Ray cluster for folder jobs: local (a cluster on this machine), auto, host:port or ray://host:10001.\n"
            "Leave it empty to run them here. Needs Ray: pip install \"desktop-ai[cluster]\".",
            text=self.cluster_address,
        )
        if ok:
            self.set_cluster_address(address)

    def _clear_cache(self) -> None:
        if any(lane.busy for lane in self.lanes):
            self.show_message("Wait for the running job to finish before clearing the cache.")
            return
        self.engine.submit("clearing the cache", "clear_cache", {})
        self.show_message("Result cache cleared.")

    def _about(self) -> None:
        QMessageBox.about(self, "About desktop-ai", f"desktop-ai {__version__}\nLocal AI on your own machine.\nLog file: {log_file()}")

    def open_paths(self, files: list[str]) -> None:
        """Files from the command line or another launch: each to the tab that reads it; the window comes forward."""
        from desktop_ai.gui.open_files import route_files

        routed = route_files(files)
        if routed.texts:
            self.translate_tab.load_file(Path(routed.texts[0]))
            self.show_page(self.translate_tab)
        if routed.audio:
            self.speech_tab.transcribe_files(routed.audio)
            self.show_page(self.speech_tab)
        if routed.images:
            self.image_tab.recognize(routed.images)
            self.show_page(self.image_tab)
        if routed.unknown or len(routed.texts) > 1:
            skipped = routed.unknown + routed.texts[1:]
            self.show_message(f"Not opened (not a photo, recording or the first .txt): {', '.join(Path(f).name for f in skipped)}")
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def show_page(self, page: QWidget) -> None:
        """Bring a page forward, whichever tab (and tab within a tab) holds it."""
        widget: QWidget | None = page
        while widget is not None and widget is not self:
            parent = widget.parentWidget()
            if isinstance(parent, QStackedWidget) and isinstance(parent.parentWidget(), QTabWidget):
                parent.parentWidget().setCurrentWidget(widget)
            widget = parent

    # --- status --------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        self.message_label.show_message(text)

    def current_message(self) -> str:
        """The status bar's last message in full, however much of it fits."""
        return self.message_label.full_text

    def _on_engine_ready(self, info: dict) -> None:
        self._update_device_label()
        if not any(lane.busy for lane in self.lanes):
            self.state_label.setText("Idle")
        logger.info("Engine ready: %s (%s)", info.get("device"), info.get("reason"))

    # --- lifetime ------------------------------------------------------------------------
    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1000, 720)
        self.tabs.setCurrentIndex(read(self.settings, "window/tab", 0, int))
        self.text_tab.load_settings(self.settings)
        self.translate_tab.load_settings(self.settings)
        self.image_tab.load_settings(self.settings)
        self.speech_tab.load_settings(self.settings)
        self.read_aloud.load_settings(self.settings)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.text_tab.save_settings(self.settings)
        self.translate_tab.save_settings(self.settings)
        self.image_tab.save_settings(self.settings)
        self.speech_tab.save_settings(self.settings)
        self.read_aloud.save_settings(self.settings)
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save first (nothing typed is lost), then stop the running job and end the worker thread."""
        self.save_settings()
        self.hide()
        for lane in self.lanes:
            if not lane.shutdown():
                logger.warning("The %s lane's job did not stop within the timeout; exiting anyway", lane.lane)
        self.text_tab.chat_page.shutdown()  # after the lanes: the engine has written the last of an answer
        self.anywhere.close()
        if getattr(self, "server_dialog", None) is not None:
            self.server_dialog.shutdown()
        event.accept()
