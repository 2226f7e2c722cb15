"""Saved chat conversations: the SQLite store that the window and the engine lanes share."""
