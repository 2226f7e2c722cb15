"""`desktop-ai teach`, `classify --classifier` and `recognize --classifier`, in-process through main(), on the
embedded models: taught from a CSV, used, corrected, listed, exported and imported; bad input is one
"error: ..." line and exit 2."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from desktop_ai.cli import main as cli
from taught_examples import split


@pytest.fixture
def examples_csv(tmp_path: Path) -> Path:
    train, _ = split(5)
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(train)
    return path


def test_teach_classify_correct_list_export_import(examples_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["teach", "topics", "--examples", str(examples_csv), "--no-language-model"]) == 0
    out = capsys.readouterr().out
    assert "Taught 'topics' (classify) on all-minilm-l6-v2: sport 5, cooking 5, weather 5 example(s)." in out
    assert "Cross-validated accuracy:" in out and "weather" in out.splitlines()[-3]
    assert out.splitlines()[-2] == "Classifier: embedding head.", "--no-language-model: the head alone"
    _, test = split(18)
    texts = [t for t, _ in test]
    assert cli.main(["classify", "--classifier", "topics", "--json", *texts]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == [label for _, label in test]
    assert all(r["model_id"] == "taught:topics" for r in rows)

    odd = "The chef won the final."
    assert cli.main(["teach", "topics", "--correct", odd, "--label", "weather"]) == 0
    capsys.readouterr()
    assert cli.main(["classify", "--classifier", "topics", "--json", odd]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "weather"

    assert cli.main(["teach", "--list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(c["name"], c["examples"]["weather"]) for c in listed] == [("topics", 6)]
    exported = tmp_path / "topics-export.taught.npz"
    assert cli.main(["teach", "topics", "--export", str(exported)]) == 0
    assert cli.main(["teach", "--import", str(exported), "copy"]) == 0
    assert cli.main(["teach", "topics", "--delete"]) == 0
    capsys.readouterr()
    assert cli.main(["classify", "--classifier", "copy", "--json", odd]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "weather", "the correction travelled with the file"


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert not any("Traceback" in line for line in err)
    return err[-1]


def test_bad_input_is_one_error_line_and_exit_2(examples_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert cli.main(["teach", "x", "--examples", str(empty)]) == 2
    assert "empty.csv is empty" in _error(capsys)
    one = tmp_path / "one.csv"
    one.write_text("text,label\nA goal!,sport\nA try.,sport\n")
    assert cli.main(["teach", "x", "--examples", str(one)]) == 2
    assert "at least two labels" in _error(capsys)
    assert cli.main(["classify", "--classifier", "nope", "hello"]) == 2
    assert "no taught classifier named 'nope'" in _error(capsys)
    assert cli.main(["teach", "x"]) == 2
    assert "Give one of --examples" in _error(capsys)
    garbage = tmp_path / "garbage.taught.npz"
    garbage.write_bytes(b"\x00" * 64)
    assert cli.main(["teach", "--import", str(garbage)]) == 2
    assert "is not a taught classifier file" in _error(capsys)
    assert cli.main(["teach", "topics", "--examples", str(examples_csv), "--no-language-model"]) == 0
    capsys.readouterr()
    assert cli.main(["teach", "topics", "--correct", "A goal!"]) == 2
    assert "--label" in _error(capsys)
    assert cli.main(["classify", "--classifier", "topics", "--labels", "a,b", "hello"]) == 2
    assert "own labels" in _error(capsys)


def test_recognize_with_a_taught_classifier_sorts_into_its_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_taught_photos import crops
    from packaged_photos import packaged_photos

    teach = tmp_path / "teach"
    unseen = tmp_path / "unseen"
    for label, source in zip(("temple", "flower"), packaged_photos()):
        crops(source, teach / label, label, 5, 0)
        for photo in crops(source, tmp_path / "tmp" / label, label, 2, 5):
            unseen.mkdir(exist_ok=True)
            shutil.move(photo, unseen / photo.name)
    assert cli.main(["teach", "garden", "--task", "recognize", "--examples", str(teach)]) == 0
    assert "flower 5, temple 5" in capsys.readouterr().out  # the label folders, in name order
    out = tmp_path / "sorted"
    assert cli.main(["recognize", "--classifier", "garden", str(unseen), "--sort-into", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ImageNet:" in printed
    assert sorted(p.name for p in (out / "temple").iterdir()) == ["temple-5.jpg", "temple-6.jpg"]
    assert sorted(p.name for p in (out / "flower").iterdir()) == ["flower-5.jpg", "flower-6.jpg"]
