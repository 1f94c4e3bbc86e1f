"""Reproduce CodeT's HumanEval figures through the services (``make reproduce-codet``).

Brings the stack up, imports the CodeT HumanEval set (164 problems x 100
CodeGen-Mono-16B solution samples x 100 test samples, ../shared/data) where it is
missing, submits the run CodeT's paper describes (every extracted assert, 0.1 s a
test case), follows it, and prints random-pick pass@1/@10/@100 and CodeT pass@1/@2/@10
next to the values CodeT's released code computes on the same data, with the deltas
and OK/FAIL against the tolerances; then MBR-Exec pass@1 for information (no published
value on this set); then where the report is. Exit status 1 when a figure is out of
tolerance.

    .venv/bin/python bench/reproduce_codet.py [--problems K] [--skip-up]

With ``--problems K`` only the first K problems are scored (a quick check of the
pipeline): the published figures are for all 164, so no verdict is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.settings import ServiceSettings, reference_data_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = reference_data_dir()
PREFIX = "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300"
BENCHMARK, MODEL, PROBLEMS, SAMPLES = "humaneval", "codegen16b", 164, 100

#: CodeT's released code on this data (the figures CodeT's own code gives on it).
PUBLISHED = {
    "vanilla.pass@1": 22.12,
    "vanilla.pass@10": 50.38,
    "vanilla.pass@100": 73.78,
    "codet.pass@1": 36.76,
    "codet.pass@2": 44.74,
    "codet.pass@10": 59.36,
}
TOLERANCE = {"vanilla.pass@1": 0.3, "codet.pass@1": 0.5, "codet.pass@10": 1.0}
LABELS = {"vanilla": "random pick", "codet": "CodeT"}

#: Figures printed for information only: nothing published on the CodeT set to check
#: them against (CodeRM's Table 1 gives MBR-Exec 60.30 on HumanEval+ with a Llama3-8B
#: policy: another benchmark and policy).
INFORMATION = {"mbr_exec.pass@1": "MBR-Exec pass@1"}


@dataclass(frozen=True)
class Check:
    """One figure against its published value; ``verdict`` OK, FAIL or ``-``."""

    name: str
    ours: float | None
    published: float
    delta: float | None
    tolerance: float | None
    verdict: str


def checks(metrics: dict[str, float], full: bool) -> list[Check]:
    """Compare the run's metrics with :data:`PUBLISHED`; figures with a tolerance get
    OK/FAIL when the run covers the full set (``full``), the others ``-``. A figure
    missing from the run fails."""
    out = []
    for name, published in PUBLISHED.items():
        ours = metrics.get(name)
        delta = None if ours is None else ours - published
        tolerance = TOLERANCE.get(name)
        verdict = "-"
        if full and tolerance is not None:
            verdict = "OK" if delta is not None and abs(delta) <= tolerance else "FAIL"
        out.append(Check(name, ours, published, delta, tolerance, verdict))
    return out


def table(rows: list[Check]) -> str:
    """The checks as an aligned text table."""
    lines = [f"{'figure':<22}{'ours':>8}{'published':>11}{'delta':>8}{'tolerance':>11}  verdict"]
    for row in rows:
        strategy, _, metric = row.name.partition(".")
        label = f"{LABELS.get(strategy, strategy)} {metric}"
        ours = "-" if row.ours is None else f"{row.ours:.2f}"
        delta = "-" if row.delta is None else f"{row.delta:+.2f}"
        tolerance = "" if row.tolerance is None else f"{row.tolerance:.1f}"
        lines.append(
            f"{label:<22}{ours:>8}{row.published:>11.2f}{delta:>8}{tolerance:>11}  {row.verdict}"
        )
    return "\n".join(lines)


def information(metrics: dict[str, float]) -> list[str]:
    """One line a figure of :data:`INFORMATION`, ``-`` when the run lacks it; no verdict."""
    lines = []
    for name, label in INFORMATION.items():
        value = metrics.get(name)
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"{label:<22}{shown:>8}  (information: no published figure on this set)")
    return lines


def coderm(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the ``coderm`` command; raise on failure."""
    return subprocess.run(
        [sys.executable, "-c", "from services.cli.app import main; main()", *args],
        cwd=ROOT,
        check=True,
        text=True,
        capture_output=capture,
    )


