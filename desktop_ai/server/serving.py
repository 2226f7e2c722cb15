"""Running the server with uvicorn: in the foreground (`desktop-ai serve`), or in a thread of its own (the tests and
the benchmark, which then read the engine directly). The address is checked before anything loads: beyond
loopback only with a key."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from desktop_ai.server.limits import ServerSettings, check_listen_address

logger = logging.getLogger(__name__)


class ApiServer:
    def __init__(self, settings: ServerSettings, on_request: Callable[[Any], None] | None = None,
                 workspace: Any = None) -> None:
        check_listen_address(settings.host, settings.api_key)
        import uvicorn

        from desktop_ai.engine.workspace import open_workspace
        from desktop_ai.server.app import create_app
        from desktop_ai.server.engine_jobs import ServerEngine

        self.settings = settings
        self.engine = ServerEngine(workspace or open_workspace(use_disk_cache=settings.use_cache), settings)
        self.app = create_app(settings, self.engine, on_request)
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=5, lifespan="off")
        self.server = _Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.settings.port

    def run(self, on_listening: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl+C (uvicorn handles the signal and finishes the requests under way); `on_listening` is
        called once the socket accepts connections."""
        self.server.on_listening = on_listening
        try:
            self.server.run()
        finally:
            self.engine.close()

    def start(self, timeout: float = 30.0) -> None:
        """Serve from a background thread; returns once the socket listens."""
        self._thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(f"The server could not listen on {self.settings.host}:{self.settings.port}.")
            self._thread.join(0.02)
            timeout -= 0.02
            if timeout <= 0:
                raise TimeoutError("The server did not start.")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.engine.close()


class _Server:
    """uvicorn's Server, telling when it listens (its `started` flag is set at the same point)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            on_listening: Callable[[], None] | None = None

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started and self.on_listening is not None:
                    self.on_listening()

        return Server(config)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
