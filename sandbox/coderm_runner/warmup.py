"""Warming the interpreter before any fork: modules candidate code commonly imports,
and a small test module run until the interpreter has specialised unittest's code.
"""

from __future__ import annotations

import contextlib
import gc
import io
import unittest

# Modules candidate code commonly imports: importing them once here makes every pair
# that imports them cheaper. Rarely used heavier ones (decimal, statistics, datetime,
# hashlib) are left out: every fork pays for the runner's size. Failures are ignored
# (the image may lack some).
for _name in (
    "bisect",
    "collections",
    "copy",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "string",
    "typing",
):
    with contextlib.suppress(Exception):
        __import__(_name)


WARM_UP_TESTS = """
import io
import unittest

def _f(x):
    return x + 1

class _T(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(_f(1), 2)
        self.assertTrue(_f(0))
        self.assertIn(1, [1])
        assert _f(2) == 3

    def test_fail(self):
        self.assertEqual([_f(1), 2], [3, 4])

    def test_assert(self):
        assert _f(1) == 5

    def test_error(self):
        raise ValueError("x")

    def test_raises(self):
        with self.assertRaises(ZeroDivisionError):
            1 / 0

suite = unittest.TestLoader().loadTestsFromTestCase(_T)
"""

#: The strict wrapping: a module-level ``result``.
WARM_UP = (
    WARM_UP_TESTS
    + """
result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(suite)
"""
)

#: CodeRM's wrapping, for the reference namespace (``output``, ``locals_dict``).
WARM_UP_REFERENCE = (
    WARM_UP_TESTS
    + """
runner = unittest.TextTestRunner(stream=output, verbosity=2)
result = runner.run(suite)
locals_dict['result'] = result
"""
)


def reference_globals() -> dict[str, object]:
    """A namespace like the one a pair in reference mode gets (without builtins)."""
    return {"unittest": unittest, "output": io.StringIO(), "locals_dict": {}}


def warm_up(rounds: int = 10) -> None:
    """Run a small test module here, before forking, in both wrappings: the
    interpreter specialises the unittest code it runs and loads what failures need,
    so that pairs forked later copy fewer pages doing it themselves."""
    strict = compile(WARM_UP, "<warm-up>", "exec")
    reference = compile(WARM_UP_REFERENCE, "<warm-up>", "exec")
    for _ in range(rounds):
        exec(strict, {"__name__": "__coderm_warm_up__"})
        exec(reference, reference_globals())
    gc.collect()
