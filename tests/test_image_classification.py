"""Image recognition in the engine: real ImageNet weights from ../shared/models, tiny models built here,
and every kind of bad file a user drops."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.tasks.image_classification import ImageClassifier, collect_images, load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/models is absent")
INT8 = SHARED / "mobilenet_v2_int8" / "model.pt"
FLOAT = SHARED / "mobilenet_v2_float" / "mobilenet_v2.pth"
SAMPLES = SHARED / "sample_images"
# The shared README: these photos are ambiguous between close ImageNet classes.
AMBIGUOUS = {
    "grace_hopper.jpg": {"bow tie", "military uniform"},
    "helloworld_image.png": {"malamute", "Eskimo dog", "Siberian husky"},
    "android_helloworld_image.jpg": {"malamute", "Eskimo dog", "Siberian husky"},
    "d2go_test1.png": {"malamute", "Eskimo dog", "Siberian husky"},
}


def _top1(result) -> str:
    return result.predictions[0].label


@pytest.fixture(scope="module")
def tiny_image_model(tmp_path_factory) -> Path:
    """A real torchvision architecture with random weights: the same loading code, in milliseconds."""
    folder = tmp_path_factory.mktemp("tiny-image-model")
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)
    torch.save(model.state_dict(), folder / "tiny.pth")
    (folder / "labels.txt").write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    return folder / "tiny.pth"


@pytest.fixture
def tiny(workspace, tiny_image_model) -> ImageClassifier:
    return ImageClassifier(workspace.store, workspace.cache, model=str(tiny_image_model), arch="mobilenet_v3_small", device="cpu")


def _png(path: Path, size=(64, 48), mode="RGB", color=(200, 30, 30)) -> Path:
    Image.new(mode, size, color).save(path)
    return path


# --- real weights ------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("model,arch", [(INT8, None), (FLOAT, "mobilenet_v2")], ids=["int8-torchscript", "float-state-dict"])
def test_real_weights_recognise_the_sample_photos(workspace, model, arch):
    batch = ImageClassifier(workspace.store, None, model=str(model), arch=arch).run(
        [SAMPLES / "dog.jpg", SAMPLES / "bird.jpg", SAMPLES / "wasmedge_input.jpg"]
    )
    labels = [_top1(r) for r in batch.results]
    assert "Samoyed" in labels[0]
    assert "drake" in labels[1]
    assert "banana" in labels[2]
    assert all(len(r.predictions) == 5 for r in batch.results)
    assert all(r.predictions[0].score >= r.predictions[1].score for r in batch.results)


@needs_shared
def test_int8_torchscript_and_float_state_dict_agree_on_the_samples(workspace):
    files = sorted(SAMPLES.iterdir())
    int8 = ImageClassifier(workspace.store, None, model=str(INT8)).run(files)
    fp32 = ImageClassifier(workspace.store, None, model=str(FLOAT), arch="mobilenet_v2").run(files)
    assert int8.compression == "int8" and fp32.compression == "none"
    # Issue 17 (compression checked by the model itself): the int8 TorchScript runs quantized kernels.
    scripted = ImageClassifier(workspace.store, None, model=str(INT8)).load().model
    kinds = {node.kind() for node in scripted.inlined_graph.nodes()}
    assert any(kind.startswith("quantized::conv") for kind in kinds), sorted(kinds)[:20]
    for a, b in zip(int8.results, fp32.results):
        name = Path(a.path).name
        if name in AMBIGUOUS:
            group = AMBIGUOUS[name]
            assert any(g in _top1(a) for g in group) and any(g in _top1(b) for g in group), (name, _top1(a), _top1(b))
        else:
            assert _top1(a) == _top1(b), name
        assert _top1(a) in [p.label for p in b.predictions], "int8's answer is in fp32's top-5"


@needs_shared
def test_torchscript_traced_for_one_image_still_takes_a_batch_of_files(workspace):
    batch = ImageClassifier(workspace.store, None, model=str(INT8)).run([SAMPLES], batch_size=8)
    assert len(batch.results) == len(list(SAMPLES.iterdir()))
    assert all(r.ok for r in batch.results)


# --- loading the user's own model -----------------------------------------------------------------


def test_state_dict_without_architecture_is_a_clear_message(workspace, tiny_image_model, tmp_path):
    _png(tmp_path / "a.png")
    with pytest.raises(ModelUnavailableError, match="architecture"):
        ImageClassifier(workspace.store, None, model=str(tiny_image_model)).run([tmp_path / "a.png"])


def test_state_dict_of_another_architecture_is_a_clear_message(workspace, tiny_image_model, tmp_path):
    _png(tmp_path / "a.png")
    with pytest.raises(ModelUnavailableError, match="does not fit the resnet18"):
        ImageClassifier(workspace.store, None, model=str(tiny_image_model), arch="resnet18").run([tmp_path / "a.png"])


def test_torchscript_of_the_wrong_shape_is_refused(workspace, tmp_path):
    class TenClasses(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10]

    scripted = torch.jit.script(TenClasses())
    scripted.save(str(tmp_path / "wrong.pt"))
    (tmp_path / "labels.txt").write_text("\n".join(f"c{i}" for i in range(1000)))
    _png(tmp_path / "a.png")
    with pytest.raises(ModelUnavailableError, match="1000 classes"):
        ImageClassifier(workspace.store, None, model=str(tmp_path / "wrong.pt")).run([tmp_path / "a.png"])


def test_missing_model_file_and_missing_labels(workspace, tmp_path, tiny_image_model):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        ImageClassifier(workspace.store, None, model=str(tmp_path / "nope.pt"))
    lonely = tmp_path / "lonely.pth"
    lonely.write_bytes(tiny_image_model.read_bytes())
    _png(tmp_path / "a.png")
    with pytest.raises(ModelUnavailableError, match="labels"):
        ImageClassifier(workspace.store, None, model=str(lonely), arch="mobilenet_v3_small").run([tmp_path / "a.png"])


def test_catalogue_model_offline_says_how_to_get_one(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    _png(tmp_path / "a.png")
    with pytest.raises(ModelUnavailableError, match="offline.*From file"):
        ImageClassifier(workspace.store, None, model="mobilenet_v3_large").run([tmp_path / "a.png"])
    assert workspace.store.availability(next(e for e in __import__("desktop_ai.engine.models.catalogue", fromlist=["x"]).CATALOGUE if e.id == "resnet50")) == "needs download"


# --- images of every kind ------------------------------------------------------------------------


def test_every_image_mode_is_converted(tmp_path):
    cases = {
        "rgba.png": Image.new("RGBA", (40, 30), (255, 0, 0, 0)),
        "gray.png": Image.new("L", (40, 30), 128),
        "cmyk.jpg": Image.new("CMYK", (40, 30), (0, 255, 255, 0)),
        "palette.gif": Image.new("P", (40, 30), 3),
        "sixteen.png": Image.new("I;16", (40, 30), 40000),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        decoded, width, height = load_image((tmp_path / name).read_bytes(), name)
        assert decoded.mode == "RGB" and (width, height) == (40, 30), name
    transparent, _, _ = load_image((tmp_path / "rgba.png").read_bytes())
    assert transparent.getpixel((0, 0)) == (255, 255, 255), "transparent pixels become white, not black"
    sixteen, _, _ = load_image((tmp_path / "sixteen.png").read_bytes())
    assert 150 <= sixteen.getpixel((0, 0))[0] <= 160, "16-bit values are scaled to 8 bits, not clipped"


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    decoded, _, _ = load_image((tmp_path / "rotated.jpg").read_bytes())
    assert decoded.size == (20, 60)


def _huge_png(path: Path, width: int, height: int) -> None:
    """A 20000x20000 grey PNG written row by row: a few hundred KB on disk, 400 megapixels decoded."""
    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    data = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_bad_files_get_reasons_and_the_good_ones_still_run(tiny, tmp_path):
    good = _png(tmp_path / "good.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 200, 10)).save(buffer, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (tmp_path / "document.jpg").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    (tmp_path / "notes.txt").write_text("not an image")
    _huge_png(tmp_path / "huge.png", 20000, 20000)
    names = ["good.png", "empty.jpg", "truncated.jpg", "document.jpg", "notes.txt", "huge.png", "missing.png"]
    batch = tiny.run([tmp_path / n for n in names])
    by_name = {Path(r.path).name: r for r in batch.results}
    assert by_name["good.png"].ok and len(by_name["good.png"].predictions) == 5
    assert "empty" in by_name["empty.jpg"].error
    assert by_name["truncated.jpg"].error and "truncated" in by_name["truncated.jpg"].error
    assert "not an image" in by_name["document.jpg"].error
    assert "not an image" in by_name["notes.txt"].error
    assert by_name["huge.png"].ok, by_name["huge.png"].error
    assert (by_name["huge.png"].width, by_name["huge.png"].height) == (20000, 20000)
    assert "cannot be read" in by_name["missing.png"].error
    assert any("could not be recognised" in n for n in batch.notices)
    assert good.exists()


def test_same_photo_again_comes_from_the_cache(tiny, tmp_path, workspace):
    photo = _png(tmp_path / "a.png")
    first = tiny.run([photo])
    copy = tmp_path / "copy-of-a.png"
    copy.write_bytes(photo.read_bytes())
    second = tiny.run([photo, copy])
    assert not first.results[0].from_cache
    assert all(r.from_cache for r in second.results), "the cache is keyed by the image bytes, not the path"
    assert second.results[0].predictions == first.results[0].predictions


def test_results_stream_per_batch_with_thumbnails(tiny, tmp_path):
    for i in range(5):
        _png(tmp_path / f"{i}.png", color=(i * 40, 10, 10))
    seen: list[int] = []
    batch = tiny.run([tmp_path], batch_size=2, on_results=lambda rs: seen.append(len(rs)), thumbnails=True)
    assert sum(seen) == 5 and max(seen) <= 2
    assert all(r.thumbnail_png and r.thumbnail_png.startswith(b"\x89PNG") for r in batch.results)


def test_a_folder_of_ten_thousand_files_reports_progress_and_stops(tiny, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    data = (tmp_path / "seed.png")
    _png(data, size=(8, 8))
    seed = data.read_bytes()
    for i in range(10_000):
        (folder / f"{i:05d}.png").write_bytes(seed)
    cancel = threading.Event()
    messages: list[str] = []

    def progress(message: str, fraction: float | None = None) -> None:
        messages.append(message)
        if len(messages) >= 3:
            cancel.set()

    batch = tiny.run([folder], progress=progress, cancel=cancel)
    assert batch.stopped
    assert 0 < len(batch.results) < 10_000
    assert any("of 10000 images" in m for m in messages)
    assert any("Stopped" in n for n in batch.notices)


def test_collect_images_expands_folders_and_keeps_files(tmp_path):
    (tmp_path / "sub").mkdir()
    _png(tmp_path / "sub" / "b.png")
    _png(tmp_path / "a.jpg")
    (tmp_path / "readme.txt").write_text("x")
    files = collect_images([tmp_path, tmp_path / "readme.txt"])
    assert [f.name for f in files] == ["a.jpg", "b.png", "readme.txt"]


def test_no_images_at_all_is_invalid(tiny, tmp_path):
    with pytest.raises(InvalidInputError, match="No images"):
        tiny.run([tmp_path])


def test_compression_options_on_a_float_model(workspace, tiny_image_model, tmp_path):
    photo = _png(tmp_path / "a.png")
    for method in ("int8", "prune", "fp16"):
        batch = ImageClassifier(workspace.store, ResultCache(None), model=str(tiny_image_model), arch="mobilenet_v3_small",
                                device="cpu", compression=method).run([photo])
        assert batch.results[0].ok, method
        if method == "fp16":
            assert batch.compression == "none" and any("GPU" in n for n in batch.notices)
        else:
            assert batch.compression == method


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_half_precision_channels_last_on_the_gpu(workspace, tiny_image_model, tmp_path):
    photos = [_png(tmp_path / f"{i}.png", color=(i * 50, 20, 20)) for i in range(3)]
    fp16 = ImageClassifier(workspace.store, None, model=str(tiny_image_model), arch="mobilenet_v3_small",
                           device="cuda", compression="fp16").run(photos)
    fp32 = ImageClassifier(workspace.store, None, model=str(tiny_image_model), arch="mobilenet_v3_small", device="cpu").run(photos)
    assert fp16.device.startswith("cuda") and fp16.compression == "fp16"
    for a, b in zip(fp16.results, fp32.results):
        assert a.predictions[0].label == b.predictions[0].label
