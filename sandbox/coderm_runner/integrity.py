"""What a pair cannot tamper with: a :class:`Snapshot` of the unittest machinery
taken before any candidate code runs, and the audit hook (:class:`Guard`) that keeps
a pair's signals and introspection inside the pair.
"""

from __future__ import annotations

import contextlib
import operator
import os
import sys
from collections.abc import Callable, Iterator
from types import FunctionType
from typing import Any

from .common import CRASH, ERROR

# numpy (and so pandas) imports ctypes, whose own import loads the C library (a
# "ctypes.dlopen" event). Imported here, before any audit hook is installed, a pair's
# later import of it fires nothing, while every use of it (dlopen, string_at,
# from_address, ...) still reaches the hook. Only the module is loaded.
with contextlib.suppress(ImportError):
    import ctypes  # noqa: F401

GUARDED_MODULES = (
    "unittest",
    "unittest.case",
    "unittest.result",
    "unittest.runner",
    "unittest.suite",
    "unittest.loader",
)

_DATA_TYPES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _is_behaviour(value: object) -> bool:
    """Whether replacing ``value`` can change behaviour (not a plain data attribute)."""
    return not isinstance(value, _DATA_TYPES)


def _functions_of(value: object) -> Iterator[FunctionType]:
    if isinstance(value, FunctionType):
        yield value
    elif isinstance(value, classmethod | staticmethod):
        yield from _functions_of(value.__func__)
    elif isinstance(value, property):
        for accessor in (value.fget, value.fset, value.fdel):
            yield from _functions_of(accessor)


class Snapshot:
    """The unittest machinery (and this runner) as they were before candidate code ran.

    Checked after the pair's module ran (``violations``): a module replaced in
    ``sys.modules``; a class or function of a unittest module rebound; a method of a
    unittest class replaced, added or removed; a trace or profile function left set.
    Replacing a function's code or defaults is reported as it happens by the pair's
    audit hook (``protected``: unittest's and the runner's classes and functions).
    Plain data attributes (``TestCase.maxDiff``) may change. Only the unittest modules
    are checked, not every module and builtin: a forked process pays a page copy for
    every object it touches.
    """

    def __init__(self) -> None:
        self.modules = tuple((n, sys.modules[n]) for n in GUARDED_MODULES if n in sys.modules)
        namespaces: list[Any] = [vars(module) for _, module in self.modules]
        owners: list[type | FunctionType] = []
        for namespace in list(namespaces):
            for value in namespace.values():
                unittest_class = isinstance(value, type) and value.__module__.startswith("unittest")
                if unittest_class and value not in owners:
                    owners.append(value)
                    namespaces.append(value.__dict__)
        this = sys.modules[__name__]
        owners.extend(v for v in vars(this).values() if getattr(v, "__module__", None) == __name__)
        groups: list[tuple[Any, tuple[str, ...], tuple[object, ...]]] = []
        for namespace in namespaces:
            names = tuple(n for n, v in namespace.items() if _is_behaviour(v))
            groups.append((namespace, names, tuple(namespace[n] for n in names)))
        protected: set[int] = set()
        for owner in owners:
            protected.add(id(owner))
            for attr in vars(owner).values() if isinstance(owner, type) else [owner]:
                protected.update(id(f) for f in _functions_of(attr))
        self.groups = tuple(groups)
        self.sizes = tuple((ns, len(ns)) for ns in namespaces[len(self.modules) :])
        self.protected = frozenset(protected)
        self.registry = sys.modules
        self.hooks = (sys.gettrace, sys.getprofile)

    def violations(
        self,
        is_not: Callable[[object, object], bool] = operator.is_not,
        values_of: Callable[..., Iterator[Any]] = map,
        pairs_of: Callable[..., Iterator[tuple[Any, ...]]] = zip,
    ) -> list[str]:
        """What was replaced since the snapshot was taken (empty if nothing)."""
        found = [f"sys.modules[{n!r}]" for n, m in self.modules if self.registry.get(n) is not m]
        for namespace, names, values in self.groups:
            current = tuple(values_of(namespace.get, names))
            if any(values_of(is_not, current, values)):
                found.extend(n for n, a, b in pairs_of(names, current, values) if a is not b)
        for namespace, size in self.sizes:
            if len(namespace) != size:
                found.append("a method added to a unittest class")
        if any(hook() is not None for hook in self.hooks):
            found.append("a trace or profile function")
        return found


def _own_process(pid: int, own_group: int) -> bool:
    """Whether signalling ``pid`` (``os.kill`` semantics) stays inside our group."""
    if pid == 0 or pid == -own_group:
        return True
    if pid <= 0:
        return False
    try:
        return os.getpgid(pid) == own_group
    except OSError:
        return True  # no such process: the signal goes nowhere


INTROSPECTION = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})


class Guard:
    """The audit hook of the pairs' processes, installed once in the zygote (an audit
    hook cannot be removed, and a fork inherits it); each pair's process points
    ``report`` at its own result channel.

    Refuses signals to processes outside the pair (the runner, sibling pairs) and
    reports them (crash); reports tracing, replacing the code or defaults of a
    protected function, raw memory access (``ctypes``) and object-graph walks (``gc``)
    (error).
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.protected = snapshot.protected
        self.report: Callable[[str, str], None] | None = None

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        report = self.report
        if report is None:
            return
        if event == "os.kill" or event == "os.killpg":
            target = args[0] if event == "os.kill" else -args[0]
            if args[1] != 0 and not _own_process(int(target), os.getpgid(0)):
                report(CRASH, f"{event}{args}: signal outside the pair")
                raise PermissionError("the sandbox forbids signalling other processes")
        elif event == "object.__setattr__" or event == "object.__delattr__":
            if id(args[0]) in self.protected:  # a function's code or defaults
                report(ERROR, f"{event}: {getattr(args[0], '__name__', '?')}.{args[1]} patched")
        elif event == "sys.settrace" or event == "sys.setprofile":
            report(ERROR, f"{event}: tracing is not allowed")
        elif event in INTROSPECTION or event.startswith("ctypes."):
            report(ERROR, f"{event}: not allowed")
