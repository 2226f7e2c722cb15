"""`bench`: one task's speed against its plain baseline (desktop_ai/bench/ does the measuring)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from desktop_ai.bench.marian_stand_in import SHAPES as MARIAN_SHAPES  # imports no torch
from desktop_ai.cli.options import (
    BENCH_TASK_CHOICES,
    compression_list,
    device_name,
    positive_int,
)
from desktop_ai.cli.output import (
    EXIT_OK,
    CliError,
    out,
    print_json,
    progress_for,
    quiet_libraries,
)

logger = logging.getLogger(__name__)


def worker_counts(value: str) -> list[int]:
    counts = [positive_int(part.strip()) for part in value.split(",") if part.strip()]
    if not counts:
        raise argparse.ArgumentTypeError("give worker counts, for example 1,2")
    return list(dict.fromkeys(counts))


def cmd_bench(args: argparse.Namespace) -> int:
    """Numbers measured on this machine, because compression pays off differently on each one."""
    if args.cluster is None and args.workers is not None:
        raise CliError("--workers goes with --cluster ADDRESS.")
    if args.cluster is not None and args.task != "recognize":
        raise CliError("bench --cluster measures --task recognize only.")
    quiet_libraries(args.verbose)
    from desktop_ai.bench import run_benchmark

    progress = progress_for(args)
    try:
        report = run_benchmark(
            args.task,
            model=args.model,
            device=args.device,
            compressions=args.compressions,
            max_new_tokens=args.max_new_tokens,
            repeats=args.repeats,
            progress=progress,
            images=args.images,
            arch=args.arch,
            labels=args.labels,
            beams=args.beams,
            audio=[args.audio] if args.audio else None,
            stand_in=args.stand_in,
            cluster=args.cluster,
            workers=args.workers,
        )
    finally:
        progress.finish()
    markdown = report.to_markdown()
    if args.markdown is not None:
        try:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown if markdown.endswith("\n") else markdown + "\n", encoding="utf-8")
        except OSError as error:
            raise CliError(f"Cannot write {args.markdown}: {error.strerror or error}.") from None
        progress.message(f"Wrote {args.markdown}")
    if args.json:
        print_json(report.to_dict())
    else:
        out(markdown.rstrip("\n"))
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """bench."""
    bench = commands.add_parser("bench", parents=[common], help="measure speed and size with each compression",
                                description="Benchmark one task's model with each compression and print a table.")
    bench.add_argument("--task", choices=BENCH_TASK_CHOICES, required=True,
                       help="which task to benchmark (chat: first-token latency over a 10-turn conversation; voice: "
                       "read-aloud real-time factor and time to first sound, --model VOICE)")
    bench.add_argument("--model", metavar="M", help="catalogue id, Hub id, or model folder (default: the task's default)")
    bench.add_argument("--device", type=device_name, default="auto", metavar="{auto,cpu,cuda,mps}", help="where to run")
    bench.add_argument("--compressions", type=compression_list, default=None, metavar="none,int8,prune",
                       help="comma-separated compressions to compare (default: the benchmark's own choice)")
    bench.add_argument("--max-new-tokens", type=positive_int, default=32, metavar="N",
                       help="tokens per generation run (default: 32)")
    bench.add_argument("--repeats", type=positive_int, default=3, metavar="N", help="timed runs per setting (default: 3)")
    bench.add_argument("--beams", type=positive_int, default=4, metavar="N", help="translate: beam search width (default: 4)")
    bench.add_argument("--stand-in", choices=tuple(MARIAN_SHAPES), default=None,
                       help="translate: a MarianMT with random weights of this shape instead of a real model (the "
                            "default when opus-mt-en-de is not downloaded and no --model is given: opus-mt-en-de's shape)")
    bench.add_argument("--images", nargs="+", metavar="IMAGE_OR_FOLDER",
                       help="recognize: the images to time (default: the sample photos of ../shared/models)")
    bench.add_argument("--arch", metavar="A", help="recognize: torchvision architecture of a state_dict --model")
    bench.add_argument("--labels", metavar="F", help="recognize: class names file (default: labels.txt beside the model)")
    bench.add_argument("--audio", metavar="AUDIO",
                       help="transcribe: a recording to time (default: English sentences spoken by espeak-ng)")
    bench.add_argument("--cluster", metavar="ADDRESS", default=None,
                       help="recognize: photos/s on a Ray cluster instead (local starts one here; needs "
                       "pip install \"desktop-ai[cluster]\")")
    bench.add_argument("--workers", type=worker_counts, default=None, metavar="1,2",
                       help="with --cluster: the worker counts to measure (default: 1,2)")
    bench.add_argument("--json", action="store_true", help="the report as JSON instead of a Markdown table")
    bench.add_argument("--markdown", type=Path, metavar="PATH", help="also write the Markdown table to this file")
    bench.set_defaults(handler=cmd_bench)
