"""The real entry point, as a double-click starts it: a separate process with a window (on Xvfb when it
is installed, else offscreen), closed by SIGTERM as a logout would, saving its settings on the way out."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_desktop_ai_opens_the_window_and_closes_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    exe = Path(sys.executable).with_name("desktop-ai")
    env = {**os.environ, "DESKTOP_AI_HOME": str(home)}
    command = [str(exe)]
    if shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
        env.pop("QT_QPA_PLATFORM", None)
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = home / "log" / "desktop-ai.log"
    try:
        assert _wait_for(lambda: log.exists() and "Engine ready" in log.read_text(), 90), (
            proc.poll(), log.read_text() if log.exists() else "no log"
        )
        app = next(p for p in psutil.Process(proc.pid).children(recursive=True) if "desktop-ai" in " ".join(p.cmdline()))
        engine = app.children()
        assert engine, "the engine process runs beside the window"
        app.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (home / "config" / "settings.ini").exists(), "settings are saved when the window closes"
    assert _wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in engine), 10)


WINDOW_WITHOUT_TORCH = """
import sys, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
from desktop_ai.gui.main_window import MainWindow
started = time.perf_counter()
window = MainWindow()
window.show()
shown = time.perf_counter() - started
deadline = time.monotonic() + 90
while window.engine.ready_info is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
app.processEvents()
print(window.device_label.text())
print("torch" in sys.modules, "transformers" in sys.modules, round(shown, 2))
window.close()
"""


def test_the_window_process_never_imports_torch(tmp_path: Path) -> None:
    """Models live in the engine process; the window starts fast and cannot be stalled by torch's imports."""
    env = {**os.environ, "DESKTOP_AI_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", WINDOW_WITHOUT_TORCH], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    label, flags = proc.stdout.strip().splitlines()[-2:]
    assert label.startswith("Device: cpu"), label
    torch_imported, transformers_imported, _shown = flags.split()
    assert (torch_imported, transformers_imported) == ("False", "False")
