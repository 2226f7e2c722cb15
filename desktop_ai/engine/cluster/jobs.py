"""A folder job on a cluster, seen from the driver (the CLI or the engine lane).

Inputs are read and keyed here (a rerun skips what the result cache already holds), the rest goes out in
batches to one actor per worker, a few batches in flight per actor. A batch whose actor died (a killed
process, a lost node) is given to a fresh actor and redone; every result is written once, keyed by its input
index, and handed on in input order as soon as all before it are in.
"""

from __future__ import annotations

import logging
import pickle
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.cluster.connection import Cluster
from desktop_ai.engine.cluster.tasks import BatchOutcome, ClusterTask, Item, WorkerInfo
from desktop_ai.engine.cluster.worker import TaskWorker
from desktop_ai.engine.errors import EngineError, InvalidInputError

logger = logging.getLogger(__name__)

CPUS_PER_WORKER = 1  # Ray reserves one CPU per actor, and the actor's model runs on that many threads
IN_FLIGHT_PER_WORKER = 2  # one running, one waiting: a worker never idles while its next batch travels
MAX_TRIES_PER_BATCH = 3
DEFAULT_BATCH_SIZE = 8
WAIT_STEP_S = 0.25  # how often a job waiting on results looks at its cancel event


class ClusterJobError(EngineError):
    """The cluster could not finish the job (workers that keep dying, a model no worker can load)."""


@dataclass
class ClusterRun:
    results: list[Any]  # in input order
    seconds: float
    workers: list[WorkerInfo]
    batches: int = 0
    redone: int = 0  # batches redone after their worker died
    replaced: int = 0  # workers started again in place of dead ones
    from_cache: int = 0
    sent_bytes: int = 0  # serialized batches, as they went out
    sent_items: int = 0
    notices: list[str] = field(default_factory=list)
    stopped: bool = False
    load_seconds: float = 0.0  # until the first worker held its model

    @property
    def meta(self) -> dict[str, Any]:
        return self.workers[0].meta if self.workers else {}


def _cause(error: BaseException) -> str:
    """The first line worth showing from a Ray error (which carries the worker's traceback)."""
    text = str(getattr(error, "cause", None) or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])  # the worker's message, without its class name


