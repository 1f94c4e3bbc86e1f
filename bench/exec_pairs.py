"""Executor benchmark: CodeRM's execution model against ``coderm exec-pairs``, side by side.

    .venv/bin/python -m bench.exec_pairs [--limit N] [--no-adaptive] [--bwrap] [--json OUT]

On the 12,290-pair set of :mod:`bench.pair_set` (first 10 CodeGen-16B solutions x first
10 tests of every HumanEval problem, wrapped and paired exactly as CodeRM's scripts write
its pair file) it runs (a) the baseline of :mod:`bench.reference_executor` (CodeRM's
execution model: its globals, one process per pair, 1 s alarm, join 2 s, a pool of 2
workers, chunks of 1,000) and (b) our sandbox through the code path of ``coderm
exec-pairs`` (CodeRM's globals, 1 s semantics), then (c) the same with the adaptive
limit (and with ``--bwrap``, (b) on the bubblewrap backend, its verdicts compared with
Docker's), and
prints pairs/s, the ratio, verdict agreement with every disagreement, the floor (time
spent inside the pairs' modules / cores) and our per-pair overhead (wall x cores -
in-pair time, per pair). Needs Docker and the sandbox image (``bash sandbox/build.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import reference_executor
from bench.pair_set import build_pairs
from sandbox.client import JobResult, Timings
from services.cli import exec_pairs
from shared.core.profiles import AdaptiveLimit
from shared.enums import Outcome
from shared.settings import ExecutorSettings, host_cores

SKIPPED = "the solution alone"  # detail of pairs decided without running


@dataclass(frozen=True)
class Ours:
    """One run of exec-pairs' code path."""

    seconds: float
    results: list[JobResult]  # per input pair
    executed: int  # distinct modules that ran
    in_pair_s: float  # time inside the modules that ran
    timings: Timings  # the sandbox runs' phases, CPU (all their processes) and containers


def load() -> str:
    """The host's 1-minute load average (other jobs slow both sides down)."""
    return f"load {os.getloadavg()[0]:.1f}"


#: The baseline's interpreter environment: the standard library plus the numpy and pandas
#: releases the sandbox image has, as CodeRM's executor image gives its pairs the standard
#: library plus numpy and pandas (nothing else this project's virtualenv holds, such as
#: matplotlib, which a solution could otherwise import in the baseline alone).
REFERENCE_PACKAGES = ("numpy==1.24.4", "pandas==1.5.3")
REFERENCE_ENV = Path(__file__).resolve().parents[1] / "var" / "bench" / "reference-env"


def reference_python(env: Path = REFERENCE_ENV) -> Path:
    """The baseline's interpreter: a virtualenv made once with only
    :data:`REFERENCE_PACKAGES` (remade when that list changes)."""
    python, stamp = env / "bin" / "python", env / "packages.txt"
    wanted = "\n".join(REFERENCE_PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *REFERENCE_PACKAGES], check=True)
    stamp.write_text(wanted)
    return python


def run_reference(codes: list[str]) -> list[reference_executor.ReferenceResult]:
    """The baseline, in :func:`reference_python`'s interpreter, isolated from the
    working directory (``-I``)."""
    script = Path(reference_executor.__file__)
    proc = subprocess.run(
        [str(reference_python()), "-I", str(script)],
        input=json.dumps(codes),
        capture_output=True,
        text=True,
        check=True,
    )
    return [reference_executor.ReferenceResult(*row) for row in json.loads(proc.stdout)]


