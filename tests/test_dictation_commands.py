"""Spoken commands in dictation (issue 29): pure text logic, phrase by phrase, as Whisper punctuates them."""

from __future__ import annotations

from desktop_ai.engine.tasks.dictation_commands import DictationCommands


def _type(commands: DictationCommands, *phrases: str) -> str:
    """Play the steps into a plain string the way a text field receives BackSpaces and keys."""
    field = ""
    for phrase in phrases:
        step = commands.step(phrase)
        if step.backspaces:
            field = field[: -step.backspaces]
        field += step.text
        commands.done(step)
    return field


def test_phrases_are_joined_with_spaces():
    assert _type(DictationCommands(), "Open the window.", "Let the air in.") == "Open the window. Let the air in."


def test_new_line_and_new_paragraph_as_phrases_of_their_own():
    field = _type(DictationCommands(), "Dear Anna,", "New line.", "Open the window.", "New paragraph.", "Thanks.")
    assert field == "Dear Anna,\nOpen the window.\n\nThanks."


def test_commands_inside_a_phrase_replace_the_recognizer_punctuation():
    field = _type(DictationCommands(), "Hello comma how are you question mark new line fine, full stop.")
    assert field == "Hello, how are you?\nFine."


def test_period_and_hyphenated_newline():
    assert _type(DictationCommands(), "It works period", "New-line.", "yes") == "It works.\nyes"


def test_a_spoken_mark_after_a_pause_replaces_the_full_stop_whisper_put_there():
    commands = DictationCommands()
    assert _type(commands, "Open the window.", "Comma.", "please.") == "Open the window, please."


def test_scratch_that_removes_the_phrase_before_it():
    commands = DictationCommands()
    first = commands.step("Open the window.")
    commands.done(first)
    second = commands.step("Close the door.")
    commands.done(second)
    scratch = commands.step("Scratch that.")
    assert scratch.backspaces == len(" Close the door.") and scratch.text == ""
    assert scratch.scratched == " Close the door."
    commands.done(scratch)
    assert "".join(commands.typed) == "Open the window."
    assert commands.step("Let the air in.").text == " Let the air in."


def test_scratch_that_twice_goes_back_two_phrases_and_within_a_phrase_drops_its_words():
    assert _type(DictationCommands(), "One.", "Two.", "Three.", "Scratch that.", "Scratch that.") == "One."
    # ...but one phrase that says it twice in a row is the recognizer's echo: it removes one phrase
    assert _type(DictationCommands(), "One.", "Two.", "Scratch that. Scratch that.") == "One."
    assert _type(DictationCommands(), "One.", "Two, no, scratch that, three.") == "One. Three."


def test_a_command_whisper_repeats_within_one_phrase_counts_once():
    """Told to expect the commands (COMMAND_PROMPT), tiny.en writes a lone "new line" as "New line. New line." in a
    quarter of plays: one line break, as for "scratch that"; two lines are "new paragraph", and apart they count."""
    assert _type(DictationCommands(), "Dear Anna,", "New Line. New Line.", "Thanks.") == "Dear Anna,\nThanks."
    assert _type(DictationCommands(), "Hello comma comma there.") == "Hello, there."
    assert _type(DictationCommands(), "Dear Anna,", "New line.", "New line.", "Thanks.") == "Dear Anna,\n\nThanks."
    assert _type(DictationCommands(), "One new line two new line three.") == "One\nTwo\nThree."


def test_a_phrase_not_typed_is_not_scratched():
    commands = DictationCommands()
    commands.done(commands.step("Open the window."))
    commands.step("This went to the clipboard.")  # never done(): the focus had moved
    assert commands.step("Scratch that.").backspaces == len("Open the window.")


def test_switched_off_every_word_is_typed_as_heard():
    field = _type(DictationCommands(enabled=False), "New line.", "Scratch that.")
    assert field == "New line. Scratch that."


def test_ordinary_words_are_left_alone():
    assert _type(DictationCommands(), "A new car in line, that is it.") == "A new car in line, that is it."
