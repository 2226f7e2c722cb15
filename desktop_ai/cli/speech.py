"""`transcribe` (audio files) and `dictate` (the microphone, live)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from desktop_ai.cli.cluster import add_cluster_options, cluster_settings
from desktop_ai.cli.options import (
    COMPRESSION_CHOICES,
    add_model_options,
    model_ref,
    add_speech_options,
    device_name,
    input_device,
    positive_float,
)
from desktop_ai.cli.output import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    err,
    notes,
    out,
    print_json,
    progress_for,
    quiet_libraries,
    stop_on_ctrl_c,
)

logger = logging.getLogger(__name__)


def _clock_tenths(seconds: float) -> str:
    """0:01.2, or 1:02:03.4 past an hour: short enough to put in front of every phrase."""
    tenths = max(0, round(seconds * 10))
    hours, tenths = divmod(tenths, 36000)
    minutes, tenths = divmod(tenths, 600)
    secs, tenth = divmod(tenths, 10)
    return f"{hours}:{minutes:02d}:{secs:02d}.{tenth}" if hours else f"{minutes}:{secs:02d}.{tenth}"


def _segment_line(segment: Any) -> str:
    return f"[{_clock_tenths(segment.start)} → {_clock_tenths(segment.end)}] {segment.text}"


def _speech_options(args: argparse.Namespace, live: bool = False) -> Any:
    """Files get Whisper's full decoding; dictation the live options (one decode a phrase, phrase-length context)."""
    from dataclasses import replace

    from desktop_ai.engine.tasks.transcription import TranscriptionOptions, live_options

    base = live_options() if live else TranscriptionOptions()
    return replace(base, language=args.language or None, beam_size=args.beam_size)


def _speech_device_notice(requested: str, recognizer: Any) -> list[str]:
    """Say so when the recognizer runs elsewhere than asked (no GPU, or an engine that has no backend for it)."""
    actual = str(recognizer.device)
    if requested == "auto" or actual.split(":")[0] == requested.split(":")[0]:
        return []
    if any("ran out of memory" in notice for notice in recognizer.notices):
        return []  # the engine has said why already
    from desktop_ai.engine.models.devices import pick_device
    from desktop_ai.engine.tasks.transcription import ENGINE_TITLES

    choice = pick_device(requested)
    if choice.device != requested:
        return [choice.reason]
    return [f"{ENGINE_TITLES.get(recognizer.engine, recognizer.engine)} cannot run on {requested}; it ran on {actual}."]


def _model_title(recognizer: Any) -> str:
    entry = getattr(recognizer, "entry", None)
    return getattr(entry, "title", None) or recognizer.model_id


def _transcription_json(result: Any) -> dict[str, Any]:
    data = result.to_json()
    data["model"] = result.model_id
    return data


