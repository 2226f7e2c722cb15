"""The Chat page and its parts: conversations, messages, composer, settings, and chat over documents."""
