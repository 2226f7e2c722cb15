"""The app factory: the routes, the guards of limits.py, errors in OpenAI's shape, CORS only when origins are given,
and a log of every request (time, route, model, tokens, milliseconds, status) that never holds a prompt."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from desktop_ai import __version__
from desktop_ai.engine.errors import (
    EngineError,
    InvalidInputError,
    ModelClosedError,
    ModelTooLargeError,
    ModelUnavailableError,
)
from desktop_ai.server import app_routes, audio_routes, chat_routes, embedding_routes
from desktop_ai.server.engine_jobs import ServerEngine
from desktop_ai.server.limits import RETRY_AFTER_S, Admission, APIError, GuardMiddleware, ServerSettings
from desktop_ai.server.protocol import ErrorResponse, ModelCard, ModelList, error_body

logger = logging.getLogger(__name__)

STARTED = int(time.time())


@dataclass
class RequestRecord:
    """One line of the request log; what the window's Server page shows. Never the prompt or the text."""

    time: float
    method: str
    route: str
    model: str
    prompt_tokens: int
    tokens: int
    ms: float
    status: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Outside the guards, so refused requests (401, 413, 503) are logged too."""

    def __init__(self, app: Any, on_request: Callable[[RequestRecord], None]) -> None:
        self.app = app
        self.on_request = on_request

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        scope.setdefault("state", {})

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            state = scope.get("state") or {}
            record = RequestRecord(time.time(), scope.get("method", ""), scope.get("path", ""), state.get("model", ""),
                                   int(state.get("prompt_tokens", 0)), int(state.get("tokens", 0)),
                                   round((time.perf_counter() - started) * 1000, 1), status)
            try:
                self.on_request(record)
            except Exception:  # a log reader must never break a request
                logger.exception("The request log failed")


def _validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = location[0] if location else None
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    where = ".".join(location)
    message = first.get("msg", "Invalid request")
    return (f"Invalid value for '{where}': {message}." if where else f"Invalid request: {message}."), param


def _engine_error(error: EngineError) -> APIError:
    if isinstance(error, ModelClosedError):  # unloaded under the request: sending it again loads the model again
        return APIError(503, str(error), "server_error", code="model_unloaded",
                        headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(error, InvalidInputError):
        return APIError(400, str(error))
    if isinstance(error, ModelTooLargeError):
        return APIError(503, str(error), "server_error", code="model_too_large")
    if isinstance(error, ModelUnavailableError):
        return APIError(404, str(error), param="model", code="model_not_available")
    return APIError(400, str(error))


def create_app(settings: ServerSettings, engine: ServerEngine,
               on_request: Callable[[RequestRecord], None] | None = None) -> FastAPI:
    app = FastAPI(title="desktop-ai local API", version=__version__,
                  description="OpenAI-compatible routes over the models of desktop-ai, plus the app's own "
                  "(classification with your labels, translation, image recognition). Send the key as "
                  "'Authorization: Bearer KEY'.",
                  responses={401: {"model": ErrorResponse}})
    app.state.engine = engine
    app.state.settings = settings
    app.state.admission = Admission(settings.parallel, settings.queue)
    app.state.served = 0
    for module in (chat_routes, embedding_routes, audio_routes, app_routes):
        app.include_router(module.router)

    @app.get("/v1/models", response_model=ModelList, tags=["OpenAI: models"], summary="The models served")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=m.id, created=STARTED, task=m.task, title=m.title)
                               for m in engine.models.values()])

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, tags=["OpenAI: models"],
             responses={404: {"model": ErrorResponse}}, summary="One model served")
    async def get_model(model_id: str) -> ModelCard:
        model = engine.models.get(model_id)
        if model is None:
            raise APIError(404, f"The model '{model_id}' does not exist here.", param="model", code="model_not_found")
        return ModelCard(id=model.id, created=STARTED, task=model.task, title=model.title)

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(error)
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})."
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = str(error.detail)
        return JSONResponse(error_body(message, "invalid_request_error", code="unknown_url" if error.status_code == 404
                                       else None), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(EngineError)
    async def engine_error(_: Request, error: EngineError) -> JSONResponse:
        answer = _engine_error(error)
        return JSONResponse(answer.body(), status_code=answer.status, headers=answer.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("Unexpected failure in %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body("The server failed while answering; the details are in its log file.",
                                       "server_error"), status_code=500)

    def count(record: RequestRecord) -> None:
        app.state.served += 1
        logger.info("%s %s %s %d tokens %.0f ms -> %d", record.method, record.route, record.model or "-",
                    record.tokens, record.ms, record.status)
        if on_request is not None:
            on_request(record)

    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(RequestLog, on_request=count)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app
