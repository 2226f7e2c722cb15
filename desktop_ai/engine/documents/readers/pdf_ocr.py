"""OCR for scanned PDF pages with RapidOCR on ONNX Runtime (Apache-2.0, PaddleOCR's PP-OCRv6 models, Apache-2.0 too;
they ship inside the wheel, so it works offline). Without it installed, scans are listed as needing OCR."""

from __future__ import annotations

import importlib.util
import io
import logging
import threading
from pathlib import Path
from typing import Any

from desktop_ai.engine.documents.readers.document import Section, clean_text

logger = logging.getLogger(__name__)
MIN_SCORE = 0.5  # RapidOCR's confidence in a line: under this it is mostly specks and stamps read as letters
_engine: Any = None
_lock = threading.Lock()  # one engine for every reader thread; loading it costs about a second


def available() -> bool:
    return importlib.util.find_spec("rapidocr") is not None


def _ocr() -> Any:
    global _engine
    with _lock:
        if _engine is None:
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)  # it logs each model file it opens
            from rapidocr import RapidOCR

            _engine = RapidOCR()
        return _engine


def read_pages(path: Path, pages: list[Any]) -> list[Section]:
    """Each page's embedded images read by OCR, lines in reading order, each section keeping its page number."""
    import numpy as np
    from PIL import Image

    engine = _ocr()
    sections: list[Section] = []
    for number, page in enumerate(pages, 1):
        lines: list[str] = []
        for image in page.images:
            picture = Image.open(io.BytesIO(image.data)).convert("RGB")
            found = engine(np.asarray(picture))
            texts, scores = getattr(found, "txts", None) or (), getattr(found, "scores", None) or ()
            lines.extend(str(text) for text, score in zip(texts, scores) if score >= MIN_SCORE)
        sections.append(Section(clean_text("\n".join(lines)), "", number))
    logger.info("OCR read %d pages of %s", len(pages), path)
    return sections
