"""Reading photos for recognition: which files are images, decoding them small and safely, thumbnails.

Images are decoded once at a reduced size (JPEG draft mode, then a thumbnail), because decoding a 12 MP
photo at full size costs more than classifying it; the model's own preprocessing then runs on that.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DECODE_SIZE = 512  # JPEGs decode at the smallest DCT scale keeping both sides at least this, unless a model needs less
SAFE_SIZE = 2048  # anything larger (a 20000x20000 PNG, say) is box-reduced first, so memory stays bounded
THUMBNAIL_SIZE = 96
MAX_PIXELS = 600_000_000  # refuse decompression bombs beyond this; below it, downscale

def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and folders expanded (recursively, sorted) to the image files they hold."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = []
            for root, _dirs, names in os.walk(path):
                found.extend(Path(root) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)
            files.extend(sorted(found))
        else:
            files.append(path)
    return files


def read_labels(path: Path) -> list[str]:
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ModelUnavailableError(f"The labels file {path} cannot be read: {error}") from error
    if len(labels) < 2:
        raise ModelUnavailableError(f"The labels file {path} has {len(labels)} label(s); it needs one class name per line.")
    return labels


def load_image(data: bytes, name: str = "image", min_side: int = DECODE_SIZE) -> tuple["Image.Image", int, int]:
    """Decode to RGB at a reduced size, honouring EXIF orientation and any mode (RGBA, L, CMYK, 16-bit).

    A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both sides at least `min_side`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidInputError(f"{name} is empty (0 bytes).")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if image.format == "JPEG":
                image.draft("RGB", (min_side, min_side))
            image.load()
    except UnidentifiedImageError:
        raise InvalidInputError(f"{name} is not an image file this app can read (JPEG, PNG, BMP, GIF, WebP, TIFF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInputError(f"{name} is too large to open safely (over {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInputError(f"{name} is damaged or truncated and cannot be decoded ({error}).") from None
    if min(image.size) > SAFE_SIZE and image.mode not in ("P", "1"):
        image = image.reduce(min(image.size) // SAFE_SIZE)  # before any conversion copies it
    ImageOps.exif_transpose(image, in_place=True)  # no copy when nothing needs turning
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: scale to 8 bits instead of clipping
        image = image.point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if min(image.size) > SAFE_SIZE:
        image = image.reduce(min(image.size) // SAFE_SIZE)
    return image, width, height


def thumbnail_png(image: "Image.Image") -> bytes:
    from PIL import Image

    small = image.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()
