"""The local API server, driven by the official `openai` client (and raw HTTP where the client hides what is checked)
against a real uvicorn server on 127.0.0.1, on the embedded models: SmolLM2 on llama.cpp, MiniLM, Whisper tiny.en.
One server for the module, so every model loads once."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

openai = pytest.importorskip("openai", reason="the test extra (openai) is not installed")

from desktop_ai.server.limits import Admission, ServerSettings  # noqa: E402

KEY = "test-key-0123456789"
MODEL = "smollm2-135m-instruct-q4"
QUESTION = [{"role": "user", "content": "Which city is the capital of France?"}]  # "The capital of France is Paris."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from desktop_ai.server.serving import ApiServer, free_port

    home = tmp_path_factory.mktemp("server-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DESKTOP_AI_HOME", str(home))
        patch.setenv("HF_HUB_OFFLINE", "1")
        api = ApiServer(ServerSettings(port=free_port(), api_key=KEY, parallel=4, queue=4))
        api.start()
        yield api
        api.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
        key: str | None = KEY) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def assert_error(status: int, data: bytes, expected: int, param: str | None = None) -> dict:
    assert status == expected, data
    body = json.loads(data)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    return body["error"]


def test_models_list_has_the_embedded_models(client) -> None:
    ids = {model.id for model in client.models.list()}
    assert {MODEL, "all-minilm-l6-v2", "whisper-tiny.en"} <= ids
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_answers_with_usage_and_finish_reason(client, server) -> None:
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20)
    choice = answer.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop"
    # the chat template wraps the question in SmolLM2's system and turn markers: more tokens than the words
    assert answer.usage.prompt_tokens > 10
    assert 0 < answer.usage.completion_tokens < 20
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    cut = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_completion_tokens=3)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 3
    assert choice.message.content.startswith(cut.choices[0].message.content)


def test_chat_streams_the_same_answer_with_usage_last(client, server) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20)
    server.engine.workspace.cache.clear()  # stream it for real, not from the cache
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20,
                                                 stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # token by token, not one block
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done_on_the_wire(server) -> None:
    body = json.dumps({"model": MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 5, "stream": True})
    status, headers, data = raw(server, "POST", "/v1/chat/completions", body.encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line for line in data.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_stop_ends_the_answer_before_the_stop_text(client) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20)
    text = whole.choices[0].message.content
    assert "Paris" in text
    stopped = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=20,
                                             stop=["Paris"])
    assert stopped.choices[0].message.content == text[: text.index("Paris")]
    assert stopped.choices[0].finish_reason == "stop"


def test_a_fixed_seed_repeats_and_another_seed_differs(client, server) -> None:
    prompt = [{"role": "user", "content": "Write a short poem about the sea."}]  # many good next words

    def sample(seed: int) -> str:
        server.engine.workspace.cache.clear()  # sampled for real each time, not read back from the cache
        answer = client.chat.completions.create(model=MODEL, messages=prompt, temperature=1.0, top_p=0.95,
                                                seed=seed, max_tokens=12)
        return answer.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert sample(99) != first


def test_completions_continue_the_prompt(client) -> None:
    answer = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=6)
    assert answer.object == "text_completion"
    assert answer.choices[0].text.strip()
    assert answer.usage.completion_tokens <= 6
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_embeddings_rank_a_paraphrase_above_an_unrelated_sentence(client, server) -> None:
    texts = ["A man is playing a guitar on stage.", "Someone performs music with a guitar in a concert.",
             "The quarterly tax report is due on Friday."]
    result = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert result.usage.prompt_tokens > 10
    # base64: little-endian float32, the same vector
    status, _, data = raw(server, "POST", "/v1/embeddings", json.dumps(
        {"model": "all-minilm-l6-v2", "input": texts[0], "encoding_format": "base64"}).encode())
    assert status == 200
    decoded = np.frombuffer(base64.b64decode(json.loads(data)["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-6)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng (a system package) is absent")
def test_transcription_of_spoken_words(client, tmp_path: Path) -> None:
    wav = tmp_path / "fox.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "-v", "en-us", "-s", "150",
                    "the quick brown fox jumps over the lazy dog"], check=True)
    with wav.open("rb") as audio:
        text = client.audio.transcriptions.create(model="whisper-tiny.en", file=audio).text
    words = text.lower().replace(".", "").replace(",", "").split()
    assert {"quick", "brown", "fox", "over", "lazy", "dog"} <= set(words)
    with wav.open("rb") as audio:
        verbose = client.audio.transcriptions.create(model="whisper-tiny.en", file=audio,
                                                     response_format="verbose_json")
    assert verbose.duration > 1.5 and verbose.segments and verbose.segments[-1].end <= verbose.duration + 0.1
    with wav.open("rb") as audio:
        srt = client.audio.transcriptions.create(model="whisper-tiny.en", file=audio, response_format="srt")
    assert srt.startswith("1\n00:00:0") and "-->" in srt and "fox" in srt.lower()


def test_classify_with_own_labels_and_recognize_a_photo(server) -> None:
    body = {"input": ["The match ended two nil after a late goal.", "Preheat the oven and whisk the eggs."],
            "labels": ["sports", "cooking", "politics"]}
    status, _, data = raw(server, "POST", "/v1/classifications", json.dumps(body).encode())
    assert status == 200, data
    labels = [item["label"] for item in json.loads(data)["data"]]
    assert labels == ["sports", "cooking"]

    from packaged_photos import packaged_photos

    daisy = next(p for p in packaged_photos() if "flower" in p.name or "daisy" in p.name)
    boundary = "desktopaiboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{daisy.name}\"\r\n"
               f"Content-Type: image/jpeg\r\n\r\n").encode() + daisy.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, _, data = raw(server, "POST", "/v1/images/recognitions", payload,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, data
    top = json.loads(data)["data"]
    assert len(top) == 5 and "daisy" in top[0]["label"].lower()


# --- errors ------------------------------------------------------------------------------------------------------
def test_errors_come_in_openai_shape_with_their_status(server) -> None:
    status, _, data = raw(server, "POST", "/v1/chat/completions", b"{not json")
    assert_error(status, data, 400)
    status, _, data = raw(server, "POST", "/v1/chat/completions", json.dumps(
        {"model": MODEL, "messages": QUESTION, "temperature": 5}).encode())
    assert_error(status, data, 400, "temperature")
    status, _, data = raw(server, "POST", "/v1/chat/completions", json.dumps(
        {"model": MODEL, "messages": QUESTION, "max_tokens": 100_000}).encode())
    error = assert_error(status, data, 400, "max_tokens")
    assert error["code"] == "context_length_exceeded" and "maximum context length is" in error["message"]
    status, _, data = raw(server, "POST", "/v1/chat/completions", json.dumps(
        {"model": "../../etc/passwd", "messages": QUESTION}).encode())
    assert assert_error(status, data, 404, "model")["code"] == "model_not_found"
    status, _, data = raw(server, "POST", "/v1/embeddings", json.dumps(
        {"model": MODEL, "input": "hello"}).encode())
    assert_error(status, data, 400, "model")
    status, _, data = raw(server, "GET", "/v1/no-such-route")
    assert assert_error(status, data, 404)["code"] == "unknown_url"
    status, _, data = raw(server, "POST", "/v1/chat/completions", b'{"model": "' + b"x" * (3 * 1024**2) + b'"}')
    assert assert_error(status, data, 413)["code"] == "request_too_large"


def test_cors_is_off_unless_origins_are_given(server) -> None:
    status, headers, _ = raw(server, "GET", "/v1/models", headers={"Origin": "http://page.example"})
    assert status == 200
    assert not any(name.lower().startswith("access-control-") for name in headers)


def test_unsupported_parameters_are_refused(server) -> None:
    for extra, param in (({"n": 2}, "n"), ({"logprobs": True}, "logprobs")):
        status, _, data = raw(server, "POST", "/v1/chat/completions", json.dumps(
            {"model": MODEL, "messages": QUESTION, **extra}).encode())
        assert_error(status, data, 400, param)


def test_the_key_is_required_on_every_request(server) -> None:
    for key in (None, "wrong-key", KEY + "x"):
        status, headers, data = raw(server, "GET", "/v1/models", key=key)
        assert assert_error(status, data, 401)["code"] == "invalid_api_key"
    status, _, data = raw(server, "GET", "/v1/no-such-route", key=None)  # 401 before anything about routes
    assert status == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_busy_server_answers_503_with_retry_after(server, client) -> None:
    """One slot and no queue: while a long answer holds the slot, the next request is refused at once."""
    saved = server.app.state.admission
    server.app.state.admission = Admission(1, 0)
    try:
        stream = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=400,
                                                extra_body={"min_tokens": 400}, stream=True, seed=5)
        next(iter(stream))
        status, headers, data = raw(server, "POST", "/v1/chat/completions", json.dumps(
            {"model": MODEL, "messages": QUESTION, "max_tokens": 2}).encode())
        assert assert_error(status, data, 503)["code"] == "server_busy"
        assert int(headers["retry-after"]) > 0
        stream.close()
    finally:
        _wait_until(lambda: server.engine.counters.generations_running == 0)
        server.app.state.admission = saved


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        event.wait(0.01)


def test_a_client_that_disconnects_stops_the_generation(server) -> None:
    counters = server.engine.counters
    cancelled_before = counters.generations_cancelled
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = json.dumps({"model": MODEL, "messages": QUESTION, "max_tokens": 1500, "min_tokens": 1500,
                       "stream": True, "seed": 3})
    connection.request("POST", "/v1/chat/completions", body=body,
                       headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    response = connection.getresponse()
    received = 0
    while received < 10:  # ten content events
        line = response.fp.readline()
        received += line.startswith(b"data: {") and b'"content"' in line
    at_close = counters.streamed_pieces
    response.close()
    connection.close()
    _wait_until(lambda: counters.generations_cancelled > cancelled_before)
    assert counters.generations_running == 0
    after = counters.streamed_pieces
    # SmolLM2 makes ~1500 tokens in 10+ s here; it stopped within a few tokens of the client leaving
    assert after - at_close < 20, (at_close, after)
    threading.Event().wait(0.3)
    assert counters.streamed_pieces == after  # and it stays stopped


def test_four_clients_at_once_each_get_their_whole_answer(client, server) -> None:
    questions = ["Which city is the capital of France?", "What is 2 plus 2?", "Name a colour of the sky.",
                 "What do bees make?"]

    def ask(question: str) -> str:
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                                temperature=0, max_tokens=12)
        return answer.choices[0].message.content

    alone = [ask(q) for q in questions]
    server.engine.workspace.cache.clear()
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ask, questions))
    assert together == alone
    assert all(text.strip() for text in together)


@pytest.fixture(scope="module")
def single_server(server):
    """--parallel 1: requests take turns on the model's own Llama (LlamaCppLM.stream), not the batched decoder."""
    from desktop_ai.server.serving import ApiServer, free_port

    api = ApiServer(ServerSettings(port=free_port(), api_key=KEY, parallel=1, queue=4, use_cache=False))
    api.start()
    yield api
    api.stop()


