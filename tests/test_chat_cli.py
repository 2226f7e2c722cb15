"""`desktop-ai chat` through the real entry point, in separate processes sharing one DESKTOP_AI_HOME: a
conversation started in one process is continued by id in another, turns come from arguments or stdin, and
--list, --export and --import read the same database. The model is the embedded SmolLM2 GGUF (135M
parameters: too weak to test its memory by its answers, so the tests check what it was given to read)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_ai.engine.conversations.store import ConversationStore
from llama_cpp_gate import needs_llama_cpp

FAST = ("--max-new-tokens", "8", "--temperature", "0")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _chat(home: Path, *args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESKTOP_AI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "desktop_ai", "chat", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, input=stdin if stdin is not None else "",
                          )


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _stored(home: Path, conversation_id: str) -> list:
    with ConversationStore(home / "data" / "conversations.sqlite3") as store:
        return store.messages(conversation_id)


def _one_error_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert proc.stdout == ""


@needs_llama_cpp
def test_a_conversation_continues_by_id_in_another_process(home: Path) -> None:
    first = _chat(home, "Remember the word pineapple.", "Say hello.", "--system", "You are terse.", "--json", *FAST)
    assert first.returncode == 0, first.stderr
    turns = _json_lines(first.stdout)
    assert [t["turn"] for t in turns] == [1, 2]
    cid = turns[0]["conversation"]
    assert {t["conversation"] for t in turns} == {cid}
    for t in turns:
        assert t["text"] and t["first_token_ms"] > 0 and t["tokens_per_second"] > 0
        assert t["runtime"] == "llama.cpp" and t["context_total"] > 0 and t["dropped_messages"] == 0
    assert turns[1]["reused_tokens"] >= turns[0]["prompt_tokens"]  # the same process kept the state

    second = _chat(home, "What was the word?", "--conversation", cid, "--json", *FAST)
    assert second.returncode == 0, second.stderr
    (third,) = _json_lines(second.stdout)
    assert third["conversation"] == cid and third["turn"] == 3  # turns count over the whole conversation
    # The new process read the earlier turns: its prompt holds all of them (and the system prompt).
    assert third["prompt_tokens"] > turns[1]["prompt_tokens"] + turns[1]["new_tokens"]
    stored = _stored(home, cid)
    assert [m.role for m in stored] == ["user", "assistant"] * 3
    assert [m.content for m in stored[::2]] == ["Remember the word pineapple.", "Say hello.", "What was the word?"]
    assert [m.content for m in stored[1::2]] == [turns[0]["text"], turns[1]["text"], third["text"]]


@needs_llama_cpp
def test_stdin_gives_one_turn_per_line_and_plain_output_streams(home: Path) -> None:
    proc = _chat(home, *FAST, stdin="First line here.\n\nSecond line here.\n")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: conversation ")]
    assert len(notes) == 1
    cid = notes[0].split()[2]
    stored = _stored(home, cid)
    assert [m.content for m in stored[::2]] == ["First line here.", "Second line here."]  # the blank line is no turn
    answers = [m.content for m in stored[1::2]]
    assert all(answers)
    assert proc.stdout == "".join(a + "\n" for a in answers)  # each answer as it streamed, one per line


@needs_llama_cpp
def test_list_and_export_markdown_and_json_and_import(home: Path, tmp_path: Path) -> None:
    made = _chat(home, "Name a fruit.", "--system", "Be brief.", "--json", *FAST)
    assert made.returncode == 0, made.stderr
    (turn,) = _json_lines(made.stdout)
    cid = turn["conversation"]

    listed = _chat(home, "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = _json_lines(listed.stdout)
    assert (entry["id"], entry["title"], entry["messages"]) == (cid, "Name a fruit.", 2)
    assert entry["updated"] > 0
    table = _chat(home, "--list")
    assert cid in table.stdout and "Name a fruit." in table.stdout

    markdown = _chat(home, "--export", cid)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("# Name a fruit.\n")
    assert "## System prompt\n\nBe brief." in markdown.stdout
    assert f"## Assistant\n\n{turn['text'].strip()}" in markdown.stdout

    exported = _chat(home, "--export", cid, "--format", "json")
    data = json.loads(exported.stdout)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["content"] == turn["text"]
    path = tmp_path / "conversation.json"
    path.write_text(exported.stdout, encoding="utf-8")
    imported = _chat(home, "--import", str(path), "--json")
    assert imported.returncode == 0, imported.stderr
    (copy,) = _json_lines(imported.stdout)
    assert copy["id"] != cid and copy["messages"] == 2
    assert [m.content for m in _stored(home, copy["id"])] == [m["content"] for m in data["messages"]]
    assert len(_json_lines(_chat(home, "--list", "--json").stdout)) == 2


def test_an_unknown_conversation_is_one_clear_error(home: Path) -> None:
    _one_error_line(_chat(home, "hello", "--conversation", "doesnotexist"), "No conversation with id 'doesnotexist'")
    _one_error_line(_chat(home, "--export", "doesnotexist"), "No conversation with id 'doesnotexist'")


def test_an_empty_message_is_one_clear_error_and_nothing_is_saved(home: Path) -> None:
    _one_error_line(_chat(home, "hello", "   "), "Message 2 is empty")
    listed = _chat(home, "--list", "--json")
    assert listed.returncode == 0 and listed.stdout == ""  # no conversation was started


def test_an_unknown_model_is_one_clear_error_and_nothing_is_saved(home: Path) -> None:
    _one_error_line(_chat(home, "hello", "--model", "no-such-model"), "Unknown model 'no-such-model'")
    listed = _chat(home, "--list", "--json")
    assert listed.returncode == 0 and listed.stdout == ""  # no conversation was started for it
    with ConversationStore(home / "data" / "conversations.sqlite3") as store:
        kept = store.create(title="kept", model=None)
    _one_error_line(_chat(home, "hello", "--conversation", kept.id, "--model", "no-such-model"), "Unknown model")
    with ConversationStore(home / "data" / "conversations.sqlite3") as store:
        assert store.get(kept.id).model is None and store.messages(kept.id) == []  # its model was not replaced


def test_a_bad_import_file_is_one_clear_error(home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    _one_error_line(_chat(home, "--import", str(broken)), "is not JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}), encoding="utf-8")
    _one_error_line(_chat(home, "--import", str(wrong)), "messages[0].role")
    _one_error_line(_chat(home, "--import", str(tmp_path / "missing.json")), "does not exist")


@pytest.fixture(params=["embedded-gguf", "tiny-transformers"])
def chat_model(request: pytest.FixtureRequest) -> list[str]:
    """The model options for a chat: the embedded SmolLM2 GGUF on llama.cpp (tests/llama_cpp_gate.py), and a tiny
    Llama on transformers, which every install runs (4000 greedy tokens: far longer than the test waits)."""
    if request.param == "embedded-gguf":
        request.getfixturevalue("llama_cpp_installed")
        return ["--max-new-tokens", "1000"]
    model = request.getfixturevalue("tiny_long_causal_lm_dir")
    return ["--model", str(model), "--runtime", "transformers", "--compression", "none", "--max-new-tokens", "4000"]


def test_a_process_killed_mid_answer_leaves_the_partial_answer_marked_stopped(home: Path, chat_model: list[str]) -> None:
    """A real crash: SIGKILL while the answer streams. The saved answer is what had streamed up to the last
    write (at most half a second old), marked stopped, and the conversation goes on in a new process."""
    import signal
    import time

    env = {**os.environ, "DESKTOP_AI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_ai", "chat", "Tell me a very long story about a ship.",
                             *chat_model, "--temperature", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
    database = home / "data" / "conversations.sqlite3"
    deadline = time.monotonic() + 240
    partial = ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if database.exists():
                with ConversationStore(database) as store:
                    listed = store.list()
                    messages = store.messages(listed[0].id) if listed else []
                if len(messages) == 2 and len(messages[1].content) > 40:  # streamed and saved more than once
                    partial = messages[1].content
                    break
            time.sleep(0.2)
        assert partial, "the answer never reached the database while it streamed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    with ConversationStore(database) as store:
        assert store.notice is None  # the killed writer did not damage the file
        (conversation,) = store.list()
        user, answer = store.messages(conversation.id)
    assert answer.stopped and answer.content.startswith(partial) and len(answer.content) >= len(partial)
    assert answer.tokens_per_second is None  # the last write of a finished answer never happened
    again = _chat(home, "Go on.", "--conversation", conversation.id, "--json", *chat_model, *FAST)
    assert again.returncode == 0, again.stderr
    assert _json_lines(again.stdout)[0]["turn"] == 2


@needs_llama_cpp
def test_on_a_terminal_the_turns_are_typed_at_a_prompt(home: Path) -> None:
    """Standard input is a real pseudo-terminal: the prompt asks for each turn, an empty line is no turn,
    /quit ends the conversation."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "DESKTOP_AI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "desktop_ai", "chat", *FAST], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        os.write(master, b"Say hi.\n\n/quit\n")
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, stderr
    assert "/quit" in stderr  # the one-line help on how to end
    cid = next(line.split()[2] for line in stderr.splitlines() if line.startswith("note: conversation "))
    user, answer = _stored(home, cid)
    assert (user.content, answer.role, answer.stopped) == ("Say hi.", "assistant", False)
    assert stdout.count("you> ") == 3  # asked for each line typed: the turn, the empty line, /quit
    assert f"model> {answer.content}\n" in stdout


