"""`recognize`: ImageNet labels for image files and folders, printed in input order."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from desktop_ai.cli.cluster import add_cluster_options, cluster_settings
from desktop_ai.cli.options import add_model_options, positive_int
from desktop_ai.cli.output import (
    EXIT_OK,
    CliError,
    device_notice,
    err,
    notes,
    out,
    print_json,
    progress_for,
    quiet_libraries,
)

logger = logging.getLogger(__name__)


def _recognition_lines(result: Any) -> list[str]:
    """The path, then one indented "label  score%" line per prediction, labels aligned."""
    width = max((len(p.label) for p in result.predictions), default=0)
    lines = [result.path] + [f"  {p.label.ljust(width)}  {100 * p.score:.1f}%" for p in result.predictions]
    if getattr(result, "imagenet", None):  # a taught classifier's labels come first, ImageNet's beside them
        lines.append("  ImageNet: " + ", ".join(f"{p.label} {100 * p.score:.0f}%" for p in result.imagenet))
    return lines


class InOrder:
    """Results arrive batch by batch (cache hits and unreadable files at once, the others when their batch
    is done); hand them on in the order the files were given, each as soon as all before it are out."""

    def __init__(self, paths: Sequence[Path], emit: Callable[[Any], None]) -> None:
        self._expected = [str(p) for p in paths]
        self._next = 0
        self._waiting: dict[str, list[Any]] = {}
        self._emit = emit

    def __call__(self, results: Sequence[Any]) -> None:
        for result in results:
            self._waiting.setdefault(result.path, []).append(result)
        while self._next < len(self._expected) and self._waiting.get(self._expected[self._next]):
            self._emit(self._waiting[self._expected[self._next]].pop(0))
            self._next += 1

    def rest(self, results: Sequence[Any]) -> None:
        """Whatever is still held once the run is over (none, unless the engine skipped one)."""
        for result in results[self._next:]:
            self._emit(result)


def cmd_recognize(args: argparse.Namespace) -> int:
    """One result per image in the order given, streamed as batches finish: JSON lines for scripts, labels for
    people. A file that cannot be recognised is a note, not a failure, unless every file failed."""
    if (args.move or args.min_score) and args.sort_into is None:
        raise CliError("--move and --min-score go with --sort-into DIR.")
    quiet_libraries(args.verbose)
    from desktop_ai.engine.tasks.image_classification import (
        ImageClassifier,
        collect_images,
    )
    from desktop_ai.engine.workspace import open_workspace

    files = collect_images(args.images)
    if not files:
        raise CliError("No images to recognise: " + ", ".join(args.images) + " holds no image files.")

    def emit(result: Any) -> None:
        progress.finish()
        if args.json:
            print_json(result.to_dict())
        elif result.ok:
            for line in _recognition_lines(result):
                out(line)
        elif len(files) > 1:  # a single file that fails is the error line itself
            err(f"note: {result.path}: {result.error}")

    progress = progress_for(args)
    in_order = InOrder(files, emit)
    cluster = cluster_settings(args, args.batch_size)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        if args.classifier:
            from desktop_ai.engine.tasks.taught_photos import PhotoTeacher

            if cluster is not None:
                raise CliError("--classifier NAME runs here, not on a cluster.")
            progress.message(f"Using your classifier {args.classifier!r}")
            batch = PhotoTeacher(workspace.store, cache=workspace.cache).run(args.classifier, files, progress=progress)
            for result in batch.results:
                in_order([result])
        elif cluster is not None:
            from desktop_ai.engine.cluster.runs import recognize_on_cluster
            from desktop_ai.engine.cluster.tasks import RecognizeTask

            progress.message(f"Using {cluster.describe()}")
            task = RecognizeTask(args.model, args.device, args.compression, args.arch,
                                 str(args.labels) if args.labels else None, args.top)
            batch = recognize_on_cluster(cluster, task, files, workspace.cache, in_order, progress)
        else:
            classifier = ImageClassifier(workspace.store, workspace.cache, model=args.model, device=args.device,
                                         compression=args.compression, arch=args.arch, labels=args.labels)
            notes(device_notice(args.device, classifier.device))
            progress.message(f"Using {classifier.entry.title} on {classifier.device.describe()}")
            batch = classifier.run(files, top_k=args.top, batch_size=args.batch_size, on_results=in_order, progress=progress)
        in_order.rest(batch.results)
    finally:
        progress.finish()
        workspace.close()
    failed = [r for r in batch.results if not r.ok]
    if batch.results and len(failed) == len(batch.results):
        if len(failed) == 1:
            raise CliError(f"{failed[0].path}: {failed[0].error}")
        raise CliError(f"None of the {len(failed)} files could be recognised; each one says why.")
    notes(batch.notices)
    hits = sum(1 for r in batch.results if r.from_cache)
    progress.message(f"{len(batch.results) - len(failed)} images in {batch.seconds:.2f} s "
                     f"({batch.images_per_second:.1f} images/s) with {batch.model_title} on {batch.runtime or batch.device}"
                     + (f" ({hits} from the cache)" if hits else ""))
    if args.sort_into is not None:
        _sort(args, batch.results)
    return EXIT_OK


def _confirm_move(args: argparse.Namespace, count: int) -> None:
    """Moving takes photos away from where the user keeps them: ask first, unless --yes."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError("--move takes the photos away from where they are: confirm with --yes (no terminal to ask on).")
    err(f"Move {count} photo(s) into folders in {args.sort_into}? [y/N] ")
    if input().strip().lower() not in ("y", "yes"):
        raise CliError("Not moved: nothing was changed.")


