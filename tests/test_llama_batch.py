"""Batched llama.cpp decoding (engine/runtimes/llama_cpp_batch.py) on the embedded SmolLM2: four requests at once
get the same greedy answers as one at a time, decoded together in shared batches; stop, min tokens and cancel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (it builds from source)")

from desktop_ai.engine.runtimes.causal_lm import SamplingOptions  # noqa: E402

QUESTIONS = ("Which city is the capital of France?", "What is 2 plus 2?", "Name a colour of the sky.", "What do bees make?")


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory):
    from desktop_ai.engine.models.store import ModelStore
    from desktop_ai.engine.runtimes.llama_cpp_batch import BatchedLlamaDecoder
    from desktop_ai.engine.tasks.text_generation import TextGenerator

    store = ModelStore(tmp_path_factory.mktemp("converted"))
    lm = TextGenerator(store, None, "smollm2-135m-instruct-q4").load()
    assert lm.runtime == "llama.cpp"
    decoder = BatchedLlamaDecoder(lm, slots=4)
    yield lm, decoder
    decoder.close()


def greedy(tokens: int = 12, **kwargs) -> SamplingOptions:
    return SamplingOptions(max_new_tokens=tokens, temperature=0.0, repetition_penalty=1.0, **kwargs)


def test_four_at_once_match_one_at_a_time_and_share_batches(batched) -> None:
    lm, decoder = batched
    prompts = [lm.chat_tokens([{"role": "user", "content": q}]) for q in QUESTIONS]
    alone = [decoder.stream(p, greedy()).text for p in prompts]
    assert "Paris" in alone[0]
    decodes, together_before = decoder.decodes, decoder.sequences_decoded
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: decoder.stream(p, greedy()).text, prompts))
    assert together == alone
    assert decoder.most_together >= 3  # sequences really shared decodes
    assert (decoder.sequences_decoded - together_before) > 1.5 * (decoder.decodes - decodes)
    # and the same answer as the Llama object's own generation
    assert lm.stream(prompts[0], greedy()).text == alone[0]


def test_stop_min_tokens_and_cancel(batched) -> None:
    lm, decoder = batched
    prompt = lm.chat_tokens([{"role": "user", "content": QUESTIONS[0]}])
    whole = decoder.stream(prompt, greedy(16)).text
    cut = decoder.stream(prompt, greedy(16, stop=["Paris"]))
    assert cut.text == whole[: whole.index("Paris")]
    long = decoder.stream(prompt, greedy(24, min_new_tokens=24))
    assert long.new_tokens == 24 and len(long.text) > len(whole)
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 5:
            cancel.set()

    stopped = decoder.stream(prompt, greedy(400, min_new_tokens=400), on_text, cancel)
    assert stopped.cancelled and stopped.new_tokens <= 6
