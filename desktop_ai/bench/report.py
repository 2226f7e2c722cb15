"""What every benchmark shares: the report and its rows (JSON and Markdown), medians, resident memory and
the environment line, so that each task module only says what it runs and against which baseline."""

from __future__ import annotations

import logging
import platform
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil
import torch

logger = logging.getLogger(__name__)

@dataclass
class BenchRow:
    name: str
    compression: str
    values: dict[str, float | str]


@dataclass
class BenchReport:
    task: str
    model: str
    device: str
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        columns: list[str] = []
        for row in self.rows:
            for key in row.values:
                if key not in columns:
                    columns.append(key)
        lines = [
            f"### bench --task {self.task}: {self.model} on {self.device}",
            "",
            "| run | compression | " + " | ".join(columns) + " |",
            "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
        ]
        for row in self.rows:
            cells = [format_value(row.values.get(c, "")) for c in columns]
            lines.append(f"| {row.name} | {row.compression} | " + " | ".join(cells) + " |")
        lines.append("")
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        lines.append(f"Environment: {env}.")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def environment() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quantized engine": torch.backends.quantized.engine,
    }


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")
