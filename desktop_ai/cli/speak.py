"""`speak`: read text aloud with a Piper voice, or write the speech to a WAV file."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from desktop_ai.cli.output import EXIT_INTERRUPTED, EXIT_OK, CliError, out, print_json, progress_for, stop_on_ctrl_c

logger = logging.getLogger(__name__)


def _read_text(args: argparse.Namespace) -> str:
    if args.texts == ["-"]:
        return sys.stdin.read()
    return " ".join(args.texts)


def _list_voices(args: argparse.Namespace) -> int:
    from desktop_ai.engine.audio.synthesis.voices import hub_voice_entries, installed_voices

    installed = installed_voices()
    names = {voice.id for voice in installed}
    rows = [{"voice": v.id, "language": v.config.language, "status": v.source, "path": str(v.model_path)} for v in installed]
    rows += [{"voice": e.id, "language": e.id.split("-")[0], "status": "needs download", "path": ""}
             for e in hub_voice_entries() if e.id not in names]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            out(f"{row['voice']:<26} {row['language']:<7} {row['status']}")
    return EXIT_OK


def cmd_speak(args: argparse.Namespace) -> int:
    """Plays sentence by sentence as they are made (the first sound comes after the first sentence), or writes --out."""
    if args.voices:
        return _list_voices(args)
    if not args.texts:
        raise CliError("Give the text to read aloud, or - to read it from standard input.")
    text = _read_text(args)
    from desktop_ai.engine.audio.synthesis.playback import SpeechPlayer, write_wav
    from desktop_ai.engine.audio.synthesis.synthesizer import SpeechSynthesizer, check_speed

    check_speed(args.speed)
    progress = progress_for(args)
    synthesizer = SpeechSynthesizer(args.voice)
    progress.message(f"Voice {synthesizer.voice.describe()}")
    cancel = threading.Event()
    if args.out is not None:
        with stop_on_ctrl_c(cancel, "stopping…"):
            result = synthesizer.synthesize(text, args.speed, cancel, progress)
        path = write_wav(args.out, result.audio, result.sample_rate)
        summary = {"path": str(path), "voice": result.voice, "sample_rate": result.sample_rate,
                   "sentences": len(result.sentences), "seconds": round(result.duration_s, 3),
                   "synthesis_seconds": round(result.synthesis_s, 3), "real_time_factor": round(result.real_time_factor, 4)}
        if args.json:
            print_json(summary)
        progress.message(f"Wrote {result.duration_s:.1f} s of speech to {path} (real-time factor {result.real_time_factor:.3f})")
        return EXIT_OK
    synthesizer.check(text)  # a bad text or speed is refused before the sound device is opened
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    player = SpeechPlayer(synthesizer.sample_rate, device).start()
    progress.message(f"Playing on {player.device.name if player.device else 'the default output'}")
    with stop_on_ctrl_c(cancel, "stopping…"):
        try:
            for _, audio in synthesizer.stream(text, args.speed, cancel, check=False):
                player.enqueue(audio)
            player.finish()
            while not player.wait(0.05):
                if cancel.is_set():
                    break
        finally:
            if cancel.is_set() or not player.wait(0):
                player.stop()
    if args.json:
        print_json({"voice": synthesizer.voice.id, "played_seconds": round(player.played_s, 3), "stopped": cancel.is_set()})
    return EXIT_INTERRUPTED if cancel.is_set() else EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """speak."""
    speak = commands.add_parser("speak", parents=[common], help="read text aloud with a neural voice (Piper)",
                                description="Read TEXT aloud (the words joined with spaces; - reads standard input) "
                                "with a Piper voice, sentence by sentence, or write the speech to a WAV file.")
    speak.add_argument("texts", nargs="*", metavar="TEXT", help="the text to read; - reads it from stdin")
    speak.add_argument("--voice", metavar="VOICE", help="voice id (default: the embedded en_US-joe-medium) or a "
                       "Piper .onnx file; --voices lists them")
    speak.add_argument("--speed", type=float, default=1.0, metavar="S", help="speaking speed, 0.25 to 4 (default: 1)")
    speak.add_argument("--out", type=Path, metavar="FILE.wav", help="write the speech to this file instead of playing it")
    speak.add_argument("--device", metavar="DEVICE", help="output device name or part of it (default: the system's)")
    speak.add_argument("--voices", action="store_true", help="list the voices, installed and downloadable, and exit")
    speak.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    speak.set_defaults(handler=cmd_speak)
