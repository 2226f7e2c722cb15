"""desktop-ai: local AI in one desktop window."""

__version__ = "0.1.0"
APP_NAME = "desktop-ai"
