"""The Image tab's results as text: tab-separated for the clipboard, CSV for a file."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from desktop_ai.engine.tasks.image_classification import ImageResult
from desktop_ai.gui.job_page import save_text


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def results_as_tsv(results: Sequence[ImageResult]) -> str:
    """path, top-1 label, its score, then label=score for every label, tab-separated; failures say why."""
    lines = ["path\ttop-1\tscore\tlabels"]
    for r in results:
        if r.ok and r.predictions:
            top = r.predictions[0]
            scores = "\t".join(f"{_clean(p.label)}={p.score:.4f}" for p in r.predictions)
            lines.append(f"{_clean(r.path)}\t{_clean(top.label)}\t{top.score:.4f}\t{scores}")
        else:
            lines.append(f"{_clean(r.path)}\t\t\terror: {_clean(r.error or 'no result')}")
    return "\n".join(lines) + "\n"


def save_image_results(path: Path, results: Sequence[ImageResult]) -> None:
    """CSV: path,label_1,score_1,...,label_k,score_k,error (k: the most labels any image has)."""
    k = max((len(r.predictions) for r in results), default=0) or 1
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["path"]
    for i in range(1, k + 1):
        header += [f"label_{i}", f"score_{i}"]
    writer.writerow([*header, "error"])
    for r in results:
        row = [r.path]
        for i in range(k):
            if i < len(r.predictions):
                row += [r.predictions[i].label, f"{r.predictions[i].score:.6f}"]
            else:
                row += ["", ""]
        writer.writerow([*row, r.error or ""])
    save_text(path, buffer.getvalue())

