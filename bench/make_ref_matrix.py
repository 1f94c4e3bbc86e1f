"""Make the small real matrix of ``tests/unit/test_coderm_reference.py``.

The first ``--problems`` problems (default 5) of :func:`bench.pair_set.build_pairs`
(real CodeGen-Mono-16B HumanEval solutions x CodeRM-style unittest tests made from
its test samples, 10 x at most 10 a problem) are run on the host by
:func:`bench.reference_executor.run_pairs` (CodeRM's execution model: a fresh process
a pair, 1 s alarm); each solution is labelled by running it with the HumanEval
problem's own ``test`` code and ``check(entry_point)`` the same way. Both are written
in the shapes CodeRM's ``evaluation/calculate_result.py`` reads:

* ``sol_anno.jsonl``: ``{"task_id", "solutions": [{"solution", "plus_status"}]}`` a
  problem, ``plus_status`` ``"pass"`` iff the HumanEval check passed (``sol_id`` =
  position in ``solutions``);
* ``ut_result.jsonl``: ``{"task_id", "sol_id", "ut_id", "result", "details"}`` a pair,
  ``result`` ``"pass"``/``"fail"``, ``ut_id`` = position of the test in the
  problem's list of distinct tests (as ``extract_unit_test.py`` numbers them),
  ``details`` ``{"killed": bool}`` (the parent had to kill the pair).

    .venv/bin/python -m bench.make_ref_matrix [--out tests/data/coderm-reference]

This runs model-written code on the host, unsandboxed (as CodeRM's executor does).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.pair_set import PROBLEMS, PairInput, build_pairs
from bench.reference_executor import run_pairs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "coderm-reference"


def label_module(solution: str, test: str, entry_point: str) -> str:
    """The solution, the problem's ``test`` code and ``check(entry_point)``; reaching
    the end hands an empty (successful) ``unittest`` result back through
    ``locals_dict['result']``, as CodeRM's wrapped tests hand theirs, so an exception
    or a timeout in the check is a fail."""
    return (
        f"{solution}\n\n{test}\n\ncheck({entry_point})\n"
        "locals_dict['result'] = unittest.TestResult()\n"
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send what the pairs print (file descriptors 1 and 2) to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def first_problems(pairs: list[PairInput], count: int) -> dict[str, list[PairInput]]:
    """The pairs of the first ``count`` task ids, in pair order."""
    out: dict[str, list[PairInput]] = {}
    for pair in pairs:
        if pair.task_id not in out and len(out) == count:
            break
        out.setdefault(pair.task_id, []).append(pair)
    return out


def _humaneval() -> dict[str, dict[str, Any]]:
    with gzip.open(PROBLEMS, "rt", encoding="utf-8") as f:
        return {str(r["task_id"]): r for r in map(json.loads, f) if r}


def make(count: int, mp_num: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Annotation lines and result lines of the first ``count`` problems."""
    by_task = first_problems(build_pairs(), count)
    problems = _humaneval()
    solutions: dict[str, dict[int, str]] = {}
    for task_id, pairs in by_task.items():
        solutions[task_id] = {p.sol_id: p.solution for p in pairs}
    label_codes = [
        label_module(code, str(problems[t]["test"]), str(problems[t]["entry_point"]))
        for t, sols in solutions.items()
        for code in (sols[s] for s in sorted(sols))
    ]
    pairs = [p for ps in by_task.values() for p in ps]
    with quiet():
        labels = run_pairs(label_codes, mp_num)
        verdicts = run_pairs([p.code for p in pairs], mp_num)
    label_iter = iter(labels)
    anno = [
        {
            "task_id": t,
            "solutions": [
                {"solution": sols[s], "plus_status": "pass" if next(label_iter).passed else "fail"}
                for s in sorted(sols)
            ],
        }
        for t, sols in solutions.items()
    ]
    positions = {
        t: {u: k for k, u in enumerate(sorted({p.ut_id for p in ps}))} for t, ps in by_task.items()
    }
    results = [
        {
            "task_id": p.task_id,
            "sol_id": p.sol_id,
            "ut_id": positions[p.task_id][p.ut_id],
            "result": "pass" if r.passed else "fail",
            "details": {"killed": r.killed},
        }
        for p, r in zip(pairs, verdicts, strict=True)
    ]
    return anno, results


def write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    """JSON Lines, one record a line."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def main() -> int:
    """Build the matrix and write both files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory [{OUT}]")
    parser.add_argument("--problems", type=int, default=5, help="first K problems [5]")
    parser.add_argument("--mp-num", type=int, default=2, help="worker processes [2]")
    options = parser.parse_args()
    anno, results = make(options.problems, options.mp_num)
    options.out.mkdir(parents=True, exist_ok=True)
    write_lines(options.out / "sol_anno.jsonl", anno)
    write_lines(options.out / "ut_result.jsonl", results)
    passed = sum(1 for r in results if r["result"] == "pass")
    correct = sum(1 for a in anno for s in a["solutions"] if s["plus_status"] == "pass")
    print(
        f"{len(anno)} problems, {sum(len(a['solutions']) for a in anno)} solutions "
        f"({correct} correct), {len(results)} pairs ({passed} pass) -> {options.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
