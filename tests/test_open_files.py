"""Files from outside the window: `desktop-ai PHOTO AUDIO TEXT` puts each in its tab, and a second launch
(a real `desktop-ai` process) hands its files to the window already open instead of opening another."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_ai.cli.main import _split_window_arguments
from desktop_ai.gui.open_files import SingleInstance, files_in_arguments, hand_off, route_files, server_name

from test_gui import JOB_MS, window  # noqa: F401

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "models" / "sample_images"


def _photo(path: Path) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (30, 90, 200))
    ImageDraw.Draw(image).ellipse((60, 40, 260, 200), fill=(250, 210, 40))
    image.save(path)
    return path


def _wav(path: Path) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), "-v", "en-us", "-s", "150", "the quick brown fox"], check=True)
    return path


def test_window_arguments_are_files_not_commands(tmp_path):
    photo = _photo(tmp_path / "dog.jpg")
    assert _split_window_arguments([str(photo), "song.mp3"]) == ([], [str(photo), "song.mp3"])
    assert _split_window_arguments(["recognize", str(photo)]) == (["recognize", str(photo)], [])
    assert _split_window_arguments(["--verbose", str(photo)]) == (["--verbose"], [str(photo)])
    assert files_in_arguments(["-platform", "offscreen", "dog.jpg", "-style=fusion", str(photo)]) == [
        str(Path("dog.jpg").absolute()), str(photo)]
    routed = route_files([str(photo), str(tmp_path), "a.WAV", "notes.txt", "slides.pdf"])
    assert routed.images == [str(photo), str(tmp_path)] and routed.audio == ["a.WAV"]
    assert routed.texts == ["notes.txt"] and routed.unknown == ["slides.pdf"]


def test_files_given_to_desktop_ai_land_in_their_tabs(qtbot, window, tmp_path):  # noqa: F811
    photo = _photo(tmp_path / "ball.png")
    audio = _wav(tmp_path / "tone.wav")
    text = tmp_path / "letter.txt"
    text.write_text("Good morning. The weather is fine.\n", encoding="utf-8")
    finished: list[object] = []
    for lane in window.lanes:  # the photo runs in the jobs lane, the recording in the Speech tab's own lane
        lane.finished_job.connect(lambda job, result: finished.append(result))
    window.open_paths([str(photo), str(audio), str(text), str(tmp_path / "slides.pdf")])
    assert "slides.pdf" in window.current_message(), "what cannot be opened is said"
    assert window.translate_tab.input.toPlainText().startswith("Good morning.")
    qtbot.waitUntil(lambda: len(finished) >= 2, timeout=JOB_MS)
    assert window.tabs.currentWidget() is window.image_side and window.image_side.currentWidget() is window.image_tab
    rows = [window.image_tab.results.topLevelItem(i) for i in range(window.image_tab.results.topLevelItemCount())]
    assert [r.text(0) for r in rows] == ["ball.png"] and rows[0].text(1), "recognised, with a label"
    qtbot.waitUntil(lambda: window.speech_tab.document.source == str(audio), timeout=JOB_MS)
    assert "fox" in window.speech_tab.document.text().lower(), "the recording was transcribed in the Speech tab"


def test_a_second_launch_hands_its_files_to_the_open_window(qtbot, window, tmp_path):  # noqa: F811
    listener = SingleInstance(window.open_paths, parent=window)
    assert listener.listen()
    photo = _photo(tmp_path / "second.png")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "desktop_ai", str(photo)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        qtbot.waitUntil(lambda: process.poll() is not None, timeout=60_000)
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, output
    assert time.monotonic() - started < 60, "the second launch exits at once: no window, no engine of its own"
    items = [window.image_tab.results.topLevelItem(i).text(0) for i in range(window.image_tab.results.topLevelItemCount())]
    assert items == ["second.png"]
    listener.close()
    assert not hand_off([str(photo)]), "with no window listening, a launch opens its own"
