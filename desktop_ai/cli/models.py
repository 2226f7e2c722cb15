"""`models`: the catalogue and what is on this machine."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from desktop_ai.cli.options import TASK_CHOICES
from desktop_ai.cli.output import EXIT_OK, out, print_json

logger = logging.getLogger(__name__)


def cmd_models(args: argparse.Namespace) -> int:
    """What is known, what is ready offline, and what would need a download: before choosing, not after."""
    from desktop_ai.engine.models.catalogue import CATALOGUE, TASKS
    from desktop_ai.engine.workspace import open_workspace

    workspace = open_workspace(use_disk_cache=False)
    try:
        defaults = {task: workspace.store.default_model(task) for task in TASKS}
        rows = [
            {
                "id": entry.id,
                "task": entry.task,
                "title": entry.title,
                "size_mb": entry.size_mb,
                "licence": entry.licence,
                "source": entry.source,
                "location": entry.location,
                "availability": workspace.store.availability(entry),
                "default": defaults.get(entry.task) == entry.id,
            }
            for entry in CATALOGUE
            if args.task is None or entry.task == args.task
        ]
    finally:
        workspace.close()
    if args.json:
        print_json(rows)
        return EXIT_OK
    columns = ("id", "task", "size", "licence", "source", "availability", "title")
    table = [
        (("* " if row["default"] else "  ") + row["id"], row["task"], f"{row['size_mb']:.0f} MB", row["licence"],
         row["source"], row["availability"], row["title"])
        for row in rows
    ]
    header = ("  " + columns[0],) + columns[1:]
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) if table else len(header[i]) for i in range(len(header))]
    for line in [header, *table]:
        out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    out("\n* the default model of its task")
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """models."""
    models = commands.add_parser("models", parents=[common], help="list the known models and whether they are ready",
                                 description="List the model catalogue; * marks the default of each task.")
    models.add_argument("--task", choices=TASK_CHOICES, help="only the models of this task")
    models.add_argument("--json", action="store_true", help="a JSON list on stdout")
    models.set_defaults(handler=cmd_models)
