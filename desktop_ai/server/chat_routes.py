"""POST /v1/chat/completions and POST /v1/completions, streamed (server-sent events ending in `data: [DONE]`) or not.

Chat renders the messages with the model's own chat template (the runtime applies the one the model carries);
completions read the prompt as it is. Everything that can be refused (an unknown model, a max_tokens the context
cannot hold) is refused before the first byte of a stream, so a client gets a plain OpenAI error for it. A client
that goes away stops its generation between two tokens: the stream's cancel event is set as soon as the
disconnect arrives, and the worker thread checks it at every token."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.runtimes.causal_lm import SamplingOptions
from desktop_ai.server.engine_jobs import GenerationOutcome, PreparedGeneration, ServerEngine
from desktop_ai.server.limits import Admission, APIError
from desktop_ai.server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ErrorResponse,
    SamplingRequest,
    Usage,
    error_body,
    new_id,
    now,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["OpenAI: chat and completions"])
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 503)}


def sampling_options(body: SamplingRequest) -> SamplingOptions:
    try:
        bias = body.logit_bias_ids()
    except ValueError as error:
        raise APIError(400, f"Invalid value for 'logit_bias': {error}.", param="logit_bias") from error
    return SamplingOptions(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                           repetition_penalty=body.repetition_penalty, seed=body.seed, stop=body.stop_list(),
                           min_new_tokens=body.min_tokens, presence_penalty=body.presence_penalty or 0.0,
                           frequency_penalty=body.frequency_penalty or 0.0, logit_bias=bias)


def _usage(outcome: GenerationOutcome) -> Usage:
    return Usage(prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
                 total_tokens=outcome.prompt_tokens + outcome.completion_tokens)


async def _wait_for_disconnect(request: Request, cancel: threading.Event) -> None:
    """The body is read already, so the next message is the client leaving (or the server shutting down)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


class _Generation:
    """One admitted generation: its slot is given back when the worker thread ends, not when the client leaves,
    so the limit on concurrent requests counts the work that is really running."""

    def __init__(self, request: Request, model_id: str, messages: list[dict[str, str]] | None, prompt: str | None,
                 max_tokens: int | None, options: SamplingOptions) -> None:
        self.request = request
        self.engine: ServerEngine = request.app.state.engine
        self.admission: Admission = request.app.state.admission
        self.model = self.engine.resolve(model_id, TASK_GENERATE)
        request.state.model = self.model.id
        self.messages, self.prompt, self.max_tokens, self.options = messages, prompt, max_tokens, options
        self.cancel = threading.Event()
        self.prepared: PreparedGeneration | None = None
        self.pieces: AsyncIterator[str | GenerationOutcome]
        if self.engine.settings.log_prompts:
            logger.info("Prompt for %s: %s", self.model.id, json.dumps(messages if messages is not None else prompt))

    async def start(self) -> None:
        """Wait for a slot, then prepare (load, tokenize, check) and generate in one worker thread."""
        await self.admission.enter()
        watcher: list[asyncio.Task] = []
        ended = threading.Event()

        def done() -> None:  # on the event loop, once the worker thread has finished (refused or answered)
            ended.set()
            for task in watcher:
                task.cancel()
            self.admission.leave()

        self.prepared, self.pieces = await self.engine.begin(lambda: self.engine.prepare(
            self.model, self.messages, self.prompt, self.max_tokens, self.options), self.cancel, on_done=done)
        if not ended.is_set():
            watcher.append(asyncio.create_task(_wait_for_disconnect(self.request, self.cancel)))

    def record(self, outcome: GenerationOutcome) -> None:
        self.request.state.prompt_tokens = outcome.prompt_tokens
        self.request.state.tokens = outcome.completion_tokens
        if outcome.cancelled:
            logger.info("%s: the client went away; generation stopped after %d tokens", self.model.id,
                        outcome.completion_tokens)

    async def collect(self) -> tuple[str, GenerationOutcome]:
        """The whole answer, for a request that did not ask for a stream; a client that leaves still stops it."""
        outcome: GenerationOutcome | None = None
        async for item in self.pieces:
            if isinstance(item, GenerationOutcome):
                outcome = item
        assert outcome is not None
        self.record(outcome)
        return outcome.text, outcome


_PIECE = "\x00piece\x00"


def _piece_json(chunk_with_piece: dict[str, Any]) -> Callable[[str], str]:
    """The JSON of a chunk that carries `_PIECE` as its text, as a function of the text: the chunk's JSON is
    rendered once, and each token only has its text escaped into it (no model built and dumped per token, which on
    2 cores takes its share from llama.cpp's threads)."""
    before, after = json.dumps(chunk_with_piece).split(json.dumps(_PIECE))
    return lambda text: before + json.dumps(text) + after


