"""Differential testing of a solution against stored expected outputs, by evalplus's rules.

This module runs *inside the sandbox*, shipped in the image with the runner: an
``evalplus_check`` job (:mod:`.evalplus_jobs`) loads its source into a fresh namespace in
the assert worker before the solution runs, so it uses the standard library only (no
numpy). :mod:`.evalplus_expected` imports it, and the host imports it for tests. Rules,
as evalplus's released code applies them (``evalplus/eval/__init__.py``:
``unsafe_execute``, ``untrusted_check``, ``is_floats``;
``evalplus/eval/_special_oracle.py``), re-implemented here:

* the solution module is executed afresh for each check (base inputs, then plus inputs),
  then each input is passed as ``fn(*input)`` under its own time limit,
  ``max(1 s, 4 x canonical time)``; the whole check gets ``min(60 s, sum of limits) + 2 s``;
  the first failing input fails the check (evalplus's ``fast_check``);
* ``out == exp`` decides, except where a special oracle replaces it: HumanEval's
  ``find_zero`` passes iff ``|poly(xs, out)| <= atol``; MBPP's ``are_equivalent`` always
  passes, ``sum_div`` also passes on 0, ``surface_Area`` and ``digit_distance_nums`` also
  pass on an alternative reading of the task, set-valued tasks compare ``set(out) ==
  set(exp)``, and ``output is not None`` tasks compare that boolean;
* otherwise, if the task's ``atol`` is 0 and ``exp`` is a float or a non-empty list/tuple
  of floats, ``atol`` becomes 1e-6 (and stays so for the check's later inputs, as in
  evalplus); a non-exact output then passes iff it has exactly ``exp``'s type, the same
  length for a list/tuple, and ``numpy.allclose(out, exp, rtol=1e-7, atol=atol)`` holds:
  elementwise ``|out - exp| <= atol + 1e-7 |exp|`` over numbers, infinities equal only to
  themselves, NaN never close, a scalar broadcast against a sequence; anything numpy could
  not turn into a numeric array (strings, None, ragged nesting, ints beyond 64 bits) fails.

Outputs too large to ship with every check (over ``LITERAL_CHARS`` of ``repr``) are
stored as a :func:`digest` instead, where only ``out == exp`` can decide: no special
oracle, and ``atol`` still 0 at that input. A digest is equal exactly for equal plain
values (``1 == 1.0 == True``, lists unequal to tuples, dicts and sets unordered); an
output holding a NaN, or types outside the builtin literals and their subclasses, has none
and fails against a digest (evalplus could in principle accept a ``Fraction`` or
``Decimal`` equal to the expected number there, or a ``complex`` with a zero imaginary
part inside a list of floats).

One guard evalplus lacks: an output that contains an object whose class brings its own
``__eq__`` (anything but the builtin and ``collections``/``fractions``/``decimal`` ones,
checked by identity when this module is loaded, before the solution runs) fails, so a
solution cannot return an object that claims to equal everything.
"""

import array
import collections
import decimal
import fractions
import hashlib
import math
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, cast

RTOL = 1e-07
FLOAT_ATOL = 1e-06
BASE_FLAG = "_coderm_base_ok"
NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})
SET_EQ_TASKS = frozenset(
    {
        "similar_elements",
        "find_char_long",
        "common_in_nested_lists",
        "extract_singly",
        "larg_nnum",
        "intersection_array",
        "find_dissimilar",
        "Diff",
    }
)
_INT_RANGE = (-(2**63), 2**64 - 1)
LITERAL_CHARS = 2048

# bound now, before any solution code can patch them
_monotonic = time.monotonic
_setitimer = signal.setitimer
_set_handler = signal.signal
_isfinite = math.isfinite
_pow = math.pow
_sqrt = math.sqrt
_sha256 = hashlib.sha256
_array = array.array
_BIG_ENDIAN = sys.byteorder == "big"
_type_attr = type.__getattribute__
_TRUSTED_EQ = tuple(
    _type_attr(kind, "__dict__")["__eq__"]
    for kind in (
        object,
        int,
        float,
        complex,
        str,
        bytes,
        list,
        tuple,
        dict,
        set,
        frozenset,
        range,
        collections.deque,
        collections.Counter,
        fractions.Fraction,
        decimal.Decimal,
    )
)
_CONTAINERS = (list, tuple, set, frozenset, collections.deque)


class InputTimeout(BaseException):
    """An input ran past its limit (raised by this check's alarm)."""


