"""Taught photo labels on the embedded EfficientNet-Lite0's features: five photos per label, then photos it
never saw recognised and sorted into the right folders; corrections kept; bad input refused.

The photos are crops and mirror images of the photos every install has (scikit-learn's temple and daisy), plus
../shared/models/sample_images' dog where that folder exists; the test runs the same without it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.photo_sorting import sort_photos
from desktop_ai.engine.tasks.taught_classifiers import Example, TaughtLibrary
from desktop_ai.engine.tasks.taught_photos import PhotoTeacher, read_photo_examples
from packaged_photos import packaged_photos

SHARED_DOG = Path(__file__).resolve().parents[2] / "shared" / "models" / "sample_images" / "dog.jpg"


def crops(source: Path, folder: Path, label: str, count: int, offset: int) -> list[Path]:
    """Different crops (half to four fifths of the photo, at different places), every other one mirrored."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.open(source).convert("RGB")
    width, height = image.size
    made = []
    for i in range(offset, offset + count):
        fraction = 0.5 + 0.08 * (i % 5)
        w, h = int(width * fraction), int(height * fraction)
        x, y = int((width - w) * ((i * 37) % 10) / 9), int((height - h) * ((i * 53) % 10) / 9)
        crop = image.crop((x, y, x + w, y + h))
        if i % 2:
            crop = ImageOps.mirror(crop)
        path = folder / f"{label}-{i}.jpg"
        crop.save(path, quality=90)
        made.append(path)
    return made


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]]]:
    """(a folder with five photos per label in subfolders, unseen photos per label)."""
    root = tmp_path_factory.mktemp("taught-photos")
    sources = dict(zip(("temple", "flower"), packaged_photos()))
    if SHARED_DOG.is_file():
        sources["dog"] = SHARED_DOG
    unseen = {}
    for label, source in sources.items():
        crops(source, root / "teach" / label, label, 5, 0)
        unseen[label] = crops(source, root / "unseen" / label, label, 3, 5)
    return root / "teach", unseen


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return ModelStore(converted_dir=tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="module")
def taught(store: ModelStore, photo_sets, tmp_path_factory: pytest.TempPathFactory):
    """The classifier 'garden', taught once with five photos a label (the tests work on copies of its file)."""
    folder, _ = photo_sets
    library = TaughtLibrary(tmp_path_factory.mktemp("taught-once"))
    result = PhotoTeacher(store, library).teach("garden", read_photo_examples(folder))
    return result, library.path_for("garden")


@pytest.fixture
def teacher(store: ModelStore, tmp_path: Path, taught) -> PhotoTeacher:
    library = TaughtLibrary(tmp_path / "taught")
    library.folder.mkdir()
    shutil.copyfile(taught[1], library.path_for("garden"))
    return PhotoTeacher(store, library)


def test_five_photos_a_label_recognise_and_sort_photos_it_never_saw(teacher: PhotoTeacher, photo_sets, taught,
                                                                    tmp_path: Path) -> None:
    _, unseen = photo_sets
    result = taught[0]
    assert result.classifier["examples"] == {label: 5 for label in sorted(unseen)}
    assert result.report.accuracy is not None and result.report.folds == 5
    photos = [p for paths in unseen.values() for p in paths]
    batch = teacher.run("garden", photos)
    truth = {str(p): label for label, paths in unseen.items() for p in paths}
    assert {r.path: r.predictions[0].label for r in batch.results} == truth
    assert all(r.imagenet and r.imagenet[0].score > 0 for r in batch.results), "ImageNet's labels come beside"
    report = sort_photos(batch.results, tmp_path / "sorted")
    for path, label in truth.items():
        assert (tmp_path / "sorted" / label / Path(path).name).is_file()
    assert len(report.done) == len(photos)


def test_a_photo_correction_takes_and_is_kept(teacher: PhotoTeacher, photo_sets, store: ModelStore) -> None:
    _, unseen = photo_sets
    photo = unseen["flower"][0]
    teacher.correct("garden", photo, "temple")
    assert teacher.run("garden", [photo]).results[0].predictions[0].label == "temple"
    again = PhotoTeacher(store, TaughtLibrary(teacher.library.folder))
    assert again.run("garden", [photo]).results[0].predictions[0].label == "temple"
    assert again.run("garden", [unseen["flower"][1]]).results[0].predictions[0].label == "flower"


def test_bad_photo_input_is_named(teacher: PhotoTeacher, photo_sets, tmp_path: Path) -> None:
    folder, _ = photo_sets
    with pytest.raises(InvalidInputError, match="no photos in subfolders"):
        read_photo_examples(tmp_path)
    temples = [e for e in read_photo_examples(folder) if e.label == "temple"]
    with pytest.raises(InvalidInputError, match="at least two labels.*only 'temple'"):
        teacher.teach("one", temples)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    result = teacher.teach("garden", read_photo_examples(folder) + [Example(str(broken), "temple")])
    assert any("could not be read" in n and "broken.jpg" in n for n in result.notices)
    assert result.classifier["examples"]["temple"] == 5
    with pytest.raises(InvalidInputError, match="'cat' is not one of 'garden'"):
        teacher.correct("garden", broken, "cat")
    other = PhotoTeacher(teacher.features.store, teacher.library, model="efficientnet-lite2")
    with pytest.raises(InvalidInputError, match="taught on the features of efficientnet-lite0"):
        other.run("garden", [broken])


def test_photo_predictions_come_back_from_the_result_cache_until_the_classifier_changes(
        store: ModelStore, photo_sets, teacher: PhotoTeacher) -> None:
    from desktop_ai.engine.cache import ResultCache

    _, unseen = photo_sets
    cached = PhotoTeacher(store, teacher.library, cache=ResultCache(None))
    photos = [unseen["flower"][0], unseen["flower"][1]]
    first = cached.run("garden", photos[:1])
    assert not any(r.from_cache for r in first.results)
    again = cached.run("garden", photos)
    assert [r.from_cache for r in again.results] == [True, False]
    assert [(p.label, p.score) for p in again.results[0].predictions] == \
        [(p.label, p.score) for p in first.results[0].predictions], "the cached answer is the computed one"
    assert [p.label for p in again.results[0].imagenet] == [p.label for p in first.results[0].imagenet]
    cached.correct("garden", photos[0], "temple")  # a changed classifier: none of its old answers may come back
    after = cached.run("garden", photos)
    assert not any(r.from_cache for r in after.results) and after.results[0].predictions[0].label == "temple"
