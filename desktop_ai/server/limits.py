"""Everything that keeps the server safe, in one place: where it may listen, the API key, body and upload sizes,
how many requests run and wait, and errors in OpenAI's shape with no stack trace in any of them.

The key is compared in constant time (hmac.compare_digest) on every request, before the route is even looked up,
so an unknown route without the key is a 401, not a 404 that tells what exists."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.server.protocol import error_body

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 2 * 1024**2  # a JSON request: a whole 4096-token conversation is under 50 kB
MAX_UPLOAD_BYTES = 25 * 1024**2  # an audio file or an image (OpenAI's own limit on audio uploads)
UPLOAD_PREFIXES = ("/v1/audio/", "/v1/images/")
RETRY_AFTER_S = 2
PUBLIC_PATHS = ()  # every path needs the key when one is set, the OpenAPI page included


@dataclass
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    parallel: int = 4  # requests that run at once (the rest wait in the queue)
    queue: int = 16  # requests that may wait; beyond them: 503 with Retry-After
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = MAX_BODY_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    log_prompts: bool = False  # prompts and texts go to the log only when the user asks
    use_cache: bool = True
    device: str = "auto"
    models: list[str] = field(default_factory=list)  # served besides the catalogue's installed ones


class APIError(Exception):
    """An answer in OpenAI's error shape; `message` is written for the client and holds no internals."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class UnsafeAddressError(ValueError):
    """Listening beyond this machine without a key would hand the models to anyone on the network."""


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name: every address it resolves to must be loopback
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_listen_address(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise UnsafeAddressError(
            f"Refusing to listen on {host} without an API key: anyone who can reach this machine could use its models. "
            "Give --api-key KEY (clients send it as 'Authorization: Bearer KEY'), or listen on 127.0.0.1."
        )


def new_api_key() -> str:
    return "dai-" + secrets.token_urlsafe(32)


async def send_error(send: Callable[..., Any], error: APIError) -> None:
    import json

    body = json.dumps(error.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    """The API key, then the body size (from Content-Length, and counted as it arrives for chunked bodies)."""

    def __init__(self, app: Any, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        self._key = settings.api_key.encode("utf-8") if settings.api_key else None

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._key is not None and not self._authorized(scope):
            await send_error(send, APIError(401, "Incorrect or missing API key: send 'Authorization: Bearer KEY'.",
                                            "invalid_request_error", code="invalid_api_key",
                                            headers={"WWW-Authenticate": "Bearer"}))
            return
        path = scope.get("path", "")
        limit = (self.settings.max_upload_bytes if path.startswith(UPLOAD_PREFIXES) else self.settings.max_body_bytes)
        too_large = APIError(413, f"The request body is larger than {limit:,} bytes.", code="request_too_large")
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, too_large)
            return
        received = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await send_error(send, too_large)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        assert self._key is not None
        given = b""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                given = value
                break
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer":
            token = b""
        # compare_digest takes the same time whatever the first differing byte, so timing tells nothing of the key
        return hmac.compare_digest(token.strip(), self._key)


class Admission:
    """At most `parallel` requests run; up to `queue` more wait; beyond that a request is refused at once with 503
    and Retry-After, instead of piling up until clients time out."""

    def __init__(self, parallel: int, queue: int) -> None:
        self.parallel = parallel
        self.capacity = parallel + queue
        self._running = asyncio.Semaphore(parallel)
        self.inside = 0  # running and waiting

    async def enter(self) -> None:
        if self.inside >= self.capacity:
            raise APIError(503, "The server is busy: too many requests at once. Retry shortly.", "server_error",
                           code="server_busy", headers={"Retry-After": str(RETRY_AFTER_S)})
        self.inside += 1
        try:
            await self._running.acquire()
        except BaseException:
            self.inside -= 1
            raise

    def leave(self) -> None:
        self._running.release()
        self.inside -= 1