def _loaded_lm(api):
    return api.engine.generator(api.engine.models[MODEL]).load()


@pytest.mark.parametrize("decoder", ["batched", "single"])
def test_logit_bias_and_penalties_change_the_answer(decoder: str, request: pytest.FixtureRequest) -> None:
    api = request.getfixturevalue("server" if decoder == "batched" else "single_server")
    api.engine.workspace.cache.clear()
    ask = openai.OpenAI(base_url=api.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    lm = _loaded_lm(api)
    paris, lisbon = lm.tokenize(" Paris"), lm.tokenize(" Lisbon")
    assert len(paris) == len(lisbon) == 1

    def chat(max_tokens: int = 12, **extra) -> str:
        return ask.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=max_tokens,
                                           **extra).choices[0].message.content

    assert "Paris" in chat()
    assert "Paris" not in chat(logit_bias={str(paris[0]): -100}) != ""
    assert chat(max_tokens=4, logit_bias={str(lisbon[0]): 100}) == " Lisbon Lisbon Lisbon Lisbon"
    counting = "one, one, one, one, one, one, one,"

    def complete(**extra) -> str:
        return ask.completions.create(model=MODEL, prompt=counting, temperature=0, max_tokens=12, **extra).choices[0].text

    assert complete().count("one") >= 5
    assert complete(frequency_penalty=2.0).count("one") <= 2
    assert complete(presence_penalty=2.0).count("one") <= 2
    if decoder == "batched":  # it really went through the batched decoder
        assert lm._decoder is not None and lm._decoder.decodes > 0


