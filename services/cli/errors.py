"""The error a ``coderm`` user can fix, told apart from the bugs of a command."""

from __future__ import annotations

from shared.errors import RequestError


class UserError(RequestError):
    """A request the user can fix: an unknown run, model or benchmark, options that do
    not go together, a model registered otherwise.

    ``coderm`` prints its message as one ``error:`` line and exits 2. It is deliberately
    not a ``LookupError``: a ``KeyError`` or ``IndexError`` escaping a command is a bug
    and keeps its traceback.
    """
