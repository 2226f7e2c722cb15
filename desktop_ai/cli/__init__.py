"""The `desktop-ai` command: main.py builds the parser and dispatches; one module per command family."""
