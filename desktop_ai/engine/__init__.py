"""The engine: everything that touches torch. It never imports Qt, so scripts, the CLI and GPU machines use it."""
