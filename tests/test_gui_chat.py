"""The Chat page for real (pytest-qt, offscreen): real widgets, a real SQLite ConversationStore under
DESKTOP_AI_HOME, and for the turns the real engine lane running the embedded SmolLM2 GGUF.

The page tests without a turn use a ChatPage on its own (its lane is never started: nothing is submitted);
the turn tests use the whole window, as a user does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QFontInfo, QFontMetrics, QGuiApplication, QTextTable
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
)

from desktop_ai import paths
from desktop_ai.engine.conversations.store import ConversationNotFoundError, ConversationStore
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.chat.chat_page import EMPTY_MESSAGE, ChatPage, result_dict
from desktop_ai.gui.main_window import MainWindow
from desktop_ai.gui.worker import EngineThread

from test_gui import ENGINE_START_MS, JOB_MS

ANSWER_WITH_MARKDOWN = """Here is what you asked for:

- **bold point** one
- point two

| name | size |
|------|------|
| fox  | 3    |
| dog  | 5    |

```python
def greet(name):
    return f"hello {name}"
```

And `inline` code."""
CODE = 'def greet(name):\n    return f"hello {name}"'
CONTROL_KINDS = (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox, QAbstractItemView)


@pytest.fixture
def conversations(tmp_path: Path):
    store = ConversationStore(tmp_path / "chats.sqlite3")
    yield store
    store.close()


@pytest.fixture
def page(qtbot, tmp_path: Path, conversations: ConversationStore):
    """A Chat page on its own: its lane is only started by a turn, and these tests send none."""
    engine = EngineThread(lane="jobs")
    chat = ChatPage(engine, ModelStore(tmp_path / "converted"), lambda: "cpu", conversations)
    qtbot.addWidget(chat)
    chat.resize(900, 700)
    chat.show()
    yield chat
    assert engine.process_pid is None, "no engine was started"


def _conversation_with(store: ConversationStore, *messages: tuple[str, str], title: str = "") -> str:
    conversation = store.create(title=title)
    for role, text in messages:
        store.add_message(conversation.id, role, text)
    return conversation.id


def nameless_controls(widget) -> list[str]:
    return [
        f"{type(w).__name__} {w.objectName() or w.text() if hasattr(w, 'text') else ''}".strip()
        for kind in CONTROL_KINDS for w in widget.findChildren(kind)
        if w.isVisibleTo(widget) and not w.accessibleName()
        and not isinstance(w.parent(), (QComboBox, QAbstractSpinBox))  # a combo's or spin box's own editor
    ]


# --- the page without a model ------------------------------------------------------------------------

def test_markdown_renders_a_table_a_list_and_a_code_block_with_its_own_copy(qtbot, page, conversations):
    conversation = _conversation_with(conversations, ("user", "Show me markdown"), ("assistant", ANSWER_WITH_MARKDOWN))
    page.conversation_list.select(conversation)
    assert page.current == conversation
    answer = page.message_view.last("assistant")
    assert answer is not None and answer.text == ANSWER_WITH_MARKDOWN
    views = answer.text_views()
    assert len(views) == 2, "the text before the code block and the line after it"
    document = views[0].document()
    tables = [frame for frame in document.rootFrame().childFrames() if isinstance(frame, QTextTable)]
    assert len(tables) == 1
    table = tables[0]
    assert (table.rows(), table.columns()) == (3, 2)
    assert table.cellAt(1, 0).firstCursorPosition().block().text() == "fox"
    assert table.cellAt(2, 1).firstCursorPosition().block().text() == "5"
    lists = {document.findBlock(pos).textList() is not None for pos in (document.toPlainText().index("bold point"),)}
    assert lists == {True}, "the bullet points are a real list"
    assert "font-weight:700" in document.toHtml(), "bold is bold"
    assert "**" not in document.toPlainText() and "|" not in document.toPlainText(), "no Markdown syntax left"
    assert "inline" in views[1].document().toPlainText()

    blocks = answer.code_blocks()
    assert len(blocks) == 1
    block = blocks[0]
    assert block.editor.toPlainText() == CODE
    assert block.language.text() == "python"
    # What the reader sees, not fontconfig's spacing flag: Debian's Noto Sans Mono (fonts-noto-mono, a common default
    # monospace on desktops) is not marked spacing=mono, so QFontInfo.fixedPitch() is False though it is monospace.
    metrics = QFontMetrics(block.editor.font())
    advances = {glyph: metrics.horizontalAdvance(glyph) for glyph in "iIl.:WMm@_0"}
    assert len(set(advances.values())) == 1, f"code is in a monospace font ({QFontInfo(block.editor.font()).family()}): {advances}"
    QGuiApplication.clipboard().clear()
    block.copy_button.click()
    assert QGuiApplication.clipboard().text() == CODE
    answer.copy_button.click()
    assert QGuiApplication.clipboard().text() == ANSWER_WITH_MARKDOWN, "Copy on a message copies the whole message"


def test_raw_html_in_an_answer_is_shown_as_text(page, conversations):
    conversation = _conversation_with(conversations, ("user", "hi"), ("assistant", "<b>not bold</b> <img src='x'>"))
    page.conversation_list.select(conversation)
    view = page.message_view.last("assistant").text_views()[0]
    assert "<b>not bold</b>" in view.document().toPlainText()


def test_user_and_assistant_messages_are_told_apart(page, conversations):
    conversation = _conversation_with(conversations, ("user", "question"), ("assistant", "answer"))
    page.conversation_list.select(conversation)
    user, assistant = page.message_view.messages
    assert (user.role, assistant.role) == ("user", "assistant")
    assert "You" in user.title.text() and "Assistant" in assistant.title.text()
    assert user.property("role") == "user" and assistant.property("role") == "assistant"  # styled apart
    assert user.accessibleName() == "You message" and assistant.accessibleName() == "Assistant message"


def test_delete_with_undo_and_search(qtbot, page, conversations):
    foxes = _conversation_with(conversations, ("user", "Tell me about foxes"), ("assistant", "Foxes are quick."))
    dogs = _conversation_with(conversations, ("user", "And dogs?"), ("assistant", "Dogs are LAZY, sometimes."))
    listing = page.conversation_list
    listing.refresh()
    assert listing.ids() == [dogs, foxes]
    assert listing.list.item(1).text() == "Tell me about foxes", "the title is the first message"

    listing.search.setText("lazy")  # message text, not the title, and not the same case
    qtbot.waitUntil(lambda: listing.ids() == [dogs], timeout=5000)
    listing.search.setText("FOXES")
    qtbot.waitUntil(lambda: listing.ids() == [foxes], timeout=5000)
    assert page.current == foxes
    listing.search.setText("")
    qtbot.waitUntil(lambda: listing.ids() == [dogs, foxes], timeout=5000)

    listing.select(dogs)
    assert page.current == dogs
    listing.delete_button.click()
    assert listing.ids() == [foxes]
    assert [c.id for c in conversations.list()] == [foxes], "deleted in the store too"
    assert listing.undo_button.isVisibleTo(page) and "And dogs?" in listing.undo_label.text()
    assert page.current == foxes, "the next conversation is shown"
    listing.undo_button.click()
    assert sorted(listing.ids()) == sorted([dogs, foxes])
    assert page.current == dogs
    assert [m.content for m in conversations.messages(dogs)] == ["And dogs?", "Dogs are LAZY, sometimes."]
    assert not listing.undo_button.isVisibleTo(page)


def test_deleted_conversations_are_purged_when_the_page_closes(page, conversations):
    kept = _conversation_with(conversations, ("user", "keep me"))
    gone = _conversation_with(conversations, ("user", "delete me"))
    page.conversation_list.refresh()
    page.conversation_list.select(gone)
    page.conversation_list.delete_button.click()
    page.shutdown()
    with ConversationStore(conversations.path) as reopened:
        assert [c.id for c in reopened.list()] == [kept]
        with pytest.raises(ConversationNotFoundError):
            reopened.restore(gone)  # removed for good, not only hidden


def test_new_and_rename(page, conversations):
    listing = page.conversation_list
    created = listing.new_conversation()
    assert created is not None and page.current == created
    assert listing.list.currentItem().text() == "New conversation"
    assert page.message_view.messages == [] and page.message_view.placeholder.isVisibleTo(page)
    listing.list.currentItem().setText("  Trip planning ")  # what the inline editor does when Rename is typed
    assert conversations.get(created).title == "Trip planning"
    listing.list.currentItem().setText("   ")  # an empty name is refused: the old one comes back
    assert conversations.get(created).title == "Trip planning"
    assert listing.list.currentItem().text() == "Trip planning"


def test_export_as_markdown_and_json_and_import_it_back(page, conversations, tmp_path):
    conversation = _conversation_with(conversations, ("user", "Export me"), ("assistant", "| a |\n|---|\n| 1 |"))
    listing = page.conversation_list
    listing.select(conversation)
    markdown, exported = tmp_path / "chat.md", tmp_path / "chat.json"
    assert listing.export_to(markdown) and listing.export_to(exported)
    assert markdown.read_text(encoding="utf-8") == conversations.export_markdown(conversation)
    assert "Export me" in markdown.read_text(encoding="utf-8")
    imported = listing.import_from(exported)
    assert imported is not None and imported != conversation
    assert page.current == imported and "Imported" in page.notice.text()
    assert [(w.role, w.text) for w in page.message_view.messages] == [("user", "Export me"), ("assistant", "| a |\n|---|\n| 1 |")]
    broken = tmp_path / "broken.json"
    broken.write_text('{"messages": "not a list"}', encoding="utf-8")
    assert listing.import_from(broken) is None
    assert "was not imported" in page.notice.text()
    broken.write_text("{ not json", encoding="utf-8")
    assert listing.import_from(broken) is None
    assert "is not a conversation file" in page.notice.text()
    assert sorted(listing.ids()) == sorted([conversation, imported]), "nothing half-imported"


def test_system_prompt_and_model_are_kept_per_conversation(qtbot, page, conversations):
    first = page.conversation_list.new_conversation()
    page.settings_panel.system_prompt.setPlainText("Answer like a pirate.")
    qtbot.waitUntil(lambda: conversations.get(first).system_prompt == "Answer like a pirate.", timeout=5000)
    second = page.conversation_list.new_conversation()
    assert page.settings_panel.system_prompt.toPlainText() == ""
    page.settings_panel.model_picker.select("HuggingFaceTB/SmolLM2-135M-Instruct")
    page.settings_panel.save()
    assert conversations.get(second).model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    page.conversation_list.select(first)
    assert page.settings_panel.system_prompt.toPlainText() == "Answer like a pirate."
    assert page.settings_panel.model_ref() == "smollm2-135m-instruct-q4", "the default model"
    page.conversation_list.select(second)
    assert page.settings_panel.model_ref() == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_empty_message_is_refused_and_shift_enter_is_a_new_line(qtbot, page):
    page.input.setFocus()
    qtbot.keyClicks(page.input, "   ")
    qtbot.keyClick(page.input, Qt.Key.Key_Return)
    assert EMPTY_MESSAGE in page.notice.text()
    assert page.job_id is None and page.current is None, "no job, no conversation"
    page.input.clear()
    qtbot.keyClicks(page.input, "first line")
    qtbot.keyClick(page.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(page.input, "second line")
    assert page.input.toPlainText() == "first line\nsecond line"


def test_editing_the_last_message_and_esc_cancels_it(qtbot, page, conversations):
    conversation = _conversation_with(conversations, ("user", "first question"), ("assistant", "an answer"),
                                      ("user", "second question"), ("assistant", "another"))
    page.conversation_list.select(conversation)
    page.input.setPlainText("half a thought")
    page.edit_button.click()
    assert page.input.toPlainText() == "second question", "the last of your messages, not the first"
    assert page.send_button.accessibleName() == "Resend" and page.cancel_edit_button.isVisibleTo(page)
    qtbot.keyClick(page.input, Qt.Key.Key_Escape)
    assert page.input.toPlainText() == "half a thought", "what you had typed comes back"
    assert page.send_button.accessibleName() == "Send" and not page.cancel_edit_button.isVisibleTo(page)
    assert _texts(conversations, conversation)[-2] == ("user", "second question"), "the store is untouched"


def test_each_conversation_keeps_its_own_draft(page, conversations):
    first = _conversation_with(conversations, ("user", "one"))
    second = _conversation_with(conversations, ("user", "two"))
    page.conversation_list.refresh()
    page.conversation_list.select(first)
    page.input.setPlainText("draft for the first")
    page.conversation_list.select(second)
    assert page.input.toPlainText() == ""
    page.input.setPlainText("draft for the second")
    page.conversation_list.select(first)
    assert page.input.toPlainText() == "draft for the first"
    page.conversation_list.select(second)
    assert page.input.toPlainText() == "draft for the second"


def test_a_corrupt_database_is_moved_aside_and_the_window_says_so(qtbot, tmp_path):
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"not a database \x00\xff" * 300)
    store = ConversationStore(path)
    chat = ChatPage(EngineThread(lane="jobs"), ModelStore(tmp_path / "converted"), lambda: "cpu", store)
    qtbot.addWidget(chat)
    chat.show()
    assert chat.store_notice.isVisibleTo(chat)
    assert "damaged" in chat.store_notice.text() and "moved aside" in chat.store_notice.text()
    assert chat.conversation_list.ids() == []
    store.close()


def test_every_chat_control_has_an_accessible_name(page, conversations):
    conversation = _conversation_with(conversations, ("user", "markdown please"), ("assistant", ANSWER_WITH_MARKDOWN))
    page.conversation_list.select(conversation)
    page.start_edit()  # shows Resend and Cancel edit
    assert page.message_view.last("assistant").code_blocks(), "a code block (and its Copy) is among the controls"
    assert nameless_controls(page) == []
    names = {w.accessibleName() for kind in CONTROL_KINDS for w in page.findChildren(kind)}
    assert {"Message", "Resend", "Stop", "Regenerate", "Edit last message", "Cancel edit", "Conversations",
            "Search conversations", "New", "Rename", "Delete", "Export", "Import", "System prompt", "Model for this conversation",
            "Copy message", "Copy code", "Code block (python)"} <= names


def test_splitter_and_last_conversation_are_saved_with_the_settings(qtbot, tmp_path, page, conversations):
    first = _conversation_with(conversations, ("user", "first"))
    second = _conversation_with(conversations, ("user", "second"))
    page.conversation_list.refresh()
    page.conversation_list.select(first)
    page.splitter.setSizes([300, 600])
    sizes = page.splitter.sizes()
    page.settings_panel.context_limit.setValue(1024)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    page.save_settings(settings)
    settings.sync()
    again = ChatPage(EngineThread(lane="jobs"), ModelStore(tmp_path / "converted"), lambda: "cpu", conversations)
    qtbot.addWidget(again)
    again.resize(900, 700)
    again.show()
    assert again.current == second, "before the settings: the newest one"
    again.load_settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.current == first
    assert again.splitter.sizes() == sizes
    assert again.settings_panel.context_limit.value() == 1024
    assert again.settings_panel.options()["context_limit"] == 1024


# --- turns through the real engine lane (the embedded SmolLM2 GGUF) -----------------------------------

@pytest.fixture
def window(qtbot):
    win = _open_window(qtbot)
    yield win
    win.close()


def _open_window(qtbot) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.tabs.setCurrentWidget(win.text_tab)
    win.text_tab.setCurrentWidget(win.text_tab.chat_page)
    qtbot.waitUntil(lambda: win.engine.ready_info is not None, timeout=ENGINE_START_MS)
    return win


class Outcomes:
    """The chat jobs' results and failures, as the lane reports them."""

    def __init__(self, win: MainWindow) -> None:
        self.results: list[dict] = []
        self.failures: list[str] = []
        win.engine.finished_job.connect(lambda _job, result: self.results.append(result_dict(result)))
        win.engine.failed.connect(lambda _job, message: self.failures.append(message))

    def wait(self, qtbot, count: int) -> dict:
        qtbot.waitUntil(lambda: len(self.results) + len(self.failures) >= count, timeout=JOB_MS)
        assert not self.failures, self.failures
        return self.results[-1]