def _on_alarm(_signum: int, _frame: object) -> None:
    raise InputTimeout


def decode(text: str) -> Any:
    """Read back the ``repr`` text of plain data (our own stored inputs and outputs);
    Python's 4300-digit limit on int literals is lifted meanwhile."""
    names = {"inf": math.inf, "nan": math.nan, "set": set, "frozenset": frozenset}
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return eval(text, {"__builtins__": {}}, names)
    finally:
        sys.set_int_max_str_digits(previous)


def _eq_of(cls: type) -> object:
    for klass in _type_attr(cls, "__mro__"):
        found = _type_attr(klass, "__dict__").get("__eq__")
        if found is not None:
            return found
    return None


def _children(item: Any, cls: type) -> list[Any] | None:
    """The objects a container holds (read through the base type, whatever the subclass
    overrides), or None for a leaf."""
    if issubclass(cls, dict):
        return [*dict.keys(item), *dict.values(item)]
    for kind in _CONTAINERS:
        if issubclass(cls, kind):
            return list(kind.__iter__(item))
    return None


def trusted(value: object) -> bool:
    """Whether every object in ``value`` (through lists, tuples, sets, deques, dicts)
    compares with a builtin or standard-library ``__eq__``."""
    verdicts: dict[type, bool] = {}

    def ok(cls: type) -> bool:
        if cls not in verdicts:
            eq = _eq_of(cls)
            verdicts[cls] = any(eq is t for t in _TRUSTED_EQ)
        return verdicts[cls]

    stack = [value]
    while stack:
        item = stack.pop()
        if not ok(type(item)):
            return False
        children = _children(item, type(item))
        if not children:
            continue
        kinds = set(map(type, children))
        if not all(ok(k) for k in kinds):
            return False
        nested = {k for k in kinds if _children_kind(k)}
        if nested:
            stack.extend(c for c in children if type(c) in nested)
    return True


def _children_kind(cls: type) -> bool:
    return issubclass(cls, dict) or any(issubclass(cls, k) for k in _CONTAINERS)


class _Undigestable(Exception):
    pass


def _feed_real(update: Callable[[bytes], object], x: float) -> None:
    if isinstance(x, float):
        if x != x:
            raise _Undigestable("nan")
        if x in (math.inf, -math.inf):
            update(b"+inf" if x > 0 else b"-inf")
            return
        if not x.is_integer():
            update(b"f" + float.hex(x).encode())
            return
    n = int(x)
    size = (abs(n).bit_length() + 7) // 8 or 1
    update(b"i-" if n < 0 else b"i+")
    update(str(size).encode() + b":" + abs(n).to_bytes(size, "big"))


def _packed_floats(items: list[Any]) -> bytes | None:
    """The items as float64 bytes when every one is a number a float represents exactly
    (no NaN), ``-0.0`` written as ``0.0``; else None."""
    try:
        packed = _array("d", items)
    except (TypeError, OverflowError):
        return None
    if packed.tolist() != items:
        return None
    i = -1
    while True:
        try:
            i = packed.index(0.0, i + 1)
        except ValueError:
            break
        packed[i] = 0.0
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _feed_items(update: Callable[[bytes], object], tag: bytes, items: list[Any]) -> None:
    """A list's or tuple's items; long runs of numbers or of strings are packed in one
    go (the same bytes whichever equal items they come from)."""
    kinds = set(map(type, items))
    count = str(len(items)).encode() + b":"
    if items and all(issubclass(k, int | float) for k in kinds):
        packed = _packed_floats(items)
        if packed is not None:
            update(tag + b"F" + count + packed)
            return
    if items and all(issubclass(k, str) for k in kinds):
        lengths = _array("q", map(str.__len__, items))
        if _BIG_ENDIAN:
            lengths.byteswap()
        data = str.encode("".join(items), "utf-8", "surrogatepass")
        update(tag + b"S" + count + lengths.tobytes() + data)
        return
    update(tag + count)
    for item in items:
        _feed(update, item)


def _sub_digest(value: object) -> bytes:
    h = _sha256()
    _feed(h.update, value)
    return h.digest()


