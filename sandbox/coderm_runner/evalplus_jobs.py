"""The evalplus job kinds: ground-truth checks of a solution against stored outputs
(run as assert jobs) and the expected outputs of canonical solutions.

- ``evalplus_check``: ``{"key", "solution", "checks": [{"key", "spec"}],
  "time_limit_s", "setup_time_limit_s"}``, ``solution`` and each ``spec`` (the Python
  literal of a check's spec, see :func:`.evalplus_check.check`) a text index or a
  string. It becomes an ``asserts`` job whose setup loads :mod:`.evalplus_check`'s
  source into a fresh namespace (with its own copy of the builtins, so a solution
  cannot patch what the comparison calls) and whose checks call its ``check`` on the
  solution, each executing the solution afresh.
- ``evalplus_expected``: ``{"key", "task_id", "code", "entry_point", "dataset", "atol",
  "base_input", "plus_input", "output_not_none", "timeout_s"}``: one result line whose
  ``value`` is :func:`.evalplus_expected.run_problem`'s result object (outcome
  ``pass``, or ``error`` with the reason as detail when it has an ``error``).
"""

from __future__ import annotations

import functools
import os

from .common import ERROR, PASS, JsonDict
from .output import Output

CHECK = "evalplus_check"
EXPECTED = "evalplus_expected"


@functools.cache
def check_source() -> str:
    """The source of :mod:`.evalplus_check`, as the image holds it."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "evalplus_check.py")
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_program() -> str:
    """The setup of an ``evalplus_check`` job: the comparison code in its own namespace."""
    return (
        "_coderm_gt = {'__name__': '_coderm_gt', "
        "'__builtins__': dict(__import__('builtins').__dict__)}\n"
        f"exec(compile({check_source()!r}, '<coderm-gt>', 'exec'), _coderm_gt)\n"
    )


def _text(raw: object, texts: list[str]) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(texts):
        return texts[raw]
    if isinstance(raw, str):
        return raw
    raise ValueError("a job's text must be a text index or a string")


def as_asserts(job: JsonDict, texts: list[str]) -> JsonDict:
    """The ``asserts`` job that runs an ``evalplus_check`` job; ValueError/KeyError if
    it is malformed."""
    solution = _text(job["solution"], texts)
    call = f"_coderm_gt['check'](globals(), {solution!r}, "
    checks = [
        {"key": str(c["key"]), "code": f"{call}{_text(c['spec'], texts)})\n"} for c in job["checks"]
    ]
    return {
        "kind": "asserts",
        "key": str(job["key"]),
        "setup": load_program(),
        "checks": checks,
        "time_limit_s": float(job["time_limit_s"]),
        "setup_time_limit_s": float(job["setup_time_limit_s"]),
    }


def run_expected(job: JsonDict, texts: list[str], out: Output) -> None:
    """Compute an ``evalplus_expected`` job's outputs and report its result line."""
    from .evalplus_expected import run_problem  # only batches that compute outputs load it

    problem = {
        "task_id": str(job["task_id"]),
        "code": _text(job["code"], texts),
        "entry_point": str(job["entry_point"]),
        "dataset": str(job["dataset"]),
        "atol": job["atol"],
        "base_input": _text(job["base_input"], texts),
        "plus_input": _text(job["plus_input"], texts),
        "output_not_none": bool(job["output_not_none"]),
    }
    value = run_problem(problem, float(job["timeout_s"]))
    error = value.get("error")
    if error is None:
        out.result(str(job["key"]), PASS, value=value)
    else:
        out.result(str(job["key"]), ERROR, detail=str(error), value=value)