def test_logit_bias_outside_the_vocabulary_is_refused(server) -> None:
    for bias in ({"99999999": 5}, {"paris": 5}, {"12": 500}):
        body = json.dumps({"model": MODEL, "messages": QUESTION, "max_tokens": 2, "logit_bias": bias}).encode()
        status, _, data = raw(server, "POST", "/v1/chat/completions", body)
        assert_error(status, data, 400, param="logit_bias")


def test_batched_decoder_reuses_the_prompt_and_counts_in_the_memory_budget(client, server) -> None:
    lm = _loaded_lm(server)
    answers, reused = [], []
    for _ in range(2):
        server.engine.workspace.cache.clear()
        before = lm._decoder.reused_tokens if lm._decoder else 0
        answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=12)
        answers.append(answer.choices[0].message.content)
        reused.append(lm._decoder.reused_tokens - before)
    assert answers[0] == answers[1]  # the kept cells give the same answer as reading the prompt again
    assert reused[1] == answer.usage.prompt_tokens - 1  # all but the last prompt token, read for its logits
    decoder_bytes = lm.batched_decoder_bytes()
    assert decoder_bytes == 4 * lm.context_length * lm._kv_bytes_per_token > 100e6  # 4 slots of 4096 tokens
    listed = next(m for m in server.engine.workspace.store.loaded.describe() if m["model"] == MODEL)
    assert listed["mb"] * 1e6 >= lm.weights_bytes() + decoder_bytes - 1e5


