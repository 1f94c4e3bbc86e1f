"""The CodeGen-16B HumanEval set as CodeRM-style unittest classes, through the pipeline.

Imports CodeT's 100 solution bodies a problem (policy ``codegen16b``) and its 100 test
samples a problem turned into one ``unittest`` class each (``--as-unittest``: first 5
asserts, one method each, wrapped as CodeRM wraps tests; model ``codegen16b-ut``),
then runs all of it through generator -> extractor -> executor(s) -> scorer with
CodeRM's 1 s / 2 s semantics, on a fresh database (a cold execution cache) and its own
queue names, with services it starts itself (the infrastructure must be up:
``deploy/local/up.sh --infra-only``). Prints wall time, pairs/s, executed vs cached
pairs, the executors' resident memory and the run's metrics; ``--rescore`` submits
the same run again (everything cached).

    .venv/bin/python -m bench.pipeline_unittest                  # all 164 problems
    .venv/bin/python -m bench.pipeline_unittest --problems 5 --executors 2
    .venv/bin/python -m bench.pipeline_unittest --env CODERM_SANDBOX__CPUS=2 --run-arg=--name=x
    .venv/bin/python -m bench.pipeline_unittest --then-adaptive   # and the same with --adaptive
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.settings import reference_data_dir
from tests.stack import (
    Services,
    Stack,
    cli,
    create_stack,
    drop_stack,
    query,
    run_services,
    submit,
    wait_run_finished,
)

DATA = reference_data_dir()
CODET = "codet-codegen16b/HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_"


def import_set(stack: Stack, data: Path) -> None:
    """HumanEval, the solution bodies, and the test samples as unittest classes."""
    steps = [
        (
            *("import-benchmark", "humaneval"),
            *("--file", str(data / "humaneval" / "HumanEval_for_code_generation.jsonl.gz")),
            "--test-prompts",
            str(data / "humaneval" / "HumanEval_for_test_case_generation.jsonl.gz"),
        ),
        (
            *("import-completions", str(data / f"{CODET}code_solution.jsonl.gz")),
            *("--benchmark", "humaneval", "--model", "codegen16b", "--role", "solution"),
        ),
        (
            *("import-completions", str(data / f"{CODET}test_case.jsonl.gz")),
            *("--benchmark", "humaneval", "--model", "codegen16b-ut", "--role", "test"),
            "--as-unittest",
        ),
    ]
    for step in steps:
        result = cli(stack, *step)
        if result.returncode != 0:
            raise SystemExit(f"coderm {step[0]} failed:\n{result.stdout}{result.stderr}")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / tick, idle / tick


#: CPU time of every Docker container, removed ones included (cgroup v1, cgroupfs driver)
CONTAINERS_CPU = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")


def containers_cpu() -> float | None:
    """CPU seconds all Docker containers used since boot, where the cgroup tells."""
    try:
        return int(CONTAINERS_CPU.read_text()) / 1e9
    except (OSError, ValueError):
        return None


def process_cpu(pid: int) -> float:
    """CPU seconds a process and its reaped children used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@contextmanager
def watch_cpu(services: Services) -> Iterator[dict[str, float]]:
    """The machine's busy and idle CPU seconds while the block runs, and each
    service's own (containers run under dockerd, not under the executor)."""
    figures: dict[str, float] = {}
    start = {name: process_cpu(p.pid) for name, p in services.processes.items()}
    busy, idle = machine_cpu()
    sandboxes = containers_cpu()
    try:
        yield figures
    finally:
        busy_end, idle_end = machine_cpu()
        figures["machine busy"], figures["machine idle"] = busy_end - busy, idle_end - idle
        sandboxes_end = containers_cpu()
        if sandboxes is not None and sandboxes_end is not None:
            figures["sandbox containers"] = sandboxes_end - sandboxes
        for name, process in services.processes.items():
            with contextlib.suppress(OSError):
                figures[name] = process_cpu(process.pid) - start.get(name, 0.0)


@contextmanager
def watch_rss(services: Services, every: float = 0.5) -> Iterator[dict[str, float]]:
    """Sample the executors' resident memory while the block runs: name -> peak MiB."""
    peaks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for name, process in list(services.processes.items()):
                if name.startswith("executor"):
                    try:
                        current, hwm = rss_mb(process.pid)
                    except OSError:
                        continue
                    peaks[name] = max(peaks.get(name, 0.0), current, hwm)
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def report(stack: Stack, run_id: str, seconds: float) -> None:
    """Print the run's pair counts, throughput and metrics."""
    rid = uuid.UUID(run_id)
    counts = query(
        stack,
        """WITH t AS (SELECT rc.problem_id, count(DISTINCT ct.unit_test_id) AS tests
                      FROM run_completions rc
                      JOIN completion_tests ct ON ct.completion_id = rc.completion_id
                      WHERE rc.run_id = $1 AND rc.role = 'test' GROUP BY 1),
                s AS (SELECT rc.problem_id, count(cs.solution_id) AS samples,
                             count(DISTINCT cs.solution_id) AS solutions
                      FROM run_completions rc
                      JOIN completion_solutions cs ON cs.completion_id = rc.completion_id
                      WHERE rc.run_id = $1 AND rc.role = 'solution' GROUP BY 1)
           SELECT coalesce(sum(s.samples * t.tests), 0)::bigint AS sample_pairs,
                  coalesce(sum(s.solutions * t.tests), 0)::bigint AS unique_pairs,
                  coalesce(sum(t.tests), 0)::bigint AS tests
           FROM s JOIN t USING (problem_id)""",
        rid,
    )[0]
    batches = query(
        stack,
        """SELECT count(*) AS batches, coalesce(sum(executed), 0)::bigint AS executed,
                  coalesce(sum(seconds), 0) AS batch_seconds
           FROM execution_batches WHERE run_id = $1""",
        rid,
    )[0]
    outcomes = query(
        stack,
        """SELECT e.outcome, count(*) AS n, coalesce(sum(e.duration_ms), 0) / 1000 AS seconds
           FROM executions e JOIN runs r ON r.id = $1 AND e.profile = r.exec_profile
           GROUP BY 1 ORDER BY 2 DESC""",
        rid,
    )
    unique, executed = int(counts["unique_pairs"]), int(batches["executed"])
    print(f"run {run_id}: {seconds:.1f} s submit to finished")
    print(
        f"  pairs: {counts['sample_pairs']} (solution samples x distinct tests, "
        f"{counts['tests']} tests), {unique} distinct (solution, test) pairs"
    )
    print(
        f"  executed {executed} pairs, cached {max(unique - executed, 0)}; "
        f"{counts['sample_pairs'] / seconds:.0f} sample pairs/s, {executed / seconds:.0f} "
        f"executed pairs/s; {batches['batches']} batches, "
        f"{float(batches['batch_seconds']):.0f} s of batch time"
    )
    print(
        "  outcomes (count, seconds inside pairs): "
        + ", ".join(f"{r['outcome']} {r['n']} {float(r['seconds']):.0f} s" for r in outcomes)
    )
    table = query(stack, "SELECT name, value FROM run_metrics WHERE run_id = $1 ORDER BY name", rid)
    print("  metrics: " + ", ".join(f"{r['name']} {float(r['value']):.2f}" for r in table))


