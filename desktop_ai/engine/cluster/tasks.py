"""What each job kind does on a cluster: how the driver reads and keys an input, how a worker builds the engine's
own task class once and runs a batch with it, and how a cached value becomes a result again.

A worker never touches a result cache of its own: the task class writes into a RecordingCache, and what it
recorded goes back with the batch to the driver, which puts it into the local cache under the very same keys.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from desktop_ai.engine.cache import KeySpec

logger = logging.getLogger(__name__)


@dataclass
class Item:
    """One input in a batch: its place in the job, the name the user gave, where workers read it, or its bytes."""

    index: int
    name: str
    location: str = ""  # an absolute path the workers can read (a shared path); unused when `data` is sent
    data: bytes | None = None  # the file itself, with --ship-files


@dataclass
class BatchOutcome:
    results: list[tuple[int, Any]]  # (input index, result) for every item of the batch
    cache_puts: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class WorkerInfo:
    """What one actor holds: measured in the actor, after its model loaded."""

    pid: int
    node: str
    key_spec: KeySpec
    meta: dict[str, Any]
    load_seconds: float
    rss_before_load: int
    rss_after_load: int

    @property
    def model_bytes(self) -> int:
        return max(0, self.rss_after_load - self.rss_before_load)


class RecordingCache:
    """Stands in for the result cache inside a worker: never hits, and keeps every put for the driver."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, Any]] = []

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, value: Any) -> None:
        self.puts.append((key, value))


class ClusterTask(Protocol):
    """A job kind. Driver side: read, cached_result, failed_result. Worker side: load, key_spec, meta, run_batch."""

    noun: str  # "images", "files", "texts": for progress lines

    def read(self, name: str, ship: bool) -> tuple[str | bytes, Item]: ...
    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any: ...
    def failed_result(self, index: int, name: str, message: str) -> Any: ...
    def load(self) -> Any: ...
    def key_spec(self, state: Any) -> KeySpec: ...
    def meta(self, state: Any) -> dict[str, Any]: ...
    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome: ...


def _workspace() -> Any:
    from desktop_ai.engine.workspace import open_workspace

    return open_workspace(use_disk_cache=False)  # converted models still go to this machine's cache folder


class _ShippedFiles:
    """Where a worker reads each item: the shared path, or its shipped bytes written to a private temp folder
    (the task classes read files, and so do the audio decoders)."""

    def __init__(self, items: list[Item]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="desktop-ai-shipped-") if any(i.data is not None for i in items) else None
        self.paths: list[str] = []
        self._names: dict[str, str] = {}
        for item in items:
            if item.data is None:
                path = item.location
            else:
                assert self._tmp is not None
                folder = Path(self._tmp.name) / str(item.index)  # the file keeps its name: messages quote it
                folder.mkdir()
                path = str(folder / Path(item.name).name)
                Path(path).write_bytes(item.data)
            self.paths.append(path)
            self._names[path] = item.name

    def mention(self, text: str) -> str:
        """A message about a file, with the name the user gave instead of where the worker read it."""
        for path, name in self._names.items():
            text = text.replace(path, name)
        return text

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _absolute(name: str) -> str:
    return str(Path(name).expanduser().resolve())