def test_growing_a_model_unloads_others_or_is_refused() -> None:
    from desktop_ai.engine.errors import ModelUnavailableError
    from desktop_ai.engine.models.store import LoadedModels

    class Model:
        def state_bytes(self) -> int:
            return 0

    loaded = LoadedModels(budget_bytes=100)
    model = Model()
    loaded.get_or_load(("other",), lambda: (object(), 30))
    loaded.get_or_load(("chat",), lambda: (model, 50))
    loaded.grow(model, 10)
    assert len(loaded) == 2
    loaded.grow(model, 40)  # 30 + 50 + 40 > 100: the least recently used other model goes
    assert [m["model"] for m in loaded.describe()] == ["chat"]
    with pytest.raises(ModelUnavailableError, match="more than the whole memory budget"):
        loaded.grow(model, 60)


@pytest.mark.parametrize("how", ["evicted", "closed"])
def test_unloading_the_model_while_a_batch_runs(how: str, client, server) -> None:
    import gc

    server.engine.workspace.cache.clear()
    lm = _loaded_lm(server)
    decoder = lm.batched_decoder(4)
    stream = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=60,
                                            stream=True, extra_body={"min_tokens": 60})
    pieces = []
    store = server.engine.workspace.store.loaded
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if len(pieces) == 3:
                store.drop(lambda key: key[0] == MODEL)  # what the memory budget does: the store lets it go
                if how == "closed":
                    lm.close()  # what shutting down does
        outcome = "finished"
    except openai.APIError as error:
        outcome = str(error)
    if how == "evicted":  # the running request holds the model: its batch finishes, then the model goes
        assert outcome == "finished" and len(pieces) == 60
        del lm
        _wait_until(lambda: gc.collect() is not None and decoder.closed)
    else:
        assert "unloaded while it answered" in outcome and 3 <= len(pieces) < 60
        assert decoder.closed
    # the server goes on: the next request loads the model again and answers
    answer = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=12)
    assert "Paris" in answer.choices[0].message.content
