"""Model downloads from the Hugging Face Hub (or a mirror): planned from the Hub's file list, with the free
disk space checked before the first byte, progress in bytes, MB/s and time left, Stop that keeps what has
arrived, resume from the partial file (after a stop, a crash or a dropped connection), retries with back-off,
and every file checked against the Hub's hash (LFS sha256, or the git blob sha1 of small files).

huggingface_hub does the HTTP (HfApi for metadata, `file_download.http_get` for the bytes with its Range
resume); this module keeps the partial files between runs, which hf_hub_download deletes on a failure,
and lays the verified files out in the ordinary Hub cache so every other loader finds them offline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import CancelledError, EngineError, ModelUnavailableError

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".desktop-ai.incomplete"
DOWNLOAD_TRIES = 4
CHUNK_BYTES = 64 * 1024  # small enough that progress and Stop answer within a fraction of a second
NETWORK_FILE = "network.json"


class DownloadError(EngineError):
    """A download that could not finish: the message says why and what to do."""


class HashMismatchError(DownloadError):
    """A file whose bytes do not match the Hub's hash; it has been deleted."""


class NotEnoughSpaceError(DownloadError):
    """Refused before the first byte: the disk has less free space than the download needs."""


# --- network settings (mirror and proxy), shared by the window, the CLI and the engine --------------------------