def cmd_transcribe(args: argparse.Namespace) -> int:
    """One result per file, in the order given: JSON lines for scripts, timed phrases for people (streamed as
    each phrase is recognised, because a long file takes a while). The model is loaded once for every file."""
    quiet_libraries(args.verbose)
    from desktop_ai.engine.errors import CancelledError, InvalidInputError
    from desktop_ai.engine.tasks.transcription import FileTranscriber, make_recognizer
    from desktop_ai.engine.workspace import open_workspace

    options = _speech_options(args)
    files = [str(path) for path in args.audio]
    progress = progress_for(args)
    cancel = threading.Event()
    failed: list[tuple[str, str]] = []
    stopped = False
    cluster = cluster_settings(args)
    workspace = open_workspace(use_disk_cache=not args.no_cache)
    try:
        if cluster is not None:
            with stop_on_ctrl_c(cancel, "stopping after the batches in flight (Ctrl+C again to quit at once)"):
                stopped = _transcribe_on_cluster(args, cluster, options, files, workspace, progress, failed, cancel)
        else:
            with stop_on_ctrl_c(cancel, "stopping after this phrase (Ctrl+C again to quit at once)"):
                try:
                    recognizer = make_recognizer(workspace.store, args.engine, args.model, args.device, args.compression,
                                                 options, progress, cancel)
                except CancelledError:
                    raise KeyboardInterrupt from None
                if cancel.is_set():  # Ctrl+C while the model was loading: there is nothing to keep yet
                    raise KeyboardInterrupt
                device_notices = _speech_device_notice(args.device, recognizer)
                if not args.json:  # with --json they go in each result's "notices", as translate does
                    notes(device_notices)
                why = getattr(recognizer, "compute_reason", "") or recognizer.compression
                progress.message(f"Using {_model_title(recognizer)} on {recognizer.device} ({why})")
                transcriber = FileTranscriber(recognizer, workspace.cache)
                for number, path in enumerate(files, start=1):
                    name = f"{path} ({number} of {len(files)})" if len(files) > 1 else path
                    printed = 0
                    header_done = False

                    def header(path: str = path, number: int = number) -> None:
                        """The file's path above its phrases (a blank line between files), once."""
                        nonlocal header_done
                        if not header_done:
                            progress.finish()
                            if number > 1:
                                out()
                            out(path)
                            header_done = True

                    def on_segments(segments: list[Any]) -> None:
                        nonlocal printed
                        if args.json:
                            return
                        header()
                        for segment in segments[printed:]:
                            out(_segment_line(segment))
                        printed = len(segments)

                    def on_progress(message: str, fraction: float | None = None, *_: Any, name: str = name) -> None:
                        progress(f"{name}: {message}", fraction)

                    try:
                        result = transcriber.run(path, on_segments, on_progress, cancel)
                    except InvalidInputError as error:  # a bad file: say why, go on with the others
                        progress.finish()
                        failed.append((path, str(error)))
                        if args.json:
                            print_json({"path": path, "error": str(error)})
                        elif len(files) > 1:
                            err(f"error: {path}: {error}")
                        continue
                    progress.finish()
                    if args.json:
                        result.notices = device_notices + result.notices
                        print_json(_transcription_json(result))
                    else:
                        header()
                        for segment in result.segments[printed:]:  # a cache hit, or anything not streamed
                            out(_segment_line(segment))
                        notes(result.notices)
                    progress.message(f"{name}: {_clock_tenths(result.duration_s)} of audio " + (
                        "from the cache" if result.cached
                        else f"in {result.seconds:.2f} s ({result.real_time_factor:.2f}× real time) on {result.device}"))
                    if result.stopped:
                        stopped = True
                        break
    finally:
        progress.finish()
        workspace.close()
    if stopped:
        err("stopped")
        return EXIT_INTERRUPTED
    if failed:
        if len(files) == 1:
            raise CliError(f"{failed[0][0]}: {failed[0][1]}")
        raise CliError(f"{len(failed)} of {len(files)} files could not be transcribed"
                       + ("; each one's \"error\" says why." if args.json else "; see above."))
    return EXIT_OK


def _transcribe_on_cluster(args: argparse.Namespace, cluster: Any, options: Any, files: list[str], workspace: Any,
                           progress: Any, failed: list[tuple[str, str]], cancel: threading.Event) -> bool:
    """The same lines as a local run, file by file in the order given, as the cluster's results come in order.
    Returns whether the job was stopped."""
    from desktop_ai.engine.cluster.runs import transcribe_on_cluster
    from desktop_ai.engine.cluster.tasks import TranscribeTask

    progress.message(f"Using {cluster.describe()}")
    shown = 0

    def on_result(result: Any) -> None:
        nonlocal shown
        shown += 1
        progress.finish()
        if isinstance(result, dict):  # a file that could not be read or decoded
            failed.append((result["path"], result["error"]))
            if args.json:
                print_json(result)
            elif len(files) > 1:
                err(f"error: {result['path']}: {result['error']}")
            return
        if args.json:
            print_json(_transcription_json(result))
            return
        if shown > 1:
            out()
        out(result.path)
        for segment in result.segments:
            out(_segment_line(segment))
        notes(result.notices)

    task = TranscribeTask(args.engine, args.model, args.device, args.compression, options)
    run = transcribe_on_cluster(cluster, task, files, workspace.cache, on_result, progress, cancel)
    meta = run.meta
    hits = f" ({run.from_cache} from the cache)" if run.from_cache else ""
    progress.message(f"{len(run.results)} files in {run.seconds:.2f} s with {meta.get('model_title', '')} on "
                     f"{cluster.describe()}{hits}")
    if run.redone:
        notes(run.notices[-1:])
    return run.stopped


