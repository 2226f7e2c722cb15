"""`desktop-ai serve`: a real process, refused on a non-loopback address without a key, serving with one."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_ai.server.limits import UnsafeAddressError, check_listen_address, is_loopback

openai = pytest.importorskip("openai", reason="the test extra (openai) is not installed")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                            ("192.168.1.20", False)])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_listen_address(host, None)
    else:
        with pytest.raises(UnsafeAddressError, match="without an API key"):
            check_listen_address(host, None)
        check_listen_address(host, "a-key")


def test_serve_refuses_a_non_loopback_address_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    from desktop_ai.cli.main import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: Refusing to listen on 0.0.0.0 without an API key")


def test_serve_process_answers_with_the_key_and_logs_the_request(tmp_path: Path) -> None:
    from desktop_ai.server.serving import free_port

    port = free_port()
    env = dict(os.environ, DESKTOP_AI_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop_ai.cli.main", "serve", "--port", str(port), "--api-key", "k3y", "--log-json",
         "--cors", "http://app.example"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        started = json.loads(process.stdout.readline())
        assert started["event"] == "started" and started["url"] == f"http://127.0.0.1:{port}/v1"
        assert "smollm2-135m-instruct-q4" in started["models"]
        client = openai.OpenAI(base_url=started["url"], api_key="k3y", max_retries=0)
        assert "whisper-tiny.en" in {m.id for m in client.models.list()}
        record = json.loads(process.stdout.readline())
        assert record["event"] == "request" and record["route"] == "/v1/models" and record["status"] == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=started["url"], api_key="nope", max_retries=0).models.list()
        assert json.loads(process.stdout.readline())["status"] == 401
        # CORS: a browser page from the given origin may call it, one from any other may not
        for origin, allowed in (("http://app.example", True), ("http://evil.example", False)):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("OPTIONS", "/v1/models", headers={
                "Origin": origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"})
            response = connection.getresponse()
            response.read()
            connection.close()
            assert (response.getheader("access-control-allow-origin") == origin) is allowed
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err  # the CLI's exit code for Ctrl+C, after uvicorn shut down cleanly
    assert err.strip().endswith("stopped") and "Traceback" not in err
