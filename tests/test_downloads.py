"""Downloads against a local Hub (tests/hub_server.py): progress, resume after a dropped connection and
after a stop, the hash check, the free-space check, the Hub cache layout other loaders read, and search."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop_ai.engine.errors import CancelledError
from desktop_ai.engine.models import downloads
from desktop_ai.engine.models.downloads import (
    DownloadProgress,
    HashMismatchError,
    NotEnoughSpaceError,
    download,
    plan_download,
)

pytestmark = pytest.mark.timeout(120)
REPO = "tiny-owner/tiny-llama"
WEIGHTS = "model.safetensors"


@pytest.fixture
def served(hub_server, tiny_causal_lm_dir: Path):
    hub_server.add_folder(REPO, tiny_causal_lm_dir, tags=["safetensors"], downloads=7)
    return hub_server


def test_plan_lists_files_with_sizes_and_hashes(served) -> None:
    plan = plan_download(REPO)
    names = {f.name for f in plan.files}
    assert {"config.json", WEIGHTS} <= names
    weights = next(f for f in plan.files if f.name == WEIGHTS)
    assert weights.sha256 and len(weights.sha256) == 64
    assert weights.size == len(served.repos[REPO].files[WEIGHTS])
    assert plan.total_bytes == sum(len(b) for b in served.repos[REPO].files.values())


def test_download_reports_progress_and_lands_in_the_hub_cache(served, tiny_causal_lm_dir: Path) -> None:
    events: list[DownloadProgress] = []
    plan = plan_download(REPO)
    result = download(plan, events.append)
    assert events, "progress events arrive"
    assert events[-1].done_bytes == events[-1].total_bytes == plan.total_bytes
    assert all(a.done_bytes <= b.done_bytes for a, b in zip(events, events[1:]))
    assert (result.path / WEIGHTS).read_bytes() == (tiny_causal_lm_dir / WEIGHTS).read_bytes()
    from huggingface_hub import snapshot_download

    offline = Path(snapshot_download(REPO, local_files_only=True))
    assert offline == result.path


def test_a_dropped_connection_resumes_from_where_it_was(served, monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = 16 * 1024
    monkeypatch.setattr(downloads, "CHUNK_BYTES", chunk)
    size = len(served.repos[REPO].files[WEIGHTS])
    cut = size // 2
    served.drop_after[WEIGHTS] = cut
    result = download(plan_download(REPO), backoff_s=0.01)
    ranges = [r for name, r in served.range_headers if name == WEIGHTS]
    assert ranges[0] is None and len(ranges) == 2, ranges
    start = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert cut - chunk < start <= cut, ranges  # the second request asked only for the rest (whole chunks kept)
    assert (result.path / WEIGHTS).stat().st_size == size


def test_a_stopped_download_resumes_without_starting_again(served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 8 * 1024)
    served.delay_per_chunk_s = 0.05
    served.chunk = 8 * 1024
    size = len(served.repos[REPO].files[WEIGHTS])
    cancel = threading.Event()

    def stop_midway(event: DownloadProgress) -> None:
        partial = list(downloads.repo_folder(REPO).glob("blobs/*" + downloads.PARTIAL_SUFFIX))
        if event.file == WEIGHTS and partial and partial[0].stat().st_size > 0:
            cancel.set()

    plan = plan_download(REPO)
    with pytest.raises(CancelledError):
        download(plan, stop_midway, cancel)
    weights = next(f for f in plan.files if f.name == WEIGHTS)
    kept = downloads.partial_path(REPO, weights).stat().st_size
    assert 0 < kept < size
    assert downloads.partial_bytes(REPO) == kept
    served.delay_per_chunk_s = 0.0
    served.range_headers.clear()
    events: list[DownloadProgress] = []
    download(plan, events.append)
    assert dict(served.range_headers)[WEIGHTS] == f"bytes={kept}-"
    assert events[0].resumed_bytes >= kept
    assert downloads.partial_bytes(REPO) == 0


def test_a_corrupted_byte_is_caught_by_the_hash_and_the_file_deleted(served) -> None:
    served.corrupt.add(WEIGHTS)
    plan = plan_download(REPO)
    with pytest.raises(HashMismatchError, match="hash"):
        download(plan)
    weights = next(f for f in plan.files if f.name == WEIGHTS)
    assert not downloads.partial_path(REPO, weights).exists()
    assert not (downloads.repo_folder(REPO) / "blobs" / weights.etag).exists()


def test_a_small_text_file_is_checked_by_its_git_blob_id(served) -> None:
    served.corrupt.add("config.json")
    with pytest.raises(HashMismatchError, match="config.json"):
        download(plan_download(REPO))


def test_a_disk_too_small_is_refused_before_the_first_byte(served) -> None:
    plan = plan_download(REPO)
    with pytest.raises(NotEnoughSpaceError, match="MB free"):
        download(plan, free_space=lambda path: plan.total_bytes - 1)
    assert served.range_headers == []  # not one file was requested


def test_retries_give_up_with_a_message_and_keep_the_partial(served, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.file_download as fd

    calls: list[int] = []

    def failing_get(url, handle, resume_size=0, **kwargs):
        calls.append(resume_size)
        handle.write(b"x")
        raise OSError("connection refused")

    monkeypatch.setattr(fd, "http_get", failing_get)
    with pytest.raises(downloads.DownloadError, match="after 3 tries"):
        download(plan_download(REPO), backoff_s=0.001, tries=3)
    assert calls == [0, 1, 2]  # each retry resumed from what the last one left


def test_search_finds_models_by_name_with_downloads(served, tiny_causal_lm_dir: Path) -> None:
    served.add_folder("someone/Tiny-GGUF", tiny_causal_lm_dir, tags=["gguf"], downloads=99)
    found = downloads.search_hub("tiny", kind="gguf")
    assert [m.repo_id for m in found] == ["someone/Tiny-GGUF"]
    assert found[0].downloads == 99


def test_the_mirror_setting_is_used(served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT")
    settings = downloads.NetworkSettings(endpoint=served.url)
    downloads.save_network_settings(settings)
    assert downloads.load_network_settings() == settings
    plan = plan_download(REPO)
    assert plan.endpoint == served.url
    with pytest.raises(ValueError, match="http"):
        downloads.save_network_settings(downloads.NetworkSettings(proxy="proxy.example:3128"))
