"""Errors whose message is written for the user: the window and the CLI show str(error) as it is."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: anything the user can act on."""


class ModelUnavailableError(EngineError):
    """A model is missing, unreachable offline, or not a model at all."""


class InvalidInputError(EngineError):
    """The input cannot be processed (empty text, bad labels...)."""


class CancelledError(EngineError):
    """The user stopped the job."""


class ModelTooLargeError(ModelUnavailableError):
    """The model would not fit in free memory; the message gives the numbers and what would fit."""


class ModelClosedError(EngineError):
    """The model was unloaded (memory budget, shutdown) while a request used it; sending it again loads it again."""
