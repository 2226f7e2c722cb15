"""bench --task dictate-anywhere: end of speech → the words in another program's text field, against the Speech
tab's own end-of-phrase latency (end of speech → final text) for the same phrases, in the same run.

Everything is real except the microphone: sentences spoken by espeak-ng are replayed in real time into a
DictationSession (as in bench --task transcribe's latency run); each final phrase goes through PhraseTypist and
XTest into desktop_ai.gui.typing_probe, a separate Qt process on a private Xvfb server, which logs the moment its
field changed on the monotonic clock every process shares. The goal: within 0.1 s of the Speech tab.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median
from desktop_ai.bench.transcribe import BENCH_SPEECH, _RealTimeReplay, bench_speech
from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.store import ModelStore

TASK_DICTATE_ANYWHERE = "dictate-anywhere"
PHRASES = 4
GOAL_S = 0.1


@contextlib.contextmanager
def private_x_server() -> Iterator[str]:
    """Xvfb on a display it picks itself (-displayfd); yields ":N". Nothing is typed into the user's own desktop."""
    if shutil.which("Xvfb") is None:
        raise ModelUnavailableError("bench --task dictate-anywhere types into a private X server, Xvfb, which is not "
                                    "installed (apt install xvfb).")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit code {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def typing_probe(display: str, folder: Path) -> Iterator[tuple[subprocess.Popen, dict[str, int]]]:
    """The other program (two text-field windows, A and B), started and waited for; stopped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "desktop_ai.gui.typing_probe", str(folder)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "windows.json").exists():
            if process.poll() is not None:
                raise RuntimeError(f"the typing probe exited: {process.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError("the typing probe never showed its windows")
            time.sleep(0.02)
        yield process, json.loads((folder / "windows.json").read_text())
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def focus_window(display: str, window: int) -> None:
    """Give `window` the keyboard focus, as a click would (there is no window manager on a private server)."""
    from Xlib import X
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        connection.create_resource_object("window", window).set_input_focus(X.RevertToParent, X.CurrentTime)
        connection.sync()
    finally:
        connection.close()


def bench_dictate_anywhere(store: ModelStore, model: str | None, device: str, methods: list[Compression],
                           repeats: int, say: Callable[[str], None]) -> BenchReport:
    from desktop_ai.anywhere.typist import PhraseTypist
    from desktop_ai.anywhere.x11 import X11Desktop
    from desktop_ai.engine.tasks.dictation import DictationSession
    from desktop_ai.engine.tasks.transcription import live_options, make_recognizer

    compression = Compression.INT8 if Compression.INT8 in methods or not methods else methods[0]  # dictation's own
    from desktop_ai.engine.tasks.dictation_commands import COMMAND_PROMPT

    # as `dictate --type` runs it: the spoken commands on, and Whisper told to expect them
    recognizer = make_recognizer(store, "whisper", model, device, compression, live_options(prompt=COMMAND_PROMPT))
    report = BenchReport(task=TASK_DICTATE_ANYWHERE, model=recognizer.model_id, device=str(recognizer.device),
                         environment=environment())
    tab: list[float] = []  # end of speech → final text (what the Speech tab shows)
    typed: list[float] = []  # end of speech → the field of the other program changed
    calls: list[float] = []  # how long PhraseTypist.phrase_final took (focus check, keys sent and synced)
    untyped: list[str] = []  # phrases PhraseTypist did not type, and why
    unseen: list[str] = []  # typed, but the other program's field never ended with them
    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-") as scratch, private_x_server() as display:
        folder = Path(scratch)
        _, audio, _ = bench_speech(folder, BENCH_SPEECH[:PHRASES])
        with typing_probe(display, folder / "probe") as (_, windows):
            focus_window(display, windows["A"])
            desktop = X11Desktop(display)
            try:
                for run in range(repeats):
                    say(f"dictate-anywhere: run {run + 1} of {repeats} ({len(audio) / 16000:.0f} s of speech in real time)")
                    typist = PhraseTypist(desktop)
                    ends: list[tuple[float, str]] = []  # (end of speech on the monotonic clock, the text typed)

                    def on_event(event: dict[str, Any], typist: PhraseTypist = typist,
                                 ends: list[tuple[float, str]] = ends) -> None:
                        if event["type"] == "speech":
                            typist.phrase_started()
                        elif event["type"] == "final" and event.get("segment") and event.get("latency_s") is not None:
                            now = time.monotonic()
                            done = typist.phrase_final(event["segment"]["text"])
                            calls.append(time.monotonic() - now)
                            tab.append(float(event["latency_s"]))
                            if done.typed:
                                ends.append((now - float(event["latency_s"]), "".join(typist.commands.typed)))
                            else:
                                untyped.append(f"{event['segment']['text']!r}: {done.notice or 'nothing to type'}")

                    DictationSession(_RealTimeReplay(audio), lambda: recognizer).run(on_event, threading.Event(),
                                                                                   max_seconds=len(audio) / 16000)
                    changes = _changes(folder / "probe" / "A.log", ends[-1] if ends else None)
                    for end, field in ends:
                        arrived = next((c["t"] for c in changes if c["t"] >= end and c["text"].endswith(field)), None)
                        if arrived is not None:
                            typed.append(arrived - end)
                        else:
                            unseen.append(repr(field[-40:]))
                    desktop.press_backspace(len("".join(typist.commands.typed)))  # an empty field for the next run
            finally:
                desktop.close()
    extra = [t - b for t, b in zip(typed, tab)] if len(typed) == len(tab) else []
    report.rows.append(BenchRow("Speech tab: end of speech → final text", compression.value,
                                {"median s": median(tab), "worst s": max(tab, default=float("nan")), "phrases": len(tab)}))
    report.rows.append(BenchRow("dictate anywhere: end of speech → words in the other program", compression.value,
                                {"median s": median(typed), "worst s": max(typed, default=float("nan")),
                                 "phrases": len(typed)}))
    if extra:
        report.rows.append(BenchRow("difference (typing + delivery)", compression.value,
                                    {"median s": median(extra), "worst s": max(extra), "phrases": len(extra)}))
        report.rows.append(BenchRow("of which: sending the keys (focus check, XTest, sync)", compression.value,
                                    {"median s": median(calls), "worst s": max(calls), "phrases": len(calls)}))
        report.notes.append(f"Goal: within {GOAL_S} s of the Speech tab: the worst difference is {max(extra):.3f} s "
                            f"({'met' if max(extra) <= GOAL_S else 'not met'}).")
    if untyped:
        report.notes.append("Not typed: " + "; ".join(untyped) + ".")
    if unseen:
        report.notes.append("Typed but never seen at the end of the other program's field: " + ", ".join(unseen) + ".")
    report.notes.append("The other program is desktop_ai.gui.typing_probe (Qt, xcb) on a private Xvfb server; "
                        "keys go through XTest; times are on the monotonic clock both processes share.")
    return report


def _changes(log: Path, last: tuple[float, str] | None, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The probe's changes, once the last phrase typed has arrived (the run can end before the probe caught up;
    an earlier run typed the same text, so only a change after that phrase's end of speech counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        changes = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
        if (last is None or time.monotonic() > deadline
                or any(change["t"] >= last[0] and change["text"].endswith(last[1]) for change in changes)):
            return changes
        time.sleep(0.02)
