"""The Ray actor: one per worker, holding one loaded model for the whole job. Ray wraps it (ray.remote) in
jobs.py, so this module itself never imports ray."""

from __future__ import annotations

import logging
import os
import socket
import time

from desktop_ai.engine.cluster.tasks import BatchOutcome, ClusterTask, Item, WorkerInfo

logger = logging.getLogger(__name__)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class TaskWorker:
    """Builds the task's engine class and loads its model once, in the constructor, then runs batch after batch."""

    def __init__(self, task: ClusterTask, cpus: int = 1) -> None:
        """`cpus`: what Ray reserved for this actor; its model uses that many threads, not every core it sees."""
        from desktop_ai.engine.models.devices import CPU_THREADS_ENV

        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
        os.environ[CPU_THREADS_ENV] = str(cpus)
        self.task = task
        before = _rss()
        started = time.perf_counter()
        self.state = task.load()
        self.info = WorkerInfo(os.getpid(), socket.gethostname(), task.key_spec(self.state), task.meta(self.state),
                               time.perf_counter() - started, before, _rss())
        logger.info("Cluster worker %d ready (%s)", os.getpid(), self.info.meta.get("model_id"))

    def describe(self) -> WorkerInfo:
        return self.info

    def run(self, items: list[Item]) -> BatchOutcome:
        return self.task.run_batch(self.state, items)