def _feed(update: Callable[[bytes], object], value: Any) -> None:
    cls = type(value)
    if value is None:
        update(b"N")
    elif issubclass(cls, complex):
        z = complex.__complex__(value)
        if z.imag == 0:
            _feed_real(update, z.real)
        else:
            update(b"c")
            _feed_real(update, z.real)
            _feed_real(update, z.imag)
    elif issubclass(cls, float):
        _feed_real(update, float.__float__(value))
    elif issubclass(cls, int):
        _feed_real(update, int.__int__(value))
    elif issubclass(cls, str):
        data = str.encode(value, "utf-8", "surrogatepass")
        update(b"s" + str(len(data)).encode() + b":" + data)
    elif issubclass(cls, bytes):
        data = bytes.__bytes__(value)
        update(b"b" + str(len(data)).encode() + b":" + data)
    elif issubclass(cls, list | tuple):
        items = list(list.__iter__(value) if issubclass(cls, list) else tuple.__iter__(value))
        _feed_items(update, b"L" if issubclass(cls, list) else b"T", items)
    elif issubclass(cls, dict):
        pairs = sorted(_sub_digest(k) + _sub_digest(v) for k, v in dict.items(value))
        update(b"D" + str(len(pairs)).encode() + b":" + b"".join(pairs))
    elif issubclass(cls, set | frozenset):
        members = set.__iter__(value) if issubclass(cls, set) else frozenset.__iter__(value)
        digests = sorted(_sub_digest(m) for m in members)
        update(b"S" + str(len(digests)).encode() + b":" + b"".join(digests))
    else:
        raise _Undigestable(cls.__name__)


def digest(value: object) -> str | None:
    """A sha256 shared by exactly the plain values equal to ``value`` (see the module
    docstring); ``None`` when it has none (NaN inside, other types, too deep)."""
    h = _sha256()
    try:
        _feed(h.update, value)
    except (_Undigestable, RecursionError):
        return None
    return h.hexdigest()


def special_oracle(entry: str, dataset: str) -> bool:
    """Whether evalplus decides this task by something other than ``out == exp``."""
    if dataset == "humaneval":
        return entry == "find_zero"
    return dataset == "mbpp" and (
        entry in ("are_equivalent", "sum_div", "surface_Area", "digit_distance_nums")
        or entry in SET_EQ_TASKS
        or entry in NOT_NONE_TASKS
    )


def is_floats(value: object) -> bool:
    """evalplus's ``is_floats``: a float, or a non-empty list/tuple of floats only."""
    if isinstance(value, float):
        return True
    if isinstance(value, list | tuple) and value:
        return all(isinstance(v, float) for v in value)
    return False


def _number(value: object) -> complex | float:
    kind = type(value)
    if isinstance(value, complex | float) and kind in (complex, float):
        return value
    if isinstance(value, int) and kind in (int, bool) and _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        return float(value)
    raise TypeError(f"not numeric for allclose: {kind.__name__}")


def _flatten(value: object) -> tuple[list[complex | float], tuple[int, ...]]:
    """Numbers and shape of a scalar or of equally nested lists/tuples, as numpy sees them."""
    if not isinstance(value, list | tuple):
        return [_number(value)], ()
    parts = [_flatten(v) for v in value]
    shapes = {shape for _, shape in parts}
    if len(shapes) > 1:
        raise TypeError("ragged nesting")
    inner = shapes.pop() if shapes else ()
    return [n for numbers, _ in parts for n in numbers], (len(value), *inner)


def _isclose(a: complex | float, b: complex | float, atol: float) -> bool:
    if not (_isfinite(a.real) and _isfinite(a.imag) and _isfinite(b.real) and _isfinite(b.imag)):
        return a == b
    return abs(a - b) <= atol + RTOL * abs(b)


def allclose(out: object, exp: object, atol: float) -> bool:
    """``numpy.allclose(out, exp, rtol=1e-7, atol=atol)`` (equal_nan False) for scalars
    and nested lists/tuples; False where numpy would raise."""
    try:
        a, shape_a = _flatten(out)
        b, shape_b = _flatten(exp)
    except (TypeError, RecursionError):
        return False
    if shape_a != shape_b:
        if shape_a == ():
            a = a * len(b)
        elif shape_b == ():
            b = b * len(a)
        else:
            return False
    return all(_isclose(x, y, atol) for x, y in zip(a, b, strict=True))


def _poly(*args: Any) -> float:
    xs, x = args
    return float(sum(coeff * _pow(x, i) for i, coeff in enumerate(xs)))


def _surface_area(base_edge: float, height: float) -> int:
    slant = _sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 2 * base_edge * slant)


def _digit_distance(a: int, b: int) -> int:
    width = max(len(str(a)), len(str(b)))
    left, right = str(a).zfill(width), str(b).zfill(width)
    return sum(abs(int(x) - int(y)) for x, y in zip(left, right, strict=True))