# --- recognize ----------------------------------------------------------------------------------------------------
@dataclass
class RecognizeTask:
    model: str | None = None
    device: str = "auto"
    compression: str = "none"
    arch: str | None = None
    labels: str | None = None
    top_k: int = 5
    thumbnails: bool = False  # small PNGs for the window's rows, made by the worker that decoded the photo
    noun: str = "images"

    def read(self, name: str, ship: bool) -> tuple[bytes, Item]:
        data = Path(name).read_bytes()  # the cache key hashes the bytes, as a local run does
        return data, Item(0, name, data=data) if ship else Item(0, name, _absolute(name))

    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any:
        from desktop_ai.engine.tasks.image_results import ImageResult, LabelScore

        result = ImageResult(item.name, [LabelScore(l, s) for l, s in zip(value["labels"], value["scores"])],
                             from_cache=True, width=value["width"], height=value["height"], index=item.index)
        if self.thumbnails:  # the window's rows show one, as for a local cache hit; the bytes are in hand
            from desktop_ai.engine.errors import InvalidInputError
            from desktop_ai.engine.tasks.image_files import load_image, thumbnail_png

            try:
                result.thumbnail_png = thumbnail_png(load_image(key_data, Path(item.name).name)[0])
            except InvalidInputError:
                pass
        return result

    def failed_result(self, index: int, name: str, message: str) -> Any:
        from desktop_ai.engine.tasks.image_results import ImageResult

        return ImageResult(name, error=message, index=index)

    def load(self) -> Any:
        from desktop_ai.engine.tasks.image_classification import ImageClassifier

        workspace = _workspace()
        classifier = ImageClassifier(workspace.store, None, model=self.model, device=self.device,
                                     compression=self.compression, arch=self.arch, labels=self.labels)
        loaded = classifier.load()
        return {"workspace": workspace, "classifier": classifier, "loaded": loaded}

    def key_spec(self, state: Any) -> KeySpec:
        return state["classifier"].key_spec(self.top_k)

    def meta(self, state: Any) -> dict[str, Any]:
        classifier, loaded = state["classifier"], state["loaded"]
        return {"model_id": classifier.entry.id, "model_title": classifier.entry.title, "device": loaded.device,
                "compression": loaded.compression.method, "runtime": loaded.runtime, "notices": list(loaded.notices),
                "weights_bytes": loaded.compression.size_bytes, "threads": getattr(loaded.model, "threads", None)}

    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome:
        classifier = state["classifier"]
        files = _ShippedFiles(items)
        recorder = RecordingCache()
        classifier.cache = recorder
        try:
            batch = classifier.run(files.paths, top_k=self.top_k, thumbnails=self.thumbnails)
        finally:
            classifier.cache = None
            files.close()
        results = []
        for result in batch.results:
            item = items[result.index]
            result.path, result.index = item.name, item.index
            if result.error:
                result.error = files.mention(result.error)
            results.append((item.index, result))
        return BatchOutcome(results, recorder.puts)


# --- transcribe ---------------------------------------------------------------------------------------------------
@dataclass
class TranscribeTask:
    engine: str | None = None
    model: str | None = None
    device: str = "auto"
    compression: str = "int8"
    options: Any = None  # TranscriptionOptions
    noun: str = "files"

    def read(self, name: str, ship: bool) -> tuple[str, Item]:
        from desktop_ai.engine.audio.audio_files import file_digest

        digest = file_digest(name)  # raises InvalidInputError, worded for the user, as a local run would
        return digest, Item(0, name, data=Path(name).read_bytes()) if ship else Item(0, name, _absolute(name))

    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any:
        from desktop_ai.engine.audio.audio_files import probe_audio
        from desktop_ai.engine.audio.transcript import Phrase
        from desktop_ai.engine.tasks.transcription import TranscriptionResult, join_segments

        segments = [Phrase(**s) for s in value["segments"]]
        return TranscriptionResult(item.name, join_segments(segments), segments, probe_audio(item.name).duration_s,
                                   meta["engine"], meta["model_id"], meta["device"], meta["compression"], 0.0,
                                   cached=True, notices=list(meta["notices"]))

    def failed_result(self, index: int, name: str, message: str) -> Any:
        return {"path": name, "error": message}

    def load(self) -> Any:
        from desktop_ai.engine.tasks.transcription import FileTranscriber, make_recognizer

        workspace = _workspace()
        recognizer = make_recognizer(workspace.store, self.engine, self.model, self.device, self.compression, self.options)
        return {"workspace": workspace, "transcriber": FileTranscriber(recognizer, None)}

    def key_spec(self, state: Any) -> KeySpec:
        return state["transcriber"].key_spec()

    def meta(self, state: Any) -> dict[str, Any]:
        r = state["transcriber"].recognizer
        title = getattr(getattr(r, "entry", None), "title", None) or r.model_id
        return {"engine": r.engine, "model_id": r.model_id, "model_title": title, "device": str(r.device),
                "compression": r.compression, "notices": list(r.notices)}

    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome:
        from desktop_ai.engine.errors import InvalidInputError

        transcriber = state["transcriber"]
        files = _ShippedFiles(items)
        recorder = RecordingCache()
        transcriber.cache = recorder
        results: list[tuple[int, Any]] = []
        try:
            for item, path in zip(items, files.paths):
                try:
                    result = transcriber.run(path)
                except InvalidInputError as error:
                    results.append((item.index, self.failed_result(item.index, item.name, files.mention(str(error)))))
                    continue
                result.path = item.name
                result.notices = [files.mention(n) for n in result.notices]
                results.append((item.index, result))
        finally:
            transcriber.cache = None
            files.close()
        return BatchOutcome(results, recorder.puts)


