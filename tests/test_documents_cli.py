"""`desktop-ai docs ...` and `chat --docs`: the commands as a user runs them, and an indexing process killed
with SIGKILL midway that, started again, does not redo the files it had finished."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import document_files
from desktop_ai.cli.main import main
from document_fixtures import embedder, embedding_store, folder, written  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_add_list_search_update_remove(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "add", "notes", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    added = _lines(captured.out)[0]
    assert added["added"] == 8 and len(added["failed"]) == 2
    assert "notes: 10/10 files" in captured.err, "progress on stderr"

    assert main(["docs", "list", "--json"]) == 0
    listed = _lines(capsys.readouterr().out)
    assert [(c["name"], c["files"], c["failed"]) for c in listed] == [("notes", 10, 2)]
    assert {Path(f["path"]).name: f["reason_kind"] for f in listed[0]["failed_files"]} == {
        "broken.pdf": "damaged", "locked.pdf": "encrypted"}

    assert main(["docs", "search", "notes", "quench valve", "--top", "2", "--json"]) == 0
    hits = _lines(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["query"] == "quench valve" and hits[0]["rank"] == 1
    assert (Path(hits[0]["path"]).name, hits[0]["page"]) == ("handbook.pdf", 3)

    queries = folder.parent / "queries.txt"
    queries.write_text("coolant pump model\n\nsourdough bread\n")
    assert main(["docs", "search", "notes", "--queries", str(queries), "--top", "1", "--json"]) == 0
    hits = _lines(capsys.readouterr().out)
    assert [(h["query"], Path(h["path"]).name) for h in hits] == [("coolant pump model", "handbook.pdf"),
                                                                   ("sourdough bread", "kitchen.md")]

    (folder / "chess.rst").unlink()
    assert main(["docs", "update", "notes", "--json"]) == 0
    updated = _lines(capsys.readouterr().out)[0]
    assert (updated["removed"], updated["chunks_embedded"], updated["unchanged"]) == (1, 0, 9)

    assert main(["docs", "remove", "notes"]) == 0
    assert "Removed the collection notes" in capsys.readouterr().err
    assert main(["docs", "search", "notes", "pump"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: There is no collection named 'notes'")


def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "add", "x", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Not found:")
    assert main(["docs", "search", "x"]) == 2
    assert capsys.readouterr().err.strip() == "error: Give a QUERY to search for (or --queries FILE)."
    assert main(["chat", "--docs", "nothing-here", "hello"]) == 2
    assert "There is no collection named 'nothing-here'" in capsys.readouterr().err


def test_chat_with_docs_answers_with_the_right_file_and_page(folder: Path, tiny_causal_lm_dir: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "add", "notes", str(folder / "handbook.pdf")]) == 0
    capsys.readouterr()
    code = main(["chat", "--docs", "notes", "What must the operator do if the reactor exceeds 340 degrees?",
                 "--json", "--model", str(tiny_causal_lm_dir), "--runtime", "transformers", "--max-new-tokens", "4",
                 "--compression", "none"])
    assert code == 0
    turn = _lines(capsys.readouterr().out)[0]
    first = turn["sources"][0]
    assert (Path(first["path"]).name, first["page"], first["number"]) == ("handbook.pdf", 3, 1)
    assert "labelled Q7" in first["passage"]
    code = main(["chat", "--docs", "notes", "Who painted the Mona Lisa?", "--json", "--model", str(tiny_causal_lm_dir),
                 "--runtime", "transformers", "--compression", "none"])
    nothing = _lines(capsys.readouterr().out)[0]
    assert code == 0 and nothing["sources"] == [] and nothing["text"].startswith("I found nothing about this")


def test_a_killed_indexing_resumes_without_redoing_finished_files(tmp_path: Path) -> None:
    notes = document_files.write_many_markdown(tmp_path / "notes", 16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "DESKTOP_AI_HOME": str(tmp_path / "home")}
    database = tmp_path / "home" / "data" / "documents.sqlite"
    command = [sys.executable, "-m", "desktop_ai.cli.main", "docs", "add", "survey", str(tmp_path / "notes")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done: list[tuple[str, float]] = []
    deadline = time.monotonic() + 180
    try:
        while len(done) < 3:  # wait until a few files are committed, then kill without warning
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "indexing never committed a file"
            if database.exists():
                try:
                    with sqlite3.connect(database, timeout=5) as db:
                        done = db.execute("SELECT path, indexed_at FROM files").fetchall()
                except sqlite3.OperationalError:  # the schema is still being written
                    pass
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    with sqlite3.connect(database) as db:
        finished = dict(db.execute("SELECT path, indexed_at FROM files").fetchall())
        chunks_per_file = dict(db.execute(
            "SELECT files.path, count(chunks.id) FROM files JOIN chunks ON chunks.file_id = files.id GROUP BY files.id"))
    assert 3 <= len(finished) < len(notes), "killed midway"
    assert all(chunks_per_file.get(path, 0) > 0 for path in finished), "no file was left half-written"

    resumed = subprocess.run([sys.executable, "-m", "desktop_ai.cli.main", "docs", "update", "survey", "--json"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["unchanged"] == len(finished) and result["added"] == len(notes) - len(finished)
    with sqlite3.connect(database) as db:
        after = dict(db.execute("SELECT path, indexed_at FROM files").fetchall())
    assert len(after) == len(notes)
    assert all(after[path] == when for path, when in finished.items()), "finished files were not redone"
