"""`desktop-ai bench`: our engine against a plain Hugging Face baseline, on the same model, in the same
process, interleaved run by run so that a busy machine slows both alike. Numbers are medians.
"""

from __future__ import annotations

import gc
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.catalogue import KIND_SENTENCE_EMBEDDING, TASK_CLASSIFY, TASK_GENERATE
from desktop_ai.engine.compression import Compression, model_size_bytes
from desktop_ai.engine.devices import pick_device
from desktop_ai.engine.store import ModelStore
from desktop_ai.engine.text_classification import TextClassifier
from desktop_ai.engine.text_generation import GenerationOptions, TextGenerator

logger = logging.getLogger(__name__)

BENCH_PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
SENTENCE_PARTS = (
    ("The delivery", "The new phone", "This restaurant", "The hotel room", "Customer support", "The movie", "The update", "My order"),
    ("was fantastic and arrived early", "broke after two days", "exceeded every expectation", "was a complete waste of money",
     "made me smile all evening", "left me angry and disappointed", "is fine, nothing special", "felt cheap and badly made"),
)


def bench_texts(count: int) -> list[str]:
    subjects, endings = SENTENCE_PARTS
    texts = []
    for i in range(count):
        texts.append(f"{subjects[i % len(subjects)]} {endings[(i // len(subjects) + i) % len(endings)]} (review {i}).")
    return texts


@dataclass
class BenchRow:
    name: str
    compression: str
    values: dict[str, float | str]


@dataclass
class BenchReport:
    task: str
    model: str
    device: str
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        columns: list[str] = []
        for row in self.rows:
            for key in row.values:
                if key not in columns:
                    columns.append(key)
        lines = [
            f"### bench --task {self.task}: {self.model} on {self.device}",
            "",
            "| run | compression | " + " | ".join(columns) + " |",
            "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
        ]
        for row in self.rows:
            cells = [_format(row.values.get(c, "")) for c in columns]
            lines.append(f"| {row.name} | {row.compression} | " + " | ".join(cells) + " |")
        lines.append("")
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        lines.append(f"Environment: {env}.")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _environment() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quantized engine": torch.backends.quantized.engine,
    }


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def _median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def run_benchmark(
    task: str,
    *,
    model: str | None = None,
    device: str = "auto",
    compressions: list[str] | None = None,
    max_new_tokens: int = 64,
    repeats: int = 3,
    texts: int = 256,
    progress: Callable[[str], None] | None = None,
    store: ModelStore | None = None,
) -> BenchReport:
    from desktop_ai import paths

    store = store or ModelStore(paths.cache_dir() / "converted-models")
    say = progress or (lambda message: logger.info(message))
    choice = pick_device(device)
    if compressions is None:
        compressions = ["none", "int8", "prune"] + (["fp16"] if choice.is_gpu else [])
    methods = [Compression.parse(c) for c in compressions]
    if task == TASK_GENERATE:
        return _bench_generate(store, model or store.default_model(TASK_GENERATE), device, methods, max_new_tokens, repeats, say)
    if task == TASK_CLASSIFY:
        return _bench_classify(store, model or store.default_model(TASK_CLASSIFY), device, methods, texts, repeats, say)
    raise ValueError(f"Unknown bench task {task!r}: choose generate or classify.")


