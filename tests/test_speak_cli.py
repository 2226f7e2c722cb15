"""`desktop-ai speak`: plays on the sound card (the virtual one here), writes WAV files, reads stdin, and refuses bad
input with one error line and exit code 2."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from desktop_ai.cli import main as cli

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DESKTOP_AI_HOME", str(tmp_path / "home"))
    yield tmp_path
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_desktop_ai", False):
            root.removeHandler(handler)
            handler.close()


def test_speak_writes_a_wav_file(tmp_path, capsys):
    target = tmp_path / "hello.wav"
    assert cli.main(["speak", "Hello there.", "How are you today?", "--out", str(target), "--speed", "1.2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    info = sf.info(str(target))
    assert (info.samplerate, info.channels) == (22050, 1)
    assert summary["sentences"] == 2 and summary["voice"] == "en_US-joe-medium"
    assert summary["seconds"] == pytest.approx(info.duration, abs=0.01) and info.duration > 1.0


def test_speak_reads_standard_input(tmp_path, monkeypatch):
    target = tmp_path / "stdin.wav"
    monkeypatch.setattr("sys.stdin", io.StringIO("Read from a pipe.\n"))
    assert cli.main(["speak", "-", "--out", str(target)]) == 0
    assert sf.info(str(target)).duration > 0.5


@pytest.mark.parametrize(("argv", "message"), [
    (["speak", "  "], "no text to read aloud"),
    (["speak"], "Give the text to read aloud"),
    (["speak", "Der Zug nach Berlin fährt heute wegen des Wetters etwas später ab."], "looks like German"),
    (["speak", "Hello.", "--voice", "robot"], "Unknown voice 'robot'"),
    (["speak", "Hello.", "--speed", "9"], "out of range"),
    (["speak", "Hello.", "--out", "/no/such/folder/x.wav"], "could not be written"),
])
def test_speak_refuses_bad_input_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_speak_without_an_output_device_says_to_write_a_file(monkeypatch, capsys):
    from desktop_ai.engine.audio.synthesis import playback

    monkeypatch.setattr(playback, "_output_devices", lambda sd: [])
    assert cli.main(["speak", "Hello there."]) == 2
    assert "No sound output device" in capsys.readouterr().err and "--out FILE.wav" in playback.NO_OUTPUT_MESSAGE


def test_speak_plays_on_the_sound_card(virtual_microphone, capsys):
    """The speech reaches the null sink: its monitor hears about as long a sound as the voice made."""
    from desktop_ai.engine.audio.microphone import MicrophoneStream

    chunks: list[np.ndarray] = []
    codes: list[int] = []
    with MicrophoneStream() as recording:
        thread = threading.Thread(target=lambda: codes.append(cli.main(["speak", "Where is the train station?", "--json"])))
        thread.start()
        while thread.is_alive():
            chunks.append(recording.read(timeout=0.1))
        chunks.append(recording.read(timeout=0.2))
    assert codes == [0]
    summary = json.loads(capsys.readouterr().out)
    audio = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    assert loud.size and (loud[-1] - loud[0]) / 16000 > 0.7 * summary["played_seconds"] - 0.3
    assert summary["played_seconds"] > 1.0 and not summary["stopped"]


def test_bench_voice_measures_the_real_time_factor_and_the_first_sound(capsys):
    assert cli.main(["bench", "--task", "voice", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "voice" and report["model"].startswith("en_US-joe-medium")
    rows = {row["name"].split(":")[0]: row["values"] for row in report["rows"]}
    assert set(rows) == {"baseline", "desktop-ai SpeechSynthesizer", "desktop-ai StreamingReader"}
    factors = [row["values"]["real-time factor"] for row in report["rows"] if "real-time factor" in row["values"]]
    latencies = [row["values"]["seconds to first sound"] for row in report["rows"] if "seconds to first sound" in row["values"]]
    assert len(factors) == 2 and all(0 < f < 5 for f in factors)
    assert len(latencies) == 2 and all(0 < s < 30 for s in latencies)
    assert any("First sound:" in note for note in report["notes"])
