"""``coderm exec-pairs`` on real pairs, through the real sandbox, against the baseline
with CodeRM's execution model (bench/reference_executor.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.pair_set import PROBLEMS, build_pairs
from bench.reference_executor import run_pairs
from shared.settings import ExecutorSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASKS = {"HumanEval/0", "HumanEval/2", "HumanEval/12"}
COMMAND = [sys.executable, "-c", "from services.cli.app import main; main()", "exec-pairs"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert PROBLEMS.exists(), f"reference data not found at {PROBLEMS}"
    image = ExecutorSettings().sandbox.image
    env = {**os.environ, "CODERM_SANDBOX_IMAGE": image}
    subprocess.run([str(ROOT / "sandbox" / "build.sh")], check=True, timeout=900, env=env)
    path = tmp_path_factory.mktemp("exec-pairs") / "pairs.jsonl"
    with path.open("w") as f:
        for pair in build_pairs():
            if pair.task_id in TASKS:
                f.write(json.dumps(pair.line()) + "\n")
    return path


def exec_pairs(pairs: Path, results: Path, *options: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [*COMMAND, "--input", str(pairs), "--output", str(results), *options],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in results.read_text().splitlines()]


def test_exec_pairs_matches_the_reference_executor(pairs_file: Path, tmp_path: Path) -> None:
    inputs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    results = exec_pairs(pairs_file, tmp_path / "results.jsonl", "--batch-pairs", "120")

    assert [(r["task_id"], r["sol_id"], r["ut_id"]) for r in results] == [
        (p["task_id"], p["sol_id"], p["ut_id"]) for p in inputs
    ]
    assert all(
        set(r) == {"task_id", "sol_id", "ut_id", "result", "outcome", "duration_ms"}
        for r in results
    )
    assert all((r["result"] == "pass") == (r["outcome"] == "pass") for r in results)
    reference = run_pairs([str(p["code"]) for p in inputs])
    differ = [
        (r, ref)
        for r, ref in zip(results, reference, strict=True)
        if (r["result"] == "pass") != ref.passed
    ]
    assert not differ, differ[:5]
    assert any(r["result"] == "pass" for r in results)
    assert any(r["result"] == "fail" for r in results)


def test_exec_pairs_adaptive_and_user_errors(pairs_file: Path, tmp_path: Path) -> None:
    fixed = exec_pairs(pairs_file, tmp_path / "fixed.jsonl")
    adaptive = exec_pairs(pairs_file, tmp_path / "adaptive.jsonl", "--adaptive", "--jobs", "1")
    assert [r["result"] for r in adaptive] == [r["result"] for r in fixed]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    proc = subprocess.run(
        [*COMMAND, "--input", str(bad), "--output", str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert proc.returncode == 2
    assert "not a pair record" in proc.stdout