def _bench_generate(
    store: ModelStore, model: str, device: str, methods: list[Compression], max_new_tokens: int, repeats: int, say: Callable[[str], None]
) -> BenchReport:
    from transformers import AutoModelForCausalLM

    options = GenerationOptions(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    generators = {m: TextGenerator(store, None, model=model, device=device, compression=m) for m in methods}
    first = generators[methods[0]]
    report = BenchReport(TASK_GENERATE, first.entry.title, first.device.describe(), environment=_environment())

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

    base_tps = _median([s[0] for s in samples["baseline"]])
    report.rows.append(BenchRow("baseline: transformers generate", "none (fp32)", {
        "tokens/s": base_tps,
        "first token ms": 1000 * _median([s[1] for s in samples["baseline"]]),
        "x baseline": 1.0,
        "weights MB": model_size_bytes(baseline) / 1e6,
    }))
    for method in methods:
        tps = _median([s[0] for s in samples[method.value]])
        report.rows.append(BenchRow("desktop-ai TextGenerator", method.value, {
            "tokens/s": tps,
            "first token ms": 1000 * _median([s[1] for s in samples[method.value]]),
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
            report.rows.append(BenchRow(f"desktop-ai cache hit ({level})", methods[0].value, {"first token ms": 1000 * _median(hits)}))
        cache.close()
    report.notes.append(f"{repeats} interleaved rounds of {max_new_tokens} greedy tokens each (min_new_tokens fixes the length), medians; prompt of {ids.shape[1]} tokens.")
    report.notes.append(f"Process memory after loading every variant: {_rss_mb():.0f} MB RSS.")
    report.notes.append("First token ms includes tokenizing the prompt and the prefill; a cache hit returns the whole answer.")
    del baseline
    gc.collect()
    return report


def _bench_classify(
    store: ModelStore, model: str, device: str, methods: list[Compression], count: int, repeats: int, say: Callable[[str], None]
) -> BenchReport:
    from transformers import pipeline

    texts = bench_texts(count)
    labels = None
    classifiers = {m: TextClassifier(store, None, model=model, device=device, compression=m) for m in methods}
    first = classifiers[methods[0]]
    report = BenchReport(TASK_CLASSIFY, first.entry.title, first.device.describe(), environment=_environment())
    location = store.locate(first.entry)
    say("Loading the baseline: transformers pipeline, fp32")
    pipe_device = 0 if first.device.device.startswith("cuda") else first.device.device
    if first.entry.kind == KIND_SENTENCE_EMBEDDING:
        from desktop_ai.engine.text_classification import SENTIMENT_LABELS, SENTIMENT_TEMPLATE, SIMILARITY_SCALE

        pipe = pipeline("feature-extraction", model=str(location.path), device=pipe_device)

        def embed(text: str) -> torch.Tensor:
            tokens = torch.tensor(pipe(text)[0])
            return torch.nn.functional.normalize(tokens.mean(0), dim=-1)

        label_vectors = torch.stack([embed(SENTIMENT_TEMPLATE.format(label=l)) for l in SENTIMENT_LABELS])

        def baseline_label(text: str) -> str:
            return SENTIMENT_LABELS[int((SIMILARITY_SCALE * label_vectors @ embed(text)).argmax())]
    else:
        pipe = pipeline("text-classification", model=str(location.path), device=pipe_device)

        def baseline_label(text: str) -> str:
            return str(pipe(text)[0]["label"]).lower()

    for method, classifier in classifiers.items():
        say(f"Loading ours: {method.value}")
        classifier.load()
        classifier.run(texts[:8], labels)
    baseline_label(texts[0])

    samples: dict[str, list[float]] = {"baseline": []}
    baseline_labels: list[str] = []
    our_labels: dict[str, list[str]] = {}
    for rep in range(repeats):
        say(f"Round {rep + 1} of {repeats}")
        started = time.perf_counter()
        baseline_labels = [baseline_label(t) for t in texts]
        samples["baseline"].append(len(texts) / (time.perf_counter() - started))
        for method, classifier in classifiers.items():
            started = time.perf_counter()
            batch = classifier.run(texts, labels)
            samples.setdefault(method.value, []).append(len(texts) / (time.perf_counter() - started))
            our_labels[method.value] = [r.label for r in batch.results]

    base = _median(samples["baseline"])
    report.rows.append(BenchRow("baseline: transformers pipeline, one text at a time", "none (fp32)", {
        "texts/s": base, "ms/text": 1000 / base, "x baseline": 1.0, "same label as baseline": "100%",
    }))
    for method in methods:
        rate = _median(samples[method.value])
        agree = sum(a == b for a, b in zip(our_labels[method.value], baseline_labels)) / len(texts)
        report.rows.append(BenchRow("desktop-ai TextClassifier, batched", method.value, {
            "texts/s": rate, "ms/text": 1000 / rate, "x baseline": rate / base, "same label as baseline": f"{agree:.0%}",
        }))
    cache = ResultCache(None)
    cached = TextClassifier(store, cache, model=model, device=device, compression=methods[0])
    cached.run(texts, labels)
    started = time.perf_counter()
    batch = cached.run(texts, labels)
    seconds = time.perf_counter() - started
    assert all(r.from_cache for r in batch.results)
    report.rows.append(BenchRow("desktop-ai cache hits", methods[0].value, {
        "texts/s": len(texts) / seconds, "ms/text": 1000 * seconds / len(texts), "x baseline": len(texts) / seconds / base,
    }))
    report.notes.append(f"{len(texts)} short review sentences, sentiment mode, {repeats} interleaved rounds, medians.")
    report.notes.append(f"Process memory after loading every variant: {_rss_mb():.0f} MB RSS.")
    return report