# --- classify -----------------------------------------------------------------------------------------------------
@dataclass
class ClassifyTask:
    model: str | None = None
    device: str = "auto"
    compression: str = "none"
    labels: str | None = None
    noun: str = "texts"

    def read(self, name: str, ship: bool) -> tuple[str, Item]:
        return name, Item(0, name)  # the text itself travels: there is no file to share

    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any:
        from desktop_ai.engine.tasks.text_classification import ClassificationResult, LabelScore

        return ClassificationResult(item.name, [LabelScore(**s) for s in value["scores"]], meta["model_id"], True)

    def failed_result(self, index: int, name: str, message: str) -> Any:
        raise AssertionError("a text is always readable")  # read() never fails for classify

    def load(self) -> Any:
        from desktop_ai.engine.tasks.text_classification import TextClassifier

        workspace = _workspace()
        classifier = TextClassifier(workspace.store, None, model=self.model, device=self.device, compression=self.compression)
        classifier.run(["warm up"], labels=self.labels)  # loads the model (and the label vectors) once
        return {"workspace": workspace, "classifier": classifier}

    def key_spec(self, state: Any) -> KeySpec:
        return state["classifier"].key_spec(self.labels)

    def meta(self, state: Any) -> dict[str, Any]:
        classifier = state["classifier"]
        return {"model_id": classifier.entry.id, "model_title": classifier.entry.title,
                "device": classifier.device.device, "compression": classifier.compression.value, "notices": []}

    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome:
        classifier = state["classifier"]
        recorder = RecordingCache()
        classifier.cache = recorder
        try:
            batch = classifier.run([item.name for item in items], labels=self.labels)
        finally:
            classifier.cache = None
        return BatchOutcome([(item.index, result) for item, result in zip(items, batch.results)], recorder.puts)


# --- translate ----------------------------------------------------------------------------------------------------
@dataclass
class TranslateTask:
    """Sentences are the inputs: the driver splits the page (translation.split_text) and puts it back together."""

    model: str | None = None
    src: str = "en"
    tgt: str = "de"
    device: str = "auto"
    compression: str = "none"
    runtime: str = "auto"
    beams: int = 4
    noun: str = "sentences"

    def _options(self) -> Any:
        from desktop_ai.engine.tasks.translation import TranslationOptions

        return TranslationOptions(beams=self.beams)

    def read(self, name: str, ship: bool) -> tuple[str, Item]:
        return name, Item(0, name)

    def cached_result(self, item: Item, value: Any, meta: dict[str, Any], key_data: Any) -> Any:
        return value["target"]

    def failed_result(self, index: int, name: str, message: str) -> Any:
        raise AssertionError("a sentence is always readable")

    def load(self) -> Any:
        from desktop_ai.engine.tasks.translation import Translator

        workspace = _workspace()
        translator = Translator(workspace.store, None, self.model, self.src, self.tgt, self.device, self.compression,
                                self.runtime)
        warm = translator.run("Hello.", self._options())  # loads the model (converted once on this machine)
        return {"workspace": workspace, "translator": translator, "runtime": warm.runtime, "device": warm.device,
                "compression": warm.compression, "notices": warm.notices}

    def key_spec(self, state: Any) -> KeySpec:
        return state["translator"].key_spec(self._options(), state["runtime"])

    def meta(self, state: Any) -> dict[str, Any]:
        translator = state["translator"]
        return {"model_id": translator.entry.id, "model_title": translator.entry.title, "device": state["device"],
                "compression": state["compression"], "runtime": state["runtime"], "notices": list(state["notices"])}

    def run_batch(self, state: Any, items: list[Item]) -> BatchOutcome:
        """One sentence a line, translated in one run (one model call per batch); each line comes back whole."""
        translator = state["translator"]
        recorder = RecordingCache()
        translator.cache = recorder
        try:
            lines = translator.run("\n".join(item.name for item in items), self._options()).text.split("\n")
            if len(lines) != len(items):  # a translation with a line break of its own: one sentence at a time
                lines = [translator.run(item.name, self._options()).text for item in items]
        finally:
            translator.cache = None
        return BatchOutcome([(item.index, line) for item, line in zip(items, lines)], recorder.puts)
