"""Ground-truth jobs (a solution labelled correct or not) and the label rows they make.

Two kinds of labels (``shared/core/oracle.py``):

* ``tests`` (HumanEval): an ``AssertJob`` whose setup is the solution and whose one
  check is the benchmark's ``test`` code and ``check(entry_point)`` (key ``g:<id>``);
* ``outputs`` (evalplus): an ``EvalplusCheckJob`` whose two checks, base inputs
  (``gb:<id>``) then plus inputs (``g:<id>``), each execute the solution afresh and
  compare its outputs with the stored ones by the comparison code shipped with the
  runner (``sandbox/coderm_runner/evalplus_check.py``). Both checks always run.
  ``ground_truth.passed`` keeps the headline base-and-plus verdict, ``base_passed``
  the base inputs' alone and ``plus_passed`` the plus inputs' alone (evalplus's
  ``plus_status``, by which CodeRM labels solutions).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.client import AssertCheck, AssertJob, EvalplusCheck, EvalplusCheckJob, JobResult
from shared.core.oracle import Oracle, check_budget, input_limits
from shared.core.profiles import ExecLimits
from shared.enums import Outcome

#: Seconds the runner's own limit of an outputs check adds to the check's budget, so that
#: the check's in-process accounting decides and the runner's kill is only a backstop.
RUNNER_MARGIN_S = 1.0


def label_key(solution_id: int) -> str:
    """Key of a solution's headline ground-truth check."""
    return f"g:{solution_id}"


def base_key(solution_id: int) -> str:
    """Key of a solution's base-input check (evalplus benchmarks)."""
    return f"gb:{solution_id}"


def ground_truth_program(test_code: str, entry_point: str) -> str:
    """HumanEval-style hidden test: define ``check`` and call it on the entry point."""
    return f"{test_code}\n\ncheck({entry_point})\n"


@dataclass(frozen=True)
class OutputsLabel:
    """evalplus-style labelling of one problem's solutions: the two checks' fixed parts
    (``spec`` literals shared by every solution) and the job's time limit."""

    base_spec: str
    plus_spec: str
    time_limit_s: float

    def job(self, solution_id: int, code: str, setup_time_limit_s: float) -> EvalplusCheckJob:
        """The solution's ground-truth job: base check, then plus check, each run whatever
        the other gave (the runner loads the comparison code in each worker it starts,
        also in one started afresh after a check timed out)."""
        return EvalplusCheckJob(
            key=f"gt:{solution_id}",
            solution=code,
            checks=(
                EvalplusCheck(base_key(solution_id), self.base_spec),
                EvalplusCheck(label_key(solution_id), self.plus_spec),
            ),
            time_limit_s=self.time_limit_s,
            setup_time_limit_s=setup_time_limit_s,
        )


def outputs_label(entry_point: str, oracle: Oracle) -> OutputsLabel:
    """The labelling of a problem whose expected outputs are stored in ``oracle``."""
    expected = oracle.expected
    if expected is None:
        raise ValueError("the problem's expected outputs were never computed")
    specs: dict[str, str] = {}
    budgets: list[float] = []
    for label, inputs, outputs, times, digests in (
        ("base", oracle.base_input, expected.base, expected.base_ms, expected.base_digests),
        ("plus", oracle.plus_input, expected.plus, expected.plus_ms, expected.plus_digests),
    ):
        limits = input_limits(times)
        budgets.append(check_budget(limits))
        spec = {
            "label": label,
            "entry_point": entry_point,
            "dataset": oracle.dataset,
            "atol": oracle.atol,
            "inputs": inputs,
            "expected": outputs,
            "digests": digests,
            "limits": [round(limit, 4) for limit in limits],
            "budget_s": budgets[-1],
        }
        specs[label] = repr(spec)
    return OutputsLabel(specs["base"], specs["plus"], max(budgets) + RUNNER_MARGIN_S)


GroundTruthSource = str | OutputsLabel
"""How a batch's solutions are labelled: a HumanEval-style program run after the solution
(``tests``) or stored outputs (``outputs``)."""


def ground_truth_job(
    source: GroundTruthSource, solution_id: int, code: str, limits: ExecLimits
) -> AssertJob | EvalplusCheckJob:
    """The ground-truth job of one solution."""
    if isinstance(source, OutputsLabel):
        return source.job(solution_id, code, limits.setup_time_limit_s)
    return AssertJob(
        key=f"gt:{solution_id}",
        setup=code,
        checks=(AssertCheck(label_key(solution_id), source),),
        time_limit_s=limits.ground_truth_time_limit_s,
        setup_time_limit_s=limits.setup_time_limit_s,
    )


def _outcome(result: JobResult) -> Outcome:
    """A check's outcome; the outputs check reports its own time-outs as a
    ``TimeoutError`` (an error to the runner), which is a time-out here."""
    if result.outcome is Outcome.ERROR and (result.detail or "").startswith("TimeoutError"):
        return Outcome.TIMEOUT
    return result.outcome


def label_rows(results: dict[str, JobResult], profile: str) -> list[dict[str, object]]:
    """One ``ground_truth`` row per labelled solution from its check results (keys
    ``g:<id>`` and, for evalplus benchmarks, ``gb:<id>``).

    ``passed`` is the headline verdict (base and plus inputs), ``base_passed`` and
    ``plus_passed`` the base and the plus inputs' alone (``None`` for HumanEval-style
    labels); the outcome, duration and detail are the first failing check's (both
    checks' total duration).
    """
    rows: list[dict[str, object]] = []
    for key, plus in results.items():
        kind, _, sid = key.partition(":")
        if kind != "g":
            continue
        base = results.get(f"gb:{sid}")
        checks = [plus] if base is None else [base, plus]
        failed = next((r for r in checks if r.outcome is not Outcome.PASS), None)
        durations = [r.duration_ms for r in checks if r.duration_ms is not None]
        rows.append(
            {
                "solution_id": int(sid),
                "profile": profile,
                "outcome": (Outcome.PASS if failed is None else _outcome(failed)).value,
                "passed": failed is None,
                "base_passed": None if base is None else base.outcome is Outcome.PASS,
                "plus_passed": None if base is None else plus.outcome is Outcome.PASS,
                "duration_ms": sum(durations) if durations else None,
                "detail": None if failed is None else failed.detail,
            }
        )
    return rows
