"""The Server dialog: start and stop the local OpenAI-compatible API, its address (Copy), its key (made on first use,
shown masked, regenerate), the models it offers, and a live log of requests.

The server runs as a process of its own (`desktop-ai serve --log-json`), beside the window's engine lanes: it never
blocks a tab and a tab never blocks it, and a crash of either loses nothing of the other. QProcess reads its
output without blocking the GUI thread; each request arrives as one JSON line and becomes a row of the log."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.gui.settings import read

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8765
LOG_ROWS = 500  # the newest requests shown; older rows scroll away
COLUMNS = ("time", "route", "model", "tokens", "ms", "status")


def new_api_key() -> str:
    from desktop_ai.server.limits import new_api_key as make

    return make()


class ServerProcess(QObject):
    """`desktop-ai serve` as a child process, its JSON lines turned into signals."""

    started = Signal(str, list)  # url, model ids
    request = Signal(dict)  # one request record (time, route, model, tokens, ms, status)
    stopped = Signal(str)  # "" when stopped on purpose, else what went wrong

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process: QProcess | None = None
        self.url = ""
        self._stopping = False
        self._buffer = b""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, port: int, api_key: str, device: str = "auto", extra: dict[str, str] | None = None) -> None:
        if self.running:
            return
        process = QProcess(self)
        environment = process.processEnvironment()
        if environment.isEmpty():
            from PySide6.QtCore import QProcessEnvironment

            environment = QProcessEnvironment.systemEnvironment()
        environment.insert("DESKTOP_AI_API_KEY", api_key)  # not on the command line, where `ps` would show it
        for name, value in (extra or {}).items():  # the window's memory budget, as its lanes get it
            environment.insert(name, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._read)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._failed)
        self.process, self._stopping, self._buffer, self.url = process, False, b"", ""
        arguments = ["-m", "desktop_ai.cli.main", "serve", "--port", str(port), "--device", device, "--log-json"]
        process.start(sys.executable, arguments)

    def stop(self, wait: bool = False, grace_ms: int = 10_000) -> None:
        """Ask it to finish the requests under way (SIGINT on POSIX) and kill it if it has not after `grace_ms`.
        Returns at once unless `wait` (the window closing), so the GUI thread never waits on it."""
        if not self.running:
            return
        assert self.process is not None
        process = self.process
        self._stopping = True
        pid = int(process.processId())
        if pid > 0 and os.name == "posix":
            import signal

            os.kill(pid, signal.SIGINT)
        else:
            process.terminate()
        if wait:
            if not process.waitForFinished(grace_ms):
                process.kill()
                process.waitForFinished(2000)
        else:
            # With the process as the context, Qt drops the call if the process object is deleted before it.
            QTimer.singleShot(grace_ms, process, lambda: process.kill()
                              if process.state() != QProcess.ProcessState.NotRunning else None)

    def _read(self) -> None:
        assert self.process is not None
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "started":
                self.url = event.get("url", "")
                self.started.emit(self.url, list(event.get("models", [])))
            elif event.get("event") == "request":
                self.request.emit(event)

    def _finished(self, code: int, _status: Any) -> None:
        message = ""
        if not self._stopping and self.process is not None:
            errors = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace").strip()
            lines = [line for line in errors.splitlines() if line.startswith("error:")]
            message = lines[-1][len("error:"):].strip() if lines else f"The server stopped (exit code {code})."
        self.stopped.emit(message)

    def _failed(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.stopped.emit("The server could not be started.")


class ServerDialog(QDialog):
    running_changed = Signal(bool)
    served_changed = Signal(int)

    def __init__(self, settings: Any, device: Any = lambda: "auto", parent: QWidget | None = None,
                 environment: Any = dict) -> None:
        super().__init__(parent)
        self.environment = environment
        self.setWindowTitle("Local API server")
        self.settings = settings
        self.device = device
        self.served = 0
        self._restart = False
        self.server = ServerProcess(self)
        self.server.started.connect(self._on_started)
        self.server.request.connect(self._on_request)
        self.server.stopped.connect(self._on_stopped)

        self.start_button = QPushButton("Start")
        self.start_button.setAccessibleName("Start or stop the server")
        self.start_button.clicked.connect(self.toggle)
        self.state = QLabel("Stopped. Other programs reach the app's models here over OpenAI's API, on this "
                            "machine only (127.0.0.1).")
        self.state.setWordWrap(True)
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(read(settings, "server/port", DEFAULT_PORT, int))
        self.port.setAccessibleName("Port")
        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setAccessibleName("Address")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy the address")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.address.text()))
        self.key = QLineEdit(self._api_key())
        self.key.setReadOnly(True)
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("API key")
        self.show_key = QCheckBox("Show")
        self.show_key.toggled.connect(lambda shown: self.key.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password))
        self.copy_key = QPushButton("Copy key")
        self.copy_key.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.key.text()))
        self.regenerate = QPushButton("Regenerate")
        self.regenerate.setAccessibleName("Regenerate the API key")
        self.regenerate.clicked.connect(self.regenerate_key)
        self.models = QLabel("-")
        self.models.setWordWrap(True)
        self.models.setAccessibleName("Models offered")
        self.log = QTableWidget(0, len(COLUMNS))
        self.log.setHorizontalHeaderLabels(list(COLUMNS))
        self.log.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.log.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.log.setAccessibleName("Request log")

        form = QFormLayout()
        address_row = QHBoxLayout()
        address_row.addWidget(self.address)
        address_row.addWidget(self.copy_button)
        key_row = QHBoxLayout()
        for widget in (self.key, self.show_key, self.copy_key, self.regenerate):
            key_row.addWidget(widget)
        form.addRow("Port", self.port)
        form.addRow("Address", address_row)
        form.addRow("API key", key_row)
        form.addRow("Models", self.models)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.start_button)
        top.addWidget(self.state, 1)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(QLabel("Requests"))
        layout.addWidget(self.log, 1)
        self.resize(720, 480)

    def _api_key(self) -> str:
        """Made on first use and kept in the settings, so clients configured once keep working."""
        key = read(self.settings, "server/api_key", "")
        if not key:
            key = new_api_key()
            self.settings.setValue("server/api_key", key)
        return key

    def regenerate_key(self) -> None:
        key = new_api_key()
        self.settings.setValue("server/api_key", key)
        self.key.setText(key)
        if self.server.running:  # the old key stops working now, not at the next start
            self._restart = True
            self.server.stop()

    def toggle(self) -> None:
        if self.server.running:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        self.settings.setValue("server/port", self.port.value())
        self.start_button.setEnabled(False)
        self.state.setText("Starting…")
        self.server.start(self.port.value(), self.key.text(), self.device(), self.environment())

    def stop(self) -> None:
        self.server.stop()

    def _on_started(self, url: str, models: list[str]) -> None:
        self.address.setText(url)
        self.models.setText(", ".join(models) or "none installed")
        self.start_button.setText("Stop")
        self.start_button.setEnabled(True)
        self.port.setEnabled(False)
        self.state.setText(f"On at {url}: clients send the key as 'Authorization: Bearer KEY'.")
        self.running_changed.emit(True)

    def _on_request(self, record: dict) -> None:
        self.served += 1
        row = [time.strftime("%H:%M:%S", time.localtime(record.get("time", time.time()))),
               f"{record.get('method', '')} {record.get('route', '')}", record.get("model", "") or "-",
               str(record.get("tokens", 0)), f"{record.get('ms', 0):.0f}", str(record.get("status", ""))]
        if self.log.rowCount() >= LOG_ROWS:
            self.log.removeRow(0)
        index = self.log.rowCount()
        self.log.insertRow(index)
        for column, value in enumerate(row):
            self.log.setItem(index, column, QTableWidgetItem(value))
        self.log.scrollToBottom()
        self.served_changed.emit(self.served)

    def _on_stopped(self, message: str) -> None:
        self.start_button.setText("Start")
        self.start_button.setEnabled(True)
        self.port.setEnabled(True)
        self.address.clear()
        self.state.setText(f"Stopped: {message}" if message else "Stopped.")
        self.running_changed.emit(False)
        if self._restart:
            self._restart = False
            self.start()

    def shutdown(self) -> None:
        self._restart = False
        self.server.stop(wait=True)