def _mbpp_oracle(out: Any, exp: Any, inp: list[Any], atol: float, entry: str, exact: Any) -> Any:
    """evalplus's MBPP special oracles; returns the (possibly replaced) exact-match value."""
    if entry == "are_equivalent":
        return True
    if entry == "sum_div":
        return exact or out == 0
    if entry == "surface_Area":
        return exact or abs(out - _surface_area(*inp)) <= atol
    if entry == "digit_distance_nums":
        return exact or out == _digit_distance(*inp)
    if entry in SET_EQ_TASKS:
        got = set(out)
        return trusted(got) and got == set(exp)
    if entry in NOT_NONE_TASKS:
        return out == exp if isinstance(out, bool) else exp == (out is not None)
    return exact


def outputs_match(
    out: Any, exp: Any, inp: list[Any], atol: float, entry: str, dataset: str
) -> tuple[bool, float]:
    """evalplus's verdict on one input, and the ``atol`` its later inputs use.

    May raise where evalplus's comparison raises (the input then fails).
    """
    if not trusted(out):
        return False, atol
    exact = out == exp
    if dataset == "mbpp":
        exact = _mbpp_oracle(out, exp, inp, atol, entry, exact)
    if dataset == "humaneval" and entry == "find_zero":
        return abs(_poly(*inp, out)) <= atol, atol
    if atol == 0 and is_floats(exp):
        atol = FLOAT_ATOL
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False, atol
        if isinstance(exp, list | tuple) and len(out) != len(exp):
            return False, atol
        return allclose(out, exp, atol), atol
    return bool(exact), atol


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:200]
    except BaseException:
        return type(exc).__name__


def _call(fn: Callable[..., Any], inp: list[Any], limit: float) -> Any:
    _setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*inp)
    finally:
        _setitimer(signal.ITIMER_REAL, 0)


def _load(scope: dict[str, Any], code: str, entry: str) -> Callable[..., Any]:
    module: dict[str, Any] = {"__name__": scope.get("__name__", "__coderm_gt__")}
    if "__builtins__" in scope:
        module["__builtins__"] = scope["__builtins__"]
    exec(compile(code, "<solution>", "exec"), module)
    fn = module.get(entry)
    if not callable(fn):
        raise AssertionError(f"the solution defines no function {entry!r}")
    return cast(Callable[..., Any], fn)


def check(scope: dict[str, Any], code: str, spec: dict[str, Any]) -> None:
    """One ground-truth check (``spec["label"]`` is ``base`` or ``plus``).

    Passes silently; raises ``AssertionError`` on a wrong output, ``TimeoutError`` when
    an input or the check runs out of time, ``RuntimeError`` when the solution raised.
    A passed base check leaves a flag in ``scope``. The plus check runs whatever the
    base check gave: evalplus's ``plus_status`` is the plus inputs' verdict alone, and
    CodeRM labels solutions by it.
    """
    started = _monotonic()
    label = spec["label"]
    inputs, expected = decode(spec["inputs"]), decode(spec["expected"])
    digests: dict[str, str] = spec.get("digests", {})
    limits: list[float] = spec["limits"]
    entry, dataset, atol = spec["entry_point"], spec["dataset"], float(spec["atol"])
    fn = _load(scope, code, entry)
    previous = _set_handler(signal.SIGALRM, _on_alarm)
    try:
        for i, (inp, exp) in enumerate(zip(inputs, expected, strict=True)):
            remaining = spec["budget_s"] - (_monotonic() - started)
            if remaining <= 0:
                raise TimeoutError(f"{label} inputs exceeded {spec['budget_s']:.3g} s in all")
            try:
                out = _call(fn, inp, min(limits[i], remaining))
            except InputTimeout:
                raise TimeoutError(f"{label} input {i} exceeded {limits[i]:.3g} s") from None
            except BaseException as exc:
                raise RuntimeError(f"{label} input {i}: {_describe(exc)}") from None
            try:
                if str(i) in digests:
                    ok = trusted(out) and digest(out) == digests[str(i)]
                else:
                    ok, atol = outputs_match(out, exp, inp, atol, entry, dataset)
            except BaseException:
                ok = False
            if not ok:
                raise AssertionError(f"{label} input {i}: wrong output")
    finally:
        _set_handler(signal.SIGALRM, previous)
    if label == "base":
        scope[BASE_FLAG] = True