def agreement(stack: Stack, run_a: str, run_b: str) -> None:
    """Print how often two runs' executions of the same (solution, test) agree."""
    row = query(
        stack,
        """SELECT count(*) AS pairs, count(*) FILTER (WHERE a.passed = b.passed) AS same,
                  count(*) FILTER (WHERE a.passed AND NOT b.passed) AS a_only,
                  count(*) FILTER (WHERE b.passed AND NOT a.passed) AS b_only,
                  count(*) FILTER (WHERE a.outcome = b.outcome) AS same_outcome
           FROM runs ra JOIN runs rb ON rb.id = $2
           JOIN executions a ON a.profile = ra.exec_profile
           JOIN executions b ON b.profile = rb.exec_profile
                AND b.solution_id = a.solution_id AND b.unit_test_id = a.unit_test_id
           WHERE ra.id = $1""",
        uuid.UUID(run_a),
        uuid.UUID(run_b),
    )[0]
    pairs = max(int(row["pairs"]), 1)
    print(
        f"  agreement with the first run: {row['same']} of {row['pairs']} pairs "
        f"({100 * int(row['same']) / pairs:.2f}%) same pass bit, "
        f"{100 * int(row['same_outcome']) / pairs:.2f}% same outcome; passes only in the "
        f"first run {row['a_only']}, only in this one {row['b_only']}"
    )


def main() -> None:
    """Parse arguments, run the set through a fresh slice of the stack, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=None, help="only the first K problems")
    parser.add_argument("--executors", type=int, default=1, help="executor replicas")
    parser.add_argument("--n", type=int, default=100, help="solution samples a problem")
    parser.add_argument("--m", type=int, default=100, help="test samples a problem")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared reference data")
    parser.add_argument("--rescore", action="store_true", help="submit the run a second time")
    parser.add_argument(
        "--then-adaptive",
        action="store_true",
        help="then submit it with --adaptive and compare the verdicts",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a run")
    parser.add_argument(
        "--env", action="append", default=[], help="extra service setting, NAME=VALUE"
    )
    parser.add_argument(
        "--run-arg", action="append", default=[], help="extra `coderm run` argument (repeat)"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)

    stack = create_stack(Path(f"/tmp/coderm-bench-{uuid.uuid4().hex[:8]}"))
    stack.log_dir.mkdir(parents=True)
    print(f"database {stack.database}, service logs in {stack.log_dir}")
    try:
        started = time.perf_counter()
        import_set(stack, args.data)
        print(f"imported in {time.perf_counter() - started:.1f} s")
        run_args = [
            *("--benchmark", "humaneval", "--policy", "codegen16b"),
            *("--test-model", "codegen16b-ut", "--n", str(args.n), "--m", str(args.m)),
        ]
        if args.problems is not None:
            run_args += ["--problems", str(args.problems)]
        run_args += args.run_arg
        passes = [("cold cache:", run_args)]
        if args.rescore:
            passes.append(("rescore (warm cache):", run_args))
        if args.then_adaptive:
            passes.append(
                (
                    "adaptive limit (--adaptive; its own execution profile, labels cached):",
                    [*run_args, "--adaptive"],
                )
            )
        first_run = ""
        with contextmanager(run_services)(stack, args.executors, **extra) as services:
            for title, submitted in passes:
                with watch_rss(services) as peaks, watch_cpu(services) as cpu:
                    t0 = time.perf_counter()
                    run_id = submit(stack, *submitted)
                    wait_run_finished(stack, services, run_id, timeout=args.timeout)
                    seconds = time.perf_counter() - t0
                print(title)
                report(stack, run_id, seconds)
                if first_run and "--adaptive" in submitted:
                    agreement(stack, first_run, run_id)
                first_run = first_run or run_id
                memory = ", ".join(f"{name} {mb:.0f} MiB" for name, mb in sorted(peaks.items()))
                print(f"  executor peak resident memory: {memory}")
                print("  CPU seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
    finally:
        if args.keep:
            print(f"kept database {stack.database} (queue prefix {stack.queue_prefix})")
        else:
            drop_stack(stack)


if __name__ == "__main__":
    main()