def run_ours(
    pairs: list[exec_pairs.PairLine],
    options: exec_pairs.ExecOptions,
    cores: int,
    backend: str | None = None,
) -> Ours:
    """Plan and execute as ``coderm exec-pairs`` does (on ``backend``, by default the
    settings' own)."""
    started = time.monotonic()
    planned = exec_pairs.plan(pairs, options)
    sandbox = ExecutorSettings().sandbox
    if backend is not None:
        sandbox = sandbox.model_copy(update={"backend": backend})
    settings = exec_pairs.sandbox_settings(sandbox, cores)
    stats = exec_pairs.ExecStats()
    by_key = asyncio.run(
        exec_pairs.execute(planned.batches, settings, options, lambda _n: None, stats)
    )
    seconds = time.monotonic() - started
    broken = sum(r.outcome is Outcome.SANDBOX_ERROR for r in by_key.values())
    if broken:
        sample = next(r.detail for r in by_key.values() if r.outcome is Outcome.SANDBOX_ERROR)
        raise SystemExit(f"{broken} modules got no verdict from the sandbox: {sample}")
    ran = [
        r
        for r in by_key.values()
        if r.duration_ms is not None and not (r.detail or "").startswith(SKIPPED)
    ]
    in_pair = sum(r.duration_ms or 0.0 for r in ran) / 1e3
    results = [by_key[k] for k in planned.job_of_pair]
    return Ours(seconds, results, len(ran), in_pair, stats.timings)


def _disagreements(
    pairs: list[exec_pairs.PairLine],
    reference: list[reference_executor.ReferenceResult],
    ours: list[JobResult],
) -> list[str]:
    lines = []
    for pair, ref, our in zip(pairs, reference, ours, strict=True):
        if ref.passed != (our.outcome is Outcome.PASS):
            ref_ms = "killed" if ref.ms is None else f"{ref.ms:.0f} ms"
            lines.append(
                f"  {pair.task_id} sol {pair.sol_id} ut {pair.ut_id}: reference "
                f"{'pass' if ref.passed else 'fail'} ({ref_ms}), ours {our.outcome.value}"
                f" ({our.duration_ms or 0:.0f} ms) {our.detail or ''}"[:200]
            )
    return lines


def _report_ours(
    name: str,
    run: Ours,
    pairs: list[exec_pairs.PairLine],
    reference: list[reference_executor.ReferenceResult] | None,
    reference_rate: float | None,
    cores: int,
) -> dict[str, object]:
    n = len(pairs)
    rate = n / run.seconds
    outcomes = Counter(r.outcome.value for r in run.results)
    overhead_ms = (run.seconds * cores - run.in_pair_s) / n * 1e3
    per_run_ms = (run.seconds * cores - run.in_pair_s) / max(run.executed, 1) * 1e3
    print(f"\n{name}: {run.seconds:.1f} s, {rate:.0f} pairs/s ({load()} after)", end="")
    print(f" ({rate / reference_rate:.2f}x the reference)" if reference_rate else "")
    print(f"  outcomes {dict(outcomes)}; {run.executed} distinct modules ran")
    print(f"  in-pair time {run.in_pair_s:.1f} s -> floor {run.in_pair_s / cores:.1f} s")
    print(
        f"  overhead (wall x {cores} cores - in-pair) {overhead_ms:.2f} ms per pair,"
        f" {per_run_ms:.2f} ms per module run"
    )
    timings = run.timings
    cpu_ms = (timings.cpu_s - run.in_pair_s) / n * 1e3
    print(
        f"  sandbox CPU {timings.cpu_s:.1f} s in {timings.containers} containers:"
        f" {cpu_ms:.2f} ms per pair beyond in-pair time; container phases (summed)"
        f" create {timings.create_s:.1f} s, run {timings.run_s:.1f} s,"
        f" delete {timings.delete_s:.1f} s"
    )
    summary: dict[str, object] = {
        "seconds": run.seconds,
        "pairs_per_s": rate,
        "outcomes": dict(outcomes),
        "executed": run.executed,
        "in_pair_s": run.in_pair_s,
        "overhead_ms_per_pair": overhead_ms,
        "overhead_ms_per_run": per_run_ms,
        "sandbox_cpu_s": timings.cpu_s,
        "cpu_overhead_ms_per_pair": cpu_ms,
        "containers": timings.containers,
        "sandbox_timings": timings.as_dict(),
    }
    if reference is not None:
        lines = _disagreements(pairs, reference, run.results)
        agreement = 1 - len(lines) / n
        print(f"  agreement with the reference {agreement:.2%} ({len(lines)} pairs differ)")
        print("\n".join(lines[:60]))
        summary.update(agreement=agreement, disagreements=lines)
    return summary


