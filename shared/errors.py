"""Errors that tell the message shell how to treat a failed handler."""

from __future__ import annotations


class PermanentError(Exception):
    """The message can never succeed (it names something that does not exist): it is
    dead-lettered at once with this error as the reason, without retries."""


class UnknownReferenceError(PermanentError, LookupError):
    """A message names a run, problem, model or backend that does not exist."""


class RequestError(Exception):
    """A request for work that cannot be done as asked (an unknown benchmark or model,
    options that do not go together): its message says what to fix. A client (the CLI,
    an HTTP endpoint) shows it to its user; it is not a bug and needs no traceback."""
