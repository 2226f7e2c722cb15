"""`serve`: the local OpenAI-compatible API, so editors, scripts and other apps use the app's models.

Safe by default: it listens on 127.0.0.1, refuses any other address without an API key, checks the key on every
request, and keeps prompts out of the log unless --log-prompts is given."""

from __future__ import annotations

import argparse
import os
from typing import Any

from desktop_ai.cli.options import device_name, positive_int
from desktop_ai.cli.output import EXIT_OK, CliError, err, print_json, quiet_libraries

API_KEY_ENV = "DESKTOP_AI_API_KEY"


def port_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535; 0 picks a free one)")
    return number


def queue_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return number


def _check_port_free(host: str, port: int) -> None:
    """A port in use is one clear line, before the models are looked at, not uvicorn's log and exit."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C. With --log-json every request is one JSON line on stdout (the window reads them)."""
    quiet_libraries(args.verbose)
    from desktop_ai.server.limits import ServerSettings, UnsafeAddressError, check_listen_address

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    settings = ServerSettings(host=args.host, port=args.port, api_key=api_key, parallel=args.parallel,
                              queue=args.queue, cors_origins=list(args.cors or []), log_prompts=args.log_prompts,
                              use_cache=not args.no_cache, device=args.device)
    try:
        check_listen_address(settings.host, api_key)
    except UnsafeAddressError as error:
        raise CliError(str(error)) from None
    _check_port_free(settings.host, settings.port)
    on_request: Any = None
    if args.log_json:
        def on_request(record: Any) -> None:
            print_json({"event": "request", **record.to_dict()})
    try:
        from desktop_ai.server.serving import ApiServer

        server = ApiServer(settings, on_request)
    except UnsafeAddressError as error:
        raise CliError(str(error)) from None
    def listening() -> None:
        models = ", ".join(sorted(server.engine.models)) or "none installed"
        key_note = "the API key is required" if api_key else "no API key (loopback only)"
        err(f"Serving on {server.url}/v1 ({key_note}); models: {models}. Ctrl+C stops it.")
        if args.log_json:
            print_json({"event": "started", "url": f"{server.url}/v1", "models": sorted(server.engine.models)})

    server.run(listening)
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="serve the models over an OpenAI-compatible HTTP API",
                                description="Serve the app's models to other programs over OpenAI's API "
                                "(/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/audio/transcriptions, "
                                "/v1/models) and the app's own routes; the OpenAPI page is at /docs.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only; any other needs --api-key)")
    serve.add_argument("--port", type=port_number, default=8765, help="port (default: 8765)")
    serve.add_argument("--api-key", metavar="KEY", default=None,
                       help=f"key clients must send as 'Authorization: Bearer KEY' (or set {API_KEY_ENV})")
    serve.add_argument("--parallel", type=positive_int, default=4, metavar="N",
                       help="requests that run at once (default: 4)")
    serve.add_argument("--queue", type=queue_size, default=16, metavar="N",
                       help="requests that may wait beyond those; more get 503 with Retry-After (default: 16)")
    serve.add_argument("--cors", nargs="+", metavar="ORIGIN", default=None,
                       help="let web pages from these origins call the API (default: none)")
    serve.add_argument("--device", type=device_name, default="auto", metavar="{auto,cpu,cuda,mps}",
                       help="where to run the models (default: auto)")
    serve.add_argument("--no-cache", action="store_true", help="don't read or write the results cache")
    serve.add_argument("--log-prompts", action="store_true", help="write prompts and texts to the log (off by default)")
    serve.add_argument("--log-json", action="store_true", help="one JSON line per request on stdout")
    serve.set_defaults(handler=cmd_serve)
