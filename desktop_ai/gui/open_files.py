"""Files handed to the app from outside (the file manager's "Open with desktop-ai", a drop on the launcher,
`desktop-ai PHOTO AUDIO ...`): each goes to the tab that reads it, and a second launch hands its files to
the window already open (a per-user QLocalServer) instead of starting another window and engine.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from desktop_ai import paths
from desktop_ai.engine.tasks.image_files import IMAGE_SUFFIXES
from desktop_ai.gui.speech_tab import AUDIO_SUFFIXES

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt",)
# Qt's own command-line options that take a value (QGuiApplication docs); they are not files
QT_VALUE_OPTIONS = {"-platform", "-platformpluginpath", "-platformtheme", "-plugin", "-qwindowgeometry", "-geometry",
                    "-qwindowtitle", "-title", "-qwindowicon", "-display", "-style", "-stylesheet", "-session", "-name"}
HAND_OFF_TIMEOUT_MS = 2000


@dataclass
class RoutedFiles:
    images: list[str] = field(default_factory=list)
    audio: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def files_in_arguments(arguments: Sequence[str]) -> list[str]:
    """The file arguments among the window's arguments (Qt's options and their values left out), made absolute."""
    files: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument.startswith("-"):
            skip = argument.split("=")[0] in QT_VALUE_OPTIONS and "=" not in argument
        else:
            files.append(str(Path(argument).expanduser().absolute()))
    return files


def route_files(files: Sequence[str]) -> RoutedFiles:
    """Photos and folders to the Image tab, recordings to Speech, .txt to Translate, by suffix."""
    routed = RoutedFiles()
    for name in files:
        suffix = Path(name).suffix.lower()
        if suffix in IMAGE_SUFFIXES or Path(name).is_dir():
            routed.images.append(name)
        elif suffix in AUDIO_SUFFIXES:
            routed.audio.append(name)
        elif suffix in TEXT_SUFFIXES:
            routed.texts.append(name)
        else:
            routed.unknown.append(name)
    return routed


def server_name() -> str:
    """One window per user and data folder (DESKTOP_AI_HOME keeps test runs and portable installs apart)."""
    digest = hashlib.sha256(str(paths.data_dir()).encode()).hexdigest()[:12]
    return f"desktop-ai-{getpass.getuser()}-{digest}"


def hand_off(files: Sequence[str], name: str | None = None) -> bool:
    """Send the files to a window already running; False when there is none (then this launch opens one)."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(HAND_OFF_TIMEOUT_MS):
        return False
    socket.write(json.dumps({"files": list(files)}).encode("utf-8") + b"\n")
    socket.flush()
    ok = socket.waitForBytesWritten(HAND_OFF_TIMEOUT_MS) or socket.bytesToWrite() == 0
    answered = socket.waitForReadyRead(HAND_OFF_TIMEOUT_MS) and bytes(socket.readAll().data()).startswith(b"ok")
    socket.disconnectFromServer()
    return ok and answered


class SingleInstance(QObject):
    """The listening side: files from later launches go to `on_files` (the window's open_paths)."""

    def __init__(self, on_files: Callable[[list[str]], None], name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self._on_files = on_files
        self._buffers: dict[int, bytes] = {}
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        if not self.server.listen(self.name):
            QLocalServer.removeServer(self.name)  # a socket file left by a window that crashed
            if not self.server.listen(self.name):
                logger.warning("Cannot listen as %s: %s; later launches open their own window", self.name, self.server.errorString())
                return False
        return True

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        key = id(socket)
        self._buffers[key] = self._buffers.get(key, b"") + bytes(socket.readAll().data())
        if not self._buffers[key].endswith(b"\n"):
            return
        data = self._buffers.pop(key)
        try:
            files = [str(f) for f in json.loads(data.decode("utf-8")).get("files", [])]
        except (ValueError, AttributeError) as error:
            logger.warning("Ignored a malformed message from another launch: %s", error)
            socket.write(b"error\n")
            return
        socket.write(b"ok\n")
        socket.flush()
        logger.info("Another launch handed over %d file(s)", len(files))
        self._on_files(files)
