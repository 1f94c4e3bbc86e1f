"""Small sample objects several test modules share."""

from __future__ import annotations

from typing import Any

from shared.core.oracle import Expected, Oracle
from shared.core.pyliteral import encode


def doubling_oracle(**expected: Any) -> Oracle:
    """An evalplus oracle of ``f(x) = 2 * x`` on base inputs 1, 2 and plus input 3; with
    keyword arguments, its expected outputs too (``base_ms``, ``plus_ms``: canonical
    times)."""
    return Oracle(
        dataset="humaneval",
        atol=0.0,
        base_input=encode([[1], [2]]),
        plus_input=encode([[3]]),
        base_count=2,
        plus_count=1,
        expected=Expected(base="[2, 4]", plus="[6]", **expected) if expected else None,
    )
