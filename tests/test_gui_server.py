"""The Server dialog for real (pytest-qt, offscreen): opened from the menu, it starts `desktop-ai serve` as a process
of its own, shows the address and a masked key, logs a request made with the official client, and stops it."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtWidgets import QApplication, QLineEdit  # noqa: E402

from desktop_ai.gui.main_window import MainWindow  # noqa: E402

openai = pytest.importorskip("openai", reason="the test extra (openai) is not installed")

START_MS = 90_000


def test_server_dialog_starts_logs_a_request_and_stops(qtbot) -> None:
    from desktop_ai.server.serving import free_port

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    try:
        window.server_action.trigger()
        dialog = window.server_dialog
        assert dialog.isVisible()
        key = dialog.key.text()
        assert key.startswith("dai-") and len(key) > 30
        assert dialog.key.echoMode() == QLineEdit.EchoMode.Password  # masked until asked
        port = free_port()
        dialog.port.setValue(port)
        dialog.start_button.click()
        qtbot.waitUntil(lambda: dialog.address.text() != "", timeout=START_MS)
        assert dialog.address.text() == f"http://127.0.0.1:{port}/v1"
        assert "smollm2-135m-instruct-q4" in dialog.models.text()
        assert window.server_label.text().startswith("Server: on")
        dialog.copy_button.click()
        assert QApplication.clipboard().text() == dialog.address.text()

        client = openai.OpenAI(base_url=dialog.address.text(), api_key=key, max_retries=0)
        assert "whisper-tiny.en" in {m.id for m in client.models.list()}
        qtbot.waitUntil(lambda: dialog.log.rowCount() == 1, timeout=10_000)
        row = [dialog.log.item(0, column).text() for column in range(dialog.log.columnCount())]
        assert row[1] == "GET /v1/models" and row[5] == "200"
        assert window.server_label.text() == "Server: on, 1 requests"

        old_key, old_process = key, dialog.server.process
        dialog.regenerate.click()  # a new key, and the running server restarts with it at once
        assert dialog.key.text() != old_key
        qtbot.waitUntil(lambda: dialog.server.process is not old_process and dialog.address.text() != "",
                        timeout=START_MS)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=dialog.address.text(), api_key=old_key, max_retries=0).models.list()

        dialog.start_button.click()  # Stop
        qtbot.waitUntil(lambda: dialog.start_button.text() == "Start", timeout=20_000)
        assert dialog.state.text() == "Stopped."
        assert window.server_label.text() == ""
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        window.close()
