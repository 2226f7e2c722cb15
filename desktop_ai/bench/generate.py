"""bench --task generate: every language-model runtime against plain transformers `generate` in fp32 (the
baseline), same weights, same prompt, interleaved round by round; llama-cpp-python called directly, to show
what our wrapper costs; first-token latency for a repeated and a new prompt; and the time from pressing
Generate to the first token of the embedded model in a fresh engine process."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.models.compression import Compression, model_size_bytes
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.runtimes import ctranslate2_lm, llama_cpp
from desktop_ai.engine.runtimes.causal_lm import (
    RUNTIME_CTRANSLATE2,
    RUNTIME_LLAMA_CPP,
    RUNTIME_TRANSFORMERS,
    physical_cores,
)
from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

logger = logging.getLogger(__name__)

BENCH_PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
NEW_PROMPT = "Question {n}: what would you pack for a week of hiking in the mountains, and why?"
GOALS = {"default x baseline": 5.0, "of direct": 0.9, "first token repeated ms": 100.0, "first token cold ms": 300.0,
         "ctranslate2 x baseline": 2.5, "fresh engine ms": 3000.0}


class _Variant:
    """One way of generating, timed the same way: tokens/s over a fixed length and the first-token time."""

    def __init__(self, name: str, compression: str, run: Callable[[str, GenerationOptions], tuple[float, float]],
                 weights_bytes: int, rss_added_mb: float) -> None:
        self.name = name
        self.compression = compression
        self.run = run
        self.weights_bytes = weights_bytes
        self.rss_added_mb = rss_added_mb
        self.speed: list[float] = []
        self.first_repeated: list[float] = []
        self.first_new: list[float] = []


# After a parallel region, OpenMP workers spin-wait for a while before they sleep (torch's and CTranslate2's
# libgomp). Timed right after another runtime's run, a variant would share the two cores with those spinning
# threads; in the app one runtime runs at a time and never pays for it.
SETTLE_S = 0.4


def _measure_load(load: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    before = rss_mb()
    value = load()
    return value, rss_mb() - before


def _ours(generator: TextGenerator) -> Callable[[str, GenerationOptions], tuple[float, float]]:
    def run(prompt: str, options: GenerationOptions) -> tuple[float, float]:
        result = generator.run(prompt, options)
        return result.tokens_per_second, result.first_token_seconds or float("nan")

    return run


def _llama_cpp_direct(path: Path, context: int) -> tuple[Callable[[str, GenerationOptions], tuple[float, float]], Any]:
    """llama-cpp-python as its README shows it: Llama(...) and create_completion(stream=True), nothing of ours."""
    import llama_cpp as library

    llm = library.Llama(model_path=str(path), n_ctx=context, n_threads=physical_cores(),
                        n_threads_batch=physical_cores(), verbose=False)
    vocab = llm._model.vocab
    end_tokens = [t for t in range(llm.n_vocab()) if library.llama_vocab_is_eog(vocab, t)]
    template = library.llama_chat_format.Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"], llm._model.token_get_text(llm.token_eos()),
        llm._model.token_get_text(llm.token_bos()))

    def run(prompt: str, options: GenerationOptions) -> tuple[float, float]:
        text = template(messages=[{"role": "user", "content": prompt}]).prompt
        started = time.perf_counter()
        tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
        length = len(tokens)

        def hold(ids: Any, scores: Any) -> Any:  # the same fixed length as every other variant
            if len(ids) - length < options.min_new_tokens:
                scores[end_tokens] = -float("inf")
            return scores

        first = None
        called = time.perf_counter()
        for _chunk in llm.create_completion(tokens, max_tokens=options.max_new_tokens, temperature=0.0, top_k=40,
                                            top_p=1.0, min_p=0.0, repeat_penalty=1.0, stream=True,
                                            logits_processor=library.LogitsProcessorList([hold])):
            if first is None:
                first = time.perf_counter()
        finished = time.perf_counter()
        # Timed from the call, prefill included, as TextGenerator's tokens/s are.
        return options.max_new_tokens / (finished - called), (first or finished) - started

    return run, llm


def _fresh_engine_first_token(model: str, device: str, compression: str, prompt: str) -> tuple[float, float, str]:
    """Start a real engine process (as the window does), wait until it is up, press Generate: seconds to the
    first streamed text, seconds for the engine to come up, and the runtime that answered."""
    from desktop_ai.engine.process import serve

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    cancel = context.Event()
    with tempfile.TemporaryDirectory() as home:
        saved = os.environ.get("DESKTOP_AI_HOME")
        os.environ["DESKTOP_AI_HOME"] = home  # no cached answers, no converted models: a new user's first time
        try:
            started = time.perf_counter()
            process = context.Process(target=serve, args=(child, cancel), daemon=True)
            process.start()
        finally:
            if saved is None:
                os.environ.pop("DESKTOP_AI_HOME", None)
            else:
                os.environ["DESKTOP_AI_HOME"] = saved
        try:
            while parent.recv()[0] != "ready":
                pass
            engine_up = time.perf_counter() - started
            options = GenerationOptions(max_new_tokens=16, temperature=0.0)
            params = {"model": model, "device": device, "compression": compression, "prompt": prompt,
                      "options": asdict(options), "runtime": "auto"}
            pressed = time.perf_counter()
            parent.send(("job", 1, "generate", params))
            first = None
            runtime = "?"
            while True:
                message = parent.recv()
                if message[0] == "partial" and first is None:
                    first = time.perf_counter() - pressed
                elif message[0] == "finished":
                    runtime = message[2].runtime
                    break
                elif message[0] == "failed":
                    raise RuntimeError(message[2])
            parent.send(("quit",))
            process.join(30)
        finally:
            if process.is_alive():
                process.kill()
    return first if first is not None else float("nan"), engine_up, runtime


def bench_generate(
    store: ModelStore, model: str, device: str, methods: list[Compression], max_new_tokens: int, repeats: int, say: Callable[[str], None]
) -> BenchReport:
    from transformers import AutoModelForCausalLM

    options = GenerationOptions(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, temperature=0.0,
                                repetition_penalty=1.0)
    default = TextGenerator(store, None, model=model, device=device)
    report = BenchReport(TASK_GENERATE, default.entry.title, default.device.describe(), environment=environment())
    report.environment["llama.cpp threads"] = physical_cores()
    location = store.locate(default.entry)
    is_gguf = location.gguf_file is not None
    default_runtime, _ = default.runtime_for(location)

    say("Loading the baseline: plain transformers, fp32")
    folder = store.gguf_as_folder(location) if is_gguf else location.path  # the baseline needs plain weights
    baseline, baseline_rss = _measure_load(
        lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(default.device.device).eval())
    reference = TextGenerator(store, None, model=model, device=device, runtime=RUNTIME_TRANSFORMERS)

    def run_baseline(prompt: str, opts: GenerationOptions) -> tuple[float, float]:
        ids, _ = reference.prepare(reference.load(), prompt, opts)
        ids_tensor = torch.tensor([ids], device=default.device.device)  # the tokens the transformers runtime reads
        tokenizer = reference.load().loaded.tokenizer
        with torch.no_grad():
            started = time.perf_counter()
            baseline.generate(ids_tensor, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            first_token = time.perf_counter() - started
            started = time.perf_counter()
            out = baseline.generate(ids_tensor, max_new_tokens=opts.max_new_tokens, min_new_tokens=opts.min_new_tokens,
                                    do_sample=False, pad_token_id=tokenizer.eos_token_id)
            seconds = time.perf_counter() - started
        return (out.shape[1] - ids_tensor.shape[1]) / seconds, first_token

    variants = [_Variant("baseline: transformers generate", "none (fp32)", run_baseline, model_size_bytes(baseline), baseline_rss)]
    if is_gguf and llama_cpp.available():
        say("Loading llama-cpp-python, called directly")
        (direct, _llm), rss = _measure_load(lambda: _llama_cpp_direct(location.path / location.gguf_file, llama_cpp.MAX_CONTEXT_TOKENS))
        variants.append(_Variant("llama-cpp-python called directly", "as the GGUF is", direct,
                                 (location.path / location.gguf_file).stat().st_size, rss))
    runtimes: list[tuple[str, Compression]] = []
    if default_runtime != RUNTIME_TRANSFORMERS:
        runtimes.append((default_runtime, Compression.INT8 if default_runtime == RUNTIME_CTRANSLATE2 else Compression.NONE))
    if default_runtime != RUNTIME_CTRANSLATE2 and ctranslate2_lm.supported_config(folder) is not None:
        runtimes.append((RUNTIME_CTRANSLATE2, Compression.INT8))
    runtimes += [(RUNTIME_TRANSFORMERS, method) for method in methods]
    generators: dict[str, TextGenerator] = {}
    for runtime, method in runtimes:
        say(f"Loading ours: {runtime}, {method.value}")
        generator = TextGenerator(store, None, model=model, device=device, compression=method, runtime=runtime)
        lm, rss = _measure_load(generator.load)
        if runtime == RUNTIME_CTRANSLATE2:
            report.environment["CTranslate2 threads"] = getattr(lm, "threads", None)
        label = "desktop-ai TextGenerator, " + runtime + (" (the default)" if runtime == default_runtime else "")
        generators[label] = generator
        variants.append(_Variant(label, lm.compression, _ours(generator), lm.weights_bytes(), rss))

    say("Warming up")
    for variant in variants:
        variant.run(BENCH_PROMPT, GenerationOptions(max_new_tokens=4, min_new_tokens=4, temperature=0.0))
    short = GenerationOptions(max_new_tokens=8, min_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
    for rep in range(repeats):
        say(f"Round {rep + 1} of {repeats}")
        for variant in variants:
            time.sleep(SETTLE_S)  # the previous run's idle OpenMP workers stop spinning before this one is timed
            speed, _ = variant.run(BENCH_PROMPT, options)
            variant.speed.append(speed)
            variant.first_repeated.append(variant.run(BENCH_PROMPT, short)[1])  # the prompt it has just read
            variant.first_new.append(variant.run(NEW_PROMPT.format(n=rep), short)[1])  # a prompt it has not seen

    base_tps = median(variants[0].speed)
    for variant in variants:
        tps = median(variant.speed)
        report.rows.append(BenchRow(variant.name, variant.compression, {
            "tokens/s": tps,
            "x baseline": tps / base_tps,
            "first token ms, repeated prompt": 1000 * median(variant.first_repeated),
            "first token ms, new prompt": 1000 * median(variant.first_new),
            "weights MB": variant.weights_bytes / 1e6,
            "RSS added MB": variant.rss_added_mb,
        }))

    with tempfile.TemporaryDirectory() as cache_folder:
        cache = ResultCache(Path(cache_folder) / "bench.sqlite")
        cached = TextGenerator(store, cache, model=model, device=device)
        cached.run(BENCH_PROMPT, short)
        for level, forget in (("memory", False), ("disk", True)):
            hits = []
            for _ in range(50):
                if forget:
                    cache.forget_memory()
                started = time.perf_counter()
                result = cached.run(BENCH_PROMPT, short)
                hits.append(time.perf_counter() - started)
                assert result.from_cache
            report.rows.append(BenchRow(f"desktop-ai cache hit ({level})", cached.compression.value,
                                        {"first token ms, repeated prompt": 1000 * median(hits)}))
        cache.close()

    say("A fresh engine process: from pressing Generate to the first token")
    # What the Text tab sends: int8, except for a GGUF on llama.cpp, whose compression is greyed out.
    compression = "none" if default_runtime == RUNTIME_LLAMA_CPP else "int8"
    fresh, engine_up, fresh_runtime = _fresh_engine_first_token(model, device, compression, BENCH_PROMPT)
    report.rows.append(BenchRow(f"fresh engine, press Generate to first token ({fresh_runtime})", "default",
                                {"first token ms, new prompt": 1000 * fresh, "engine start ms": 1000 * engine_up}))

    prompt_tokens = len(reference.prepare(reference.load(), BENCH_PROMPT, options)[0])
    report.notes.append(f"{repeats} interleaved rounds of {max_new_tokens} greedy tokens each (end-of-text held back so "
                        f"every run writes the same length), medians; prompt of {prompt_tokens} tokens with the chat template.")
    report.notes.append("First token = tokenizing + prefill + the first new token, for the prompt just read (repeated; "
                        "llama.cpp reuses its cached prefix) and for a new one; 8-token runs. RSS added = the process's "
                        "resident memory growth while that variant loaded (a memory-mapped GGUF counts as its pages are read).")
    report.notes.extend(_goals(report, default_runtime))
    report.notes.append(f"Process memory after loading every variant: {rss_mb():.0f} MB RSS.")
    return report


def _goals(report: BenchReport, default_runtime: str) -> list[str]:
    """Each goal of issue 11, met or not, from this run's numbers."""
    rows = {row.name: row.values for row in report.rows}
    default = next((v for n, v in rows.items() if n.endswith("(the default)")), None)
    direct = rows.get("llama-cpp-python called directly")
    ct2 = next((v for n, v in rows.items() if n.startswith("desktop-ai TextGenerator, ctranslate2")), None)
    fresh = next((v for n, v in rows.items() if n.startswith("fresh engine")), None)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    notes = []
    if default is not None:
        x = default["x baseline"]
        notes.append(f"Goal: the default ({default_runtime}) at least {GOALS['default x baseline']:.0f}x the baseline's "
                     f"tokens/s — {verdict(x >= GOALS['default x baseline'])}: {x:.2f}x.")
        repeated, new = default["first token ms, repeated prompt"], default["first token ms, new prompt"]
        notes.append(f"Goal: first token under {GOALS['first token repeated ms']:.0f} ms for a repeated prompt — "
                     f"{verdict(repeated < GOALS['first token repeated ms'])}: {repeated:.0f} ms; under "
                     f"{GOALS['first token cold ms']:.0f} ms cold (a new prompt) — {verdict(new < GOALS['first token cold ms'])}: {new:.0f} ms.")
        if direct is not None:
            share = default["tokens/s"] / direct["tokens/s"]
            notes.append(f"Goal: within 10 % of llama-cpp-python called directly — {verdict(share >= GOALS['of direct'])}: "
                         f"{100 * share:.0f} % of its tokens/s.")
    if ct2 is not None:
        x = ct2["x baseline"]
        notes.append(f"Goal: CTranslate2 at least {GOALS['ctranslate2 x baseline']}x the baseline — "
                     f"{verdict(x >= GOALS['ctranslate2 x baseline'])}: {x:.2f}x.")
    if fresh is not None:
        ms = fresh["first token ms, new prompt"]
        notes.append(f"Goal: a new user's first answer starts within 3 s of pressing Generate once the engine is up "
                     f"(no first-use conversion) — {verdict(ms < GOALS['fresh engine ms'])}: {ms:.0f} ms.")
    return notes
