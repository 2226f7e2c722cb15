"""OCR for scanned PDF pages with RapidOCR on ONNX Runtime (Apache-2.0; its models ship inside the wheel, so it
works offline). Optional: without it, scans are listed as needing OCR."""

from __future__ import annotations

import importlib.util
import io
import logging
from pathlib import Path
from typing import Any

from desktop_ai.engine.documents.readers.document import Section, clean_text

logger = logging.getLogger(__name__)
_engine: Any = None


def available() -> bool:
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def read_pages(path: Path, pages: list[Any]) -> list[Section]:
    """Each page's embedded images read by OCR, lines in reading order."""
    global _engine
    import numpy as np
    from PIL import Image
    from rapidocr_onnxruntime import RapidOCR

    if _engine is None:
        _engine = RapidOCR()
    sections: list[Section] = []
    for number, page in enumerate(pages, 1):
        lines: list[str] = []
        for image in page.images:
            picture = Image.open(io.BytesIO(image.data)).convert("RGB")
            found, _ = _engine(np.asarray(picture))
            lines.extend(str(item[1]) for item in found or [])
        sections.append(Section(clean_text("\n".join(lines)), "", number))
    logger.info("OCR read %d pages of %s", len(pages), path)
    return sections
