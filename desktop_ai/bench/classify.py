"""bench --task classify: texts/s of our TextClassifier against a plain transformers pipeline, same model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.models.catalogue import (
    KIND_SENTENCE_EMBEDDING,
    TASK_CLASSIFY,
)
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.text_classification import TextClassifier

logger = logging.getLogger(__name__)

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


def bench_classify(
    store: ModelStore, model: str, device: str, methods: list[Compression], count: int, repeats: int, say: Callable[[str], None]
) -> BenchReport:
    from transformers import pipeline

    texts = bench_texts(count)
    labels = None
    classifiers = {m: TextClassifier(store, None, model=model, device=device, compression=m) for m in methods}
    first = classifiers[methods[0]]
    report = BenchReport(TASK_CLASSIFY, first.entry.title, first.device.describe(), environment=environment())
    location = store.locate(first.entry)
    say("Loading the baseline: transformers pipeline, fp32")
    pipe_device = 0 if first.device.device.startswith("cuda") else first.device.device
    if first.entry.kind == KIND_SENTENCE_EMBEDDING:
        from desktop_ai.engine.tasks.text_classification import (
            SENTIMENT_LABELS,
            SENTIMENT_TEMPLATE,
            SIMILARITY_SCALE,
        )

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

    base = median(samples["baseline"])
    report.rows.append(BenchRow("baseline: transformers pipeline, one text at a time", "none (fp32)", {
        "texts/s": base, "ms/text": 1000 / base, "x baseline": 1.0, "same label as baseline": "100%",
    }))
    for method in methods:
        rate = median(samples[method.value])
        agree = sum(a == b for a, b in zip(our_labels[method.value], baseline_labels)) / len(texts)
        report.rows.append(BenchRow("desktop-ai TextClassifier, batched", method.value, {
            "texts/s": rate, "ms/text": 1000 / rate, "x baseline": rate / base, "same label as baseline": f"{agree:.0%}",
        }))
    if first.entry.kind == KIND_SENTENCE_EMBEDDING:
        from desktop_ai.bench.teach import taught_row

        say("A taught classifier on the same embeddings")
        report.rows.append(taught_row(store, model, device, texts, base, repeats))
        from desktop_ai.bench.teach import language_model_row
        from desktop_ai.engine.tasks.taught_prompt import lm_available

        if lm_available():
            say("A taught classifier that chose the language model")
            report.rows.append(language_model_row(store, texts, base, min(32, len(texts))))
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
    report.notes.append(f"Process memory after loading every variant: {rss_mb():.0f} MB RSS.")
    return report
