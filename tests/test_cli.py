"""Tests of the `desktop-ai` command line: in-process through main() with tiny offline models, plus one
real subprocess through the installed entry point script. No network, no Qt; the only real weights are the
image model of ../shared/models (those tests skip without it).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_ai import cli

try:
    from tests.tiny_models import build_causal_lm, build_embedding_model
except ImportError:  # pytest put tests/ itself on sys.path
    from tiny_models import build_causal_lm, build_embedding_model  # type: ignore[no-redef]


SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
INT8_MODEL = SHARED_MODELS / "mobilenet_v2_int8" / "model.pt"
DOG = SHARED_MODELS / "sample_images" / "dog.jpg"
needs_shared_models = pytest.mark.skipif(not INT8_MODEL.is_file() or not DOG.is_file(), reason="../shared/models is absent")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_causal_lm(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_embedding_model(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """User data in a temporary folder, no Hub, and no logging handlers left behind on captured streams."""
    monkeypatch.setenv("DESKTOP_AI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield tmp_path
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_desktop_ai", False):
            root.removeHandler(handler)
            handler.close()


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _assert_one_clean_error(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert needle in lines[0], err
    assert "Traceback" not in err


# --- parser ---------------------------------------------------------------------------------------

def test_parser_choices_match_the_engine() -> None:
    from desktop_ai.engine.catalogue import TASKS
    from desktop_ai.engine.compression import Compression
    from desktop_ai.engine.devices import DEVICE_PREFERENCES

    assert set(cli.COMPRESSION_CHOICES) == {c.value for c in Compression}
    assert tuple(cli.DEVICE_CHOICES) == tuple(DEVICE_PREFERENCES)
    assert tuple(cli.TASK_CHOICES) == tuple(TASKS)


def test_bench_arguments_parse() -> None:
    args = cli.build_parser().parse_args(
        ["bench", "--task", "generate", "--model", "m", "--device", "CPU", "--compressions", "none, int8,prune,int8",
         "--max-new-tokens", "8", "--repeats", "2", "--json", "--markdown", "out/bench.md"]
    )
    assert args.handler is cli.cmd_bench
    assert (args.task, args.model, args.device) == ("generate", "m", "cpu")
    assert args.compressions == ["none", "int8", "prune"]
    assert (args.max_new_tokens, args.repeats, args.json, args.markdown) == (8, 2, True, Path("out/bench.md"))
    defaults = cli.build_parser().parse_args(["bench", "--task", "classify"])
    assert defaults.compressions is None and defaults.markdown is None and not defaults.json
    assert defaults.images is None and defaults.arch is None and defaults.labels is None
    images = cli.build_parser().parse_args(["bench", "--task", "recognize", "--images", "a.jpg", "photos",
                                            "--arch", "mobilenet_v2", "--labels", "labels.txt"])
    assert (images.task, images.images, images.arch, images.labels) == ("recognize", ["a.jpg", "photos"], "mobilenet_v2", "labels.txt")


def test_recognize_arguments_parse() -> None:
    args = cli.build_parser().parse_args(["recognize", "a.jpg", "photos", "--top", "3", "--arch", "mobilenet_v2",
                                          "--labels", "l.txt", "--batch-size", "4", "--compression", "int8", "--json"])
    assert args.handler is cli.cmd_recognize
    assert (args.images, args.top, args.arch, args.labels, args.batch_size) == (["a.jpg", "photos"], 3, "mobilenet_v2", Path("l.txt"), 4)
    assert (args.compression, args.json, args.no_cache) == ("int8", True, False)
    defaults = cli.build_parser().parse_args(["recognize", "a.jpg"])
    assert (defaults.top, defaults.batch_size, defaults.model, defaults.arch) == (5, None, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench"],  # --task is required
        ["bench", "--task", "summarize"],
        ["bench", "--task", "generate", "--compressions", "int4"],
        ["bench", "--task", "generate", "--repeats", "0"],
        ["recognize"],  # at least one image
        ["recognize", "a.jpg", "--top", "0"],
    ],
)
def test_bad_bench_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage:" in captured.err and "Traceback" not in captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from desktop_ai import __version__

    assert cli.main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_compression_int4_is_rejected_by_argparse(tiny_lm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "hello", "--model", str(tiny_lm), "--compression", "int4"]) == 2
    captured = capsys.readouterr()
    assert "invalid choice: 'int4'" in captured.err
    assert captured.out == ""


def test_unknown_option_of_a_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# --- generate -------------------------------------------------------------------------------------

def test_generate_json(tiny_lm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["generate", "hello", "--model", str(tiny_lm), "--max-new-tokens", "5", "--temperature", "0", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (result,) = _json_lines(captured.out)
    assert isinstance(result["text"], str)
    assert 1 <= result["new_tokens"] <= 5
    assert result["model_id"] == str(tiny_lm)
    assert result["device"] == "cpu" or result["device"].startswith(("cuda", "mps"))
    assert isinstance(result["notices"], list)
    assert "note:" not in captured.err


def test_generate_text_streams_tokens_and_uses_the_cache(tiny_lm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "hello", "--model", str(tiny_lm), "--max-new-tokens", "5", "--temperature", "0", "--device", "cpu"]
    assert cli.main([*argv, "--json"]) == 0
    expected = _json_lines(capsys.readouterr().out)[0]["text"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.rstrip("\n") == expected  # same text, streamed (from the cache this time)
    assert captured.out.endswith("\n")
    assert "Traceback" not in captured.err


def test_generate_reads_the_prompt_from_stdin(tiny_lm: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("hello from a pipe\n"))
    assert cli.main(["generate", "-", "--model", str(tiny_lm), "--max-new-tokens", "3", "--json", "--no-cache"]) == 0
    (result,) = _json_lines(capsys.readouterr().out)
    assert result["prompt_tokens"] > 0 and result["new_tokens"] <= 3


def test_generate_fp16_on_cpu_is_a_note(tiny_lm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "hello", "--model", str(tiny_lm), "--max-new-tokens", "2", "--temperature", "0",
            "--device", "cpu", "--compression", "fp16", "--no-cache"]
    assert cli.main(argv) == 0
    assert "note: Half precision needs a GPU" in capsys.readouterr().err
    assert cli.main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    (result,) = _json_lines(captured.out)
    assert any("Half precision" in notice for notice in result["notices"])
    assert "note:" not in captured.err


def test_generate_empty_prompt(tiny_lm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "   ", "--model", str(tiny_lm)]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "prompt is empty")
    assert captured.out == ""


def test_generate_missing_model_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", "hello", "--model", "/does/not/exist", "--json"]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "does not exist")
    assert captured.out == ""


def test_unexpected_failure_goes_to_the_log_file(tiny_lm: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop_ai.engine import text_generation
    from desktop_ai.logging_setup import log_file

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(text_generation.TextGenerator, "run", broken)
    assert cli.main(["generate", "hello", "--model", str(tiny_lm)]) == 1
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "kaboom")
    assert str(log_file()) in captured.err
    for handler in logging.getLogger().handlers:
        handler.flush()
    logged = log_file().read_text(encoding="utf-8")
    assert "Traceback" in logged and "RuntimeError: kaboom" in logged


def test_ctrl_c_prints_stopped(tiny_lm: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop_ai.engine import text_generation

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(text_generation.TextGenerator, "run", interrupted)
    assert cli.main(["generate", "hello", "--model", str(tiny_lm)]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "stopped"


# --- translate ------------------------------------------------------------------------------------

def test_translate_json(tiny_marian_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["translate", "Hello", "world.", "This", "is", "a", "test.", "--model", str(tiny_marian_dir),
            "--device", "cpu", "--beams", "1", "--json"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["source_text"] == "Hello world. This is a test."
    assert result["sentences"] == 2 and result["translated"] == 2 and result["cached"] == 0
    assert isinstance(result["text"], str) and result["stopped"] is False
    assert result["model_id"] == str(tiny_marian_dir) and result["device"] == "cpu" and result["compression"] == "none"
    assert {"seconds", "notices"} <= set(result)
    assert cli.main(argv) == 0  # the same text again comes from the cache
    again = json.loads(capsys.readouterr().out)
    assert again["text"] == result["text"] and again["cached"] == 2 and again["translated"] == 0


def test_translate_text_from_a_file_and_stdin(tiny_marian_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    page = tmp_path / "page.txt"
    page.write_text("Hello world.\n\nThis is a test.\n", encoding="utf-8")
    base = ["--model", str(tiny_marian_dir), "--device", "cpu", "--beams", "1", "--no-cache"]
    assert cli.main(["translate", "--file", str(page), *base]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and "\n\n" in out.rstrip("\n")  # the paragraph break is kept
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello world.\n\nThis is a test.\n"))
    assert cli.main(["translate", "-", *base]) == 0
    assert capsys.readouterr().out == out


def test_translate_empty_text_and_missing_file(tiny_marian_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["translate", "  ", "--model", str(tiny_marian_dir)]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "nothing to translate")
    assert captured.out == ""
    assert cli.main(["translate", "--file", str(tmp_path / "absent.txt"), "--model", str(tiny_marian_dir)]) == 2
    _assert_one_clean_error(capsys.readouterr().err, "does not exist")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 \xff")
    assert cli.main(["translate", "--file", str(bad), "--model", str(tiny_marian_dir)]) == 2
    _assert_one_clean_error(capsys.readouterr().err, "not UTF-8")


def test_translate_offline_default_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    assert cli.main(["translate", "Hello.", "--json"]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "opus-mt-en-de")
    assert captured.out == ""
    assert cli.main(["translate", "Hello.", "--src", "en", "--tgt", "xx"]) == 2
    _assert_one_clean_error(capsys.readouterr().err, "No translation model is listed")


# --- classify -------------------------------------------------------------------------------------

def test_classify_json_lines(tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["classify", "a", "b", "--model", str(tiny_embedder), "--labels", "x,y", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = _json_lines(captured.out)
    assert [r["text"] for r in results] == ["a", "b"]
    for result in results:
        assert len(result["scores"]) == 2
        assert {s["label"] for s in result["scores"]} == {"x", "y"}
        assert result["label"] == result["scores"][0]["label"]
        assert sum(s["score"] for s in result["scores"]) == pytest.approx(1.0, abs=1e-4)


def test_classify_table_and_file(tiny_embedder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("I love this film\n\nTerrible and boring\n", encoding="utf-8")
    assert cli.main(["classify", "--file", str(texts), "--model", str(tiny_embedder), "--no-cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["text", "label", "score"]
    body = lines[2:]
    assert len(body) == 2
    assert body[0].startswith("I love this film") and body[1].startswith("Terrible and boring")
    for line in body:
        assert "positive" in line and "negative" in line  # sentiment by default, every label's score shown


def test_classify_one_label(tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["classify", "a", "--model", str(tiny_embedder), "--labels", "x"]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "at least two")
    assert captured.out == ""


def test_classify_missing_file(tiny_embedder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["classify", "--file", str(tmp_path / "nope.txt"), "--model", str(tiny_embedder)]) == 2
    _assert_one_clean_error(capsys.readouterr().err, "does not exist")


# --- recognize ------------------------------------------------------------------------------------

@needs_shared_models
def test_recognize_json_lines_and_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n", encoding="utf-8")
    code = cli.main(["recognize", str(DOG), str(notes), "--model", str(INT8_MODEL), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    dog, text = _json_lines(captured.out)  # one line per file, in the order given
    assert dog["path"] == str(DOG) and dog["error"] is None
    assert "Samoyed" in dog["labels"][0]
    assert len(dog["labels"]) == len(dog["scores"]) == 5 and dog["scores"] == sorted(dog["scores"], reverse=True)
    assert text["path"] == str(notes) and text["error"] and text["labels"] == []
    assert "Traceback" not in captured.err

    # Text mode, the dog from the cache this time: the path, then "label  score%" lines; the bad file is a note.
    assert cli.main(["recognize", str(DOG), str(notes), "--model", str(INT8_MODEL), "--top", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == str(DOG) and len(lines) == 3
    assert "Samoyed" in lines[1] and lines[1].rstrip().endswith("%")
    assert f"note: {notes}: " in captured.err and "error:" not in captured.err


def test_recognize_every_file_bad_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture\n", encoding="utf-8")
    assert cli.main(["recognize", str(notes), str(tmp_path / "missing.jpg"), "--json"]) == 2
    captured = capsys.readouterr()
    assert [line["error"] is not None for line in _json_lines(captured.out)] == [True, True]
    assert captured.err.strip().splitlines()[-1].startswith("error: None of the 2 files")
    assert "Traceback" not in captured.err
    assert cli.main(["recognize", str(notes)]) == 2  # one file: its reason is the error line
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "not an image file")
    assert captured.out == ""


def test_recognize_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(b"")
    assert cli.main(["recognize", str(image), "--model", "/nope.pt", "--json"]) == 2
    captured = capsys.readouterr()
    _assert_one_clean_error(captured.err, "does not exist")
    assert captured.out == ""


def test_recognize_a_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["recognize", str(tmp_path / "empty")]) == 2
    _assert_one_clean_error(capsys.readouterr().err, "holds no image files")


# --- models, install-desktop --------------------------------------------------------------------

def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    from desktop_ai.engine.catalogue import CATALOGUE, DEFAULT_MODELS

    assert cli.main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == [entry.id for entry in CATALOGUE]
    by_id = {row["id"]: row for row in rows}
    for task, model_id in DEFAULT_MODELS.items():
        row = by_id[model_id]
        assert row["default"] is True and row["task"] == task
        if row["source"] == "package":
            assert row["availability"] == "embedded"
        else:  # no image model is on PyPI: the recognize default is torchvision's download
            assert row["availability"] in ("downloaded", "needs download")
    assert sum(row["default"] for row in rows) == len(DEFAULT_MODELS)
    for row in rows:
        assert {"title", "size_mb", "licence", "source"} <= row.keys()


def test_models_table_for_one_task(capsys: pytest.CaptureFixture[str]) -> None:
    from desktop_ai.engine.catalogue import DEFAULT_MODELS

    assert cli.main(["models", "--task", "classify"]) == 0
    out = capsys.readouterr().out
    assert f"* {DEFAULT_MODELS['classify']}" in out
    assert DEFAULT_MODELS["generate"] not in out
    assert "embedded" in out
    assert cli.main(["models", "--task", "recognize"]) == 0
    out = capsys.readouterr().out
    assert f"* {DEFAULT_MODELS['recognize']}" in out
    assert DEFAULT_MODELS["classify"] not in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="desktop entries are a freedesktop thing")
def test_install_desktop(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install-desktop"]) == 0
    printed = [Path(line) for line in capsys.readouterr().out.splitlines()]
    desktop_file = isolated / "xdg" / "applications" / "desktop-ai.desktop"
    assert desktop_file in printed
    assert all(path.is_file() for path in printed)
    assert "Exec=" in desktop_file.read_text(encoding="utf-8")


# --- the real entry point -------------------------------------------------------------------------

def test_entry_point_script(tiny_lm: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "desktop-ai"
    if not script.is_file():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    env = {**os.environ, "DESKTOP_AI_HOME": str(tmp_path / "sub-home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(script), "generate", "hello", "--model", str(tiny_lm), "--max-new-tokens", "4", "--temperature", "0", "--json"],
        capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = _json_lines(proc.stdout)
    assert result["new_tokens"] <= 4 and isinstance(result["text"], str)
    assert "Traceback" not in proc.stderr


# --- the window ----------------------------------------------------------------------------------

def test_no_command_opens_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls: list[list[str] | None] = []
    fake_app = types.ModuleType("desktop_ai.app")
    fake_app.main = lambda argv=None: calls.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "desktop_ai.app", fake_app)
    assert cli.main([]) == 7
    assert cli.main(["--verbose", "-style", "fusion"]) == 7
    assert calls == [[], ["-style", "fusion"]]


def test_headless_commands_never_import_qt(tmp_path: Path) -> None:
    code = (
        "import sys; from desktop_ai.cli import main; code = main(['models', '--json']); "
        "assert 'PySide6' not in sys.modules, 'Qt was imported'; sys.exit(code)"
    )
    env = {**os.environ, "DESKTOP_AI_HOME": str(tmp_path / "qt-home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
