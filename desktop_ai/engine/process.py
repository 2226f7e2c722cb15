"""The engine process: where models are loaded and run for the window.

Why a process and not only a thread: tokenizers and transformers hold Python's GIL for 150-500 ms at a
time while loading (measured on a 2-core CPU), which froze the window's event loop. In a child process
the window never waits, a crash or an out-of-memory kill of the engine cannot take the user's work with
it, and closing the window can always end a job that will not stop. (Buzz runs its transcribers the same way.)

Lanes: the window runs two of these processes, one for live dictation and one for every other job, so that
a long dictation never makes a photo or a prompt wait, and a crash of one loses nothing of the other. Inside a
lane each job runs in its own thread (torch, CTranslate2, llama.cpp and ONNX Runtime release the GIL while they
compute), so the Image and Text tabs' jobs run side by side too; models are loaded once per lane and shared.

The protocol is tuples over a multiprocessing Pipe: the parent sends ("job", id, kind, params), ("cancel", id)
(id None: every job), ("feed", id, text or None) (more input for a running job that reads it as it comes, such as
an answer read aloud while it streams; None: the input has ended) and ("quit",); the child answers ("ready", info, cache_stats), ("started", id),
("progress", id, message, fraction), ("partial", id, text or results), ("finished", id, result, cache_stats),
("failed", id, message, cache_stats) and ("models", loaded-model list) whenever what is loaded changes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desktop_ai.engine.errors import CancelledError, EngineError, InvalidInputError
from desktop_ai.engine.documents.jobs import DOCUMENT_JOB_KINDS

logger = logging.getLogger(__name__)


@dataclass
class JobCallbacks:
    progress: Callable[[str, float | None], None]
    partial: Callable[[Any], None]  # streamed text (generation, translation so far), lists of image results
    cancel: threading.Event
    inbox: queue.Queue | None = None  # what the window feeds a running job ("feed" messages), None at the end


def _generate(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    generator = TextGenerator(workspace.store, workspace.cache, params["model"], params["device"], params["compression"],
                              runtime=params.get("runtime", "auto"))
    return generator.run(params["prompt"], GenerationOptions(**params["options"]), cb.partial, cb.progress, cb.cancel)


def _chat(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    """One turn of a saved conversation; the answer streams into the store and as partial messages."""
    from pathlib import Path

    from desktop_ai.engine.conversations.store import ConversationStore
    from desktop_ai.engine.tasks.chat import ChatOptions, ChatSession

    store_path = params.get("store")
    with ConversationStore(Path(store_path) if store_path else None) as conversations:
        session = ChatSession(workspace.store, conversations, params.get("device", "auto"),
                              params.get("compression", "none"), params.get("runtime", "auto"))
        result = session.run(params.get("conversation") or "", params.get("action", "send"), params.get("message"),
                             ChatOptions.from_dict(params.get("options")), cb.partial, cb.progress, cb.cancel,
                             model=params.get("model"), collections=params.get("collections"))
    return result.to_dict()


def _classify(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    labels = params.get("labels")
    if labels is None or (isinstance(labels, str) and not labels.strip()):  # sentiment: the built-in taught one if trained
        from desktop_ai.engine.tasks.builtin_sentiment import classify_sentiment

        return classify_sentiment(workspace.store, workspace.cache, params["texts"], params["model"], params["device"],
                                  params["compression"], progress=cb.progress, cancel=cb.cancel)
    classifier = TextClassifier(workspace.store, workspace.cache, params["model"], params["device"], params["compression"])
    return classifier.run(params["texts"], labels, cb.progress, cb.cancel)


def _cluster_settings(params: dict[str, Any]) -> Any:
    """A folder job the window sent to a cluster (Settings → Cluster for folder jobs)."""
    from desktop_ai.engine.cluster.runs import ClusterSettings

    return ClusterSettings(params["cluster"], int(params.get("cluster_workers", 2)))


def _recognize(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.image_classification import ImageClassifier

    if params.get("cluster"):
        from desktop_ai.engine.cluster.runs import recognize_on_cluster
        from desktop_ai.engine.cluster.tasks import RecognizeTask

        task = RecognizeTask(params.get("model"), params["device"], params["compression"], params.get("arch"),
                             params.get("labels"), params.get("top_k", 5), params.get("thumbnails", True))
        return recognize_on_cluster(_cluster_settings(params), task, params["paths"], workspace.cache, cb.partial,
                                    cb.progress, cb.cancel)

    classifier = ImageClassifier(
        workspace.store, workspace.cache, params.get("model"), params["device"], params["compression"],
        arch=params.get("arch"), labels=params.get("labels"),
    )
    return classifier.run(
        params["paths"], top_k=params.get("top_k", 5), on_results=cb.partial, progress=cb.progress,
        cancel=cb.cancel, thumbnails=params.get("thumbnails", True),
    )


def _sort_photos(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.photo_sorting import sort_photos

    return sort_photos(params["results"], params["target"], params.get("move", False), params.get("min_score", 0.0),
                       cb.cancel, cb.progress)


def _translate(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.translation import TranslationOptions, Translator

    translator = Translator(
        workspace.store, workspace.cache, params.get("model"), params.get("src", "en"), params.get("tgt", "de"),
        params["device"], params["compression"], params.get("runtime", "auto"),
    )
    return translator.run(params["text"], TranslationOptions(beams=params.get("beams", 4)), cb.partial, cb.progress, cb.cancel)


def _speech_options(params: dict[str, Any]) -> Any:
    from desktop_ai.engine.tasks.transcription import TranscriptionOptions

    return TranscriptionOptions(language=params.get("language"), beam_size=params.get("beam_size", 5))


def _transcribe(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    """Files one after another; each file's segments stream as partial {"path", "index", "segments"}."""
    from dataclasses import asdict

    from desktop_ai.engine.tasks.transcription import FileTranscriber, make_recognizer

    paths = params["paths"]
    if params.get("cluster"):
        return _transcribe_on_cluster(workspace, params, cb)
    recognizer = make_recognizer(
        workspace.store, params.get("engine"), params.get("model"), params["device"], params["compression"],
        _speech_options(params), cb.progress, cb.cancel,
    )
    transcriber = FileTranscriber(recognizer, workspace.cache)
    results = []
    for index, path in enumerate(paths):
        if cb.cancel.is_set():
            break

        def progress(message: str, fraction: float | None, index: int = index) -> None:
            overall = (index + (fraction or 0.0)) / len(paths) if fraction is not None else None
            cb.progress(f"File {index + 1} of {len(paths)}: {message}", overall)

        def partial(segments: list, index: int = index, path: str = path) -> None:
            cb.partial({"path": path, "index": index, "segments": [asdict(s) for s in segments]})

        try:
            result = transcriber.run(path, partial, progress, cb.cancel)
        except EngineError as error:  # one bad file does not stop the others
            results.append({"path": path, "error": str(error)})
            cb.partial({"path": path, "index": index, "error": str(error)})
            continue
        results.append(result.to_json())
        if result.stopped:
            break
    return results


