"""bench --task translate: sentences/s of our Translator, on CTranslate2 (the default) and on transformers, against
plain `MarianMTModel.generate`; with no opus-mt model downloaded, on a random-weight stand-in of opus-mt-en-de's
shape (marian_stand_in.py)."""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median, rss_mb
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.catalogue import (
    TASK_TRANSLATE,
    find_entry,
)
from desktop_ai.engine.models.compression import Compression, model_size_bytes
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.runtimes.marian_ctranslate2 import threads as ct2_threads

logger = logging.getLogger(__name__)

# --- translate ------------------------------------------------------------------------------------

# Twenty sentences of everyday prose, each told of three places and people: a page of 60 distinct sentences of varied length.
_TRANSLATE_SENTENCES = (
    "The train to {place} left ten minutes late this morning.",
    "Nobody knew why, not even {who}.",  # short ones, too, as real pages have them
    "My sister has lived in {place} for almost six years, and she still gets lost in the old town.",
    "Could you tell me where the nearest pharmacy in {place} is?",
    "The museum in {place} is closed on Mondays, but the garden behind it stays open until dusk.",
    "We ordered soup, fresh bread and a bottle of local wine for {who}.",
    "It rained all afternoon in {place}, so we stayed inside and played cards.",
    "The new library, which {who} loves, has more than two hundred thousand books and a quiet reading room on the top floor.",
    "Please send the signed contract to our office in {place} before Friday.",
    "The children were excited because, as {who} said, it was the first snow of the winter.",
    "Prices for flats in {place} have risen sharply over the last decade.",
    "If the weather is good tomorrow, we will walk along the river with {who}.",
    "The doctor in {place} said that I should rest for a few days and drink plenty of water.",
    "{who} forgot an umbrella on the bus again!",
    "The concert in {place} was sold out within an hour of the tickets going on sale.",
    "Our neighbours are building a small wooden house for their chickens, and {who} is helping.",
    "The mayor of {place} promised better bus connections and more bicycle lanes.",
    "Have you ever tried to learn a language only from books, like {who}?",
    "The bakery on the corner in {place} opens at six, and by seven the best cakes are gone.",
    "After dinner we sat on the balcony with {who} and watched the lights of the city.",
)
_TRANSLATE_PLACES = ("Berlin", "the old harbour town", "a small village in the mountains")
_TRANSLATE_PEOPLE = ("my uncle", "the teacher", "our guide")
STAND_IN_NEW_TOKENS = 32  # = marian_stand_in.OPUS_MT_EN_DE.new_tokens: a long German sentence
CT2_GOAL = 2.5  # CTranslate2's sentences/s over MarianMTModel.generate's (issue 11)
TRANSFORMERS_ROW = "desktop-ai Translator, transformers"
CT2_ROW = "desktop-ai Translator, CTranslate2 (the default)"


def bench_page() -> str:
    """About 60 distinct English sentences in six paragraphs (each place's sentences split in two)."""
    paragraphs = []
    for place, who in zip(_TRANSLATE_PLACES, _TRANSLATE_PEOPLE):
        sentences = [s.format(place=place, who=who) for s in _TRANSLATE_SENTENCES]
        sentences = [s[0].upper() + s[1:] for s in sentences]
        # vary the order per place so that repeated templates do not sit side by side
        shift = _TRANSLATE_PLACES.index(place) * 7
        sentences = sentences[shift:] + sentences[:shift]
        half = len(sentences) // 2
        paragraphs.extend([" ".join(sentences[:half]), " ".join(sentences[half:])])
    return "\n\n".join(paragraphs) + "\n"


def _word_agreement(ours: str, theirs: str) -> str:
    import difflib

    return f"{difflib.SequenceMatcher(None, ours.split(), theirs.split(), autojunk=False).ratio():.0%}"


def stand_in_folder(name: str, say: Callable[[str], None]) -> Path:
    """The MarianMT stand-in of this shape, built (about 20 s for opus-mt-en-de's) once into the cache."""
    from desktop_ai import paths
    from desktop_ai.bench.marian_stand_in import BUILD, SHAPES, build_marian

    shape = SHAPES.get(name)
    if shape is None:
        raise InvalidInputError(f"Unknown stand-in {name!r}: choose {', '.join(SHAPES)}.")
    folder = paths.cache_dir() / "bench-stand-ins" / f"marian-{shape.name}-v{BUILD}"
    if not (folder / "config.json").is_file():
        say(f"Building a MarianMT stand-in with {shape.name}'s shape and random weights (once)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as scratch:
            built = build_marian(Path(scratch) / "model", shape, lines=bench_page().splitlines())
            if folder.exists():  # a half-built one (no config.json)
                shutil.rmtree(folder)
            built.rename(folder)
    return folder


def _ends_sentences(model: Any, tokenizer: Any, texts: list[str], device: str) -> bool:
    """Whether greedy decoding reaches </s> on its own (a translation model does; random weights do not)."""
    cap = 2 * STAND_IN_NEW_TOKENS
    batch = {k: v.to(device) for k, v in tokenizer(texts, return_tensors="pt", padding=True).items()}
    with torch.inference_mode():
        generated = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=cap, min_new_tokens=0)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    # forced_eos_token_id puts </s> in the last place of a row that ran to the cap: that does not count
    return generated.shape[1] <= cap or any(int(t) in eos_ids for row in generated for t in row[1:-1])