class ClusterJob:
    """One job: `run` blocks until every input has a result (or `cancel` is set), calling `on_result` in order."""

    def __init__(self, cluster: Cluster, task: ClusterTask, workers: int = 1, batch_size: int = DEFAULT_BATCH_SIZE,
                 ship_files: bool = False) -> None:
        if workers < 1 or batch_size < 1:
            raise InvalidInputError("Workers and batch size must be 1 or more.")
        self.cluster = cluster
        self.task = task
        self.workers = workers
        self.batch_size = batch_size
        self.ship_files = ship_files
        self._actor_class = cluster.ray.remote(num_cpus=CPUS_PER_WORKER, max_restarts=0)(TaskWorker)
        self.actors: list[Any] = []
        self.infos: list[WorkerInfo | None] = []

    # --- workers -------------------------------------------------------------------------------------------
    def start(self, wait: bool = False) -> float:
        """Start the actors (each loads its model); with `wait`, until every one holds it. Returns the seconds taken.
        run() starts them itself when this was not called, and then also stops them at its end."""
        started = time.perf_counter()
        if not self.actors:
            self.actors = [self._start_actor() for _ in range(self.workers)]
            self.infos = [None] * self.workers
        if wait:
            for slot in range(self.workers):
                if self.infos[slot] is None:
                    self._describe(slot)
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the actors (what they held is kept in `infos`)."""
        self._stop_actors()
        self.actors = []

    def _start_actor(self) -> Any:
        return self._actor_class.remote(self.task, CPUS_PER_WORKER)

    def worker_pids(self) -> list[int]:
        """The process id of each live actor (for tests that kill one)."""
        return [info.pid for info in self.infos if info is not None]

    def _describe(self, slot: int) -> WorkerInfo:
        ray = self.cluster.ray
        try:
            info = ray.get(self.actors[slot].describe.remote())
        except ray.exceptions.RayActorError as error:
            raise ClusterJobError(f"A cluster worker could not load the model: {_cause(error)}") from error
        self.infos[slot] = info
        return info

    # --- the job ------------------------------------------------------------------------------------------------
    def run(
        self,
        names: Sequence[str],
        cache: Any = None,
        on_result: Callable[[Any], None] | None = None,
        progress: Callable[[str, float | None], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ClusterRun:
        owned = not self.actors  # started here, so stopped here, whatever happens
        try:
            run = self._run(names, cache, on_result, progress, cancel)
        finally:
            if owned:
                self.close()
        run.workers = [info for info in self.infos if info is not None]
        return run

    def _run(self, names: Sequence[str], cache: Any, on_result: Callable[[Any], None] | None,
             progress: Callable[[str, float | None], None] | None, cancel: threading.Event | None) -> ClusterRun:
        ray = self.cluster.ray
        started = time.perf_counter()
        total = len(names)
        if progress:
            progress(f"Starting {self.workers} worker(s) on the cluster at {self.cluster.address}", None)
        self.start()
        first = self.infos[0] or self._describe(0)  # the key spec comes from a loaded worker: the same keys a local run uses
        run = ClusterRun([], 0.0, [], load_seconds=time.perf_counter() - started)
        spec = first.key_spec
        done: dict[int, Any] = {}
        emitted = 0
        queue: deque[tuple[list[Item], int]] = deque()  # (batch, tries so far)
        in_flight: dict[Any, tuple[int, Any, list[Item], int]] = {}  # ref -> (actor slot, actor, batch, tries)

        def emit() -> None:
            nonlocal emitted
            while emitted < total and emitted in done:
                if on_result is not None:
                    on_result(done[emitted])
                emitted += 1
                if progress and (emitted % 8 == 0 or emitted == total):
                    progress(f"{emitted} of {total} {self.task.noun}", emitted / total)

        def accept(index: int, result: Any) -> None:
            if index in done:  # never twice: a redone batch's result for an input already in
                logger.warning("Result for input %d came twice; kept the first", index)
                return
            done[index] = result

        def submit() -> None:
            while queue:
                load = {slot: 0 for slot in range(len(self.actors))}
                for slot, _, _, _ in in_flight.values():
                    load[slot] += 1
                slot = min(load, key=load.__getitem__)
                if load[slot] >= IN_FLIGHT_PER_WORKER:
                    return
                batch, tries = queue.popleft()
                if tries == 0:
                    run.sent_bytes += len(pickle.dumps(batch, protocol=5))
                    run.sent_items += len(batch)
                    run.batches += 1
                actor = self.actors[slot]
                in_flight[actor.run.remote(batch)] = (slot, actor, batch, tries)

        def collect(block: bool) -> None:
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_STEP_S if block else 0)
            for ref in ready:
                slot, actor, batch, tries = in_flight.pop(ref)
                try:
                    outcome: BatchOutcome = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    if self._replace(slot, actor, error):
                        run.replaced += 1
                    run.redone += 1
                    if tries + 1 >= MAX_TRIES_PER_BATCH:
                        raise ClusterJobError(f"A batch of {len(batch)} {self.task.noun} failed on {tries + 1} workers "
                                              f"in a row; the last said: {_cause(error)}") from error
                    queue.appendleft((batch, tries + 1))
                    continue
                for index, result in outcome.results:
                    accept(index, result)
                if cache is not None:
                    for key, value in outcome.cache_puts:
                        cache.put(key, value)
            emit()

        pending: list[Item] = []
        stopped = False
        for index, name in enumerate(names):
            if cancel is not None and cancel.is_set():
                stopped = True
                break
            try:
                key_data, item = self.task.read(name, self.ship_files)
            except (OSError, InvalidInputError) as error:
                message = str(error) if isinstance(error, InvalidInputError) else f"{name} cannot be read: {error.strerror or error}"
                accept(index, self.task.failed_result(index, name, message))
                emit()
                continue
            item.index = index
            hit = cache.get(spec.key(key_data)) if cache is not None else None
            if hit is not None:
                accept(index, self.task.cached_result(item, hit, first.meta, key_data))
                run.from_cache += 1
                emit()
                continue
            pending.append(item)
            if len(pending) >= self.batch_size:
                queue.append((pending, 0))
                pending = []
                submit()
                collect(block=False)
                while len(queue) > self.workers * IN_FLIGHT_PER_WORKER:  # read no further ahead than this
                    collect(block=True)
                    submit()
        if pending and not stopped:
            queue.append((pending, 0))
        while (queue or in_flight) and not stopped:
            if cancel is not None and cancel.is_set():
                stopped = True
                break
            submit()
            collect(block=True)
        run.results = [done[i] for i in range(emitted)]
        run.stopped = stopped
        if stopped:
            run.notices.append(f"Stopped after {emitted} of {total} {self.task.noun}; the results so far are kept.")
        if run.redone:
            run.notices.append(f"{run.replaced} worker(s) died during the job; {run.redone} batch(es) were redone "
                               "on fresh workers, and no result was lost or written twice.")
        run.notices = list(first.meta.get("notices", [])) + run.notices
        run.seconds = time.perf_counter() - started
        return run

    def _replace(self, slot: int, dead: Any, error: BaseException) -> bool:
        """A dead actor's slot gets a fresh actor (its model loads again there), once per death: True if started."""
        if self.actors[slot] is not dead:
            return False  # its other batch in flight failed too: the slot has a new actor already
        logger.warning("Cluster worker in slot %d died (%s); starting another", slot, _cause(error))
        self.actors[slot] = self._start_actor()
        self.infos[slot] = None
        try:
            self.cluster.ray.kill(dead)
        except Exception:  # already gone
            pass
        return True

    def _stop_actors(self) -> None:
        ray = self.cluster.ray
        for slot, actor in enumerate(self.actors):
            if self.infos[slot] is None:
                try:
                    self.infos[slot] = ray.get(actor.describe.remote(), timeout=15)
                except Exception:  # a worker that never came up says nothing
                    pass
            try:
                ray.kill(actor)
            except Exception:
                pass
