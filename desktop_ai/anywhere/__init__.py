"""Dictate anywhere: the desktop glue that types finished phrases into whatever window has the focus.

One small interface (desktop.Desktop) and one module per windowing system (x11, wayland); typist.PhraseTypist
turns dictation's final phrases into keys, with the spoken commands and the focus check. No Qt here: the CLI
uses it without a window.
"""
