"""The window entry point (what a double-click on desktop-ai starts)."""

from __future__ import annotations

import logging
import signal
import sys

from desktop_ai import APP_NAME, __version__
from desktop_ai.logging_setup import configure_logging

logger = logging.getLogger(__name__)


def _close_on_signals(app) -> object:
    """Ctrl+C in a terminal or a SIGTERM at logout closes the window normally, so drafts and settings are saved.

    Python only runs signal handlers between bytecodes, so a timer wakes the interpreter regularly.
    """
    from PySide6.QtCore import QTimer

    def close(signum: int, _frame: object) -> None:
        logger.info("Signal %d received; closing the window", signum)
        app.closeAllWindows()
        app.quit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, close)
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return timer


def open_window(argv: list[str] | None = None) -> tuple[object, object | None]:
    """(QApplication, the window) with the files in argv opened in their tabs, or (app, None) when a window
    was already running and took the files (a second launch, e.g. "Open with desktop-ai" in a file manager)."""
    from PySide6.QtWidgets import QApplication

    from desktop_ai.gui.open_files import SingleInstance, files_in_arguments, hand_off

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_NAME)
    files = files_in_arguments(argv or [])
    if hand_off(files):
        logger.info("A desktop-ai window is already open; handed it %d file(s)", len(files))
        return app, None
    from desktop_ai.gui.main_window import MainWindow

    window = MainWindow()
    window.single_instance = SingleInstance(window.open_paths, parent=window)
    window.single_instance.listen()
    window.show()
    if files:
        window.open_paths(files)
    return app, window


def main(argv: list[str] | None = None) -> int:
    if not any(getattr(h, "_desktop_ai", False) for h in logging.getLogger().handlers):
        configure_logging()  # started directly, not through the CLI (which has set up logging already)
    app, window = open_window(argv)
    if window is None:
        return 0
    keep_alive = _close_on_signals(app)
    logger.info("desktop-ai %s started", __version__)
    code = app.exec()
    keep_alive.stop()
    return code
