"""`generate` and `classify`: text in, streamed tokens or labels out."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from desktop_ai.cli.cluster import add_cluster_options, cluster_settings
from desktop_ai.cli.options import RUNTIME_CHOICES, add_model_options, positive_int
from desktop_ai.cli.output import (
    EXIT_OK,
    CliError,
    device_notice,
    notes,
    out,
    print_json,
    progress_for,
    quiet_libraries,
    read_text_file,
)

logger = logging.getLogger(__name__)


def _read_prompt(prompt: str) -> str:
    return sys.stdin.read() if prompt == "-" else prompt


def cmd_generate(args: argparse.Namespace) -> int:
    """Stream tokens as they come, because a reader wants the first words now, not after the last."""
    quiet_libraries(args.verbose)
    from desktop_ai.engine.tasks.text_generation import GenerationOptions, TextGenerator
    from desktop_ai.engine.workspace import open_workspace

    prompt = _read_prompt(args.prompt)
    options = GenerationOptions(max_new_tokens=args.max_new_tokens, seed=args.seed)
    if args.temperature is not None:
        options.temperature = args.temperature
    if args.top_p is not None:
        options.top_p = args.top_p
    if args.top_k is not None:
        options.top_k = args.top_k
    if args.repetition_penalty is not None:
        options.repetition_penalty = args.repetition_penalty
    options.stop = list(args.stop)
    progress = progress_for(args)
    streamed: list[str] = []

    def on_partial(text: str) -> None:
        progress.finish()
        streamed.append(text)
        out(text, end="")

    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        generator = TextGenerator(workspace.store, workspace.cache, model=args.model, device=args.device,
                                  compression=args.compression, runtime=args.runtime)
        device_notices = device_notice(args.device, generator.device)
        if not args.json:
            notes(device_notices)
        runtime = "" if args.runtime == "auto" else f" ({args.runtime})"
        progress.message(f"Using {generator.entry.title}{runtime} on {generator.device.describe()}")
        try:
            result = generator.run(prompt, options, on_partial=None if args.json else on_partial, progress=progress)
        except KeyboardInterrupt:
            if streamed:
                out()
            raise
    finally:
        progress.finish()
        workspace.close()
    if args.json:
        result.notices = device_notices + result.notices
        print_json(result.to_dict())
    else:
        if streamed:
            out()
        notes(result.notices)
        if result.from_cache:
            progress.message(f"{result.new_tokens} tokens from the cache in {result.seconds:.2f} s")
        else:
            progress.message(f"{result.new_tokens} tokens in {result.seconds:.2f} s ({result.tokens_per_second:.1f} "
                             f"tokens/s) on {result.device} with {result.runtime}")
    return EXIT_OK


def _read_texts(args: argparse.Namespace) -> list[str]:
    texts: list[str] = []
    for text in args.texts:
        texts.extend(sys.stdin.read().splitlines() if text == "-" else [text])
    if args.file is not None:
        texts.extend(read_text_file(args.file).splitlines())
    return texts


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _classification_table(results: Sequence[Any]) -> list[str]:
    rows = [(shorten(r.text, 50), r.label, f"{r.scores[0].score:.3f}",
             "  ".join(f"{s.label} {s.score:.3f}" for s in r.scores)) for r in results]
    headers = ("text", "label", "score", "all scores")
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[3]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(headers[3]))
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    return lines


def cmd_classify(args: argparse.Namespace) -> int:
    """One result per text, in the order given: JSON lines for scripts, a table for people."""
    texts = _read_texts(args)
    quiet_libraries(args.verbose)
    from desktop_ai.engine.tasks.text_classification import TextClassifier
    from desktop_ai.engine.workspace import open_workspace

    progress = progress_for(args)
    cluster = cluster_settings(args)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        if args.classifier:
            from desktop_ai.engine.tasks.taught_text import TextTeacher

            if cluster is not None or args.labels:
                raise CliError("--classifier NAME has its own labels; it runs here, without --labels or --cluster.")
            teacher = TextTeacher(workspace.store, model=args.model, device=args.device, cache=workspace.cache)
            progress.message(f"Using your classifier {args.classifier!r} on {teacher.embedder.entry.title}")
            batch = teacher.run(args.classifier, texts, progress=progress)
        elif cluster is not None:
            from desktop_ai.engine.cluster.runs import classify_on_cluster
            from desktop_ai.engine.cluster.tasks import ClassifyTask

            progress.message(f"Using {cluster.describe()}")
            task = ClassifyTask(args.model, args.device, args.compression, args.labels)
            batch = classify_on_cluster(cluster, task, texts, workspace.cache, progress)
            if not (args.labels and args.labels.strip()):
                from desktop_ai.engine.tasks.builtin_sentiment import ZERO_SHOT_ON_CLUSTER, builtin_trained

                if builtin_trained():
                    batch.notices = [ZERO_SHOT_ON_CLUSTER, *batch.notices]
        else:
            classifier = TextClassifier(workspace.store, workspace.cache, model=args.model, device=args.device,
                                        compression=args.compression)
            notes(device_notice(args.device, classifier.device))
            progress.message(f"Using {classifier.entry.title} on {classifier.device.describe()}")
            if args.labels and args.labels.strip():
                batch = classifier.run(texts, labels=args.labels, progress=progress)
            else:  # sentiment: the built-in taught classifier when trained (desktop-ai teach sentiment --builtin)
                from desktop_ai.engine.tasks.builtin_sentiment import classify_sentiment

                batch = classify_sentiment(workspace.store, workspace.cache, texts, args.model, args.device,
                                           args.compression, progress=progress)
    finally:
        progress.finish()
        workspace.close()
    if args.json:
        for result in batch.results:
            print_json(result.to_dict())
    else:
        for line in _classification_table(batch.results):
            out(line)
    notes(batch.notices)
    hits = sum(1 for r in batch.results if r.from_cache)
    progress.message(f"{len(batch.results)} texts in {batch.seconds:.2f} s on {batch.device}"
                     + (f" ({hits} from the cache)" if hits else ""))
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """generate and classify."""
    generate = commands.add_parser("generate", parents=[common], help="continue or answer a prompt, streaming the tokens",
                                   description="Generate text from PROMPT and stream it to stdout as it comes.")
    generate.add_argument("prompt", metavar="PROMPT", help="the prompt, or - to read it from stdin")
    generate.add_argument("--max-new-tokens", type=positive_int, default=200, metavar="N",
                          help="most tokens to generate (default: 200)")
    generate.add_argument("--temperature", type=float, default=None, metavar="T",
                          help="sampling temperature; 0 is greedy and repeatable (default: 0.7)")
    generate.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling (default: 0.9)")
    generate.add_argument("--seed", type=int, default=None, metavar="S", help="seed for repeatable sampling")
    generate.add_argument("--top-k", type=int, default=None, metavar="K", help="sample from the K most likely tokens; 0 is off (default: 40)")
    generate.add_argument("--repetition-penalty", type=float, default=None, metavar="R",
                          help="discourage repeating tokens; 1 is none (default: 1.1)")
    generate.add_argument("--stop", action="append", default=[], metavar="TEXT",
                          help="end the answer before TEXT (repeat for several)")
    generate.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                          help="what runs the model: auto picks llama.cpp for a .gguf file, CTranslate2 for a "
                          "transformers folder it converts, transformers otherwise (default: auto)")
    add_model_options(generate, compression_default="int8")
    generate.set_defaults(handler=cmd_generate)

    classify = commands.add_parser("classify", parents=[common], help="sentiment, or zero-shot into labels you give",
                                   description="Classify each TEXT (and each line of --file): sentiment by "
                                   "default, or into --labels.")
    classify.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify; - reads one text per line from stdin")
    classify.add_argument("--labels", metavar="a,b,c", help="comma-separated labels (at least two); default: sentiment")
    classify.add_argument("--file", type=Path, metavar="PATH", help="a UTF-8 text file, one text per line")
    classify.add_argument("--classifier", metavar="NAME", help="a classifier you taught (desktop-ai teach NAME ...)")
    add_model_options(classify)
    add_cluster_options(classify, files=False)
    classify.set_defaults(handler=cmd_classify)
