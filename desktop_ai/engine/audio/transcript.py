"""The transcript a user dictates into: timed phrases they can edit, exported as text or subtitles, never lost.

Every write is atomic (a temporary file in the same folder, flushed, fsynced, then renamed over the target), so a
crash or a full disk leaves either the old file or the new one, never half of one. Dictation autosaves after
every finished phrase and every edit; on the next start the app offers the newest autosave back.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from desktop_ai import paths
from desktop_ai.engine.errors import EngineError, InvalidInputError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
EXPORT_SUFFIXES = (".txt", ".srt", ".vtt")


@dataclass
class Phrase:
    """One recognised phrase; start and end are seconds from the start of the recording or file."""

    start: float
    end: float
    text: str


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _one_line(text: str) -> str:
    """A phrase is one line in every format: a newline inside it would end an SRT/VTT cue early."""
    return " ".join(text.split())


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _vtt_escape(text: str) -> str:
    """WebVTT cue text is markup: &, < and > must be escaped, and "-->" may not appear."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace path with data in one step: temp file in the same folder, flush, fsync, os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (POSIX); elsewhere this is a no-op."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class TranscriptDocument:
    """Phrases in the order they were spoken, plus what the app needs to name, date and restore the transcript."""

    phrases: list[Phrase] = field(default_factory=list)
    title: str = "Transcript"
    created: str = field(default_factory=_now_iso)
    source: str | None = None  # a file path, or "microphone"

    def add(self, phrase: Phrase) -> int:
        """Append a finished phrase; returns its index (what set_text takes)."""
        self.phrases.append(phrase)
        return len(self.phrases) - 1

    def set_text(self, index: int, text: str) -> None:
        """The user corrected a phrase: keep its timing, replace its words."""
        if not 0 <= index < len(self.phrases):
            raise IndexError(f"phrase index {index} out of range (0..{len(self.phrases) - 1})")
        self.phrases[index].text = text

    def _cues(self) -> list[tuple[Phrase, str]]:
        """Phrases with text (a phrase the user emptied is dropped from every export)."""
        return [(phrase, line) for phrase in self.phrases if (line := _one_line(phrase.text))]

    def text(self) -> str:
        """All phrases, one per line."""
        return "\n".join(line for _, line in self._cues())

    def to_txt(self) -> str:
        body = self.text()
        return body + "\n" if body else ""

    def to_srt(self) -> str:
        blocks = []
        for number, (phrase, line) in enumerate(self._cues(), start=1):
            start, end = _timestamp(phrase.start, ","), _timestamp(max(phrase.end, phrase.start), ",")
            blocks.append(f"{number}\n{start} --> {end}\n{line}\n")
        return "\n".join(blocks)

    def to_vtt(self) -> str:
        blocks = ["WEBVTT\n"]
        for phrase, line in self._cues():
            start, end = _timestamp(phrase.start, "."), _timestamp(max(phrase.end, phrase.start), ".")
            blocks.append(f"{start} --> {end}\n{_vtt_escape(line)}\n")
        return "\n".join(blocks)

    def export(self, path: Path | str) -> Path:
        """Write as plain text or subtitles, chosen by the suffix (.txt, .srt, .vtt)."""
        path = Path(path)
        suffix = path.suffix.lower()
        render = {".txt": self.to_txt, ".srt": self.to_srt, ".vtt": self.to_vtt}.get(suffix)
        if render is None:
            shown = suffix or "no suffix"
            raise InvalidInputError(
                f"Cannot export a transcript as {shown} ({path.name}): choose .txt, .srt or .vtt."
            )
        try:
            write_atomic(path, render().encode("utf-8"))
        except OSError as error:
            raise EngineError(f"Could not write {path}: {error.strerror or error}.") from error
        return path

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "title": self.title,
            "created": self.created,
            "source": self.source,
            "phrases": [{"start": p.start, "end": p.end, "text": p.text} for p in self.phrases],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TranscriptDocument:
        """The inverse of to_dict; anything malformed is an InvalidInputError (load adds the file name)."""
        if not isinstance(data, dict) or not isinstance(data.get("phrases", []), list):
            raise InvalidInputError("this is not a transcript (no list of phrases)")
        phrases = []
        for number, item in enumerate(data.get("phrases", []), start=1):
            try:
                start, end, text = item["start"], item["end"], item["text"]
                if isinstance(start, bool) or isinstance(end, bool) or not isinstance(text, str):
                    raise TypeError
                phrases.append(Phrase(start=float(start), end=float(end), text=text))
            except (KeyError, TypeError, ValueError):
                raise InvalidInputError(f"phrase {number} is malformed") from None
        title, created, source = data.get("title", "Transcript"), data.get("created"), data.get("source")
        if not isinstance(title, str) or not isinstance(created, (str, type(None))) or not isinstance(
            source, (str, type(None))
        ):
            raise InvalidInputError("the title, date or source is malformed")
        return cls(phrases=phrases, title=title, created=created or _now_iso(), source=source)

    def save(self, path: Path | str) -> Path:
        """Save as JSON, atomically: a crash mid-save leaves the previous file whole."""
        path = Path(path)
        data = json.dumps(self.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")
        try:
            write_atomic(path, data)
        except OSError as error:
            raise EngineError(f"Could not save the transcript to {path}: {error.strerror or error}.") from error
        return path

    @classmethod
    def load(cls, path: Path | str) -> TranscriptDocument:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInputError(f"The transcript {path} does not exist.") from None
        except IsADirectoryError:
            raise InvalidInputError(f"{path} is a folder, not a transcript file.") from None
        except OSError as error:
            raise InvalidInputError(f"The transcript {path} cannot be read: {error.strerror or error}.") from None
        try:
            return cls.from_dict(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            message = f'"{path.name}" is damaged or not a transcript file (it is not valid JSON).'
            raise InvalidInputError(message) from None
        except InvalidInputError as error:
            raise InvalidInputError(f'"{path.name}" is damaged or not a transcript file: {error}.') from None


def transcripts_dir() -> Path:
    """Where transcripts and autosaves live, under the user's data folder."""
    folder = paths.data_dir() / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_autosave_path(prefix: str = "dictation") -> Path:
    """A fresh, timestamped file name in transcripts_dir(), e.g. dictation-2026-12-01-105500.json.

    The name is reserved by creating the file (empty) exclusively, so two dictations started in the same second,
    even from two windows, never share a file; latest_autosave() skips such empty reservations.
    """
    folder = transcripts_dir()
    stem = f"{prefix}-{datetime.now():%Y-%m-%d-%H%M%S}"
    for attempt in range(1, 10_000):
        candidate = folder / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            with open(candidate, "x", encoding="utf-8"):
                pass
        except FileExistsError:
            continue
        return candidate
    raise EngineError(f"Could not find a free autosave file name in {folder}.")


def latest_autosave(prefix: str = "dictation") -> Path | None:
    """The newest non-empty autosave, for the app to offer back after a crash; None if there is none."""
    found = []
    for candidate in transcripts_dir().glob(f"{prefix}-*.json"):
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if candidate.is_file() and stat.st_size > 0:
            found.append((stat.st_mtime_ns, candidate.name, candidate))
    return max(found)[2] if found else None


class TranscriptAutosave:
    """Keeps one document saved to one file; call save_now() after every finished phrase and every edit.

    Saving is synchronous on purpose: the document is a few kilobytes, and a write that returns is on disk.
    """

    def __init__(self, document: TranscriptDocument, path: Path | str | None = None) -> None:
        self.document = document
        self.path = Path(path) if path is not None else new_autosave_path()

    def save_now(self) -> Path:
        """Write the document atomically; raises EngineError (for the window to show) if the disk refuses."""
        self.document.save(self.path)
        logger.debug("Autosaved %d phrases to %s", len(self.document.phrases), self.path)
        return self.path

    def discard(self) -> None:
        """Remove the autosave (the user saved the transcript elsewhere, or threw it away)."""
        self.path.unlink(missing_ok=True)

    @staticmethod
    def latest(prefix: str = "dictation") -> Path | None:
        return latest_autosave(prefix)
