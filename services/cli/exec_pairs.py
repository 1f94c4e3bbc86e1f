"""``coderm exec-pairs``: CodeRM's executor as a drop-in, through our sandbox.

Input lines ``{task_id, sol_id, ut_id, code}`` (the pair's whole module: solution, a
blank line, the wrapped unit test), exactly as CodeRM's ``evaluation/evaluate.py``
writes its ``sol_ut.jsonl``; output lines ``{task_id, sol_id, ut_id, result, outcome,
duration_ms}`` in input order, ``result`` being CodeRM's pass/fail bit. By default each
module runs with CodeRM's executor globals (``unittest``, ``output``, ``locals_dict``
injected, the verdict read from ``locals_dict['result']``: how CodeRM's
``extract_unit_test.py`` wraps its tests); ``reference_globals=False`` runs our own
wrapping (module-level ``result``). docs/REPRODUCTION.md says where the verdicts can
still differ from CodeRM's executor. No database or broker is involved.

Work is avoided where the verdict cannot change: identical modules run once, and each
module is split back into its solution and its test (the part shared by the pairs of
the same ``sol_id`` and the part shared by those of the same ``ut_id``), so that the
sandbox compiles each once and fails all pairs of a solution that fails on its own.
Batches of whole problems run in sandbox containers, several at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sandbox.client import (
    JobResult,
    Sandbox,
    SandboxError,
    Timings,
    UnittestJob,
    default_parallel,
    open_backend,
    run_with_retries,
)
from shared.core.profiles import AdaptiveLimit
from shared.enums import Outcome
from shared.settings import ExecutorSettings, SandboxSettings, host_cores


class PairsFormatError(ValueError):
    """An input line is not a pair record."""


@dataclass(frozen=True)
class PairLine:
    """One input pair."""

    task_id: str
    sol_id: str | int
    ut_id: str | int
    code: str


@dataclass(frozen=True)
class ExecOptions:
    """How exec-pairs runs the pairs."""

    reference_globals: bool = True
    """CodeRM's executor globals (its pair files); False: our own test wrapping."""
    time_limit_s: float = 1.0
    kill_after_s: float = 2.0
    adaptive: AdaptiveLimit | None = None
    containers: int = 2
    """Sandbox containers at once."""
    parallel: int | None = None
    """Pairs a container runs at once (default: its CPUs + 1)."""
    batch_pairs: int = 8000
    """Distinct modules a container gets at most (whole problems: a batch may hold more)."""