@needs_llama_cpp
def test_ctrl_c_mid_answer_stops_it_exits_130_and_keeps_the_partial_answer(home: Path) -> None:
    """SIGINT (what Ctrl+C sends) once the answer has begun to stream on stdout: the answer stops where it is,
    the process says so and exits with 130 promptly, and the partial answer is saved, marked stopped."""
    import select
    import signal
    import time

    env = {**os.environ, "DESKTOP_AI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_ai", "chat", "Tell me a very long story about a ship.",
                             "--max-new-tokens", "2000", "--temperature", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    streamed = b""
    try:
        deadline = time.monotonic() + 240
        while len(streamed) < 20 and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                streamed += os.read(proc.stdout.fileno(), 4096)
        assert len(streamed) >= 20, "the answer never began to stream"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)  # a guard against a hang, not a speed test
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr.decode()
    lines = [line for line in stderr.decode().splitlines() if line.strip()]
    assert "stopping the answer (Ctrl+C again quits)" in lines
    assert lines[-1] == "stopped"
    assert "Traceback" not in stderr.decode()
    answer_text = (streamed + stdout).decode()
    cid = next(line.split()[2] for line in lines if line.startswith("note: conversation "))
    user, answer = _stored(home, cid)
    assert user.content == "Tell me a very long story about a ship."
    assert answer.stopped and answer.content
    assert answer_text == answer.content + "\n"  # what was shown is what was saved, and nothing more came
    assert answer.tokens_per_second is not None  # the last write happened: this was a stop, not a crash


