"""The engine process: where models are loaded and run for the window.

Why a process and not only a thread: tokenizers and transformers hold Python's GIL for 150-500 ms at a
time while loading (measured on a 2-core CPU), which froze the window's event loop. In a child process
the window never waits, a crash or an out-of-memory kill of the engine cannot take the user's work with
it, and closing the window can always end a job that will not stop. (Buzz runs its transcribers the same way.)

The protocol is tuples over a multiprocessing Pipe: the parent sends ("job", id, kind, params) and
("quit",); the child answers ("ready", info), ("started", id), ("progress", id, message, fraction),
("partial", id, text or results), ("finished", id, result, cache_stats) and ("failed", id, message, cache_stats).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desktop_ai.engine.errors import CancelledError, EngineError, InvalidInputError

logger = logging.getLogger(__name__)


@dataclass
class JobCallbacks:
    progress: Callable[[str, float | None], None]
    partial: Callable[[Any], None]  # streamed text (generation, translation so far), lists of image results
    cancel: threading.Event


def _generate(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

    generator = TextGenerator(workspace.store, workspace.cache, params["model"], params["device"], params["compression"])
    return generator.run(params["prompt"], GenerationOptions(**params["options"]), cb.partial, cb.progress, cb.cancel)


def _classify(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    classifier = TextClassifier(workspace.store, workspace.cache, params["model"], params["device"], params["compression"])
    return classifier.run(params["texts"], params.get("labels"), cb.progress, cb.cancel)


def _recognize(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from desktop_ai.engine.tasks.image_classification import ImageClassifier

    classifier = ImageClassifier(
        workspace.store, workspace.cache, params.get("model"), params["device"], params["compression"],
        arch=params.get("arch"), labels=params.get("labels"),
    )
    return classifier.run(
        params["paths"], top_k=params.get("top_k", 5), on_results=cb.partial, progress=cb.progress,
        cancel=cb.cancel, thumbnails=params.get("thumbnails", True),
    )


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

    recognizer = make_recognizer(
        workspace.store, params.get("engine"), params.get("model"), params["device"], params["compression"],
        _speech_options(params), cb.progress, cb.cancel,
    )
    transcriber = FileTranscriber(recognizer, workspace.cache)
    results = []
    paths = params["paths"]
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


def _dictate(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    """Runs until Stop; every event (level, partial, final, status) goes to the window as a partial message."""
    from desktop_ai.engine.tasks.dictation import DictationSession
    from desktop_ai.engine.audio.microphone import MicrophoneStream
    from desktop_ai.engine.tasks.transcription import live_options, make_recognizer

    stream = MicrophoneStream(params.get("input_device"))
    stream.start()  # before the model loads, so the first words are not lost

    def recognizer() -> Any:
        return make_recognizer(
            workspace.store, params.get("engine"), params.get("model"), params["device"], params["compression"],
            live_options(params.get("language")), cb.progress, None,
        )

    session = DictationSession(stream, recognizer, recording_path=params.get("recording_path"))
    return session.run(cb.partial, cb.cancel, params.get("max_seconds")).to_json()


def _audio_devices(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    from dataclasses import asdict

    from desktop_ai.engine.audio.microphone import list_input_devices

    return [asdict(device) for device in list_input_devices()]


def _clear_cache(workspace: Any, params: dict[str, Any], cb: JobCallbacks) -> Any:
    workspace.cache.clear()
    return workspace.cache.stats()


JOB_KINDS: dict[str, Callable[[Any, dict[str, Any], JobCallbacks], Any]] = {
    "generate": _generate,
    "classify": _classify,
    "recognize": _recognize,
    "translate": _translate,
    "transcribe": _transcribe,
    "dictate": _dictate,
    "audio_devices": _audio_devices,
    "clear_cache": _clear_cache,
}


def _warm_up() -> dict[str, Any]:
    """Import the heavy libraries before the first job, so the first answer starts sooner."""
    from desktop_ai.engine.models.devices import DEVICE_PREFERENCES, pick_device
    import transformers  # noqa: F401
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    devices = {}
    for preference in DEVICE_PREFERENCES:
        choice = pick_device(preference)
        fallback = preference not in ("auto", choice.device)
        devices[preference] = {"device": choice.describe(), "reason": choice.reason, "fallback": fallback}
    return {"device": devices["auto"]["device"], "reason": devices["auto"]["reason"], "devices": devices}


def serve(connection: Any, cancel: Any) -> None:
    """Entry point of the child process (multiprocessing 'spawn'). Runs until ("quit",) or a closed pipe."""
    from desktop_ai.logging_setup import configure_logging

    configure_logging()
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace()
    try:
        connection.send(("ready", _warm_up(), workspace.cache.stats()))
    except Exception as error:  # the window still opens; each job will report the problem
        logger.exception("Engine warm-up failed")
        connection.send(("ready", {"device": "unknown", "reason": str(error)}, workspace.cache.stats()))
    try:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                return
            if message[0] == "quit":
                return
            if message[0] != "job":
                continue
            _, job_id, kind, params = message
            cancel.clear()
            connection.send(("started", job_id))
            _run_job(connection, cancel, workspace, job_id, kind, params)
    finally:
        workspace.close()
        logging.shutdown()


def _run_job(connection: Any, cancel: Any, workspace: Any, job_id: int, kind: str, params: dict[str, Any]) -> None:
    callbacks = JobCallbacks(
        progress=lambda message, fraction=None: connection.send(("progress", job_id, message, fraction)),
        partial=lambda payload: connection.send(("partial", job_id, payload)),
        cancel=cancel,
    )
    try:
        handler = JOB_KINDS.get(kind)
        if handler is None:
            raise InvalidInputError(f"Unknown job {kind!r}.")
        result = handler(workspace, params, callbacks)
    except CancelledError as error:
        connection.send(("failed", job_id, str(error) or "Stopped.", workspace.cache.stats()))
    except EngineError as error:
        logger.warning("%s failed: %s", kind, error)
        connection.send(("failed", job_id, str(error), workspace.cache.stats()))
    except Exception as error:  # a bug: the window still gets a message, the log gets the traceback
        from desktop_ai.logging_setup import log_file

        logger.exception("%s failed unexpectedly", kind)
        connection.send(("failed", job_id, f"Unexpected error: {error}. Details are in the log file: {log_file()}", workspace.cache.stats()))
    else:
        connection.send(("finished", job_id, result, workspace.cache.stats()))
