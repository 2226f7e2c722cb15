"""Sorting recognised photos into folders: real files, real file systems (a read-only mount, /dev/shm vs /tmp)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.tasks.image_results import ImageResult, LabelScore
from desktop_ai.engine.tasks.photo_sorting import UNSURE, folder_for, sort_photos


def _photo(path: Path, content: bytes, label: str, score: float = 0.9) -> ImageResult:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return ImageResult(str(path), [LabelScore(label, score), LabelScore("other", 0.01)])


def _everything(*roots: Path) -> dict[str, list[Path]]:
    """content -> every file holding it (hidden partial files included, so a leftover would show)."""
    found: dict[str, list[Path]] = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                found.setdefault(path.read_bytes().decode(), []).append(path)
    return found


def test_copies_by_top_label_with_unsure_below_the_threshold(tmp_path):
    results = [_photo(tmp_path / "in" / "a.jpg", b"a", "Samoyed"), _photo(tmp_path / "in" / "b.jpg", b"b", "drake", 0.3),
               ImageResult(str(tmp_path / "in" / "broken.jpg"), error="damaged")]
    report = sort_photos(results, tmp_path / "out", min_score=0.5)
    assert (tmp_path / "out" / "Samoyed" / "a.jpg").read_bytes() == b"a"
    assert (tmp_path / "out" / UNSURE / "b.jpg").read_bytes() == b"b"
    assert (tmp_path / "in" / "a.jpg").exists(), "a copy leaves the original"
    assert [p.folder for p in report.done] == ["Samoyed", UNSURE]
    assert report.skipped == [(str(tmp_path / "in" / "broken.jpg"), "damaged")]
    assert "Copied 2 photo(s) into 2 folder(s)" in report.describe() and "1 skipped" in report.describe()


def test_name_clashes_get_a_number_and_nothing_is_overwritten(tmp_path):
    (tmp_path / "out" / "Samoyed").mkdir(parents=True)
    (tmp_path / "out" / "Samoyed" / "dog.jpg").write_bytes(b"already there")
    results = [_photo(tmp_path / "one" / "dog.jpg", b"first", "Samoyed"), _photo(tmp_path / "two" / "dog.jpg", b"second", "Samoyed")]
    report = sort_photos(results, tmp_path / "out", move=True)
    folder = tmp_path / "out" / "Samoyed"
    assert (folder / "dog.jpg").read_bytes() == b"already there"
    assert (folder / "dog (2).jpg").read_bytes() == b"first"
    assert (folder / "dog (3).jpg").read_bytes() == b"second"
    assert not (tmp_path / "one" / "dog.jpg").exists() and not (tmp_path / "two" / "dog.jpg").exists()
    assert len(report.done) == 2 and "Moved 2" in report.describe()


def test_labels_that_are_not_file_names_are_made_safe():
    assert folder_for(ImageResult("x", [LabelScore("a/b: c?", 0.9)])) == "a_b_ c_"
    assert folder_for(ImageResult("x", [LabelScore("..", 0.9)])) == UNSURE
    assert folder_for(ImageResult("x", error="bad")) is None


def _read_only_folder(tmp_path: Path) -> Path:
    """A read-only file system when root (whom permission bits do not stop), else a folder without write bits."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"root, and cannot mount a read-only tmpfs to test with: {done.stderr.decode().strip()}")
    else:
        folder.chmod(0o555)
    return folder


def test_read_only_target_is_a_clear_message_and_nothing_moves(tmp_path):
    target = _read_only_folder(tmp_path)
    try:
        results = [_photo(tmp_path / "in" / "a.jpg", b"a", "Samoyed")]
        with pytest.raises(InvalidInputError, match="read-only.*Nothing was sorted"):
            sort_photos(results, target, move=True)
        with pytest.raises(InvalidInputError, match="Cannot create the folder.*Nothing was sorted"):
            sort_photos(results, target / "new", move=True)
        assert (tmp_path / "in" / "a.jpg").read_bytes() == b"a"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(target)], check=False)
        else:
            target.chmod(0o755)


def test_a_photo_deleted_mid_run_is_skipped_and_the_others_are_sorted(tmp_path):
    results = [_photo(tmp_path / "in" / f"{n}.jpg", n.encode(), "banana") for n in ("a", "b", "c")]
    sizes: list[str] = []

    def progress(message: str, fraction: float | None) -> None:
        sizes.append(message)
        if len(sizes) == 1:
            (tmp_path / "in" / "b.jpg").unlink()  # gone between the first photo and the second

    report = sort_photos(results, tmp_path / "out", move=True, progress=progress)
    assert [Path(p.destination).name for p in report.done] == ["a.jpg", "c.jpg"]
    assert report.skipped == [(str(tmp_path / "in" / "b.jpg"), "no longer exists")]
    assert "b.jpg: no longer exists" in report.describe()


def test_stop_mid_sort_leaves_every_photo_in_exactly_one_place(tmp_path):
    results = [_photo(tmp_path / "in" / f"{n}.jpg", f"photo {n}".encode(), "drake") for n in range(10)]
    cancel = threading.Event()

    def progress(message: str, fraction: float | None) -> None:
        if fraction is not None and fraction >= 0.4:
            cancel.set()

    report = sort_photos(results, tmp_path / "out", move=True, cancel=cancel, progress=progress)
    assert report.stopped and len(report.done) == 4 and len(report.left) == 6
    copies = _everything(tmp_path / "in", tmp_path / "out")
    assert sorted(copies) == sorted(f"photo {n}" for n in range(10))
    assert all(len(places) == 1 for places in copies.values()), copies
    assert "Stopped: 6 photo(s) were not sorted and are still where they were." in report.describe()


def test_moving_across_file_systems(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip(f"/dev/shm is not a separate file system from {tmp_path} on this machine")
    source_dir = shm / f"desktop-ai-sort-{os.getpid()}"
    try:
        results = [_photo(source_dir / "a.jpg", b"across", "Samoyed")]
        os.utime(source_dir / "a.jpg", (1_000_000_000, 1_000_000_000))
        report = sort_photos(results, tmp_path / "out", move=True)
        moved = tmp_path / "out" / "Samoyed" / "a.jpg"
        assert moved.read_bytes() == b"across" and not (source_dir / "a.jpg").exists()
        assert int(moved.stat().st_mtime) == 1_000_000_000, "the photo keeps its date"
        assert [p.name for p in moved.parent.iterdir()] == ["a.jpg"], "no partial file is left behind"
        assert len(report.done) == 1
    finally:
        for path in sorted(source_dir.glob("*")):
            path.unlink()
        source_dir.rmdir() if source_dir.exists() else None