def _list_input_devices(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from desktop_ai.engine.audio.microphone import list_input_devices

    devices = list_input_devices()
    if args.json:
        print_json([asdict(device) for device in devices])
        return EXIT_OK
    width = max(len(str(device.index)) for device in devices)
    for device in devices:
        mark = "*" if device.is_default else " "
        out(f"{mark} {str(device.index).rjust(width)}  {device.name}  ({device.host_api}, {device.channels} ch, "
             f"{device.default_samplerate:.0f} Hz)")
    out("\n* the default input device")
    return EXIT_OK


class _PartialLine:
    """The phrase in progress, rewritten in place on a terminal's stderr; never written anywhere else."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr is not None and bool(getattr(sys.stderr, "isatty", lambda: False)())
        self._open = False

    def show(self, text: str) -> None:
        if not self.enabled or not text.strip():
            return
        import shutil

        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        line = "… " + " ".join(text.split())
        if len(line) > width:
            line = "… " + line[len(line) - width + 2:]  # the newest words matter most
        sys.stderr.write("\r\x1b[K" + line)
        sys.stderr.flush()
        self._open = True

    def clear(self) -> None:
        if self._open:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._open = False


def cmd_dictate(args: argparse.Namespace) -> int:
    """Each phrase on stdout as soon as it is final, and on disk (transcript and audio) at the same moment, so a
    crash or a lost microphone never costs what was already said."""
    if args.list_devices:
        return _list_input_devices(args)
    if args.toggle:
        from desktop_ai.cli.dictate_anywhere import stop_running_dictation, toggle_pid_file

        if not args.type:
            raise CliError("--toggle goes with --type")
        stopped = stop_running_dictation()
        if stopped is not None:
            err(f"note: stopped the dictation running as process {stopped}")
            return EXIT_OK
        with toggle_pid_file():
            args.toggle = False
            return cmd_dictate(args)
    from desktop_ai.engine.audio.microphone import MicrophoneStream

    cancel = threading.Event()
    typing: Any = None
    if args.type:  # no desktop to type into: say so before the microphone opens
        from desktop_ai.cli.dictate_anywhere import CliTyping

        typing = CliTyping(args, cancel)
    # The microphone first, before the slow imports and the model (seconds): what is said from here on waits
    # in the stream's buffer, so a speaker who starts at once loses no words.
    stream = MicrophoneStream(args.input_device)
    try:
        stream.start()
    except BaseException:
        if typing is not None:
            typing.close()
        raise
    try:
        quiet_libraries(args.verbose)
        from datetime import datetime

        from desktop_ai.engine.audio.transcript import (
            Phrase,
            TranscriptDocument,
            new_autosave_path,
        )
        from desktop_ai.engine.errors import EngineError
        from desktop_ai.engine.tasks.dictation import DictationSession
        from desktop_ai.engine.tasks.transcription import choose_engine, make_recognizer
        from desktop_ai.engine.workspace import open_workspace

        options = _speech_options(args, live=True)
        if getattr(args, "type", False) and not getattr(args, "no_commands", False):
            from dataclasses import replace

            from desktop_ai.engine.tasks.dictation_commands import COMMAND_PROMPT

            options = replace(options, initial_prompt=COMMAND_PROMPT)  # Whisper expects the spoken commands
        workspace = open_workspace(use_disk_cache=False)
    except BaseException:
        stream.stop()
        if typing is not None:
            typing.close()
        raise
    progress = progress_for(args)
    partial = _PartialLine(enabled=not args.json)
    transcript_path: Path | None = None
    recording_path: Path | None = None
    loaded: list[Any] = []
    save_failed: list[str] = []
    document = TranscriptDocument(title=f"Dictation {datetime.now():%Y-%m-%d %H:%M}", source="microphone")
    try:
        choose_engine(workspace.store, args.engine, args.model)  # a wrong --model fails before any file is made
        transcript_path = new_autosave_path("dictation")
        recording_path = transcript_path.with_suffix(".wav")

        def recognizer() -> Any:
            built = make_recognizer(workspace.store, args.engine, args.model, args.device, args.compression, options,
                                    progress, None)
            loaded.append(built)
            progress.message(f"Using {_model_title(built)} on {built.device} ({built.compression})")
            return built

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("type")
            if typing is not None:
                typing.on_event(event)
            if kind == "partial":
                partial.show(str(event.get("text", "")))
            elif kind == "status":
                partial.clear()
                progress.message(str(event.get("message", "")))
            elif kind == "final":
                partial.clear()
                segment = event.get("segment")
                if not segment:
                    return
                phrase = Phrase(float(segment["start"]), float(segment["end"]), str(segment["text"]))
                if args.json:
                    print_json({"start": phrase.start, "end": phrase.end, "text": phrase.text})
                else:
                    out(phrase.text)
                document.add(phrase)
                try:
                    if typing is not None:  # first (the user waits for it); the save follows whatever happens
                        typing.on_final(phrase.text)
                finally:
                    try:
                        document.save(transcript_path)
                    except EngineError as error:  # keep dictating: stdout and the recording still have it
                        if not save_failed:
                            err(f"error: {error}")
                        save_failed.append(str(error))

        session = DictationSession(stream, recognizer, recording_path=recording_path)
        progress.message("Recording" + (f" for {args.seconds:g} s" if args.seconds else "") + "; Ctrl+C stops")
        with stop_on_ctrl_c(cancel):
            result = session.run(on_event, cancel, args.seconds)
    except BaseException as error:
        partial.clear()
        stream.stop()
        if not loaded and not isinstance(error, KeyboardInterrupt):  # a wrong --model, say: nothing worth keeping
            for path in (transcript_path, recording_path):
                if path is not None:
                    path.unlink(missing_ok=True)
        else:
            if transcript_path is not None and document.phrases and not save_failed:
                err(f"note: transcript saved to {transcript_path}")
            elif transcript_path is not None:
                transcript_path.unlink(missing_ok=True)
            if recording_path is not None and recording_path.is_file():
                err(f"note: recording saved to {recording_path}")
        raise
    finally:
        progress.finish()
        workspace.close()
        if typing is not None:
            typing.close()
    partial.clear()
    notes(result.notices)  # stderr in both modes: --json has no summary object to carry them
    phrases = len(result.segments)
    err(f"note: {_clock_tenths(result.duration_s)} dictated from “{result.device}”, "
         f"{phrases} phrase{'' if phrases == 1 else 's'}.")
    if document.phrases and not save_failed:
        err(f"note: transcript saved to {transcript_path}")
    elif transcript_path is not None and not document.phrases:
        transcript_path.unlink(missing_ok=True)  # the empty reservation: an autosave with nothing in it is clutter
        err("note: no speech was heard.")
    if result.recording:
        err(f"note: recording saved to {result.recording}")
    if result.error:
        raise CliError(result.error)
    if save_failed:  # already said, when it happened
        return EXIT_USAGE
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """transcribe and dictate."""
    speech_model_help = ("catalogue id (see `models --task transcribe`), Hub id, or a model folder "
                         "(default: the engine's own; the engine follows from the model when --engine is not given)")
    transcribe = commands.add_parser("transcribe", parents=[common], help="speech to text for audio files",
                                     description="Transcribe each AUDIO file (WAV, FLAC, MP3, OGG, M4A...) into timed "
                                     "phrases. The model is loaded once for all files; a file that cannot be read is "
                                     "reported and the others still run (the exit code is then 2). Ctrl+C stops and "
                                     "prints the transcript so far.")
    transcribe.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to transcribe")
    add_speech_options(transcribe)
    add_model_options(transcribe, speech_model_help, compression_default="int8")
    transcribe.set_defaults(compression="auto")  # issue 31: Whisper's compute type measured on this machine
    for action in transcribe._actions:
        if action.dest == "compression":
            action.choices = ("auto", *COMPRESSION_CHOICES)
            action.help = ("auto: Whisper runs in the compute type measured fastest on this machine (once, a few "
                           "seconds); or force one (default: auto)")
    add_cluster_options(transcribe)
    transcribe.set_defaults(handler=cmd_transcribe)

    dictate = commands.add_parser("dictate", parents=[common], help="live dictation from the microphone",
                                  description="Write what is said into the microphone, one line per phrase as each "
                                  "phrase ends. The audio is recorded and the transcript saved after every phrase, both "
                                  "under the transcripts folder. Stop with Ctrl+C (exit code 0) or --seconds.")
    dictate.add_argument("--device", dest="input_device", type=input_device, default=None, metavar="N",
                         help="the microphone: an index or (part of) a name from --list-devices (default: the system's)")
    dictate.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                         help="stop after this many seconds of audio (default: until Ctrl+C)")
    dictate.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    add_speech_options(dictate)
    dictate.add_argument("--model", metavar="M", type=model_ref, help=speech_model_help)
    dictate.add_argument("--compute-device", dest="device", type=device_name, default="auto",
                         metavar="{auto,cpu,cuda,mps}", help="where to run the model (default: auto, which prefers a GPU)")
    dictate.add_argument("--compression", choices=COMPRESSION_CHOICES, default="int8",
                         help="shrink the model after loading (default: int8)")
    dictate.add_argument("--json", action="store_true", help="one JSON object per phrase on stdout")
    from desktop_ai.cli.dictate_anywhere import add_typing_options

    add_typing_options(dictate)
    dictate.set_defaults(handler=cmd_dictate)