@dataclass
class NetworkSettings:
    endpoint: str = ""  # a Hugging Face mirror, e.g. https://hf-mirror.com; empty: HF_ENDPOINT or huggingface.co
    proxy: str = ""  # an HTTP(S) proxy URL, e.g. http://proxy.example:3128; empty: the environment's

    def resolved_endpoint(self) -> str:
        from huggingface_hub import constants

        return (self.endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _network_file() -> Path:
    from desktop_ai import paths

    return paths.config_dir() / NETWORK_FILE


def load_network_settings() -> NetworkSettings:
    try:
        data = json.loads(_network_file().read_text(encoding="utf-8"))
        return NetworkSettings(endpoint=str(data.get("endpoint", "")), proxy=str(data.get("proxy", "")))
    except (OSError, ValueError, AttributeError):
        return NetworkSettings()


def save_network_settings(settings: NetworkSettings) -> None:
    for value, what in ((settings.endpoint, "mirror"), (settings.proxy, "proxy")):
        if value and not value.startswith(("http://", "https://", "socks5://")):
            raise ValueError(f"The {what} must be a URL starting with http:// or https:// (got {value!r}).")
    _network_file().write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    apply_network_settings(settings)


_applied_proxy: str | None = None


def apply_network_settings(settings: NetworkSettings) -> None:
    """Point huggingface_hub's shared HTTP client at the proxy; every Hub call of this process then uses it."""
    global _applied_proxy
    if settings.proxy == (_applied_proxy or ""):
        return
    import httpx2
    from huggingface_hub.utils import _http

    proxy = settings.proxy or None

    def client_factory() -> Any:
        return httpx2.Client(event_hooks={"request": [_http.hf_request_event_hook]}, follow_redirects=True,
                             timeout=None, proxy=proxy)

    _http.set_client_factory(client_factory if proxy else _http.default_client_factory)
    _applied_proxy = settings.proxy


# --- what to download --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # git sha1 of the file (small, non-LFS files)

    @property
    def etag(self) -> str:
        """The name the Hub cache gives the file's blob (as hf_hub_download does)."""
        return self.sha256 or self.blob_id or hashlib.sha256(self.name.encode()).hexdigest()


@dataclass(frozen=True)
class DownloadPlan:
    repo_id: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    endpoint: str

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class DownloadProgress:
    """One progress event: the whole download's bytes, speed and time left, and the file being fetched."""

    repo_id: str
    file: str
    done_bytes: int
    total_bytes: int
    speed_bps: float
    eta_s: float | None
    resumed_bytes: int = 0

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0

    def describe(self) -> str:
        text = f"{self.done_bytes / 1e6:.1f} of {self.total_bytes / 1e6:.1f} MB"
        if self.speed_bps > 0:
            text += f", {self.speed_bps / 1e6:.1f} MB/s"
        if self.eta_s is not None:
            text += f", {format_seconds(self.eta_s)} left"
        return text


@dataclass
class DownloadResult:
    repo_id: str
    commit: str
    path: Path
    downloaded_bytes: int
    resumed_bytes: int
    files: list[str] = field(default_factory=list)


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def matches(name: str, patterns: list[str] | None) -> bool:
    import fnmatch

    return patterns is None or any(fnmatch.fnmatch(name, p) for p in patterns)


def plan_download(repo_id: str, revision: str = "main", patterns: list[str] | None = None,
                  settings: NetworkSettings | None = None, files: list[str] | None = None) -> DownloadPlan:
    """Ask the Hub for the repository's files with their sizes and hashes (HfApi.model_info, files_metadata)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

    settings = settings or load_network_settings()
    apply_network_settings(settings)
    endpoint = settings.resolved_endpoint()
    try:
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True)
    except OfflineModeIsEnabled as error:
        raise ModelUnavailableError(f"{repo_id} cannot be downloaded: the Hub is set offline (HF_HUB_OFFLINE).") from error
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelUnavailableError(f"{repo_id} (revision {revision}) is not on {endpoint}.") from error
    except Exception as error:  # httpx and OS errors come in many classes
        raise DownloadError(f"Could not reach {endpoint} for {repo_id}: {error}") from error
    chosen = []
    for sibling in info.siblings or []:
        if files is not None and sibling.rfilename not in files:
            continue
        if files is None and not matches(sibling.rfilename, patterns):
            continue
        lfs = sibling.lfs
        chosen.append(RemoteFile(sibling.rfilename, int(sibling.size or (lfs.size if lfs else 0) or 0),
                                 lfs.sha256 if lfs else None, sibling.blob_id))
    if not chosen:
        raise ModelUnavailableError(f"{repo_id} has no files matching {patterns or files} on {endpoint}.")
    return DownloadPlan(repo_id, revision, info.sha or revision, tuple(chosen), endpoint)


# --- the Hub cache layout ---------------------------------------------------------------------------------------


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return hub_cache() / repo_folder_name(repo_id=repo_id, repo_type="model")


def partial_path(repo_id: str, remote: RemoteFile) -> Path:
    return repo_folder(repo_id) / "blobs" / (remote.etag + PARTIAL_SUFFIX)


def partial_bytes(repo_id: str) -> int:
    """Bytes kept from a stopped download of this repository (what a resume will not fetch again)."""
    blobs = repo_folder(repo_id) / "blobs"
    return sum(p.stat().st_size for p in blobs.glob("*" + PARTIAL_SUFFIX)) if blobs.is_dir() else 0


def _blob_done(repo_id: str, remote: RemoteFile) -> bool:
    blob = repo_folder(repo_id) / "blobs" / remote.etag
    return blob.is_file() and blob.stat().st_size == remote.size


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds path (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def file_hash_ok(path: Path, remote: RemoteFile) -> bool:
    if remote.sha256:
        digest = hashlib.sha256()
    elif remote.blob_id:
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # git's blob id, as the Hub gives it
    else:
        return True
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == (remote.sha256 or remote.blob_id)


# --- the download ------------------------------------------------------------------------------------------------


class _Meter:
    """Turns byte counts into progress events with a speed averaged over the last few seconds."""

    def __init__(self, plan: DownloadPlan, done: int, on_progress: Callable[[DownloadProgress], None] | None,
                 cancel: threading.Event | None) -> None:
        self.plan, self.done, self.on_progress, self.cancel = plan, done, on_progress, cancel
        self.resumed = done
        self.file = ""
        self._samples: list[tuple[float, int]] = [(time.monotonic(), done)]
        self._last_emit = 0.0

    def add(self, n: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("Download stopped; what has arrived is kept for a resume.")
        self.done += n
        now = time.monotonic()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 5.0:
            self._samples.pop(0)
        if now - self._last_emit >= 0.1 or self.done >= self.plan.total_bytes:
            self.emit()

    def emit(self) -> None:
        self._last_emit = time.monotonic()
        if self.on_progress is None:
            return
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        speed = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        left = self.plan.total_bytes - self.done
        eta = left / speed if speed > 0 else None
        self.on_progress(DownloadProgress(self.plan.repo_id, self.file, self.done, self.plan.total_bytes, speed, eta,
                                          self.resumed))


def _tqdm_for(meter: _Meter) -> type:
    from tqdm.auto import tqdm

    class MeterTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            meter.add(int(n or 0))
            return None

    return MeterTqdm


def download(plan: DownloadPlan, on_progress: Callable[[DownloadProgress], None] | None = None,
             cancel: threading.Event | None = None, free_space: Callable[[Path], int] = free_bytes,
             backoff_s: float = 1.0, tries: int = DOWNLOAD_TRIES) -> DownloadResult:
    """Fetch the plan's files into the Hub cache; resumable, verified, retried. Raises CancelledError on Stop."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import _cache_commit_hash_for_specific_revision, _create_symlink, hf_hub_url, http_get

    folder = repo_folder(plan.repo_id)
    blobs = folder / "blobs"
    snapshot = folder / "snapshots" / plan.commit
    pending = [f for f in plan.files if not _blob_done(plan.repo_id, f)]
    kept = sum(partial_path(plan.repo_id, f).stat().st_size for f in pending if partial_path(plan.repo_id, f).exists())
    needed = sum(f.size for f in pending) - kept
    available = free_space(hub_cache())
    if needed > available:
        raise NotEnoughSpaceError(
            f"{plan.repo_id} needs {needed / 1e6:.1f} MB more on the disk of {hub_cache()}, which has "
            f"{available / 1e6:.1f} MB free. Free some space (Remove a model you do not use) or set HF_HOME to a bigger disk."
        )
    done_before = sum(f.size for f in plan.files if f not in pending) + kept
    meter = _Meter(plan, done_before, on_progress, cancel)
    meter.emit()
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    old_chunk = constants.DOWNLOAD_CHUNK_SIZE
    constants.DOWNLOAD_CHUNK_SIZE = CHUNK_BYTES
    fetched = 0
    try:
        for remote in plan.files:
            meter.file = remote.name
            blob = blobs / remote.etag
            if remote in pending:
                fetched += _fetch_file(plan, remote, meter, http_get, hf_hub_url, backoff_s, tries)
            target = snapshot / remote.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _create_symlink(str(blob), str(target), new_blob=False)
        _cache_commit_hash_for_specific_revision(str(folder), plan.revision, plan.commit)
        if plan.revision != plan.commit:
            (folder / "refs").mkdir(exist_ok=True)
            (folder / "refs" / plan.revision).write_text(plan.commit)
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = old_chunk
    meter.emit()
    logger.info("Downloaded %s@%s: %d bytes fetched, %d resumed", plan.repo_id, plan.commit[:8], fetched, meter.resumed)
    return DownloadResult(plan.repo_id, plan.commit, snapshot, fetched, meter.resumed, [f.name for f in plan.files])


def _fetch_file(plan: DownloadPlan, remote: RemoteFile, meter: _Meter, http_get: Callable, hf_hub_url: Callable,
                backoff_s: float, tries: int) -> int:
    """One file into its partial, resumed from the partial's length; verified, then renamed to its blob."""
    partial = partial_path(plan.repo_id, remote)
    url = hf_hub_url(plan.repo_id, remote.name, revision=plan.commit, endpoint=plan.endpoint)
    fetched = 0
    last_error: Exception | None = None
    for attempt in range(1, tries + 1):
        have = partial.stat().st_size if partial.exists() else 0
        if have > remote.size:  # a stale partial of another file: start over
            partial.unlink()
            have = 0
        try:
            with partial.open("ab") as handle:
                http_get(url, handle, resume_size=have, expected_size=remote.size, tqdm_class=_tqdm_for(meter),
                         headers={"Accept-Encoding": "identity"}, displayed_filename=remote.name)
            fetched += remote.size - have
            break
        except CancelledError:
            raise
        except Exception as error:  # network errors of many classes: keep the partial and try again
            last_error = error
            now = partial.stat().st_size if partial.exists() else 0
            fetched += max(0, now - have)
            logger.warning("Download of %s/%s failed (try %d of %d): %s", plan.repo_id, remote.name, attempt, tries, error)
            if attempt < tries:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    else:
        raise DownloadError(
            f"Downloading {remote.name} of {plan.repo_id} failed after {tries} tries: {last_error}. "
            "What has arrived is kept: download again to resume."
        )
    if not file_hash_ok(partial, remote):
        partial.unlink()
        raise HashMismatchError(
            f"{remote.name} of {plan.repo_id} does not match the Hub's hash "
            f"({'sha256 ' + remote.sha256 if remote.sha256 else 'git ' + str(remote.blob_id)}); the damaged file was "
            "deleted. Download again; if it happens again, the mirror or proxy is altering files."
        )
    os.replace(partial, partial.with_name(remote.etag))
    return fetched


# --- removing ---------------------------------------------------------------------------------------------------


def remove_repo(repo_id: str) -> int:
    """Delete the repository's downloaded files (every cached revision and any partial); returns bytes freed."""
    folder = repo_folder(repo_id)
    if not folder.exists():
        return 0
    freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(folder)
    logger.info("Removed %s (%d bytes)", folder, freed)
    return freed


def remove_repo_files(repo_id: str, files: tuple[str, ...] | list[str]) -> int:
    """Delete only these files of a repository other models share (Piper voices live in one): their links in every
    snapshot, and each blob no remaining link points to; returns bytes freed."""
    folder = repo_folder(repo_id)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return 0
    freed = 0
    orphans: set[Path] = set()
    for snapshot in snapshots.iterdir():
        for name in files:
            path = snapshot / name
            if path.is_symlink():
                orphans.add(path.resolve())
                path.unlink()
            elif path.is_file():  # a copy, not a link (a Hugging Face cache without symlinks, on Windows)
                freed += path.stat().st_size
                path.unlink()
            parent = path.parent
            while parent != snapshot and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()  # the voice's own folders, now empty
                parent = parent.parent
    still_used = {link.resolve() for link in snapshots.rglob("*") if link.is_symlink()}
    for blob in orphans - still_used:
        if blob.is_file():
            freed += blob.stat().st_size
            blob.unlink()
    logger.info("Removed %s from %s (%d bytes)", ", ".join(files), folder, freed)
    return freed


# --- browsing -----------------------------------------------------------------------------------------------------

SEARCH_KINDS = {"gguf": "gguf", "whisper": "ctranslate2", "opus-mt": "marian"}


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    downloads: int
    likes: int
    kind: str


def search_hub(query: str, kind: str = "gguf", limit: int = 30, settings: NetworkSettings | None = None) -> list[HubModel]:
    """Hub models by name: GGUF chat models, faster-whisper (CTranslate2) speech models, or opus-mt pairs."""
    from huggingface_hub import HfApi

    settings = settings or load_network_settings()
    apply_network_settings(settings)
    api = HfApi(endpoint=settings.resolved_endpoint())
    search = query.strip()
    if kind == "whisper":
        search = f"faster-whisper {search}".strip()
    elif kind == "opus-mt":
        search = f"opus-mt {search}".strip()
    filter_tag = SEARCH_KINDS.get(kind)
    try:
        found = api.list_models(search=search or None, filter=filter_tag, sort="downloads", limit=limit)
        return [HubModel(m.id, int(m.downloads or 0), int(m.likes or 0), kind) for m in found]
    except Exception as error:
        raise DownloadError(f"Searching {settings.resolved_endpoint()} failed: {error}") from error


def gguf_files(plan: DownloadPlan) -> list[RemoteFile]:
    """The quant files of a GGUF repository, smallest first, for the user to pick one."""
    return sorted((f for f in plan.files if f.name.lower().endswith(".gguf")), key=lambda f: f.size)