def _transcribe_on_cluster(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> list[dict[str, Any]]:
    """The same partials and results as the local job, each file's transcript whole as its turn comes."""
    from dataclasses import asdict

    from desktop_ai.engine.cluster.runs import transcribe_on_cluster
    from desktop_ai.engine.cluster.tasks import TranscribeTask

    count = 0

    def on_result(result: Any) -> None:
        nonlocal count
        if isinstance(result, dict):
            cb.partial({"path": result["path"], "index": count, "error": result["error"]})
        else:
            cb.partial({"path": result.path, "index": count, "segments": [asdict(s) for s in result.segments]})
        count += 1

    task = TranscribeTask(params.get("engine"), params.get("model"), params["device"], params["compression"],
                          _speech_options(params))
    run = transcribe_on_cluster(_cluster_settings(params), task, params["paths"], workspace.cache, on_result,
                                cb.progress, cb.cancel)
    return [r if isinstance(r, dict) else r.to_json() for r in run.results]


def _dictate(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    """Runs until Stop; every event (level, partial, final, status) goes to the window as a partial message."""
    from desktop_ai.engine.tasks.dictation import DictationSession
    from desktop_ai.engine.audio.microphone import MicrophoneStream
    from desktop_ai.engine.tasks.transcription import live_options, make_recognizer

    stream = MicrophoneStream(params.get("input_device"))
    stream.start()  # before the model loads, so the first words are not lost

    # "auto" measures Whisper for batched file work; dictation keeps int8, what its latency was measured with.
    compression = "int8" if params["compression"] == "auto" else params["compression"]

    def recognizer() -> Any:
        return make_recognizer(
            workspace.store, params.get("engine"), params.get("model"), params["device"], compression,
            live_options(params.get("language"), params.get("prompt")), cb.progress, None,
        )

    session = DictationSession(stream, recognizer, recording_path=params.get("recording_path"),
                               sound_envelopes=bool(params.get("sound_envelopes")))
    return session.run(cb.partial, cb.cancel, params.get("max_seconds")).to_json()


def _audio_devices(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from dataclasses import asdict

    from desktop_ai.engine.audio.microphone import list_input_devices

    return [asdict(device) for device in list_input_devices()]


def _speak(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    """Read text aloud: params["text"] whole, or (params["stream"]) text fed as it streams (an answer being written).
    Each sentence is sent as a partial {"sentence": ...} as it is queued for the sound card; Stop silences at once."""
    from dataclasses import asdict

    from desktop_ai.engine.audio.synthesis.read_aloud import StreamingReader, speakable
    from desktop_ai.engine.audio.synthesis.synthesizer import SpeechSynthesizer, check_speed

    speed = check_speed(params.get("speed", 1.0))
    synthesizer = SpeechSynthesizer(params.get("voice"), workspace.store)
    if not params.get("stream"):
        synthesizer.check(speakable(params.get("text", "")))
    reader = StreamingReader(synthesizer, speed, params.get("device"),
                             on_sentence=lambda sentence: cb.partial({"sentence": sentence})).start()

    reported = [time.perf_counter()]

    def report_played(last: bool = False) -> None:
        """What reached the sound card, a few times a second, so voice chat can tell its echo (engine/audio/echo.py)."""
        if reader.player.played_sound is None or not (last or time.perf_counter() - reported[0] >= 0.2):
            return
        reported[0] = time.perf_counter()
        played = reader.player.played_sound.take()
        if played:
            cb.partial({"played": [envelope.to_json() for envelope in played]})

    if params.get("stream"):
        if params.get("text"):
            reader.feed(params["text"])
        while not cb.cancel.is_set():
            report_played()
            try:
                chunk = cb.inbox.get(timeout=0.05) if cb.inbox is not None else None
            except queue.Empty:
                continue
            if chunk is None:
                break
            reader.feed(chunk)
    else:
        reader.feed(params["text"])
    if cb.cancel.is_set():
        reader.stop()
    reader.close()
    while not reader.wait(0.02):
        report_played()
        if cb.cancel.is_set():
            reader.stop()
    report_played(last=True)
    if reader.report.error:
        raise EngineError(reader.report.error)
    report = asdict(reader.report)
    report["first_sound_latency_s"] = reader.report.first_sound_latency_s
    return report


def _audio_outputs(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from dataclasses import asdict

    from desktop_ai.engine.audio.synthesis.playback import list_output_devices

    return [asdict(device) for device in list_output_devices()]


def _voices(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.audio.synthesis.voices import installed_voices

    return [{"id": v.id, "language": v.config.language, "language_name": v.config.language_name, "source": v.source}
            for v in installed_voices()]
def _taught(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.taught_jobs import run_taught_job

    return run_taught_job(workspace, params, cb.progress, cb.cancel)


def _clear_cache(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    workspace.cache.clear()
    return workspace.cache.stats()


JOB_KINDS: dict[str, Callable[[Any, dict[str, Any], JobCallbacks], Any]] = {
    "generate": _generate,
    "chat": _chat,
    "classify": _classify,
    "recognize": _recognize,
    "sort_photos": _sort_photos,
    "translate": _translate,
    "transcribe": _transcribe,
    "dictate": _dictate,
    "audio_devices": _audio_devices,
    "clear_cache": _clear_cache,
    "speak": _speak,
    "audio_outputs": _audio_outputs,
    "voices": _voices,
    "taught": _taught,
}
JOB_KINDS.update(DOCUMENT_JOB_KINDS)  # docs_update, docs_search, docs_list, docs_remove


# Imported once, before any job thread starts (see _warm_up).
SHARED_IMPORTS = ("torchvision", "torchvision.transforms", "torchvision.models", "timm", "onnxruntime", "ctranslate2",
                  "ctranslate2.converters", "faster_whisper", "PIL.Image", "transformers.models.llama",
                  "transformers.models.marian", "transformers.models.bert")


def _warm_up() -> dict[str, Any]:
    """Import the heavy libraries before the first job, so the first answer starts sooner, and so that jobs
    running side by side never import them at the same time: two threads importing torchvision (through timm
    and through transformers) at once got "partially initialized module" errors."""
    import importlib

    from desktop_ai.engine.models.devices import DEVICE_PREFERENCES, pick_device
    import transformers  # noqa: F401
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    for name in SHARED_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError as error:  # an optional runtime: its jobs say what is missing
            logger.info("Warm-up: %s is not importable (%s)", name, error)

    from desktop_ai.engine.runtimes import llama_cpp

    llama_cpp.available()  # imports llama-cpp-python (and its shared library) when it is installed

    devices = {}
    for preference in DEVICE_PREFERENCES:
        choice = pick_device(preference)
        fallback = preference not in ("auto", choice.device)
        devices[preference] = {"device": choice.describe(), "reason": choice.reason, "fallback": fallback}
    return {"device": devices["auto"]["device"], "reason": devices["auto"]["reason"], "devices": devices}


class _Lane:
    """The child's side of one lane: reads the pipe, runs each job in a thread, and sends from any thread."""

    def __init__(self, connection: Any, workspace: Any, name: str) -> None:
        self.connection = connection
        self.workspace = workspace
        self.name = name
        self._send_lock = threading.Lock()
        self._jobs: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._inboxes: dict[int, queue.Queue] = {}
        self._jobs_lock = threading.Lock()
        self._models_sent: list[dict[str, Any]] | None = None

    def send(self, message: tuple) -> None:
        with self._send_lock:
            try:
                self.connection.send(message)
            except (OSError, ValueError, BrokenPipeError):  # the window went away; the job ends on its own
                logger.debug("%s lane: the window's end of the pipe is closed", self.name)

    def start_job(self, job_id: int, kind: str, params: dict[str, Any]) -> None:
        cancel = threading.Event()
        thread = threading.Thread(target=self._run, args=(job_id, kind, params, cancel), name=f"job-{job_id}-{kind}", daemon=True)
        with self._jobs_lock:
            self._jobs[job_id] = (thread, cancel)
            self._inboxes.setdefault(job_id, queue.Queue())
        self.send(("started", job_id))
        thread.start()

    def feed(self, job_id: int, data: Any) -> None:
        """Input for a running job (the pipe delivers a job's "feed" after its "job"); a finished job's is dropped."""
        with self._jobs_lock:
            inbox = self._inboxes.get(job_id)
        if inbox is not None:
            inbox.put(data)

    def inbox(self, job_id: int) -> queue.Queue:
        with self._jobs_lock:
            return self._inboxes.setdefault(job_id, queue.Queue())

    def cancel(self, job_id: int | None) -> None:
        with self._jobs_lock:
            targets = [cancel for jid, (_, cancel) in self._jobs.items() if job_id is None or jid == job_id]
        for event in targets:
            event.set()

    def join_all(self, timeout_s: float) -> None:
        self.cancel(None)
        with self._jobs_lock:
            threads = [thread for thread, _ in self._jobs.values()]
        for thread in threads:
            thread.join(timeout_s)

    def _run(self, job_id: int, kind: str, params: dict[str, Any], cancel: threading.Event) -> None:
        try:
            _run_job(self.send, cancel, self.workspace, job_id, kind, params, self.inbox(job_id))
        finally:
            with self._jobs_lock:
                self._jobs.pop(job_id, None)
                self._inboxes.pop(job_id, None)
            self.send_models()

    def send_models(self) -> None:
        """What this lane holds in memory, for the window's status bar; sent only when it changed."""
        models = self.workspace.store.loaded.describe()
        if models != self._models_sent:
            self._models_sent = models
            self.send(("models", models, self.workspace.store.loaded.budget_bytes))


def serve(connection: Any, lane: str = "jobs") -> None:
    """Entry point of the child process (multiprocessing 'spawn'). Runs until ("quit",) or a closed pipe."""
    from desktop_ai.logging_setup import configure_logging

    configure_logging()
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace()
    runner = _Lane(connection, workspace, lane)
    try:
        runner.send(("ready", _warm_up(), workspace.cache.stats()))
    except Exception as error:  # the window still opens; each job will report the problem
        logger.exception("Engine warm-up failed")
        runner.send(("ready", {"device": "unknown", "reason": str(error)}, workspace.cache.stats()))
    runner.send_models()
    try:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                return
            if message[0] == "quit":
                return
            if message[0] == "cancel":
                runner.cancel(message[1])
            elif message[0] == "feed":
                runner.feed(message[1], message[2])
            elif message[0] == "job":
                _, job_id, kind, params = message
                runner.start_job(job_id, kind, params)
    finally:
        runner.join_all(5.0)
        workspace.close()
        logging.shutdown()


def _run_job(send: Callable[[tuple], None], cancel: threading.Event, workspace: Any, job_id: int, kind: str,
             params: dict[str, Any], inbox: queue.Queue | None = None) -> None:
    callbacks = JobCallbacks(
        progress=lambda message, fraction=None: send(("progress", job_id, message, fraction)),
        partial=lambda payload: send(("partial", job_id, payload)),
        cancel=cancel,
        inbox=inbox,
    )
    try:
        handler = JOB_KINDS.get(kind)
        if handler is None:
            raise InvalidInputError(f"Unknown job {kind!r}.")
        result = handler(workspace, params, callbacks)
    except CancelledError as error:
        send(("failed", job_id, str(error) or "Stopped.", workspace.cache.stats()))
    except EngineError as error:
        logger.warning("%s failed: %s", kind, error)
        send(("failed", job_id, str(error), workspace.cache.stats()))
    except Exception as error:  # a bug: the window still gets a message, the log gets the traceback
        from desktop_ai.logging_setup import log_file

        logger.exception("%s failed unexpectedly", kind)
        send(("failed", job_id, f"Unexpected error: {error}. Details are in the log file: {log_file()}", workspace.cache.stats()))
    else:
        send(("finished", job_id, result, workspace.cache.stats()))
