"""Python values as ``repr`` text, read back without ``eval``.

Benchmark inputs and expected outputs are stored as the ``repr`` of plain Python data:
``int``, ``float`` (``inf``, ``-inf`` and ``nan`` included), ``complex``, ``str``,
``bytes``, ``bool``, ``None``, ``list``, ``tuple``, ``dict``, ``set`` and ``frozenset``,
nested. ``repr`` of these round-trips exactly (floats by their shortest repr), which a
JSON encoding would not (tuples, sets, non-string keys, non-finite floats). The sandbox
reads the text back with a restricted ``eval``; the host reads it with
:func:`decode`, which walks the syntax tree and accepts nothing else.
"""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LITERAL_TYPES = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    list,
    tuple,
    dict,
    set,
    frozenset,
)
_NAMES: dict[str, Any] = {"inf": math.inf, "nan": math.nan}


class LiteralError(ValueError):
    """The text is not the repr of plain Python data."""


@contextmanager
def unlimited_int_digits() -> Iterator[None]:
    """Lift Python 3.11's 4300-digit limit on int <-> str conversion for a while."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(previous)


def is_plain(value: object) -> bool:
    """Whether ``value`` is built from the literal types only (exact types, no
    subclasses), so that its ``repr`` reads back as an equal value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) not in LITERAL_TYPES:
            return False
        if isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return True


def encode(value: object) -> str:
    """The ``repr`` of plain data; ``LiteralError`` if ``value`` holds anything else."""
    if not is_plain(value):
        raise LiteralError(f"not plain data: {type(value).__name__}")
    with unlimited_int_digits():
        return repr(value)


def decode(text: str) -> Any:
    """Read back the ``repr`` of plain data (see the module docstring)."""
    try:
        with unlimited_int_digits():
            tree = ast.parse(text, mode="eval")
            return _value(tree.body)
    except (SyntaxError, RecursionError, ValueError, TypeError) as error:
        raise LiteralError(f"not a plain literal: {error}") from error


def _value(node: ast.expr) -> Any:  # noqa: C901 - one branch per literal form
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int | float | complex | str | bytes | bool | type(None)):
            return node.value
        raise LiteralError(f"constant {node.value!r}")
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand)
        if type(operand) not in (int, float, complex):
            raise LiteralError("sign on a non-number")
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
        return _complex(node)
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(e) for e in node.elts)
    if isinstance(node, ast.Set):
        return {_value(e) for e in node.elts}
    if isinstance(node, ast.Dict):
        keys = [k for k in node.keys if k is not None]
        if len(keys) != len(node.values):
            raise LiteralError("dict unpacking")
        return {_value(k): _value(v) for k, v in zip(keys, node.values, strict=True)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        maker = {"set": set, "frozenset": frozenset}.get(node.func.id)
        if maker is not None and len(node.args) <= 1:
            return maker(_value(node.args[0])) if node.args else maker()
    raise LiteralError(f"unsupported syntax {type(node).__name__}")


def _complex(node: ast.BinOp) -> complex:
    """``real + imagj`` / ``real - imagj``, as ``repr(complex)`` writes it."""
    real, imag = _value(node.left), _value(node.right)
    if type(real) not in (int, float) or type(imag) is not complex:
        raise LiteralError("only real +/- imaginary is allowed")
    return complex(real + imag if isinstance(node.op, ast.Add) else real - imag)
