"""Run canonical solutions on their inputs in a sandbox container; return the outputs.

A thin adapter over the sandbox client: each problem becomes an ``ExpectedJob``
(``sandbox.client.jobs``), run in one container with exactly the executor's isolation
and framing by the runner's ``evalplus_expected`` job kind, under the client's one
retry policy (``sandbox.client.retry``). Outputs come back as ``repr`` text and are
accepted only if :func:`shared.core.pyliteral.decode` reads them back with the right
count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.client import ExpectedJob, JobResult, Sandbox, SandboxError, run_with_retries
from shared.core.oracle import Expected, Oracle
from shared.core.pyliteral import LiteralError, decode
from shared.enums import Outcome


class ExpectedOutputsError(Exception):
    """The sandbox could not compute expected outputs at all (not one problem's failure)."""


@dataclass(frozen=True)
class CanonicalRun:
    """One problem to run: its canonical program and its inputs."""

    task_id: str
    code: str
    entry_point: str
    oracle: Oracle

    def job(self, timeout_s: float) -> ExpectedJob:
        """The sandbox job computing this problem's outputs (keyed by its task id)."""
        return ExpectedJob(
            key=self.task_id,
            task_id=self.task_id,
            code=self.code,
            entry_point=self.entry_point,
            dataset=self.oracle.dataset,
            atol=self.oracle.atol,
            base_input=self.oracle.base_input,
            plus_input=self.oracle.plus_input,
            output_not_none=self.oracle.output_not_none,
            timeout_s=timeout_s,
        )


def _expected(line: dict[str, Any], oracle: Oracle) -> Expected | str:
    """The validated outputs of one result, or why they are unusable."""
    if "error" in line:
        return str(line["error"])
    try:
        expected = Expected.model_validate({k: line[k] for k in Expected.model_fields if k in line})
        base, plus = decode(expected.base), decode(expected.plus)
    except (KeyError, ValueError, LiteralError) as error:
        return f"unreadable outputs: {error}"
    counts = (len(base), len(expected.base_ms), len(plus), len(expected.plus_ms))
    if counts != (oracle.base_count, oracle.base_count, oracle.plus_count, oracle.plus_count):
        return f"output counts {counts} do not match the inputs"
    for outputs, digests in ((base, expected.base_digests), (plus, expected.plus_digests)):
        if any(
            not k.isdigit() or int(k) >= len(outputs) or outputs[int(k)] is not None
            for k in digests
        ):
            return "digests do not match the outputs they stand for"
    return expected


def parse_results(
    results: Mapping[str, JobResult], problems: Sequence[CanonicalRun]
) -> dict[str, Expected | str]:
    """Each problem's outputs (or the reason it has none) from its job's result."""
    parsed: dict[str, Expected | str] = {}
    for problem in problems:
        result = results.get(problem.task_id)
        if result is None:
            parsed[problem.task_id] = "no result from the sandbox"
        elif result.value is not None:
            parsed[problem.task_id] = _expected(result.value, problem.oracle)
        elif result.outcome is Outcome.PASS:
            parsed[problem.task_id] = "no outputs in the sandbox's result"
        else:
            parsed[problem.task_id] = result.detail or result.outcome.value
    return parsed


async def compute_expected(
    sandbox: Sandbox,
    problems: Sequence[CanonicalRun],
    per_problem_s: float = 120.0,
) -> dict[str, Expected | str]:
    """Run the problems' canonical solutions in one sandbox run; return each
    problem's expected outputs, or the reason it has none (raised, timed out, outputs
    that are not plain data). ExpectedOutputsError when the sandbox failed as a whole."""
    if not problems:
        return {}
    jobs = [p.job(per_problem_s) for p in problems]
    try:
        batch = await run_with_retries(sandbox, jobs)
    except SandboxError as error:
        raise ExpectedOutputsError(f"sandbox failed: {error}") from error
    except ValueError as error:  # two problems with the same task id
        raise ExpectedOutputsError(str(error)) from error
    return parse_results(batch.results, problems)