def _event_stream(generation: _Generation, first: Callable[[], dict[str, Any] | None],
                  piece: Callable[[str], str], last: Callable[[GenerationOutcome], list[dict[str, Any]]]
                  ) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        opening = first()
        if opening is not None:
            yield {"data": json.dumps(opening)}
        try:
            async for item in generation.pieces:
                if isinstance(item, GenerationOutcome):
                    generation.record(item)
                    for chunk in last(item):
                        yield {"data": json.dumps(chunk)}
                else:
                    yield {"data": piece(item)}
        except APIError as error:
            yield {"data": json.dumps(error.body())}
        except EngineError as error:  # e.g. the model was unloaded under the answer: the user's words, no internals
            yield {"data": json.dumps(error_body(str(error), "server_error"))}
        except Exception:  # the stream has begun: the error goes in it, in OpenAI's shape, with no internals
            logger.exception("Generation failed mid-stream")
            yield {"data": json.dumps(error_body("The model failed while answering.", "server_error"))}
        yield {"data": "[DONE]"}

    # the generation's own watcher (and sse-starlette's, which cancels `events`) set the cancel event when the
    # client leaves
    return EventSourceResponse(events(), ping=15, sep="\n")


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS,
             summary="Answer a conversation with the model's own chat template")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    if body.logprobs:
        raise APIError(400, "logprobs are not supported by this server.", param="logprobs")
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    generation = _Generation(request, body.model, messages, None, body.token_limit(), sampling_options(body))
    await generation.start()
    model_id = generation.model.id
    if not body.stream:
        text, outcome = await generation.collect()
        return ChatCompletion(model=model_id, usage=_usage(outcome), choices=[
            ChatChoice(message=AssistantMessage(content=text), finish_reason=outcome.finish_reason)])
    chunk_id, created = new_id("chatcmpl"), now()
    usage_wanted = body.include_usage()

    def chunk(delta: ChunkDelta, finish: str | None = None) -> dict[str, Any]:
        data = ChatCompletionChunk(id=chunk_id, created=created, model=model_id,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)]).model_dump()
        if not usage_wanted:
            data.pop("usage")
        return data

    def last(outcome: GenerationOutcome) -> list[dict[str, Any]]:
        chunks = [chunk(ChunkDelta(), outcome.finish_reason)]
        if usage_wanted:
            chunks.append(ChatCompletionChunk(id=chunk_id, created=created, model=model_id, choices=[],
                                              usage=_usage(outcome)).model_dump())
        return chunks

    return _event_stream(generation, lambda: chunk(ChunkDelta(role="assistant", content="")),
                         _piece_json(chunk(ChunkDelta(content=_PIECE))), last)


@router.post("/v1/completions", response_model=Completion, responses=ERRORS,
             summary="Continue a prompt as it is (no chat template)")
async def completions(body: CompletionRequest, request: Request) -> Any:
    if body.logprobs:
        raise APIError(400, "logprobs are not supported by this server.", param="logprobs")
    prompt = body.prompt_text()
    if not prompt:
        raise APIError(400, "The prompt is empty.", param="prompt")
    generation = _Generation(request, body.model, None, prompt, body.max_tokens, sampling_options(body))
    await generation.start()
    model_id = generation.model.id
    echo = prompt if body.echo else ""
    if not body.stream:
        text, outcome = await generation.collect()
        return Completion(model=model_id, usage=_usage(outcome), choices=[
            CompletionChoice(text=echo + text, finish_reason=outcome.finish_reason)])
    chunk_id, created = new_id("cmpl"), now()

    def chunk(text: str, finish: str | None = None, usage: Usage | None = None) -> dict[str, Any]:
        data = Completion(id=chunk_id, created=created, model=model_id, usage=usage,
                          choices=[CompletionChoice(text=text, finish_reason=finish)]).model_dump()
        if usage is None:
            data.pop("usage")
        return data

    def last(outcome: GenerationOutcome) -> list[dict[str, Any]]:
        chunks = [chunk("", outcome.finish_reason)]
        if body.include_usage():
            final = Completion(id=chunk_id, created=created, model=model_id, choices=[], usage=_usage(outcome))
            chunks.append(final.model_dump())
        return chunks

    return _event_stream(generation, lambda: chunk(echo) if echo else None, _piece_json(chunk(_PIECE)), last)
