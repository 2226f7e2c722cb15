"""The folder jobs the CLI and the engine lane hand to a cluster, returning the same result types as a local run
(RecognitionBatch, transcription results, ClassificationBatch), so every output and the window treat them alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
import threading

from desktop_ai.engine.cluster.connection import connect
from desktop_ai.engine.cluster.jobs import ClusterJob, ClusterRun
from desktop_ai.engine.cluster.tasks import ClassifyTask, ClusterTask, RecognizeTask, TranscribeTask, TranslateTask

DEFAULT_BATCH = {"images": 8, "files": 1, "texts": 32, "sentences": 32}  # inputs per batch: a long recording is a batch of its own


@dataclass
class ClusterSettings:
    """Where and how wide: the address (`local`, `auto`, host:port, ray://host:10001), actors, and whether
    to send the files' bytes (--ship-files) instead of their paths."""

    address: str
    workers: int = 2
    ship_files: bool = False
    batch_size: int | None = None
    verbose: bool = False  # Ray's own notices on stderr

    def describe(self) -> str:
        return f"{self.workers} worker(s) on the cluster at {self.address}" + (" (files shipped)" if self.ship_files else "")


def run_task(settings: ClusterSettings, task: ClusterTask, names: Sequence[str], cache: Any,
             on_result: Callable[[Any], None] | None = None, progress: Callable[..., None] | None = None,
             cancel: threading.Event | None = None) -> ClusterRun:
    """Connect (or start `local`), run the job, disconnect: one call per job."""
    cluster = connect(settings.address, settings.workers, quiet=not settings.verbose)
    try:
        job = ClusterJob(cluster, task, settings.workers, settings.batch_size or DEFAULT_BATCH.get(task.noun, 8),
                         settings.ship_files)
        return job.run(names, cache, on_result, progress, cancel)
    finally:
        cluster.close()


def recognize_on_cluster(settings: ClusterSettings, task: RecognizeTask, paths: Sequence[Any], cache: Any,
                         on_results: Callable[[list[Any]], None] | None = None,
                         progress: Callable[..., None] | None = None, cancel: threading.Event | None = None) -> Any:
    """ImageClassifier.run, on the cluster: a RecognitionBatch whose results came back in input order."""
    from desktop_ai.engine.errors import InvalidInputError
    from desktop_ai.engine.tasks.image_classification import collect_images
    from desktop_ai.engine.tasks.image_results import RecognitionBatch

    files = [str(p) for p in collect_images(paths)]
    if not files:
        raise InvalidInputError("No images to recognise: drop or open image files, or a folder that holds some.")
    run = run_task(settings, task, files, cache, (lambda r: on_results([r])) if on_results else None, progress, cancel)
    meta = run.meta
    notices = list(run.notices)
    failed = sum(1 for r in run.results if not r.ok)
    if failed:
        notices.append(f"{failed} file(s) could not be recognised; each says why.")
    return RecognitionBatch(run.results, meta.get("model_id", task.model or ""), meta.get("device", ""),
                            meta.get("compression", task.compression), run.seconds, notices, run.stopped,
                            run.load_seconds, meta.get("model_title", ""),
                            f"{meta.get('runtime', '')}, {settings.describe()}")


def transcribe_on_cluster(settings: ClusterSettings, task: TranscribeTask, paths: Sequence[str], cache: Any,
                          on_result: Callable[[Any], None] | None = None, progress: Callable[..., None] | None = None,
                          cancel: threading.Event | None = None) -> ClusterRun:
    """FileTranscriber.run for every file, on the cluster: each result is a TranscriptionResult, or a
    {"path", "error"} dict for a file that could not be read (as the lane's local job reports it)."""
    return run_task(settings, task, [str(p) for p in paths], cache, on_result, progress, cancel)


def classify_on_cluster(settings: ClusterSettings, task: ClassifyTask, texts: Sequence[str], cache: Any,
                        progress: Callable[..., None] | None = None, cancel: threading.Event | None = None) -> Any:
    """TextClassifier.run on the cluster: a ClassificationBatch, one result per non-empty text, in order."""
    from desktop_ai.engine.errors import InvalidInputError
    from desktop_ai.engine.tasks.text_classification import SENTIMENT_LABELS, ClassificationBatch, clean_labels

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise InvalidInputError("There is no text to classify: type or paste at least one line.")
    labels = clean_labels(task.labels)[0] if task.labels and task.labels.strip() else list(SENTIMENT_LABELS)
    run = run_task(settings, task, texts, cache, None, progress, cancel)
    meta = run.meta
    return ClassificationBatch(run.results, labels, "labels" if task.labels and task.labels.strip() else "sentiment",
                               meta.get("device", ""), meta.get("compression", task.compression), run.seconds,
                               list(run.notices), run.stopped)


def translate_on_cluster(settings: ClusterSettings, task: TranslateTask, text: str, cache: Any,
                         progress: Callable[..., None] | None = None, cancel: threading.Event | None = None) -> Any:
    """Translator.run on the cluster: the page split into sentences here, the sentences translated in batches
    there (each cached as a local run caches it), and the page put back with its layout."""
    import time

    from desktop_ai.engine.errors import InvalidInputError
    from desktop_ai.engine.tasks.translation import TranslationResult, split_text

    if not text or not text.strip():
        raise InvalidInputError("There is nothing to translate: type, paste or open some text.")
    started = time.perf_counter()
    segments = split_text(text, task.src)
    sentences = [s.text for s in segments if s.translatable]
    run = run_task(settings, task, sentences, cache, None, progress, cancel)
    translations = iter(run.results)
    pieces: list[str] = []
    for segment in segments:
        if not segment.translatable:
            pieces.append(segment.text)
            continue
        translation = next(translations, None)
        if translation is None:  # stopped: the page up to here
            break
        pieces.append(translation)
    meta = run.meta
    return TranslationResult("".join(pieces), text, meta.get("model_id", ""), meta.get("device", ""),
                             meta.get("compression", ""), len(sentences), len(run.results) - run.from_cache,
                             time.perf_counter() - started, run.stopped, list(run.notices),
                             f"{meta.get('runtime', '')}, {settings.describe()}")
