"""--cluster, --workers and --ship-files: the options that hand a folder job to a Ray cluster, shared by recognize,
transcribe and classify. Nothing here imports ray; the engine's cluster group does, when a job runs."""

from __future__ import annotations

import argparse
from typing import Any

from desktop_ai.cli.options import positive_int

DEFAULT_WORKERS = 2


def add_cluster_options(parser: argparse.ArgumentParser, files: bool = True) -> None:
    group = parser.add_argument_group("cluster", "run the job on a Ray cluster (needs pip install \"desktop-ai[cluster]\")")
    group.add_argument("--cluster", metavar="ADDRESS", default=None,
                       help="local (start a Ray cluster on this machine), auto, host:port or ray://host:10001")
    group.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="with --cluster: workers (Ray actors), each holding one loaded model (default: 2)")
    if files:
        group.add_argument("--ship-files", action="store_true",
                           help="with --cluster: send each file's bytes to the workers, for workers that cannot see "
                           "this machine's paths (default: workers read the same paths, a shared folder)")


def cluster_settings(args: argparse.Namespace, batch_size: int | None = None) -> Any:
    """The job's ClusterSettings, or None for a local run. --workers and --ship-files alone are a mistake."""
    from desktop_ai.cli.output import CliError

    if args.cluster is None:
        for flag, given in (("--workers", args.workers is not None), ("--ship-files", getattr(args, "ship_files", False))):
            if given:
                raise CliError(f"{flag} goes with --cluster ADDRESS.")
        return None
    from desktop_ai.engine.cluster.runs import ClusterSettings

    return ClusterSettings(args.cluster, args.workers or DEFAULT_WORKERS, getattr(args, "ship_files", False), batch_size,
                           verbose=bool(getattr(args, "verbose", False)))
