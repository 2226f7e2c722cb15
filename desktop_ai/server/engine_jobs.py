"""The server's side of the engine: which models it serves, and the jobs it runs on them, in worker threads.

One Workspace (the model store with its memory budget, and the result cache) serves every request, as it serves
every command of the CLI: a model loads once and stays for the next request. A request names a model by an id the
app knows (the catalogue's installed models, the user's added models); a path or a Hub id from a request is never
followed. Jobs run in threads (llama.cpp, CTranslate2 and torch release the GIL), so the event loop keeps
answering while they run, and a cancel event stops a generation between two tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop_ai.engine.cache import make_cache_key
from desktop_ai.engine.models.catalogue import (
    CATALOGUE,
    KIND_SENTENCE_EMBEDDING,
    TASK_CLASSIFY,
    TASK_GENERATE,
    TASK_RECOGNIZE,
    TASK_TRANSCRIBE,
    TASK_TRANSLATE,
)
from desktop_ai.engine.runtimes.causal_lm import RUNTIME_LLAMA_CPP, CausalLM, SamplingOptions, StreamResult
from desktop_ai.engine.workspace import Workspace
from desktop_ai.server.limits import APIError, ServerSettings

logger = logging.getLogger(__name__)

TASK_EMBEDDINGS = "embeddings"  # sentence-embedding models, which the catalogue files under classify
TASK_WORDS = {TASK_GENERATE: "text generation (chat and completions)", TASK_EMBEDDINGS: "embeddings",
              TASK_CLASSIFY: "classification", TASK_TRANSLATE: "translation", TASK_RECOGNIZE: "image recognition",
              TASK_TRANSCRIBE: "speech recognition"}
GENERATION_COMPRESSION = "int8"  # as `desktop-ai generate`: GGUF files run as they are, transformers ones in int8


@dataclass(frozen=True)
class ServedModel:
    id: str
    task: str
    kind: str
    title: str
    ref: str  # what the engine is given: a catalogue id, or the path of a model the user added

    def serves(self, task: str) -> bool:
        if task == TASK_EMBEDDINGS:
            return self.kind == KIND_SENTENCE_EMBEDDING
        return self.task == task


def installed_models(workspace: Workspace) -> dict[str, ServedModel]:
    """The catalogue's models that are on this machine (embedded or downloaded) and the user's added ones: never
    one that would start a download because a request named it."""
    from desktop_ai.engine.models.library import ModelLibrary

    models: dict[str, ServedModel] = {}
    for entry in CATALOGUE:
        try:
            ready = workspace.store.availability(entry) in ("embedded", "downloaded")
        except Exception as error:  # an unreadable cache folder must not stop the server
            logger.debug("Availability of %s unknown: %s", entry.id, error)
            ready = False
        if ready:
            models[entry.id] = ServedModel(entry.id, entry.task, entry.kind, entry.title, entry.id)
    try:
        added = ModelLibrary().all_models()
    except Exception as error:
        logger.warning("The model library could not be read: %s", error)
        added = []
    for model in added:
        models.setdefault(model.id, ServedModel(model.id, model.task, model.kind, model.title, model.model_ref))
    return models


@dataclass
class PreparedGeneration:
    """A generation checked and tokenized, ready to stream (or answered from the cache)."""

    model: ServedModel
    lm: CausalLM | None
    prompt_tokens: list[int]
    options: SamplingOptions
    cache_key: str | None
    cached: dict[str, Any] | None = None


@dataclass
class GenerationOutcome:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    cancelled: bool = False
    first_token_at: float | None = None
    from_cache: bool = False

    def to_cache(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("cancelled", "first_token_at", "from_cache")}


_DONE = object()


@dataclass
class EngineCounters:
    """What the tests and the window read: requests served and text pieces streamed (about one per token)."""

    streamed_pieces: int = 0
    generations_running: int = 0
    generations_cancelled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServerEngine:
    def __init__(self, workspace: Workspace, settings: ServerSettings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.models = installed_models(workspace)
        self.counters = EngineCounters()
        self._executor = ThreadPoolExecutor(max_workers=max(settings.parallel, 1) + 2, thread_name_prefix="serve")
        self._generators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.workspace.close()  # a llama.cpp model's batched decoder closes with it

    def decoder_for(self, lm: CausalLM) -> Any:
        """llama.cpp models decode concurrent requests together, one sequence each (runtimes/llama_cpp_batch.py);
        with --parallel 1 or another runtime, requests take turns on the model as the CLI's do."""
        if lm.runtime != RUNTIME_LLAMA_CPP or self.settings.parallel < 2:
            return None
        with self._lock:
            if lm.batched_decoder_bytes() == 0:  # about to be made: its cells count in the memory budget first
                self.workspace.store.loaded.grow(lm, lm.batched_decoder_bytes(self.settings.parallel))
            return lm.batched_decoder(self.settings.parallel)

    # --- models ------------------------------------------------------------------------------------------------
    def resolve(self, model_id: str | None, task: str, param: str = "model") -> ServedModel:
        """Only an id the app listed; the message names no path and no internals."""
        if model_id is None:
            default = self.default_for(task)
            if default is None:
                raise APIError(404, f"No {TASK_WORDS[task]} model is installed.", param=param, code="model_not_found")
            return default
        model = self.models.get(model_id)
        if model is None:
            raise APIError(404, f"The model '{model_id}' does not exist here: GET /v1/models lists the models served.",
                           param=param, code="model_not_found")
        if not model.serves(task):
            raise APIError(400, f"The model '{model_id}' is not a {TASK_WORDS[task]} model.", param=param,
                           code="model_not_supported")
        return model

    def default_for(self, task: str) -> ServedModel | None:
        from desktop_ai.engine.models.catalogue import DEFAULT_MODELS

        wanted = "all-minilm-l6-v2" if task == TASK_EMBEDDINGS else DEFAULT_MODELS.get(task)
        if wanted in self.models and self.models[wanted].serves(task):
            return self.models[wanted]
        return next((m for m in self.models.values() if m.serves(task)), None)

    # --- running jobs in threads -------------------------------------------------------------------------------
    async def run(self, job: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self._executor.submit(job))

    def submit(self, job: Callable[[], Any]) -> Future:
        return self._executor.submit(job)

    # --- generation ----------------------------------------------------------------------------------------------
    def generator(self, model: ServedModel) -> Any:
        from desktop_ai.engine.tasks.text_generation import TextGenerator

        with self._lock:
            if model.id not in self._generators:
                self._generators[model.id] = TextGenerator(self.workspace.store, None, model.ref, self.settings.device,
                                                           GENERATION_COMPRESSION)
            return self._generators[model.id]

    def prepare(self, model: ServedModel, messages: list[dict[str, str]] | None, prompt: str | None,
                max_tokens: int | None, options: SamplingOptions) -> PreparedGeneration:
        """Load (once), render the chat template or tokenize, check the length against the context, look in the
        cache. Runs in a worker thread; raises APIError for what the client must change."""
        generator = self.generator(model)
        lm = generator.load()
        unsupported = options.beyond_basics() if lm.runtime != RUNTIME_LLAMA_CPP else []
        if unsupported:
            raise APIError(400, f"{unsupported[0]} is supported on GGUF models (llama.cpp) only; '{model.id}' runs "
                                f"on {lm.runtime}.", param=unsupported[0])
        vocabulary = lm.vocab_size() if options.logit_bias else 0
        outside = [token for token in options.logit_bias if token >= vocabulary]
        if outside:
            raise APIError(400, f"logit_bias names token {outside[0]}, but this model's tokens are 0 to "
                                f"{vocabulary - 1}.", param="logit_bias")
        tokens = lm.chat_tokens(messages) if messages is not None else lm.tokenize(prompt or "")
        context = lm.context_length
        if len(tokens) >= context:
            raise APIError(400, f"This model's maximum context length is {context} tokens; the prompt has "
                                f"{len(tokens)}. Shorten the messages.", param="messages" if messages else "prompt",
                           code="context_length_exceeded")
        room = context - len(tokens)
        if max_tokens is not None and max_tokens > room:
            raise APIError(400, f"max_tokens is too large: {max_tokens}. This model's maximum context length is "
                                f"{context} tokens and the prompt has {len(tokens)}, so at most {room} can be "
                                "generated.", param="max_tokens", code="context_length_exceeded")
        options.max_new_tokens = min(max_tokens if max_tokens is not None else room, room, 4096)
        options.min_new_tokens = min(options.min_new_tokens, options.max_new_tokens)
        options.validate()
        key = None
        if self.settings.use_cache and (not options.sampling or options.seed is not None):
            location = self.workspace.store.locate(generator.entry)
            runtime, _ = generator.runtime_for(location)
            what = {"messages": messages} if messages is not None else {"prompt": prompt}
            key = make_cache_key("serve-generate", generator.entry.id, location.revision, lm.compression,
                                 asdict(options), json.dumps(what, sort_keys=True), runtime=runtime)
            hit = self.workspace.cache.get(key)
            if hit is not None:
                return PreparedGeneration(model, lm, tokens, options, key, hit)
        return PreparedGeneration(model, lm, tokens, options, key)

    def generate(self, prepared: PreparedGeneration, on_text: Callable[[str], None] | None,
                 cancel: threading.Event) -> GenerationOutcome:
        """Stream one answer (in a worker thread); cancel stops it between two tokens."""
        if prepared.cached is not None:
            outcome = GenerationOutcome(**prepared.cached, from_cache=True)
            if on_text is not None and outcome.text:
                on_text(outcome.text)
            return outcome
        assert prepared.lm is not None
        counters = self.counters

        def counted(piece: str) -> None:
            with counters.lock:
                counters.streamed_pieces += 1
            if on_text is not None:
                on_text(piece)

        with counters.lock:
            counters.generations_running += 1
        decoder = self.decoder_for(prepared.lm)
        try:
            if decoder is not None:
                streamed: StreamResult = decoder.stream(prepared.prompt_tokens, prepared.options, counted, cancel)
            else:
                streamed = prepared.lm.stream(prepared.prompt_tokens, prepared.options, counted, cancel)
        finally:
            with counters.lock:
                counters.generations_running -= 1
                if cancel.is_set():
                    counters.generations_cancelled += 1
        length = streamed.new_tokens >= prepared.options.max_new_tokens
        outcome = GenerationOutcome(streamed.text, len(prepared.prompt_tokens), streamed.new_tokens,
                                    "length" if length else "stop", streamed.cancelled, streamed.first_token_at)
        if prepared.cache_key is not None and not streamed.cancelled:
            self.workspace.cache.put(prepared.cache_key, outcome.to_cache())
        return outcome

    async def begin(self, prepare: Callable[[], PreparedGeneration], cancel: threading.Event,
                    on_done: Callable[[], None] | None = None
                    ) -> tuple[PreparedGeneration, AsyncIterator[str | GenerationOutcome]]:
        """Prepare and generate in one worker thread: the thread goes on from preparing to generating at once, and
        the event loop is told that the request was accepted (or why not, raised here, before any byte of the
        answer) while the first token is being made, so no second hand-off delays it. Iterate the pieces for the
        text, then the outcome. Setting `cancel` (the client went away) stops the generation between two tokens;
        `on_done` runs on the event loop when the thread has really finished, whether or not anyone read."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        ready: asyncio.Future[PreparedGeneration] = loop.create_future()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def settle(prepared: PreparedGeneration | None, error: BaseException | None) -> None:
            if not ready.done():
                ready.set_exception(error) if error is not None else ready.set_result(prepared)

        def job() -> None:
            try:
                prepared = prepare()
            except BaseException as error:  # handed to the event loop, which answers it
                loop.call_soon_threadsafe(settle, None, error)
                return
            loop.call_soon_threadsafe(settle, prepared, None)
            try:
                put(self.generate(prepared, put, cancel))
            except BaseException as error:
                put(error)
            finally:
                put(_DONE)

        future = self.submit(job)
        if on_done is not None:
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(on_done))
        try:
            prepared = await ready
        except BaseException:
            cancel.set()  # refused, or the request itself was cancelled while preparing: nothing generates
            raise
        return prepared, _pieces(queue, cancel)


async def _pieces(queue: asyncio.Queue[Any], cancel: threading.Event) -> AsyncIterator[str | GenerationOutcome]:
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()  # the reader left early (or the generation ended, when this does nothing)
