"""`bench --task serve`: the local API server against the same generation in-process, and against llama-cpp-python's
own OpenAI server (`python -m llama_cpp.server`) on the same GGUF, with the same client (the official `openai`) and
prompts, one client and four at once.

Every run generates exactly N tokens (our server: min_tokens; llama_cpp.server: a logit bias of -100 on the end
tokens), greedy, so tokens per second compare like with like; every answer's content chunks are counted, and one
that streamed fewer than asked (an answer cut short) is called out as not comparable. Each server runs in a process
of its own, with the same context size and threads as the in-process model; each keeps the key/value cache of the
prompt it last read and reads again only what differs (llama.cpp's prompt reuse, which the in-process Llama does
too). Runs alternate between the setups, round by round, so a busy machine slows each alike; numbers are medians."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median
from desktop_ai.engine.models.store import ModelStore

logger = logging.getLogger(__name__)

PROMPTS = (
    "Tell me about the history of Lisbon.",
    "Explain how a bicycle gear works.",
    "Describe a walk through a pine forest.",
    "What makes a good cup of coffee?",
)
GOAL_SPEED = 0.95  # one client through the server: at least this share of in-process tokens per second
GOAL_FIRST_TOKEN_MS = 15.0  # and at most this much added to the first token
GOAL_VS_LLAMA_ONE = 1.0
GOAL_VS_LLAMA_FOUR = 1.5
SHORT_CHUNKS = 4  # an answer with fewer than tokens - this many chunks did not make its tokens


def _stream_chat(client: Any, model: str, prompt: str, tokens: int, extra: dict[str, Any]) -> tuple[float, float, int]:
    """(seconds to the first text, seconds in all, content chunks) for one streamed answer."""
    started = time.perf_counter()
    first = None
    chunks = 0
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            temperature=0, max_tokens=tokens, stream=True, extra_body=extra)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started, chunks


def _together(client: Any, model: str, tokens: int, extra: dict[str, Any], clients: int) -> tuple[float, int]:
    """Total tokens per second of `clients` streamed answers at once (each asked for exactly `tokens`), and the fewest
    content chunks any of them streamed (about one per token: fewer means an answer ended or was cut early)."""
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def one(prompt: str) -> None:
        result = _stream_chat(client, model, prompt, tokens, extra)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(PROMPTS[i % len(PROMPTS)],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * tokens / (time.perf_counter() - started), min(chunks for _, _, chunks in results)


def _start_our_server(port: int, device: str) -> subprocess.Popen:
    """`desktop-ai serve` with four sequences decoded together and no result cache (each round must generate)."""
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_ai.cli.main", "serve", "--port", str(port), "--parallel", "4", "--queue", "8",
         "--device", device, "--no-cache"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _start_llama_server(path: str, port: int, threads: int, context: int) -> subprocess.Popen | None:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("pydantic_settings") is None \
            or importlib.util.find_spec("starlette_context") is None:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", path, "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(context), "--n_threads", str(threads), "--n_threads_batch", str(threads),
         "--flash_attn", "true", "--verbose", "false",
         # by default a new request cuts the one streaming short (it ends with [DONE] after a few tokens), which
         # would count four clients' tokens that were never made; here each waits its turn, as documented
         "--interrupt_requests", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_listening(client: Any, process: subprocess.Popen | None, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            client.models.list()
            return True
        except Exception:
            threading.Event().wait(0.2)
    return False


def bench_serve(store: ModelStore, model: str, device: str, max_new_tokens: int, repeats: int,
                say: Callable[[str], None]) -> BenchReport:
    import openai

    from desktop_ai.engine.runtimes.causal_lm import SamplingOptions
    from desktop_ai.engine.tasks.text_generation import TextGenerator
    from desktop_ai.server.serving import free_port

    generator = TextGenerator(store, None, model, device, "int8")
    lm = generator.load(lambda message, fraction=None: say(message))
    if lm.runtime != "llama.cpp":
        raise ValueError("bench --task serve measures a GGUF model on llama.cpp (the embedded SmolLM2 by default).")
    tokens = max_new_tokens
    eog = lm._end_of_generation_ids()
    # Our server runs as `desktop-ai serve` in a process of its own, as users run it and as llama_cpp.server runs
    # here: in this process its event loop would share one GIL with the bench's client threads.
    port = free_port()
    say("Starting desktop-ai serve")
    server = _start_our_server(port, device)
    ours = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=600)
    if not _wait_listening(ours, server):
        server.kill()
        raise RuntimeError("desktop-ai serve did not start: " + (server.communicate()[1] or "")[-2000:])
    ours_extra = {"min_tokens": tokens}
    llama_port = free_port()
    say("Starting llama_cpp.server on the same GGUF")
    llama = _start_llama_server(str(lm.path), llama_port, lm.threads, lm.context_length)
    theirs = openai.OpenAI(base_url=f"http://127.0.0.1:{llama_port}/v1", api_key="bench", max_retries=0, timeout=600)
    theirs_extra = {"logit_bias": {str(t): -100 for t in eog}}
    llama_ok = llama is not None and _wait_listening(theirs, llama)
    samples: dict[str, list[float]] = {k: [] for k in (
        "in-process tok/s", "in-process first ms", "server tok/s", "server first ms", "server x4 tok/s",
        "llama tok/s", "llama first ms", "llama x4 tok/s", "server chunks", "server x4 chunks", "llama chunks",
        "llama x4 chunks")}
    try:
        prompt = PROMPTS[0]
        ids = lm.chat_tokens([{"role": "user", "content": prompt}])
        options = SamplingOptions(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0, top_k=0, top_p=1.0,
                                  repetition_penalty=1.0)
        _stream_chat(ours, lm.model_id, prompt, 4, {})  # warm both servers: the first decode of a context is slower
        if llama_ok:
            _stream_chat(theirs, lm.model_id, prompt, 4, {})
        for round_ in range(1, repeats + 1):
            say(f"Serve bench: round {round_} of {repeats}")
            started = time.perf_counter()
            result = lm.stream(ids, options)
            total = time.perf_counter() - started
            samples["in-process tok/s"].append(result.new_tokens / total)
            samples["in-process first ms"].append(((result.first_token_at or started) - started) * 1000)
            first, total, chunks = _stream_chat(ours, lm.model_id, prompt, tokens, ours_extra)
            samples["server tok/s"].append(tokens / total)
            samples["server first ms"].append(first * 1000)
            samples["server chunks"].append(chunks)
            speed, fewest = _together(ours, lm.model_id, tokens, ours_extra, 4)
            samples["server x4 tok/s"].append(speed)
            samples["server x4 chunks"].append(fewest)
            if llama_ok:
                first, total, chunks = _stream_chat(theirs, lm.model_id, prompt, tokens, theirs_extra)
                samples["llama tok/s"].append(tokens / total)
                samples["llama chunks"].append(chunks)
                samples["llama first ms"].append(first * 1000)
                speed, fewest = _together(theirs, lm.model_id, tokens, theirs_extra, 4)
                samples["llama x4 tok/s"].append(speed)
                samples["llama x4 chunks"].append(fewest)
    finally:
        server.terminate()
        server.wait(30)
        if llama is not None:
            llama.terminate()
            llama.wait(30)
    m = {key: median(values) for key, values in samples.items() if values}
    fewest = {key: min(values) for key, values in samples.items() if key.endswith("chunks") and values}
    report = BenchReport("serve", lm.model_id, lm.device, environment=environment())
    report.environment["runtime"] = lm.runtime
    report.rows.append(BenchRow("in-process (LlamaCppLM.stream), 1 answer", lm.compression,
                                {"tokens/s": m["in-process tok/s"], "first token ms": m["in-process first ms"]}))
    report.rows.append(BenchRow("desktop-ai serve, 1 client", lm.compression,
                                {"tokens/s": m["server tok/s"], "first token ms": m["server first ms"]}))
    report.rows.append(BenchRow("desktop-ai serve, 4 clients at once", lm.compression,
                                {"tokens/s": m["server x4 tok/s"]}))
    if llama_ok:
        report.rows.append(BenchRow("llama_cpp.server, 1 client", lm.compression,
                                    {"tokens/s": m["llama tok/s"], "first token ms": m["llama first ms"]}))
        report.rows.append(BenchRow("llama_cpp.server, 4 clients at once", lm.compression,
                                    {"tokens/s": m["llama x4 tok/s"]}))
    speed = m["server tok/s"] / m["in-process tok/s"]
    added = m["server first ms"] - m["in-process first ms"]
    report.notes.append(f"One client through the server: {speed:.2f}x the in-process tokens per second (goal "
                        f"{GOAL_SPEED:g}: **{'met' if speed >= GOAL_SPEED else 'not met'}**), first token "
                        f"{added:+.1f} ms (goal at most +{GOAL_FIRST_TOKEN_MS:g}: "
                        f"**{'met' if added <= GOAL_FIRST_TOKEN_MS else 'not met'}**).")
    short = {key: value for key, value in fewest.items() if value < tokens - SHORT_CHUNKS}
    report.notes.append("Fewest content chunks in any answer (one per token, a few fewer where text is held back "
                        "for a stop string or an unfinished character): "
                        + ", ".join(f"{key.replace(' chunks', '')} {value:g}" for key, value in fewest.items())
                        + f" of {tokens} tokens asked for.")
    if short:
        report.notes.append(f"**Not comparable**: {', '.join(short)} streamed fewer than {tokens - SHORT_CHUNKS} "
                            "chunks, so those answers ended or were cut early and their tokens per second count "
                            "tokens never made.")
    if llama_ok:
        one = m["server tok/s"] / m["llama tok/s"]
        four = m["server x4 tok/s"] / m["llama x4 tok/s"]
        report.notes.append(f"Against llama_cpp.server: {one:.2f}x with one client (goal {GOAL_VS_LLAMA_ONE:g}: "
                            f"**{'met' if one >= GOAL_VS_LLAMA_ONE else 'not met'}**), {four:.2f}x in total with four "
                            f"(goal {GOAL_VS_LLAMA_FOUR:g}: **{'met' if four >= GOAL_VS_LLAMA_FOUR else 'not met'}**).")
    else:
        report.notes.append("llama_cpp.server was not measured: it needs llama-cpp-python's [server] extra "
                            "(pip install \"desktop-ai[serve-bench]\").")
    report.notes.append(f"{repeats} round(s), greedy, exactly {tokens} new tokens per answer; medians. Tokens per "
                        "second count from the request to the last token; 4 clients: all tokens over the wall time.")
    return report
