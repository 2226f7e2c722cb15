"""One worker design for every task: an EngineThread is a lane, a QThread that owns one engine process
(loaded models, result cache), sends it jobs and turns its messages into signals. The window runs two lanes,
"live" for dictation and "jobs" for the rest (see engine/process.py); the GUI thread only submits and listens.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
from typing import Any

from PySide6.QtCore import QThread, Qt, Signal

from desktop_ai.engine import process as engine_process
from desktop_ai.logging_setup import log_file

logger = logging.getLogger(__name__)


class EngineThread(QThread):
    ready = Signal(dict)
    started_job = Signal(int, str)
    progress = Signal(int, str, float)  # fraction < 0 means unknown
    partial = Signal(int, object)  # a str of new tokens, or a list of image results
    finished_job = Signal(int, object)
    failed = Signal(int, str)
    cache_stats = Signal(object)
    busy_changed = Signal(bool)
    models_changed = Signal(object, object)  # [{"model", "mb", "gpu"}], the lane's memory budget in bytes
    # The listening thread hands each message to the GUI thread, and the public signals above are emitted there:
    # every receiver (widgets, and the tests' signal blockers) is then called in the thread that owns it, and no
    # queued call can reach a receiver that was torn down between the emit in one thread and the call in another.
    _message = Signal(object)

    _ids = itertools.count(1)

    def __init__(self, parent: Any = None, lane: str = "jobs", environment: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.lane = lane
        self.environment = dict(environment or {})  # set in the engine process before it starts (the memory budget)
        self.setObjectName(f"EngineThread-{lane}")
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: Any = None
        self._connection: Any = None
        self._names: dict[int, str] = {}
        self._pending: list[int] = []  # sent, not yet started
        self._running: set[int] = set()
        self._stopping = False
        self.ready_info: dict | None = None
        self.loaded_models: list[dict[str, Any]] = []
        self._message.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)  # runs where this object lives

    # --- the GUI thread's side -----------------------------------------------------------
    @property
    def process_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ensure_started(self) -> None:
        """Start the engine process (again, after a crash) and the thread that listens to it."""
        with self._lock:
            if self._process is not None and self._process.is_alive() and self._connection is not None:
                return
            self._discard_engine()
            self.ready_info = None
            parent_end, child_end = self._context.Pipe()
            self._process = self._context.Process(
                target=_serve_with_environment, args=(child_end, self.lane, self.environment),
                name=f"desktop-ai-engine-{self.lane}", daemon=True,
            )
            self._process.start()
            child_end.close()
            self._connection = parent_end
            self._stopping = False
        if not self.isRunning():
            self.start()

    def restart(self) -> None:
        """End the engine process politely and start a fresh one (new settings such as the memory budget)."""
        with self._lock:
            process, connection = self._process, self._connection
            self._process = self._connection = None
        if process is not None:
            try:
                connection.send(("quit",))
            except (OSError, ValueError):
                pass
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(2)
            connection.close()
        self.ensure_started()

    def _discard_engine(self) -> None:
        """Forget a dead (or dying) engine; called with the lock held."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(2)
        if self._connection is not None:
            self._connection.close()
        self._process = None
        self._connection = None

    def submit(self, name: str, kind: str, params: dict[str, Any]) -> int:
        job_id = next(self._ids)
        for attempt in (1, 2):
            self.ensure_started()
            with self._lock:
                try:
                    self._connection.send(("job", job_id, kind, params))
                except (OSError, ValueError, AttributeError):
                    # The engine died after the last check: start a fresh one and send again.
                    logger.warning("The engine was gone when a job was sent; restarting it")
                    self._discard_engine()
                    if attempt == 2:
                        raise
                    continue
                self._names[job_id] = name
                self._pending.append(job_id)
                return job_id
        raise RuntimeError("unreachable")

    def feed(self, job_id: int, data: Any) -> None:
        """More input for a running job that reads it as it comes (text to read aloud while an answer streams);
        None says the input has ended."""
        with self._lock:
            connection = self._connection
        if connection is None:
            return
        try:
            connection.send(("feed", job_id, data))
        except (OSError, ValueError):
            pass  # the engine is gone: its jobs are reported lost by the listener

    def cancel(self, job_id: int | None = None) -> None:
        """Stop one job (None: every job of this lane); a job not started yet is stopped as it starts."""
        with self._lock:
            connection = self._connection
        if connection is None:
            return
        try:
            connection.send(("cancel", job_id))
        except (OSError, ValueError):
            pass  # the engine is gone: its jobs are reported lost by the listener

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._running) or bool(self._pending)

    def running_jobs(self) -> dict[int, str]:
        with self._lock:
            return {job_id: self._names.get(job_id, "job") for job_id in sorted(self._running | set(self._pending))}

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Ask the running job to stop, end the process (by force if it will not), then end the thread."""
        with self._lock:
            process, connection = self._process, self._connection
            self._stopping = True
        clean = True
        if process is not None:
            try:
                connection.send(("quit",))
            except (OSError, ValueError):
                pass
            process.join(timeout_s)
            if process.is_alive():
                clean = False
                logger.warning("The engine did not stop within %.0f s; terminating it", timeout_s)
                process.terminate()
                process.join(3)
                if process.is_alive():
                    process.kill()
                    process.join(3)
        self.wait(5000)
        return clean

    # --- the worker thread ----------------------------------------------------------------
    def run(self) -> None:
        """Read the engine's messages until shutdown; an engine that dies is reported and replaced on the next job."""
        while True:
            with self._lock:
                connection, process, stopping = self._connection, self._process, self._stopping
            if stopping and (process is None or not process.is_alive()):
                return
            if connection is None:
                self.msleep(100)
                continue
            try:
                if not connection.poll(0.2):
                    if not process.is_alive():
                        raise EOFError
                    continue
                message = connection.recv()
            except (EOFError, OSError, ValueError):
                self._engine_ended(process)
                continue
            self._message.emit(message)

    def _dispatch(self, message: tuple) -> None:
        """In the GUI thread (see _message)."""
        kind = message[0]
        if kind == "lost":
            self._report_lost(message[1], message[2])
        elif kind == "ready":
            self.ready_info = message[1]
            self.ready.emit(message[1])
            self.cache_stats.emit(message[2])
        elif kind == "models":
            self.loaded_models = list(message[1])
            self.models_changed.emit(self.loaded_models, int(message[2]))
        elif kind == "started":
            job_id = message[1]
            with self._lock:
                if job_id in self._pending:
                    self._pending.remove(job_id)
                self._running.add(job_id)
            self.busy_changed.emit(True)
            self.started_job.emit(job_id, self._names.get(job_id, "job"))
        elif kind == "progress":
            self.progress.emit(message[1], message[2], -1.0 if message[3] is None else float(message[3]))
        elif kind == "partial":
            self.partial.emit(message[1], message[2])
        elif kind in ("finished", "failed"):
            job_id = message[1]
            with self._lock:
                self._running.discard(job_id)
                self._names.pop(job_id, None)
                idle = not self._pending and not self._running
            if kind == "finished":
                self.finished_job.emit(job_id, message[2])
            else:
                self.failed.emit(job_id, message[2])
            self.cache_stats.emit(message[3])
            if idle:
                self.busy_changed.emit(False)

    def _engine_ended(self, process: Any) -> None:
        with self._lock:
            if process is not self._process:
                return  # an old engine, already replaced
        process.join(5)  # it closed its end of the pipe: it is exiting; let it finish (logs, cache file)
        with self._lock:
            if process is not self._process:
                return
            code = process.exitcode
            self._discard_engine()
            lost = sorted(self._running) + list(self._pending)
            self._running.clear()
            self._pending.clear()
            stopping = self._stopping
        if stopping:
            return
        logger.error("The engine process ended unexpectedly (exit code %s)", code)
        message = (f"The engine ({self.lane} lane) stopped unexpectedly (exit code {code}); it restarts with the next job. "
                   f"Your text is kept. Details are in the log file: {log_file()}")
        self._message.emit(("lost", lost, message))

    def _report_lost(self, lost: list[int], message: str) -> None:
        for job_id in lost:
            self.failed.emit(job_id, message)
        self.busy_changed.emit(False)


def _serve_with_environment(connection: Any, lane: str, environment: dict[str, str]) -> None:
    """The engine process's entry: the lane's settings go into its environment before anything reads them."""
    import os

    os.environ.update(environment)
    engine_process.serve(connection, lane)
