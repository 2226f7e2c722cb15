"""Sort recognised photos into folders named after their top label (or `unsure` below a confidence).

Why it is careful: these are a user's photos. A file is never overwritten (a clash gets a number:
"dog (2).jpg"); a copy is written under a temporary name and renamed into place, so a half-written file
never carries a photo's name; a move is a hard link then an unlink on the same file system, and a full
copy, flushed, before the original goes across file systems. A Stop is honoured between photos, so every
photo is in exactly one place, and the report says what was done and what was left where it was.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.tasks.image_results import ImageResult

logger = logging.getLogger(__name__)

UNSURE = "unsure"
MAX_CLASHES = 10_000


@dataclass
class SortedPhoto:
    source: str
    destination: str
    folder: str


@dataclass
class SortReport:
    target: str
    move: bool
    done: list[SortedPhoto] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)
    left: list[str] = field(default_factory=list)  # not reached because of a Stop
    stopped: bool = False

    def describe(self) -> str:
        verb = "Moved" if self.move else "Copied"
        folders = sorted({p.folder for p in self.done})
        unsure = sum(1 for p in self.done if p.folder == UNSURE)
        parts = [f"{verb} {len(self.done)} photo(s) into {len(folders)} folder(s) in {self.target}"
                 + (f" ({unsure} into {UNSURE})" if unsure else "") + "."]
        if self.skipped:
            shown = "; ".join(f"{Path(p).name}: {why}" for p, why in self.skipped[:3])
            parts.append(f"{len(self.skipped)} skipped and left where they were ({shown}{' …' if len(self.skipped) > 3 else ''}).")
        if self.stopped:
            parts.append(f"Stopped: {len(self.left)} photo(s) were not sorted and are still where they were.")
        return " ".join(parts)


def folder_for(result: ImageResult, min_score: float = 0.0) -> str | None:
    """The top label as a folder name, `unsure` below min_score, None for a photo with no result."""
    if not result.ok or not result.predictions:
        return None
    top = result.predictions[0]
    if top.score < min_score:
        return UNSURE
    name = "".join("_" if c in '/\\\0:*?"<>|' else c for c in top.label).strip().strip(".") or UNSURE
    return name[:120]


def free_name(folder: Path, name: str) -> Path:
    """`name` in `folder`, or "stem (2).ext", "stem (3).ext", ... : the first that does not exist."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while os.path.lexists(candidate):
        if number > MAX_CLASHES:
            raise OSError(errno.EEXIST, f"too many files named like {name}")
        candidate = folder / f"{stem} ({number}){suffix}"
        number += 1
    return candidate


def _copy_into(source: Path, folder: Path) -> Path:
    """Copy under a hidden temporary name, flush, then link it to a free name (which fails rather than overwrite)."""
    temporary = folder / f".{source.name}.desktop-ai-partial-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(source, "rb") as reader, open(temporary, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        while True:
            destination = free_name(folder, source.name)
            try:
                os.link(temporary, destination)  # atomic and never replaces an existing file
                return destination
            except FileExistsError:
                continue  # someone took the name meanwhile: take the next number
            except OSError as error:
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                os.rename(temporary, destination)  # no hard links here (FAT, some network shares)
                return destination
    finally:
        temporary.unlink(missing_ok=True)


def _move_into(source: Path, folder: Path) -> Path:
    """A hard link then an unlink on one file system; across file systems a flushed copy, then the unlink."""
    while True:
        destination = free_name(folder, source.name)
        try:
            os.link(source, destination)
            break
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            destination = _copy_into(source, folder)
            break
    try:
        source.unlink()
    except OSError:
        destination.unlink(missing_ok=True)  # the original stays: still exactly one copy
        raise
    return destination


def sort_photos(
    results: Sequence[ImageResult],
    target: str | Path,
    move: bool = False,
    min_score: float = 0.0,
    cancel: threading.Event | None = None,
    progress: Callable[[str, float | None], None] | None = None,
) -> SortReport:
    """Copy (or move) each recognised photo into target/<top label>/; see the module docstring."""
    if not 0.0 <= min_score <= 1.0:
        raise InvalidInputError("The confidence for 'unsure' must be between 0 and 1 (0 % and 100 %).")
    root = Path(target).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(f"Cannot create the folder {root}: {error.strerror or error}. Nothing was sorted.") from None
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder. Nothing was sorted.")
    if not os.access(root, os.W_OK | os.X_OK):
        raise InvalidInputError(f"Cannot write into {root} (read-only). Nothing was sorted.")
    report = SortReport(str(root), move)
    todo = [r for r in results if r.ok and r.predictions]
    report.skipped.extend((r.path, r.error or "no labels") for r in results if not (r.ok and r.predictions))
    for number, result in enumerate(todo):
        if cancel is not None and cancel.is_set():
            report.stopped = True
            report.left.extend(r.path for r in todo[number:])
            break
        source = Path(result.path)
        folder_name = folder_for(result, min_score) or UNSURE
        folder = root / folder_name
        try:
            if not source.is_file():
                raise FileNotFoundError(errno.ENOENT, "no longer exists")
            if source.resolve().parent == folder.resolve():
                report.skipped.append((result.path, f"already in {folder_name}"))
                continue
            folder.mkdir(exist_ok=True)
            destination = _move_into(source, folder) if move else _copy_into(source, folder)
        except OSError as error:
            report.skipped.append((result.path, error.strerror or str(error)))
            logger.info("Not sorted: %s: %s", result.path, error)
            continue
        report.done.append(SortedPhoto(result.path, str(destination), folder_name))
        if progress is not None:
            progress(f"{'Moved' if move else 'Copied'} {number + 1} of {len(todo)} photos", (number + 1) / len(todo))
    return report