def _settings(page: ChatPage, max_tokens: int, temperature: float) -> None:
    page.settings_panel.max_tokens.setValue(max_tokens)
    page.settings_panel.temperature.setValue(temperature)


def _type_and_press_enter(qtbot, page: ChatPage, text: str) -> None:
    page.input.setFocus()
    page.input.setPlainText(text)
    qtbot.keyClick(page.input, Qt.Key.Key_Return)


def _texts(store: ConversationStore, conversation: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.messages(conversation)]


def _answer_streaming(qtbot, page: ChatPage, chars: int = 1) -> None:
    qtbot.waitUntil(lambda: page.running and len(page.job_text.strip()) >= chars, timeout=JOB_MS)


def test_send_streams_the_answer_and_saves_the_turn(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    _settings(page, 40, 0.0)
    seen: list[tuple[bool, str]] = []

    def on_partial(_job, payload) -> None:  # runs after the page's own handler (connected first)
        if isinstance(payload, dict) and payload.get("text"):
            answer = page.message_view.last("assistant")
            seen.append((page.running, answer.text if answer else ""))

    window.engine.partial.connect(on_partial)
    _type_and_press_enter(qtbot, page, "Name three colours.")
    assert page.input.toPlainText() == "", "sent: the box is empty for the next message"
    assert [w.role for w in page.message_view.messages] == ["user"], "your message shows at once"
    result = outcomes.wait(qtbot, 1)

    assert seen and all(running for running, _ in seen), "pieces arrived while the job ran"
    assert any(text.strip() for _, text in seen), "the answer was in the view before it ended"
    assert seen[-1][1].strip() == result["text"].strip(), "every piece reached the view"
    conversation = page.current
    assert result["conversation"] == conversation and result["turn"] == 1 and not result["stopped"]
    stored = _texts(page.conversations, conversation)
    assert stored == [("user", "Name three colours."), ("assistant", result["text"])]
    shown = [(w.role, w.text) for w in page.message_view.messages]
    assert shown == stored
    answer = page.message_view.last("assistant")
    assert not answer.stopped and not answer.stopped_label.isVisibleTo(answer)  # within its message: the view
    # shows a message it has just added on the next pass of the event loop
    assert f"{result['context_used']:,} of {result['context_total']:,} tokens" in page.context_label.text()
    assert 0 < result["context_used"] <= result["context_total"]
    assert page.conversation_list.list.currentItem().text() == "Name three colours.", "titled from the message"
    assert page.send_button.isEnabled() and not page.stop_button.isEnabled()


def test_esc_stops_the_answer_and_it_is_kept_marked_stopped(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    _settings(page, 400, 0.0)  # greedy: a long answer every run, so Esc lands in the middle
    _type_and_press_enter(qtbot, page, "Write a long story about a fox and a dog.")
    _answer_streaming(qtbot, page)
    assert page.stop_button.isEnabled() and not page.send_button.isEnabled()
    messages: list[str] = []
    page.status_message.connect(messages.append)
    qtbot.keyClick(page.input, Qt.Key.Key_Escape)
    assert "Stopping…" in messages, "Esc asked the engine to stop"
    result = outcomes.wait(qtbot, 1)
    assert result["stopped"] and result["new_tokens"] < 400, {k: result[k] for k in ("stopped", "new_tokens", "text")}
    last = page.conversations.messages(page.current)[-1]
    assert last.role == "assistant" and last.stopped and last.content.strip()
    answer = page.message_view.last("assistant")
    assert answer.text == last.content and answer.stopped and answer.stopped_label.isVisibleTo(answer)
    qtbot.waitUntil(lambda: answer.stopped_label.isVisibleTo(page), timeout=5000)  # and the message is on screen


def test_regenerate_then_edit_and_resend_the_last_message(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    _settings(page, 12, 0.8)
    _type_and_press_enter(qtbot, page, "Say hi.")
    first = outcomes.wait(qtbot, 1)
    conversation = page.current

    page.regenerate_button.click()
    again = outcomes.wait(qtbot, 2)
    assert again["turn"] == 1 and again["message_id"] != first["message_id"]
    assert _texts(page.conversations, conversation) == [("user", "Say hi."), ("assistant", again["text"])]
    assert [w.text for w in page.message_view.messages] == ["Say hi.", again["text"]]

    page.input.setPlainText("a draft")
    page.edit_button.click()
    assert page.input.toPlainText() == "Say hi.", "the last message, ready to edit"
    assert page.send_button.accessibleName() == "Resend"
    page.input.setPlainText("Say bye.")
    qtbot.keyClick(page.input, Qt.Key.Key_Return)
    edited = outcomes.wait(qtbot, 3)
    assert edited["turn"] == 1
    assert _texts(page.conversations, conversation) == [("user", "Say bye."), ("assistant", edited["text"])]
    assert [w.text for w in page.message_view.messages] == ["Say bye.", edited["text"]]

    _type_and_press_enter(qtbot, page, "Thanks.")
    second = outcomes.wait(qtbot, 4)
    assert second["turn"] == 2, "the conversation goes on"
    assert [role for role, _ in _texts(page.conversations, conversation)] == ["user", "assistant"] * 2


def test_switching_conversation_while_an_answer_streams(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    _settings(page, 150, 0.0)  # greedy: the same answer every run, long enough to switch in the middle
    _type_and_press_enter(qtbot, page, "Write a long story about a fox and a dog.")
    first = page.current
    _answer_streaming(qtbot, page)
    page.conversation_list.delete_button.click()
    assert "Stop it first" in page.notice.text() and first in page.conversation_list.ids(), "not deleted while writing"
    while_elsewhere: list[int] = []  # for each piece that arrived while the other one was shown: what that view held
    window.engine.partial.connect(
        lambda _job, payload: page.current != first and isinstance(payload, dict) and payload.get("text")
        and while_elsewhere.append(len(page.message_view.messages)))
    page.conversation_list.new_button.click()
    second = page.current
    assert second != first and page.message_view.messages == [], "the new conversation shows empty"
    result = outcomes.wait(qtbot, 1)
    assert while_elsewhere, "the answer went on streaming while another conversation was shown"
    assert set(while_elsewhere) == {0}, "none of it went into the conversation shown"
    assert result["conversation"] == first
    assert page.current == second and page.message_view.messages == [], "nothing of it leaked into the other one"
    assert _texts(page.conversations, second) == []
    stored = _texts(page.conversations, first)
    assert stored == [("user", "Write a long story about a fox and a dog."), ("assistant", result["text"])]
    page.conversation_list.select(first)
    assert [(w.role, w.text) for w in page.message_view.messages] == stored, "switching back shows the finished answer"


def test_closing_mid_answer_keeps_the_partial_answer_marked_stopped(qtbot):
    first = _open_window(qtbot)
    page = first.text_tab.chat_page
    _settings(page, 400, 0.0)
    _type_and_press_enter(qtbot, page, "Write a long story about a fox and a dog.")
    _answer_streaming(qtbot, page, chars=20)
    conversation, seen = page.current, page.job_text
    first.close()

    with ConversationStore() as store:  # the default file under DESKTOP_AI_HOME, as the engine wrote it
        assert store.path.parent == paths.data_dir()
        messages = store.messages(conversation)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].stopped and seen.strip() in messages[1].content

    second = _open_window(qtbot)
    try:
        page = second.text_tab.chat_page
        assert page.current == conversation, "the window opens on the last conversation"
        answer = page.message_view.last("assistant")
        assert answer.text == messages[1].content
        assert answer.stopped_label.isVisibleTo(page) and answer.stopped_label.text() == "stopped"
    finally:
        second.close()


def test_a_model_that_cannot_load_is_a_message_and_the_message_is_kept(qtbot, window, tmp_path):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    page.conversation_list.new_button.click()
    page.settings_panel.model_picker.select(str(tmp_path / "no-such-model"))
    _type_and_press_enter(qtbot, page, "hello?")
    qtbot.waitUntil(lambda: bool(outcomes.failures), timeout=JOB_MS)
    assert "does not exist" in outcomes.failures[0]
    assert "does not exist" in page.notice.text()
    # What you typed is never lost and never doubled: the engine has either saved it before the model failed
    # (then Regenerate answers it) or refused the turn before writing anything (then it is back in the box).
    stored = _texts(page.conversations, page.current)
    shown = [(w.role, w.text) for w in page.message_view.messages]
    assert shown == stored
    if stored:
        assert stored == [("user", "hello?")] and page.input.toPlainText() == ""
        assert "Regenerate" in page.notice.text() and page.regenerate_button.isEnabled()
    else:
        assert page.input.toPlainText() == "hello?" and "back in the box" in page.notice.text()
    assert page.send_button.isEnabled()
    assert page.conversations.get(page.current).model == str(tmp_path / "no-such-model")


def test_a_turn_refused_before_anything_is_written_puts_the_message_back(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    page.conversation_list.new_button.click()
    page.settings_panel.context_limit.setValue(10)  # fewer tokens than any turn needs: the engine refuses it
    _type_and_press_enter(qtbot, page, "a message I typed with care")
    assert page.input.toPlainText() == ""
    qtbot.waitUntil(lambda: bool(outcomes.failures), timeout=JOB_MS)
    assert "context limit" in outcomes.failures[0].lower()
    assert _texts(page.conversations, page.current) == [] and page.message_view.messages == []
    assert page.input.toPlainText() == "a message I typed with care", "nothing typed is lost"
    assert "context limit" in page.notice.text().lower() and "back in the box" in page.notice.text()


def test_a_conversation_longer_than_the_context_says_older_turns_were_left_out(qtbot, window):
    page = window.text_tab.chat_page
    outcomes = Outcomes(window)
    long_turn = " ".join(f"word{n}" for n in range(60))  # about 200 tokens each: 1200 in all, over the limit
    with ConversationStore() as store:  # the window's own file, written as an earlier session would have
        conversation = store.create(title="Long one", system_prompt="Be brief.").id
        for n in range(6):
            store.add_message(conversation, "user", f"Turn {n}: {long_turn}")
            store.add_message(conversation, "assistant", f"Noted {n}.")
    page.conversation_list.refresh()
    page.conversation_list.select(conversation)
    assert len(page.message_view.messages) == 12
    _settings(page, 4, 0.0)
    page.settings_panel.context_limit.setValue(512)
    _type_and_press_enter(qtbot, page, "Thanks.")
    result = outcomes.wait(qtbot, 1)
    assert result["dropped_messages"] > 0
    assert result["context_total"] == 512 and result["context_used"] <= 512
    assert f"oldest {result['dropped_messages']} messages were left out" in page.context_label.text()
    assert "system prompt is always kept" in page.context_label.text()