async def _imported() -> tuple[int, int, int]:
    url = ServiceSettings().database.url.get_secret_value().replace("+asyncpg", "")
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            """SELECT
                 (SELECT count(*) FROM problems p JOIN benchmarks b ON b.id = p.benchmark_id
                  WHERE b.name = $1 AND p.test_prompt IS NOT NULL) AS problems,
                 (SELECT count(*) FROM completions c JOIN models m ON m.id = c.model_id
                  WHERE m.name = $2 AND c.role = 'solution') AS solutions,
                 (SELECT count(*) FROM completions c JOIN models m ON m.id = c.model_id
                  WHERE m.name = $2 AND c.role = 'test') AS tests""",
            BENCHMARK,
            MODEL,
        )
    finally:
        await connection.close()
    assert row is not None
    return int(row["problems"]), int(row["solutions"]), int(row["tests"])


def ensure_imported(data: Path) -> None:
    """Import the benchmark and both generation files unless already complete."""
    problems, solutions, tests = asyncio.run(_imported())
    if problems < PROBLEMS:
        coderm(
            "import-benchmark",
            BENCHMARK,
            "--file",
            str(data / "humaneval" / "HumanEval_for_code_generation.jsonl.gz"),
            "--test-prompts",
            str(data / "humaneval" / "HumanEval_for_test_case_generation.jsonl.gz"),
        )
    for role, have, suffix in (
        ("solution", solutions, "code_solution"),
        ("test", tests, "test_case"),
    ):
        if have < PROBLEMS * SAMPLES:
            coderm(
                "import-completions",
                str(data / "codet-codegen16b" / f"{PREFIX}_{suffix}.jsonl.gz"),
                *("--benchmark", BENCHMARK, "--model", MODEL, "--role", role),
            )


def submit(problems: int | None) -> str:
    """Submit the run detached; return its id."""
    args = ["--benchmark", BENCHMARK, "--policy", MODEL, "--test-model", MODEL]
    args += ["--n", "100", "--m", "100", "--assert-time-limit", "0.1", "--name", "reproduce-codet"]
    if problems is not None:
        args += ["--problems", str(problems)]
    result = coderm("run", *args, "--detach", capture=True)
    for word in result.stdout.split():
        try:
            return str(uuid.UUID(word))
        except ValueError:
            continue
    raise SystemExit(f"no run id in: {result.stdout}")


def main() -> int:
    """Run the reproduction; the exit status says whether every figure is in tolerance."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, help="only the first K problems (no verdict)")
    parser.add_argument("--skip-up", action="store_true", help="the stack is already up")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds to wait")
    parser.add_argument("--out", type=Path, help="report directory [reports/<run>/]")
    parser.add_argument("--data", type=Path, default=DATA, help=f"reference data [{DATA}]")
    options = parser.parse_args()
    try:
        if not options.skip_up:
            subprocess.run(["bash", str(ROOT / "deploy" / "local" / "up.sh")], cwd=ROOT, check=True)
        ensure_imported(options.data)
        run_id = submit(options.problems)
        print(f"run {run_id} submitted", flush=True)
        coderm("status", run_id, "--follow", "--timeout", str(options.timeout))
        out = options.out or ROOT / "reports" / run_id[:8]
        report = json.loads(
            coderm("report", run_id, "--format", "json", "--out", str(out), capture=True).stdout
        )
    except subprocess.CalledProcessError as error:
        print(f"failed: {' '.join(map(str, error.cmd[3:]))} exited {error.returncode}")
        print(error.stderr or "", end="")
        return 2
    metrics = {name: float(item["value"]) for name, item in report["stored_metrics"].items()}
    full = report["run"]["problems_scored"] == PROBLEMS and options.problems is None
    rows = checks(metrics, full)
    print(table(rows))
    recomputed = {name: float(value) for name, value in report["metrics"].items()}
    print("\n".join(information(recomputed)))
    if not full:
        print(
            f"subset of {report['run']['problems_scored']} problems: the published figures "
            f"are for all {PROBLEMS}, so no verdict"
        )
    print(f"report: {(out / 'report.html').resolve()}")
    return 1 if any(row.verdict == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
