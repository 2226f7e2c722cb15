"""`chat`: saved conversations from the command line, the same ones the window's Chat page shows.

Each MESSAGE is one user turn, answered in order; with none, standard input gives one turn per line, or a
terminal gets an interactive prompt. `--conversation ID` continues a conversation (in any process: it is in
the conversations database), so a script can talk to the model over several runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from desktop_ai.cli.options import COMPRESSION_CHOICES, RUNTIME_CHOICES, device_name, model_ref, positive_int
from desktop_ai.cli.output import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    device_notice,
    err,
    notes,
    out,
    print_json,
    progress_for,
    quiet_libraries,
    read_text_file,
    stop_on_ctrl_c,
)

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("md", "json")
QUIT_WORDS = ("/quit", "/exit")


def _open_store() -> Any:
    from desktop_ai.engine.conversations.store import ConversationStore

    store = ConversationStore()
    if store.notice:
        err(f"note: {store.notice}")
    return store


def _when(timestamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def cmd_list(args: argparse.Namespace) -> int:
    with _open_store() as store:
        conversations = store.list(args.search)
    if args.json:
        for c in conversations:
            print_json({"id": c.id, "title": c.title, "messages": c.message_count, "updated": c.updated,
                        "created": c.created, "model": c.model, "system_prompt": c.system_prompt})
        return EXIT_OK
    if not conversations:
        err("No conversations yet: `desktop-ai chat MESSAGE` starts one.")
        return EXIT_OK
    out(f"{'id':<12}  {'updated':<16}  {'messages':>8}  title")
    for c in conversations:
        out(f"{c.id:<12}  {_when(c.updated):<16}  {c.message_count:>8}  {c.title or '(untitled)'}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with _open_store() as store:
        if args.format == "json":
            out(json.dumps(store.export_json(args.export), ensure_ascii=False, indent=2))
        else:
            out(store.export_markdown(args.export), end="")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    text = read_text_file(args.import_file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{args.import_file} is not JSON ({error.msg} at line {error.lineno}); a conversation "
                       "file is what `desktop-ai chat --export ID --format json` writes.") from None
    with _open_store() as store:
        conversation = store.import_json(data)
    if args.json:
        print_json({"id": conversation.id, "title": conversation.title, "messages": conversation.message_count,
                    "updated": conversation.updated})
    else:
        out(conversation.id)
        err(f"Imported {conversation.message_count} messages as conversation {conversation.id} "
            f"({conversation.title or 'untitled'}).")
    return EXIT_OK


def _interactive_turns() -> Iterator[str]:
    err("Type a message and press Enter; an empty line does nothing, /quit or Ctrl+D ends.")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            out()
            return
        if line.strip() in QUIT_WORDS:
            return
        if line.strip():
            yield line


def _stdin_turns() -> Iterator[str]:
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip():  # blank lines separate nothing: they are not turns
            yield line


def _turns(args: argparse.Namespace) -> tuple[Iterable[str], bool]:
    """The user turns, and whether they are typed at a terminal now."""
    if args.messages:
        empty = [n for n, message in enumerate(args.messages, 1) if not message.strip()]
        if empty:
            raise CliError(f"Message {empty[0]} is empty: type something to send.")
        return args.messages, False
    if sys.stdin is not None and sys.stdin.isatty():
        return _interactive_turns(), True
    return _stdin_turns(), False


def _options(args: argparse.Namespace) -> Any:
    from desktop_ai.engine.tasks.chat import ChatOptions

    options = ChatOptions(max_new_tokens=args.max_new_tokens, seed=args.seed)
    for name in ("temperature", "top_p", "top_k", "repetition_penalty"):
        value = getattr(args, name)
        if value is not None:
            setattr(options, name, value)
    options.validate()
    return options


def cmd_chat(args: argparse.Namespace) -> int:
    """Answer each turn as it comes, streaming the answer (or one JSON object per turn with --json)."""
    turns, interactive = _turns(args)
    quiet_libraries(args.verbose)
    from desktop_ai.engine.models.devices import pick_device
    from desktop_ai.engine.tasks.chat import ChatSession
    from desktop_ai.engine.workspace import open_workspace

    options = _options(args)
    if getattr(args, "docs", None):  # an unknown collection is refused before a conversation is started
        from desktop_ai.engine.documents.index import DocumentIndex

        with DocumentIndex() as index:
            for name in args.docs:
                index.collection(name)
    progress = progress_for(args)
    store = _open_store()
    workspace = open_workspace(use_disk_cache=False)
    try:
        session = ChatSession(workspace.store, store, device=args.device, compression=args.compression,
                              runtime=args.runtime)
        if args.conversation:
            conversation = store.get(args.conversation)
            if args.model:
                session.generator(args.model)  # an unknown model is refused before it is kept with the conversation
            if args.system is not None:
                store.set_system_prompt(conversation.id, args.system)
            if args.model:
                store.set_model(conversation.id, args.model)
        else:
            session.generator(args.model)  # the same: no conversation is started for a model that does not exist
            conversation = store.create(system_prompt=args.system or "", model=args.model)
            if not args.json:
                err(f"note: conversation {conversation.id} (continue it with --conversation {conversation.id})")
        if not args.json:
            notes(device_notice(args.device, pick_device(args.device)))
        return _answer_all(args, session, conversation.id, turns, interactive, options, progress)
    finally:
        progress.finish()
        workspace.close()
        store.close()


def _answer_all(args: argparse.Namespace, session: Any, conversation_id: str, turns: Iterable[str],
                interactive: bool, options: Any, progress: Any) -> int:
    from desktop_ai.engine.tasks.chat import ChatModelFailedError

    model = args.model
    for message in turns:
        cancel = threading.Event()
        streamed: list[str] = []

        def on_partial(payload: dict[str, Any]) -> None:
            if args.json or "text" not in payload:
                return
            progress.finish()
            if not streamed and interactive:
                out("model> ", end="")
            streamed.append(payload["text"])
            out(payload["text"], end="")

        with stop_on_ctrl_c(cancel, "stopping the answer (Ctrl+C again quits)"):
            try:
                result = session.send(conversation_id, message, options, on_partial=on_partial, progress=progress,
                                      cancel=cancel, model=model, collections=getattr(args, "docs", None))
            except ChatModelFailedError as error:  # the model's fault, not the input's: exit 1, not 2
                if streamed:
                    out()  # the partial answer shown so far ends its line
                err(f"error: {error}")
                return EXIT_FAILURE
        if args.json:
            print_json(result.to_dict())
        else:
            if streamed:
                out()
            for source in result.sources:
                where = source["path"] + (f", page {source['page']}" if source["page"] else "")
                out(f"[{source['number']}] {where}")
            notes(result.notices)
            progress.message(f"turn {result.turn}: {result.new_tokens} tokens, first after {result.first_token_ms} ms, "
                             f"{result.tokens_per_second:.1f} tokens/s, {result.context_used} of "
                             f"{result.context_total} context tokens ({result.reused_tokens} reused)")
        if result.stopped and not interactive:
            err("stopped")
            return EXIT_INTERRUPTED
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    managing = args.list or args.export or args.import_file is not None
    if managing and args.messages:
        raise CliError("--list, --export and --import take no MESSAGE.")
    if args.list:
        return cmd_list(args)
    if args.export:
        return cmd_export(args)
    if args.import_file is not None:
        return cmd_import(args)
    return cmd_chat(args)


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """chat."""
    chat = commands.add_parser(
        "chat", parents=[common], help="talk with a model in a saved conversation",
        description="Send each MESSAGE as a user turn of a conversation and stream the answers. Without MESSAGE, "
        "standard input gives one turn per line (or you type them, on a terminal). Conversations are saved as "
        "they go and shared with the window's Chat page.",
    )
    chat.add_argument("messages", nargs="*", metavar="MESSAGE", help="user turns, sent in order")
    chat.add_argument("--conversation", metavar="ID", help="continue this conversation (see --list) instead of a new one")
    chat.add_argument("--system", metavar="TEXT", default=None, help="the conversation's system prompt")
    chat.add_argument("--max-new-tokens", type=positive_int, default=256, metavar="N",
                      help="most tokens in one answer (default: 256)")
    chat.add_argument("--temperature", type=float, default=None, metavar="T",
                      help="sampling temperature; 0 is greedy and repeatable (default: 0.7)")
    chat.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling (default: 0.9)")
    chat.add_argument("--top-k", type=int, default=None, metavar="K", help="sample from the K most likely tokens (default: 40)")
    chat.add_argument("--repetition-penalty", type=float, default=None, metavar="R",
                      help="discourage repeating tokens; 1 is none (default: 1.1)")
    chat.add_argument("--seed", type=int, default=None, metavar="S", help="seed for repeatable sampling")
    chat.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                      help="what runs the model (default: auto, llama.cpp for a .gguf file)")
    chat.add_argument("--model", metavar="M", type=model_ref,
                      help="the conversation's model (kept with it): catalogue id, Hub id, model folder or .gguf file, "
                      "or the id of a model you added (default: the embedded SmolLM2)")
    chat.add_argument("--device", type=device_name, default="auto", metavar="{auto,cpu,cuda,mps}",
                      help="where to run (default: auto, which prefers a GPU)")
    chat.add_argument("--compression", choices=COMPRESSION_CHOICES, default="int8",
                      help="shrink a transformers model after loading (default: int8; a GGUF runs as it is)")
    chat.add_argument("--json", action="store_true", help="one JSON object per turn (or per conversation with --list)")
    chat.add_argument("--docs", action="append", metavar="NAME",
                      help="answer from this document collection (see `docs list`), with sources; repeat for more")
    manage = chat.add_mutually_exclusive_group()
    manage.add_argument("--list", action="store_true", help="list the saved conversations, newest first")
    manage.add_argument("--export", metavar="ID", help="print a conversation (see --format)")
    manage.add_argument("--import", dest="import_file", type=Path, metavar="FILE",
                        help="add a conversation from a JSON file that --export wrote")
    chat.add_argument("--format", choices=EXPORT_FORMATS, default="md", help="for --export: md or json (default: md)")
    chat.add_argument("--search", metavar="TEXT", help="for --list: only conversations whose title or messages have TEXT")
    chat.set_defaults(handler=_dispatch)