def read_pairs(path: Path) -> list[PairLine]:
    """The pair records of a JSON Lines file; PairsFormatError on a bad line."""
    pairs: list[PairLine] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                pair = PairLine(raw["task_id"], raw["sol_id"], raw["ut_id"], raw["code"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PairsFormatError(f"{path}:{number}: not a pair record ({exc})") from exc
            if not isinstance(pair.code, str) or not isinstance(pair.task_id, str):
                raise PairsFormatError(f"{path}:{number}: task_id and code must be strings")
            pairs.append(pair)
    return pairs


def _common_prefix(texts: Sequence[str]) -> int:
    """Length of the longest prefix all ``texts`` share."""
    first, last = min(texts), max(texts)  # every text sorts between them
    low, high = 0, min(len(first), len(last))
    while low < high:
        middle = (low + high + 1) // 2
        if last.startswith(first[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(texts: Sequence[str]) -> int:
    return _common_prefix([t[::-1] for t in texts])


def solution_splits(pairs: Sequence[PairLine]) -> list[int | None]:
    """Where each pair's module splits into a solution and a test part, or None.

    A pair's module is ``S + "\\n\\n" + T``. The split is a ``"\\n\\n"`` at the same offset
    in all pairs of the same (task, sol_id), no later than the end of their common
    prefix, and no earlier than where the common suffix of each pair's (task, ut_id)
    group begins: the first such boundary. Any boundary inside that window gives parts
    shared by the groups; the sandbox checks that each part compiles alone and falls
    back to the whole module otherwise, so a wrong guess costs speed, never a verdict.
    """
    by_sol: dict[tuple[str, str], list[int]] = {}
    by_test: dict[tuple[str, str], list[int]] = {}
    for i, pair in enumerate(pairs):
        by_sol.setdefault((pair.task_id, str(pair.sol_id)), []).append(i)
        by_test.setdefault((pair.task_id, str(pair.ut_id)), []).append(i)
    suffix = [0] * len(pairs)
    for members in by_test.values():
        shared = _common_suffix([pairs[i].code for i in members])
        for i in members:
            suffix[i] = shared
    splits: list[int | None] = [None] * len(pairs)
    for members in by_sol.values():
        codes = [pairs[i].code for i in members]
        upper = _common_prefix(codes)
        lower = max(len(pairs[i].code) - suffix[i] for i in members)
        find = codes[0].rfind if len(members) > 1 else codes[0].find
        boundary = find("\n\n", max(lower - 2, 0), upper)
        if boundary < 0:
            continue
        for i in members:
            splits[i] = boundary
    return splits


@dataclass(frozen=True)
class Plan:
    """Sandbox batches for the distinct modules, and which job answers each pair."""

    batches: list[list[UnittestJob]]
    job_of_pair: list[str]


def plan(pairs: Sequence[PairLine], options: ExecOptions) -> Plan:
    """One job per distinct module, solution by solution, problems whole.

    Problems are dealt to ``max(containers, distinct / batch_pairs)`` batches, each
    problem to the batch with the fewest jobs so far: every container has work from
    the start, and the few expensive problems (a solution that loops costs a full
    limit on every test) spread out instead of leaving one batch running alone at
    the end.
    """
    splits = solution_splits(pairs)
    key_of_code: dict[str, str] = {}
    job_of_pair: list[str] = []
    by_task: dict[str, list[UnittestJob]] = {}
    for i, pair in enumerate(pairs):
        key = key_of_code.get(pair.code)
        if key is None:
            key = key_of_code[pair.code] = f"j{len(key_of_code)}"
            job = UnittestJob(
                key,
                pair.code,
                options.time_limit_s,
                options.kill_after_s,
                splits[i],
                options.adaptive,
                options.reference_globals,
            )
            by_task.setdefault(pair.task_id, []).append(job)
        job_of_pair.append(key)
    count = max(options.containers, math.ceil(len(key_of_code) / options.batch_pairs))
    batches: list[list[UnittestJob]] = [[] for _ in range(min(count, len(by_task)))]
    for jobs in by_task.values():
        min(batches, key=len).extend(jobs)
    return Plan(batches, job_of_pair)


def result_lines(
    pairs: Sequence[PairLine], job_of_pair: Sequence[str], results: dict[str, JobResult]
) -> Iterable[dict[str, object]]:
    """The output records, in input order."""
    for pair, key in zip(pairs, job_of_pair, strict=True):
        result = results[key]
        yield {
            "task_id": pair.task_id,
            "sol_id": pair.sol_id,
            "ut_id": pair.ut_id,
            "result": "pass" if result.outcome is Outcome.PASS else "fail",
            "outcome": result.outcome.value,
            "duration_ms": result.duration_ms,
        }


@dataclass
class ExecStats:
    """What executing cost: the sandbox timings of every batch, summed (containers run,
    CPU seconds their runners reported, phases)."""

    timings: Timings = field(default_factory=Timings)

    @property
    def containers(self) -> int:
        """Container runs."""
        return self.timings.containers

    @property
    def cpu_s(self) -> float:
        """CPU seconds the sandboxes' runners reported."""
        return self.timings.cpu_s


Advance = Callable[[int], None]
"""Called with the number of distinct modules that got a result since the last call
(negative when a broken run is repeated)."""


async def _run_batch(
    sandbox: Sandbox, jobs: list[UnittestJob], progress: Advance, stats: ExecStats
) -> dict[str, JobResult]:
    """One batch by the sandbox client's retry policy; when no run of it finished, its
    pairs are reported as ``sandbox_error``."""
    seen = 0

    def advance(lines: int) -> None:
        nonlocal seen
        done = min(lines, len(jobs))
        if done != seen:
            progress(done - seen)
            seen = done

    try:
        batch = await run_with_retries(sandbox, jobs, advance)
    except SandboxError as exc:
        stats.timings += exc.timings
        progress(len(jobs) - seen)
        failure = JobResult("", Outcome.SANDBOX_ERROR, None, None, None, str(exc))
        return {job.key: failure for job in jobs}
    stats.timings += batch.timings
    progress(len(jobs) - seen)
    return batch.results


async def execute(
    batches: list[list[UnittestJob]],
    settings: SandboxSettings,
    options: ExecOptions,
    progress: Advance,
    stats: ExecStats | None = None,
) -> dict[str, JobResult]:
    """Run the batches, ``options.containers`` sandboxes at once, in the backend of
    ``settings.backend`` (``CODERM_SANDBOX__BACKEND``: docker or bwrap)."""
    stats = stats if stats is not None else ExecStats()
    async with open_backend(settings, options.parallel) as sandbox:
        slots = asyncio.Semaphore(options.containers)
        results: dict[str, JobResult] = {}

        async def one(jobs: list[UnittestJob]) -> None:
            async with slots:
                results.update(await _run_batch(sandbox, jobs, progress, stats))

        await asyncio.gather(*(one(jobs) for jobs in batches))
        return results


def sandbox_settings(base: SandboxSettings, cpus: int) -> SandboxSettings:
    """Containers for exec-pairs: every host CPU each (they share the host; limits
    are effective time, so sharing changes no verdict) and memory for their pairs."""
    parallel = default_parallel(cpus)
    memory = max(base.memory_mb, 512 * parallel)
    return base.model_copy(update={"cpus": float(cpus), "memory_mb": memory})


def write_results(path: Path, lines: Iterable[dict[str, object]]) -> int:
    """Write the output records; how many."""
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
            count += 1
    return count


def run_command(input_path: Path, output_path: Path, options: ExecOptions, console: Console) -> str:
    """The whole command: read, plan, execute with a progress bar on a terminal, write.
    Returns a one-line summary."""
    pairs = read_pairs(input_path)
    planned = plan(pairs, options)
    distinct = sum(len(b) for b in planned.batches)
    settings = sandbox_settings(ExecutorSettings().sandbox, host_cores())
    started = time.monotonic()
    with Progress(
        TextColumn("exec-pairs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("modules", total=distinct)
        results = asyncio.run(
            execute(planned.batches, settings, options, lambda n: bar.advance(task, n))
        )
    seconds = time.monotonic() - started
    count = write_results(output_path, result_lines(pairs, planned.job_of_pair, results))
    passed = sum(r.outcome is Outcome.PASS for r in results.values())
    return (
        f"{count} pairs ({distinct} distinct modules, {passed} passing) in {seconds:.1f} s"
        f" = {count / max(seconds, 1e-9):.0f} pairs/s -> {output_path}"
    )