def main(argv: list[str]) -> int:
    """Run the benchmark and print (optionally write) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N pairs only")
    parser.add_argument("--no-reference", action="store_true", help="skip the baseline")
    parser.add_argument("--no-adaptive", action="store_true", help="skip the adaptive run")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--bwrap", action="store_true", help="also run on the bwrap backend (needs root)"
    )
    args = parser.parse_args(argv)
    cores = host_cores()
    made = build_pairs()[: args.limit]
    pairs = [exec_pairs.PairLine(p.task_id, p.sol_id, p.ut_id, p.code) for p in made]
    codes = [p.code for p in pairs]
    print(f"{len(pairs)} pairs, {len(set(codes))} distinct modules, {cores} cores, {load()}")
    figures: dict[str, object] = {"pairs": len(pairs), "cores": cores}

    reference = None
    reference_rate = None
    if not args.no_reference:
        started, before = time.monotonic(), os.times()
        reference = run_reference(codes)
        seconds, after = time.monotonic() - started, os.times()
        reference_cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        reference_rate = len(pairs) / seconds
        in_pair = sum(r.ms if r.ms is not None else 2000.0 for r in reference) / 1e3
        killed = sum(r.killed for r in reference)
        passed = sum(r.passed for r in reference)
        name = "reference (process per pair, mp_num 2)"
        print(f"\n{name}: {seconds:.1f} s, {reference_rate:.0f} pairs/s ({load()} after)")
        print(f"  {passed} passes, {killed} killed after join(2); CPU {reference_cpu:.1f} s")
        print(f"  in-pair time {in_pair:.1f} s -> floor {in_pair / cores:.1f} s")
        figures["reference"] = {
            "seconds": seconds,
            "pairs_per_s": reference_rate,
            "passes": passed,
            "killed": killed,
            "in_pair_s": in_pair,
            "cpu_s": reference_cpu,
        }

    options = exec_pairs.ExecOptions()
    ours = run_ours(pairs, options, cores)
    figures["ours"] = _report_ours(
        "ours (exec-pairs, 1 s)", ours, pairs, reference, reference_rate, cores
    )
    if args.bwrap:
        run = run_ours(pairs, options, cores, backend="bwrap")
        name = "ours on the bwrap backend (exec-pairs, 1 s)"
        figures["bwrap"] = _report_ours(name, run, pairs, reference, reference_rate, cores)
        same = sum(
            (a.outcome, a.tests_run, a.tests_passed) == (b.outcome, b.tests_run, b.tests_passed)
            for a, b in zip(run.results, ours.results, strict=True)
        )
        print(
            f"  same verdicts as Docker: {same / len(pairs):.2%};"
            f" pairs/s {len(pairs) / run.seconds / (len(pairs) / ours.seconds):.2f}x Docker's"
        )
        figures["bwrap_same_verdicts"] = same / len(pairs)
    if not args.no_adaptive:
        adaptive = exec_pairs.ExecOptions(adaptive=AdaptiveLimit())
        run = run_ours(pairs, adaptive, cores)
        name = f"ours, adaptive ({AdaptiveLimit().tag()})"
        figures["adaptive"] = _report_ours(name, run, pairs, reference, reference_rate, cores)
        same = sum(a.outcome is b.outcome for a, b in zip(run.results, ours.results, strict=True))
        print(f"  same outcome as ours at 1 s: {same / len(pairs):.2%}")

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbenchmark process resident memory (max): {rss:.0f} MiB")
    figures["max_rss_mib"] = rss
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