def test_a_model_failing_mid_answer_keeps_the_partial_answer_and_exits_1(home: Path, tiny_causal_lm_dir: Path,
                                                                          monkeypatch, capsys) -> None:
    """In this process (to inject the failure, as the GPU tests inject an out-of-memory error): the runtime
    fails after streaming three pieces. The partial answer is shown and ends its line, one error line says it
    was kept, the exit code is 1 (the model's failure, not the input's), and the store has it marked stopped."""
    from desktop_ai.cli import main as cli
    from desktop_ai.engine.runtimes.transformers_lm import TransformersLM

    monkeypatch.setenv("DESKTOP_AI_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real = TransformersLM._stream

    def fails_after_three_pieces(self, prompt_tokens, options, on_text, cancel, cache):
        pieces: list[str] = []

        def count(piece: str) -> None:
            on_text(piece)
            pieces.append(piece)
            if len(pieces) == 3:
                raise RuntimeError("the device was lost")

        return real(self, prompt_tokens, options, count, cancel, cache)

    monkeypatch.setattr(TransformersLM, "_stream", fails_after_three_pieces)
    code = cli.main(["chat", "hello there", "--model", str(tiny_causal_lm_dir), "--runtime", "transformers",
                     "--device", "cpu", "--compression", "none", "--max-new-tokens", "20", "--temperature", "0",
                     "--repetition-penalty", "1"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the device was lost" in errors[0] and "partial answer" in errors[0]
    cid = next(line.split()[2] for line in captured.err.splitlines() if line.startswith("note: conversation "))
    user, answer = _stored(home, cid)
    assert user.content == "hello there"
    assert answer.stopped and answer.content
    assert captured.out == answer.content + "\n"  # what was shown is what was kept, on its own line
