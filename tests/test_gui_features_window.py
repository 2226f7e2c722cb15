"""README features of the main window that no test touched, used as a user does (issue 17, "README features with
no test"): Help → Open log file, Settings → Device, and the window's size kept across a restart."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMenu

from desktop_ai.gui.main_window import MainWindow
from test_gui import ENGINE_START_MS, JOB_MS, _generate, window  # noqa: F401 - the window fixture


def _menu_action(win: MainWindow, *path: str):
    """The action reached by opening the menus named in `path` (the text without '&'), as the menu bar shows them."""
    actions = win.menuBar().actions()
    for name in path:
        action = next(a for a in actions if a.text().replace("&", "") == name)
        if action.menu() is not None:
            menu: QMenu = action.menu()
            menu.aboutToShow.emit()
            actions = menu.actions()
    return action


def test_help_open_log_file_opens_the_log(window, monkeypatch):
    """Help → Open log file asks the desktop to open the log file itself (a file URL), and the file is there."""
    from desktop_ai.logging_setup import log_file

    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    _menu_action(window, "Help", "Open log file").trigger()
    assert len(opened) == 1 and opened[0].isLocalFile()
    path = Path(opened[0].toLocalFile())
    assert path == log_file() and path.is_file(), path


def test_settings_device_picks_the_device_and_says_why(qtbot, window, tiny_causal_lm_dir):
    """Settings → Device → CPU runs jobs on the CPU; choosing CUDA on a machine without one says so and falls back;
    the choice is kept across a restart."""
    import torch

    cpu = _menu_action(window, "Settings", "Device", "CPU")
    cpu.trigger()
    assert cpu.isChecked() and window.device_label.text().startswith("Device: cpu")
    assert _generate(qtbot, window, "which device?", tiny_causal_lm_dir, max_tokens=3).device == "cpu"
    cuda = _menu_action(window, "Settings", "Device", "NVIDIA GPU (CUDA)")
    cuda.trigger()
    assert cuda.isChecked() and not cpu.isChecked()
    if not torch.cuda.is_available():
        assert window.device_label.text().startswith("Device: cpu")
        reason = window.device_label.toolTip()
        assert "CUDA" in reason, reason
        assert _generate(qtbot, window, "and now?", tiny_causal_lm_dir, max_tokens=3).device == "cpu"
    else:
        assert window.device_label.text().startswith("Device: cuda")
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert again.device == "cuda" and again.device_actions["cuda"].isChecked()
    finally:
        again.close()


def test_the_window_size_is_kept_across_a_restart(qtbot):
    """README: "the window's size [is] kept when you close it". Two sizes in a row (width and height both differ),
    each back after a restart. The window also fits a small screen: its minimum width leaves room on the 800 px wide
    offscreen screen (a row of settings once made it over 1000 px wide, so only the height could be checked)."""
    probe = MainWindow()
    qtbot.addWidget(probe)
    minimum = probe.minimumSizeHint().width()
    probe.close()
    assert minimum <= 780, f"the window needs {minimum} px of width"
    for size in ((minimum + 10, 700), (minimum + 15, 660)):
        first = MainWindow()
        qtbot.addWidget(first)
        first.show()
        qtbot.waitExposed(first)
        first.resize(*size)
        qtbot.waitUntil(lambda: (first.width(), first.height()) == size, timeout=5000)
        first.close()
        second = MainWindow()
        qtbot.addWidget(second)
        try:
            second.show()
            qtbot.waitExposed(second)
            assert (second.width(), second.height()) == size
        finally:
            second.close()
