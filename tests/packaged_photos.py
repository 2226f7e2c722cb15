"""Real photos that come with every install: scikit-learn's two sample images (a temple in China, a daisy).

The real-photo tests that once skipped without ../shared/models/sample_images use these (issue 17, skips). What the
embedded EfficientNet-Lite0 says about them, measured on ONNX Runtime: china.jpg "palace" (0.35, then bell cote
0.14), flower.jpg "daisy" (0.33, then mushroom 0.06).
"""

from __future__ import annotations

from pathlib import Path

TOP1 = {"china.jpg": "palace", "flower.jpg": "daisy"}


def packaged_photos() -> list[Path]:
    """The two photos' files, as installed (a broken install fails here, it does not skip)."""
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    paths = [folder / name for name in TOP1]
    missing = [str(p) for p in paths if not p.is_file()]
    assert not missing, f"a broken install: scikit-learn's sample photos are missing: {missing}"
    return paths