def bench_translate(
    store: ModelStore, model: str | None, device: str, methods: list[Compression], beams: int, repeats: int,
    stand_in: str | None, say: Callable[[str], None],
) -> BenchReport:
    from transformers import AutoTokenizer, MarianMTModel

    from desktop_ai.bench.marian_stand_in import stand_in_note
    from desktop_ai.engine.tasks.translation import (
        BATCH_SIZE,
        TranslationOptions,
        Translator,
        split_text,
    )

    if model is not None and stand_in is not None:
        raise InvalidInputError("Give a translation model (--model) or a stand-in (--stand-in), not both.")
    TranslationOptions(beams=beams).validate()  # before a stand-in is built (20 s)
    absent = ""
    if model is None and stand_in is None:
        entry = find_entry("opus-mt-en-de")
        if entry is not None and store.availability(entry) == "downloaded":
            model = entry.id
        else:
            stand_in = "opus-mt-en-de"
            absent = ("opus-mt-en-de is not downloaded (no MarianMT model installs from PyPI), so this ran on a stand-in; "
                      "for the real model pass --model FOLDER or run `desktop-ai translate Hello.` once while online. ")
    if stand_in is not None:
        model = str(stand_in_folder(stand_in, say))
    page = bench_page()
    segments = split_text(page)
    sentences = [s.text for s in segments if s.translatable]
    ours: dict[tuple[str, str], Translator] = {
        (TRANSFORMERS_ROW, m.value): Translator(store, None, model=model, device=device, compression=m, runtime="transformers")
        for m in methods
    }
    notes_before: list[str] = []
    try:
        ct2 = Translator(store, None, model=model, device=device, runtime="ctranslate2")
        ours[(CT2_ROW, ct2.runtime_compression("ctranslate2"))] = ct2
    except (InvalidInputError, ModelUnavailableError) as error:
        ct2 = None
        notes_before.append(f"CTranslate2 was not measured: {error}")
    first = next(iter(ours.values()))
    choice = first.device
    location = store.locate(first.entry, say)

    say("Loading the baseline: plain transformers MarianMTModel, fp32")
    tokenizer = AutoTokenizer.from_pretrained(str(location.path))
    baseline = MarianMTModel.from_pretrained(str(location.path), dtype=torch.float32).to(choice.device).eval()
    d_model = int(getattr(baseline.config, "d_model", 0) or 0)
    made_up = stand_in_note(baseline.config)
    if made_up is None and d_model >= 128 and not _ends_sentences(baseline, tokenizer, sentences[:2], choice.device):
        made_up = "its outputs never reach </s>, so its weights are likely random (not a translation model)"
    real = made_up is None and d_model >= 128
    title = f"{stand_in} stand-in (random weights)" if stand_in else first.entry.title
    report = BenchReport(TASK_TRANSLATE, title, choice.describe(), environment=environment())
    # Random weights seldom emit </s>: every sentence would run to 512 tokens. Cap such a model's output instead;
    # a stand-in's generation_config also sets min_new_tokens to the cap, so every variant generates the same tokens.
    options = TranslationOptions(beams=beams) if real else TranslationOptions(beams=beams, max_new_tokens=STAND_IN_NEW_TOKENS)

    def run_baseline(texts: list[str]) -> list[str]:
        out: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = tokenizer(texts[start : start + BATCH_SIZE], return_tensors="pt", padding=True)
                batch = {k: v.to(choice.device) for k, v in batch.items()}
                generated = baseline.generate(**batch, num_beams=beams, max_new_tokens=options.max_new_tokens)
                out.extend(t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
        return out

    def baseline_page(translations: list[str]) -> str:
        it = iter(translations)
        return "".join(next(it) if s.translatable else s.text for s in segments)

    loaded = {}
    for variant, translator in ours.items():
        say(f"Loading ours: {variant[0]}, {variant[1]}")
        loaded[variant] = translator.load()  # CTranslate2 converts here, once, into the cache
    say("Warming up")
    warm = " ".join(sentences[:2])
    run_baseline(sentences[:2])
    for translator in ours.values():
        translator.run(warm, options)

    samples: dict[tuple[str, str] | str, list[float]] = {"baseline": []}
    texts: dict[tuple[str, str], str] = {}
    notices: list[str] = []
    base_text = ""
    for rep in range(repeats):
        say(f"Round {rep + 1} of {repeats}")
        started = time.perf_counter()
        base_text = baseline_page(run_baseline(sentences))
        samples["baseline"].append(time.perf_counter() - started)
        for variant, translator in ours.items():
            result = translator.run(page, options)
            if result.translated != len(sentences):
                raise RuntimeError(f"{variant}: {result.translated} of {len(sentences)} sentences were translated.")
            samples.setdefault(variant, []).append(result.seconds)
            texts[variant] = result.text
            notices.extend(n for n in result.notices if n not in notices)

    def row_values(seconds: float, base_seconds: float) -> dict[str, float | str]:
        return {"sentences/s": len(sentences) / seconds, "ms/page": 1000 * seconds, "x baseline": base_seconds / seconds}

    base = median(samples["baseline"])
    report.rows.append(BenchRow("baseline: transformers MarianMTModel.generate, batches of 16", "none (fp32)", {
        **row_values(base, base), "words = baseline": "100%", "weights MB": model_size_bytes(baseline) / 1e6,
    }))
    for variant in ours:
        report.rows.append(BenchRow(variant[0], variant[1], {
            **row_values(median(samples[variant]), base),
            "words = baseline": _word_agreement(texts[variant], base_text),
            "weights MB": loaded[variant].size_bytes / 1e6,
        }))

    default = ct2 if ct2 is not None else first
    cached = Translator(store, ResultCache(None), model=model, device=device, compression=default.compression,
                        runtime=default.runtime)
    cached.run(page, options)  # fills the cache
    hits: list[float] = []
    for _ in range(max(repeats, 5)):
        result = cached.run(page, options)
        if result.translated:
            raise RuntimeError(f"The cached run translated {result.translated} sentences: every one should have come from the cache.")
        hits.append(result.seconds)
    cache_seconds = median(hits)
    report.rows.append(BenchRow("desktop-ai Translator, same page again (cache)", result.compression, {
        **row_values(cache_seconds, base), "words = baseline": _word_agreement(result.text, base_text),
    }))

    if real:
        about = "."
    elif d_model < 128:
        about = (f": a tiny model (d_model under 128) with random weights, so its translations are nonsense and its speed "
                 f"says little about a real opus-mt model; each sentence is cut at {STAND_IN_NEW_TOKENS} new tokens, in ours "
                 "and the baseline alike.")
    else:
        about = (f": {made_up}. Its translations are nonsense; its speed is the architecture's, with every sentence "
                 f"generating {STAND_IN_NEW_TOKENS} tokens in ours and the baseline alike (a real model stops at </s>, "
                 "sooner for short sentences).")
    notes = [
        absent + f"Model: {title} ({location.path}), d_model {d_model}, "
        f"{sum(p.numel() for p in baseline.parameters()) / 1e6:.1f} M parameters" + about,
        f"A page of {len(sentences)} distinct English sentences in 6 paragraphs, {beams} beams, batches of {BATCH_SIZE}, "
        f"{repeats} interleaved rounds, medians. Ours times Translator.run on the page (splitting, tokenizing, translating, "
        "joining); the baseline tokenizes the same sentences in the same batches and calls generate, fp32, no cache. "
        f"CTranslate2 runs on {ct2_threads()} threads (the physical cores), torch on {torch.get_num_threads()}.",
        "'words = baseline' is the word-level similarity of the whole page with the baseline's translation"
        + ("." if real else " (of nonsense here: int8 rounding sends random weights elsewhere)."),
        *notes_before,
    ]
    if ct2 is not None:
        notes.append(f"CTranslate2 converted the model once to int8 into {loaded[(CT2_ROW, ct2.runtime_compression('ctranslate2'))].folder}; "
                     "later runs load that folder.")
    fast = next((r for r in report.rows[1:-1] if r.name == CT2_ROW), None)
    cache_ms = 1000 * cache_seconds
    cache_part = f"cached page {cache_ms:.1f} ms ({'met' if cache_ms < 50 else 'not met'})"
    goal = (f"Goal (CTranslate2 int8 at {CT2_GOAL}x the baseline's sentences/s or more, on opus-mt-en-de or its "
            "stand-in; the same page again from the cache under 50 ms)")
    if fast is None:
        speed_part = "CTranslate2 was not run"
    else:
        ratio = float(fast.values["x baseline"])
        verdict = "met" if ratio >= CT2_GOAL else "not met"
        if real:
            speed_part = f"CTranslate2 {ratio:.2f}x the baseline ({verdict})"
        elif d_model >= 128:
            speed_part = (f"CTranslate2 {ratio:.2f}x the baseline on opus-mt's architecture, every sentence generating "
                          f"{STAND_IN_NEW_TOKENS} tokens in both ({verdict})")
        else:
            speed_part = (f"CTranslate2 {ratio:.2f}x the baseline, but a tiny model's speed says nothing about opus-mt, "
                          "so the speed goal cannot be judged on it; run it without --model or with a real opus-mt model")
    torch_int8 = next((r for r in report.rows[1:-1] if r.name == TRANSFORMERS_ROW and r.compression == "int8"), None)
    if torch_int8 is not None:
        speed_part += f"; torch int8 on transformers {float(torch_int8.values['x baseline']):.2f}x"
    notes.append(f"{goal}: {speed_part}; {cache_part}.")
    notes.extend(notices)
    notes.append(f"Process memory after loading every variant: {rss_mb():.0f} MB RSS.")
    report.notes.extend(notes)
    del baseline
    gc.collect()
    return report
