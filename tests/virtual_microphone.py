"""A real microphone for tests: a private PulseAudio daemon whose null sink's monitor is the default input.

Anything played into the sink (`VirtualMicrophone.play`, or `paplay --device=virtmic`) is what the
"pulse" and "default" ALSA devices record, so the whole PortAudio path is exercised with known audio.

Two things PulseAudio 16 does that the helper works around:
- a null sink nobody asks low latency of renders 2 s ahead and sleeps, so a recording started on an
  idle sink gets nothing for up to 2 s and then loses that audio; a silent low-latency playback stream
  ("keepalive") plus one suspend/resume of the sink makes the monitor deliver 50 ms blocks at once and
  for as long as the daemon lives, like a real microphone's steady stream of (here digital) silence;
- PortAudio enumerates devices once (Pa_Initialize), and without a running server the ALSA "pulse" and
  "default" devices are missing from that list; desktop_ai.engine.audio.microphone rescans, other code must
  re-initialise sounddevice itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SINK = "virtmic"
SOURCE = f"{SINK}.monitor"
REQUIRED_BINARIES = ("pulseaudio", "pactl", "pacat", "paplay", "espeak-ng")
START_TIMEOUT_S = 10.0

# What the live-microphone tests speak. The fox sentence in espeak-ng's voice sits on a knife edge for Whisper tiny.en:
# shifting the same audio by a few samples or a few hundred milliseconds of lead turns "brown fox" into "round axe"
# (exact in 7 of 48 alignments, measured offline; through PulseAudio "round" in 13 of 20 recordings), which is why
# those tests once spoke it up to three times. The decode itself is deterministic (six decodes of one recording
# agree); it is the alignment. This sentence came back exactly in 48 of 48 alignments (0, 50 ms ... 500 ms of lead
# times 0-280 samples), and through this virtual microphone, on the path of test_dictation's live test (espeak-ng
# -> paplay -> MicrophoneStream -> DictationSession -> tiny.en int8), in 50 of 50 runs (49 exactly, one with a
# lower-case first word; 2 shared cores, 3 Dec 2026). So each live test speaks it once.
LIVE_SENTENCE = "open the window and let the fresh air in"


@dataclass
class VirtualMicrophone:
    """A running private PulseAudio server; PULSE_SERVER and XDG_RUNTIME_DIR point at it while it lives."""

    runtime_dir: Path
    work_dir: Path
    server: str
    daemon: subprocess.Popen
    sink: str = SINK
    source: str = SOURCE
    _children: list[subprocess.Popen] = field(default_factory=list)
    _count: int = 0

    @property
    def pid(self) -> int:
        return self.daemon.pid

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "pa.log"

    def pactl(self, *args: str, timeout: float = 10.0) -> str:
        """Run pactl against this server and return its output (raises on failure)."""
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def speak(self, text: str, name: str | None = None) -> Path:
        """espeak-ng's en-us voice at 150 wpm and 5 ms word gaps: what Whisper tiny.en transcribes correctly."""
        self._count += 1
        path = self.work_dir / (name or f"speech-{self._count}.wav")
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "150", "-g", "5", "-w", str(path), text],
            check=True, capture_output=True, timeout=30,
        )
        return path

    def play(self, wav_path: str | os.PathLike[str], wait: bool = True, timeout: float = 60.0) -> subprocess.Popen:
        """Play a sound file into the virtual microphone; wait=False returns the running paplay at once."""
        player = subprocess.Popen(
            ["paplay", f"--device={self.sink}", str(wav_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._children.append(player)
        if wait:
            _, err = player.communicate(timeout=timeout)
            if player.returncode != 0:
                raise RuntimeError(f"paplay {wav_path} failed ({player.returncode}): {err.decode(errors='replace')}")
        return player

    def close(self) -> None:
        """Stop every player and the daemon; safe to call twice."""
        for child in self._children:
            _stop_process(child)
        self._children.clear()
        _stop_process(self.daemon)
        pid_file = self.runtime_dir / "pulse" / "pid"  # a daemon that forked anyway (never expected)
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split()[0])
            if pid != self.daemon.pid:
                os.kill(pid, signal.SIGTERM)


def _stop_process(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)
    for stream in (process.stdout, process.stderr, process.stdin):
        if stream is not None:
            stream.close()


def _wait_until(condition: Callable[[], bool], timeout: float, what: str, daemon: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if daemon.poll() is not None:
            raise RuntimeError(f"PulseAudio exited ({daemon.returncode}) before {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"PulseAudio: timed out after {timeout:.0f} s waiting for {what}:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers() -> bool:
    return subprocess.run(["pactl", "info"], capture_output=True, timeout=5, check=False).returncode == 0


@contextlib.contextmanager
def start_virtual_microphone(tmp_path: Path, runtime: Path | None = None) -> Iterator[VirtualMicrophone]:
    """Start the daemon, make its null sink's monitor the default input, and always tear it down. `runtime`: a
    folder chosen beforehand, so that a process started earlier can already point PULSE_SERVER at its socket
    (a microphone plugged in while the app runs)."""
    for binary in REQUIRED_BINARIES:
        if shutil.which(binary) is None:
            pytest.skip(f"PulseAudio virtual microphone unavailable: {binary} is not installed")
    # A short private directory: the socket path must fit in sun_path (108 bytes), tmp_path may not.
    runtime = runtime or Path(tempfile.mkdtemp(prefix="vmic-"))
    runtime.chmod(0o700)
    socket = runtime / "pulse-native"
    server = f"unix:{socket}"
    daemon_env = {k: v for k, v in os.environ.items() if k != "PULSE_SERVER"}
    daemon_env.update(
        XDG_RUNTIME_DIR=str(runtime),
        PULSE_RUNTIME_PATH=str(runtime / "pulse"),
        PULSE_STATE_PATH=str(runtime / "state"),
        XDG_CONFIG_HOME=str(runtime / "config"),  # the cookie stays here, not in the real home
    )
    log = runtime / "pa.log"
    # --daemonize=no: the daemon is our child, so teardown can wait for it (no orphan, no zombie).
    daemon = subprocess.Popen(
        [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
            "--use-pid-file=yes",
            "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1",
            "-L", f"module-null-sink sink_name={SINK}",
            f"--log-target=file:{log}",
        ],
        env=daemon_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    mic = VirtualMicrophone(runtime_dir=runtime, work_dir=Path(tmp_path), server=server, daemon=daemon)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("XDG_RUNTIME_DIR", str(runtime))
            env.setenv("PULSE_SERVER", server)
            env.delenv("PULSE_SINK", raising=False)
            env.delenv("PULSE_SOURCE", raising=False)
            _wait_until(_answers, START_TIMEOUT_S, "the server to answer", daemon, log)
            mic.pactl("set-default-sink", SINK)
            mic.pactl("set-default-source", SOURCE)
            keepalive = subprocess.Popen(
                ["pacat", "--playback", f"--device={SINK}", "--raw", "--format=s16le", "--rate=44100",
                 "--channels=2", "--latency-msec=20", "--client-name=virtmic-keepalive", "/dev/zero"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            mic._children.append(keepalive)
            _wait_until(lambda: bool(mic.pactl("list", "short", "sink-inputs").strip()),
                        START_TIMEOUT_S, "the keepalive stream", daemon, log)
            # the sink rendered 2 s ahead while idle; a resume restarts its clock at the keepalive's latency
            mic.pactl("suspend-sink", SINK, "1")
            mic.pactl("suspend-sink", SINK, "0")
            yield mic
    finally:
        mic.close()
        shutil.rmtree(runtime, ignore_errors=True)
