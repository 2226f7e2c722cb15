"""bench --task recognize --cluster ADDRESS --workers 1,2: photos/s of a recognize job on a Ray cluster for each
worker count, with what each batch sends and what each worker holds, so that a real cluster can be sized from it.

For each worker count the workers are started once (startup timed on its own), then the same photos go through
them `repeats` times, once with paths (a shared folder) and once with the files' bytes (--ship-files), interleaved.
Nothing is cached: every photo is read, sent, decoded and classified in every round."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from desktop_ai.bench.recognize import _bench_images
from desktop_ai.bench.report import BenchReport, BenchRow, environment, median
from desktop_ai.engine.models.catalogue import TASK_RECOGNIZE

logger = logging.getLogger(__name__)

BENCH_BATCH = 8


def bench_cluster_recognize(address: str, worker_counts: Sequence[int], images: list[str] | None = None,
                            repeats: int = 3, batch_size: int = BENCH_BATCH,
                            say: Callable[[str], None] = logger.info) -> BenchReport:
    from desktop_ai.engine.cluster.connection import connect
    from desktop_ai.engine.cluster.jobs import ClusterJob
    from desktop_ai.engine.cluster.tasks import RecognizeTask

    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-") as scratch:
        files, image_note = _bench_images(images, Path(scratch))
        names = [str(f) for f in files]
        say(f"Connecting to the cluster at {address}")
        cluster = connect(address, max(worker_counts))
        report = BenchReport(TASK_RECOGNIZE, "EfficientNet-Lite0 (embedded) on Ray actors", f"cluster at {address}",
                             environment=environment() | {"cluster CPUs": cluster.cpus})
        base_rate: float | None = None
        try:
            for count in worker_counts:
                say(f"Starting {count} worker(s)")
                jobs = {ship: ClusterJob(cluster, RecognizeTask(), count, batch_size, ship) for ship in (False, True)}
                startup = jobs[False].start(wait=True)
                jobs[True].actors, jobs[True].infos = jobs[False].actors, jobs[False].infos  # the same workers
                samples: dict[bool, list[float]] = {False: [], True: []}
                sent: dict[bool, float] = {}
                for rep in range(repeats):
                    for ship in (False, True):
                        say(f"{count} worker(s), round {rep + 1} of {repeats}{', files shipped' if ship else ''}")
                        started = time.perf_counter()
                        run = jobs[ship].run(names)
                        seconds = time.perf_counter() - started
                        if len(run.results) != len(names) or not all(r.ok for r in run.results):
                            raise RuntimeError(f"the cluster returned {len(run.results)} of {len(names)} photos")
                        samples[ship].append(len(names) / seconds)
                        sent[ship] = run.sent_bytes / run.sent_items
                infos = [info for info in jobs[False].infos if info is not None]
                jobs[False].close()
                for ship in (False, True):
                    rate = median(samples[ship])
                    if base_rate is None:
                        base_rate = rate
                    report.rows.append(BenchRow(f"{count} worker(s), {'files shipped' if ship else 'shared path'}", "none (fp32)", {
                        "photos/s": rate, "photos/s per worker": rate / count, "x 1 worker": rate / base_rate,
                        "bytes sent/photo": sent[ship], "startup s": startup,
                        "worker RSS MB": statistics.mean(i.rss_after_load for i in infos) / 1e6,
                        "model+libs MB/worker": statistics.mean(i.model_bytes for i in infos) / 1e6,
                        "weights MB": infos[0].meta.get("weights_bytes", 0) / 1e6,
                    }))
        finally:
            cluster.close()
    size = statistics.mean(Path(n).stat().st_size for n in names)
    report.notes.extend([
        image_note,
        f"{repeats} rounds per worker count, shared path and shipped files interleaved, medians; a round is a whole "
        f"job from the file paths to the labels back on the driver, batches of {batch_size} photos, nothing cached. "
        "Startup (actors started, model loaded in each) is timed apart and not in photos/s.",
        f"The photos average {size / 1e3:.0f} kB: a shipped batch carries their bytes, a shared-path batch their paths "
        "(bytes sent/photo is the pickled batch divided by its photos).",
        "Worker RSS is each actor's resident memory once its model is loaded; model+libs is its growth while loading "
        "(torch, ONNX Runtime and the model).",
    ])
    return report
