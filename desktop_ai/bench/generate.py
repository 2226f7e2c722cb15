"""bench --task generate: tokens/s of our TextGenerator against plain transformers `generate`, same model."""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.models.catalogue import (
    TASK_GENERATE,
)
from desktop_ai.engine.models.compression import Compression, model_size_bytes
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator

logger = logging.getLogger(__name__)

BENCH_PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def bench_generate(
    store: ModelStore, model: str, device: str, methods: list[Compression], max_new_tokens: int, repeats: int, say: Callable[[str], None]
) -> BenchReport:
    from transformers import AutoModelForCausalLM

    options = GenerationOptions(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    generators = {m: TextGenerator(store, None, model=model, device=device, compression=m) for m in methods}
    first = generators[methods[0]]
    report = BenchReport(TASK_GENERATE, first.entry.title, first.device.describe(), environment=environment())

    say("Loading the baseline: plain transformers, fp32")
    location = store.locate(first.entry)
    folder = store.gguf_as_folder(location) if location.gguf_file else location.path
    baseline = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(first.device.device).eval()
    loaded = {}
    for method, generator in generators.items():
        say(f"Loading ours: {method.value}")
        loaded[method] = generator.load()
    tokenizer = loaded[methods[0]].tokenizer
    ids, _ = first.prepare(loaded[methods[0]], BENCH_PROMPT, options)
    ids = ids.to(first.device.device)

    def run_baseline() -> tuple[float, float]:
        with torch.no_grad():
            started = time.perf_counter()
            baseline.generate(ids, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            first_token = time.perf_counter() - started
            started = time.perf_counter()
            out = baseline.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
            seconds = time.perf_counter() - started
        return (out.shape[1] - ids.shape[1]) / seconds, first_token

    samples: dict[str, list[tuple[float, float]]] = {"baseline": []}
    run_baseline()  # warm-up
    for generator in generators.values():
        generator.run(BENCH_PROMPT, GenerationOptions(max_new_tokens=4, temperature=0.0))
    for rep in range(repeats):
        say(f"Round {rep + 1} of {repeats}")
        samples["baseline"].append(run_baseline())
        for method, generator in generators.items():
            result = generator.run(BENCH_PROMPT, options)
            samples.setdefault(method.value, []).append((result.tokens_per_second, result.first_token_seconds or float("nan")))

    base_tps = median([s[0] for s in samples["baseline"]])
    report.rows.append(BenchRow("baseline: transformers generate", "none (fp32)", {
        "tokens/s": base_tps,
        "first token ms": 1000 * median([s[1] for s in samples["baseline"]]),
        "x baseline": 1.0,
        "weights MB": model_size_bytes(baseline) / 1e6,
    }))
    for method in methods:
        tps = median([s[0] for s in samples[method.value]])
        report.rows.append(BenchRow("desktop-ai TextGenerator", method.value, {
            "tokens/s": tps,
            "first token ms": 1000 * median([s[1] for s in samples[method.value]]),
            "x baseline": tps / base_tps,
            "weights MB": loaded[method].compression.size_bytes / 1e6,
        }))

    with tempfile.TemporaryDirectory() as folder:
        cache = ResultCache(Path(folder) / "bench.sqlite")
        cached = TextGenerator(store, cache, model=model, device=device, compression=methods[0])
        short = GenerationOptions(max_new_tokens=16, temperature=0.0)
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
            report.rows.append(BenchRow(f"desktop-ai cache hit ({level})", methods[0].value, {"first token ms": 1000 * median(hits)}))
        cache.close()
    report.notes.append(f"{repeats} interleaved rounds of {max_new_tokens} greedy tokens each (min_new_tokens fixes the length), medians; prompt of {ids.shape[1]} tokens.")
    report.notes.append(f"Process memory after loading every variant: {rss_mb():.0f} MB RSS.")
    report.notes.append("First token ms includes tokenizing the prompt and the prefill; a cache hit returns the whole answer.")
    del baseline
    gc.collect()
    return report
