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


def photo_folder(folder: Path, count: int) -> list[Path]:
    """A folder of `count` distinct photos built from the packaged two (for jobs that need more than two files,
    e.g. the cluster's batches): the two as installed, then mirrored and cropped copies of each, as JPEGs. The
    copies' labels are not asserted; their bytes differ, so the result cache cannot answer one for another."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    sources = packaged_photos()
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        variant = index // len(sources)
        if variant == 0:
            target = folder / source.name
            target.write_bytes(source.read_bytes())
        else:
            target = folder / f"{source.stem}-{variant}.jpg"
            with Image.open(source) as image:
                width, height = image.size
                margin = 0.03 * variant
                copy = image.convert("RGB").crop((int(width * margin), int(height * margin),
                                                  int(width * (1 - margin)), int(height * (1 - margin))))
            (ImageOps.mirror(copy) if variant % 2 else copy).save(target, quality=90)
        paths.append(target)
    return sorted(paths)
