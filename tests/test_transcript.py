"""The dictation transcript: edits, exact subtitle formats, atomic saves and the autosave the app restores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from desktop_ai import paths
from desktop_ai.engine.audio import transcript as transcript_module
from desktop_ai.engine.errors import EngineError, InvalidInputError
from desktop_ai.engine.audio.transcript import (
    Phrase,
    TranscriptAutosave,
    TranscriptDocument,
    latest_autosave,
    new_autosave_path,
    transcripts_dir,
)


def two_phrases() -> TranscriptDocument:
    doc = TranscriptDocument(title="Standup", created="2026-12-01T10:55:00+01:00", source="microphone")
    doc.add(Phrase(start=0.0, end=1.5, text="Hello there."))
    doc.add(Phrase(start=62.345, end=3725.0049, text="The quick brown fox & the <lazy> dog."))
    return doc


def test_text_is_one_phrase_per_line():
    doc = two_phrases()
    assert doc.text() == "Hello there.\nThe quick brown fox & the <lazy> dog."
    assert doc.to_txt() == doc.text() + "\n"


def test_srt_exact():
    assert two_phrases().to_srt() == (
        "1\n"
        "00:00:00,000 --> 00:00:01,500\n"
        "Hello there.\n"
        "\n"
        "2\n"
        "00:01:02,345 --> 01:02:05,005\n"
        "The quick brown fox & the <lazy> dog.\n"
    )


def test_vtt_exact():
    assert two_phrases().to_vtt() == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:01.500\n"
        "Hello there.\n"
        "\n"
        "00:01:02.345 --> 01:02:05.005\n"
        "The quick brown fox &amp; the &lt;lazy&gt; dog.\n"
    )


def test_edit_in_place_keeps_the_timing():
    doc = two_phrases()
    doc.set_text(0, "Hello, everyone.")
    assert doc.phrases[0] == Phrase(0.0, 1.5, "Hello, everyone.")
    assert doc.text().splitlines()[0] == "Hello, everyone."
    with pytest.raises(IndexError):
        doc.set_text(2, "no such phrase")
    with pytest.raises(IndexError):
        doc.set_text(-1, "negative indexes would edit from the end")


def test_emptied_and_multiline_phrases_stay_valid_subtitles():
    doc = two_phrases()
    doc.set_text(0, "   ")
    doc.add(Phrase(4000.0, 3999.0, "two\n\nlines"))  # end before start: clamped, never a negative cue
    assert doc.to_srt().startswith("1\n00:01:02,345 --> ")
    assert doc.to_srt().endswith("2\n01:06:40,000 --> 01:06:40,000\ntwo lines\n")
    assert doc.text() == "The quick brown fox & the <lazy> dog.\ntwo lines"
    assert TranscriptDocument().to_vtt() == "WEBVTT\n"
    assert TranscriptDocument().to_txt() == ""


@pytest.mark.parametrize("suffix, render", [(".txt", "to_txt"), (".SRT", "to_srt"), (".vtt", "to_vtt")])
def test_export_chooses_the_format_by_suffix(tmp_path, suffix, render):
    doc = two_phrases()
    path = doc.export(tmp_path / f"standup{suffix}")
    assert path.read_text(encoding="utf-8") == getattr(doc, render)()


@pytest.mark.parametrize("name", ["standup.docx", "standup"])
def test_export_unsupported_suffix(tmp_path, name):
    with pytest.raises(InvalidInputError, match=r"choose \.txt, \.srt or \.vtt") as caught:
        two_phrases().export(tmp_path / name)
    assert name in str(caught.value)
    assert not (tmp_path / name).exists()


def test_save_load_round_trip(tmp_path):
    doc = two_phrases()
    doc.add(Phrase(3800.0, 3801.25, "Grüße, 你好 — unicode survives."))
    path = doc.save(tmp_path / "standup.json")
    assert TranscriptDocument.load(path) == doc
    assert TranscriptDocument.from_dict(doc.to_dict()) == doc
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["source"] == "microphone" and len(data["phrases"]) == 3


def test_new_document_has_an_iso_creation_time():
    from datetime import datetime

    created = datetime.fromisoformat(TranscriptDocument().created)
    assert created.tzinfo is not None


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "standup.json"
    path.write_text("x" * 100_000, encoding="utf-8")  # an older, larger file: replaced whole, not overwritten
    two_phrases().save(path)
    assert TranscriptDocument.load(path) == two_phrases()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["standup.json"]


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "standup.json"
    two_phrases().save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transcript_module.os, "replace", crash)
    bigger = two_phrases()
    bigger.add(Phrase(9.0, 10.0, "this never reaches the disk"))
    with pytest.raises(EngineError, match="No space left on device"):
        bigger.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["standup.json"]


@pytest.mark.parametrize(
    "content",
    [b'{"title": "Standup", "phrases": [{"start": 0, "end"', b"", b"\xff\xfe not utf-8", b"[1, 2]",
     b'{"phrases": [{"start": "soon", "end": 1, "text": "x"}]}'],
)
def test_corrupt_json_names_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match='"broken.json" is damaged or not a transcript file'):
        TranscriptDocument.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        TranscriptDocument.load(tmp_path / "nothing.json")


def test_transcripts_dir_is_under_the_data_dir():
    folder = transcripts_dir()
    assert folder == paths.data_dir() / "transcripts"
    assert folder.is_dir()
    assert Path(os.environ["DESKTOP_AI_HOME"]) in folder.parents


def test_autosave_paths_are_timestamped_and_unique():
    first, second, third = new_autosave_path(), new_autosave_path(), new_autosave_path("meeting")
    assert len({first, second, third}) == 3
    assert all(p.parent == transcripts_dir() for p in (first, second, third))
    assert first.name.startswith("dictation-") and first.suffix == ".json"
    stamp = first.stem.removeprefix("dictation-")[:17]
    assert len(stamp) == 17 and stamp[4] == stamp[7] == stamp[10] == "-" and stamp.replace("-", "").isdigit()
    assert third.name.startswith("meeting-")


def test_latest_autosave_is_the_newest_non_empty_one():
    assert latest_autosave() is None
    assert TranscriptAutosave.latest() is None
    older = TranscriptAutosave(two_phrases())
    older.save_now()
    newer = TranscriptAutosave(TranscriptDocument(source="microphone"))
    newer.document.add(Phrase(0.0, 1.0, "newest"))
    newer.save_now()
    os.utime(older.path, ns=(1_000_000_000, 1_000_000_000))
    new_autosave_path()  # reserved but never written: not offered back
    TranscriptAutosave(two_phrases(), transcripts_dir() / "meeting-2026-12-01-000000.json").save_now()
    assert latest_autosave() == newer.path
    assert TranscriptAutosave.latest() == newer.path
    assert TranscriptDocument.load(latest_autosave()).text() == "newest"
    assert latest_autosave("meeting").name == "meeting-2026-12-01-000000.json"