def _sort(args: argparse.Namespace, results: Sequence[Any]) -> None:
    from desktop_ai.engine.tasks.photo_sorting import sort_photos

    if args.move:
        _confirm_move(args, sum(1 for r in results if r.ok))
    report = sort_photos(results, args.sort_into, move=args.move, min_score=args.min_score)
    notes([report.describe()])
    for photo in report.done:
        logger.debug("%s -> %s", photo.source, photo.destination)


def _fraction(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0-1, or a percentage like 50%)") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0-1 (0 %-100 %)")
    return value


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """recognize."""
    recognize = commands.add_parser("recognize", parents=[common], help="ImageNet top-k labels for image files and folders",
                                    description="Recognise what each image shows (ImageNet-1k classes); folders are "
                                    "searched for image files. Files that cannot be read are reported and skipped.")
    recognize.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files, or folders of them")
    recognize.add_argument("--classifier", metavar="NAME",
                           help="your own labels, taught with desktop-ai teach NAME --task recognize (ImageNet's follow them)")
    recognize.add_argument("--top", type=positive_int, default=5, metavar="K", help="labels per image (default: 5)")
    recognize.add_argument("--arch", metavar="A",
                           help="torchvision architecture of a state_dict file given with --model (for example mobilenet_v2)")
    recognize.add_argument("--labels", type=Path, metavar="F",
                           help="class names, one per line (default: the labels.txt beside the model file)")
    recognize.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                           help="images per model call (default: 16 on a CPU, 64 on a GPU); with --cluster, images "
                           "per batch sent to a worker (default: 8)")
    recognize.add_argument("--sort-into", type=Path, metavar="DIR",
                           help="then copy each photo into DIR/<top label>/ (never overwriting: a clash gets a number)")
    recognize.add_argument("--move", action="store_true", help="with --sort-into: move instead of copy (asks first)")
    recognize.add_argument("--min-score", type=_fraction, default=0.0, metavar="S",
                           help="with --sort-into: photos whose top label scores below S (0-1, or a percentage like "
                           "50%%) go into 'unsure' (default: 0)")
    recognize.add_argument("--yes", action="store_true", help="with --move: do not ask for confirmation")
    add_model_options(recognize, "catalogue id (see `models --task recognize`), a TorchScript file, or a state_dict "
                       "file with --arch")
    add_cluster_options(recognize)
    recognize.set_defaults(handler=cmd_recognize)
