"""`translate`: text, a file or stdin, sentence by sentence, with its layout kept."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from desktop_ai.cli.cluster import add_cluster_options, cluster_settings
from desktop_ai.cli.options import add_model_options, positive_int
from desktop_ai.engine.runtimes.marian_runtime import RUNTIMES
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


def _read_translation_text(args: argparse.Namespace) -> str:
    if args.file is not None:
        if args.texts:
            raise CliError("Give the text either as TEXT or with --file, not both.")
        return read_text_file(args.file)
    if args.texts == ["-"]:
        return sys.stdin.read()
    return " ".join(args.texts)


def cmd_translate(args: argparse.Namespace) -> int:
    """The whole translation on stdout (or one JSON object): line breaks and spacing kept as they were."""
    text = _read_translation_text(args)
    quiet_libraries(args.verbose)
    from desktop_ai.engine.tasks.translation import TranslationOptions, Translator
    from desktop_ai.engine.workspace import open_workspace

    progress = progress_for(args)
    cluster = cluster_settings(args)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        if cluster is not None:
            from desktop_ai.engine.cluster.runs import translate_on_cluster
            from desktop_ai.engine.cluster.tasks import TranslateTask

            progress.message(f"Using {cluster.describe()}")
            task = TranslateTask(args.model, args.src, args.tgt, args.device, args.compression, args.runtime, args.beams)
            device_notices: list[str] = []
            result = translate_on_cluster(cluster, task, text, workspace.cache, progress)
        else:
            translator = Translator(workspace.store, workspace.cache, model=args.model, src=args.src, tgt=args.tgt,
                                    device=args.device, compression=args.compression, runtime=args.runtime)
            device_notices = device_notice(args.device, translator.device)
            progress.message(f"Using {translator.entry.title} on {translator.device.describe()} ({translator.runtime})")
            result = translator.run(text, TranslationOptions(beams=args.beams), progress=progress)
    finally:
        progress.finish()
        workspace.close()
    notices = device_notices + result.notices
    if args.json:
        print_json({
            "text": result.text, "source_text": result.source_text, "model_id": result.model_id, "device": result.device,
            "compression": result.compression, "runtime": result.runtime, "sentences": result.sentences, "translated": result.translated,
            "cached": result.cached, "seconds": result.seconds, "notices": notices, "stopped": result.stopped,
        })
    else:
        out(result.text.rstrip("\n"))
        notes(notices)
    progress.message(f"{result.sentences} sentences in {result.seconds:.2f} s on {result.device} ({result.runtime})"
                     + (f" ({result.cached} from the cache)" if result.cached else ""))
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """translate."""
    translate = commands.add_parser("translate", parents=[common], help="translate text sentence by sentence (opus-mt)",
                                    description="Translate TEXT (the words joined with spaces), a --file, or stdin (-) "
                                    "with a MarianMT opus-mt model; line breaks and spacing are kept.")
    translate.add_argument("texts", nargs="*", metavar="TEXT", help="the text to translate; - reads it from stdin")
    translate.add_argument("--src", default="en", metavar="LANG", help="source language (default: en)")
    translate.add_argument("--tgt", default="de", metavar="LANG", help="target language (default: de)")
    translate.add_argument("--file", type=Path, metavar="PATH", help="a UTF-8 text file to translate")
    translate.add_argument("--beams", type=positive_int, default=4, metavar="N", help="beam search width, 1 to 16 (default: 4)")
    translate.add_argument("--runtime", choices=RUNTIMES, default="auto",
                           help="auto (default): CTranslate2 int8 where it runs, else transformers; ctranslate2 or "
                           "transformers force one (compression options other than int8 apply to transformers)")
    add_model_options(translate, "catalogue id (opus-mt-en-de), Hub id, or a MarianMT model folder "
                       "(default: opus-mt-SRC-TGT)")
    add_cluster_options(translate, files=False)
    translate.set_defaults(handler=cmd_translate)
