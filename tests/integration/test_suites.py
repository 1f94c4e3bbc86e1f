"""Watch suites: ``coderm suite add|list|show`` and ``coderm watch DIR --suite NAME`` over
three tiny local checkpoints (tests/tiny_model.py, as in test_watch.py), with the real
services, a regression hook, and a watch killed half-way and started again.

The regression is engineered deterministically: the suite's baseline (``--baseline``)
is the replayed ``codegen16b``, whose first three samples solve HumanEval/0 twice,
while the tiny random model solves nothing. With the gate ``vanilla.pass@1``:

* member ``he-1`` (HumanEval/0 only): every resample of the one problem gives the same
  negative delta, so each tiny checkpoint is significantly worse than the best so far
  (the baseline): three regressions, three hook calls; against the previous tiny
  checkpoint it is ``within noise`` (0 - 0);
* member ``he-3`` (HumanEval/0-2): codegen16b's first three samples of HumanEval/1 all
  fail, so about 1 resample in 27 draws that problem alone and a delta of 0; at 95%
  the interval reaches 0 and the verdict is ``within noise``: no regression.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_watch import checkpoint
from tests.stack import ROOT, Services, Stack, cli, query, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.long]
SUITE = "ci"
MEMBER_1 = "name=he-1,benchmark=humaneval,test-model=codegen16b,n=3,m=8,problems=1,max-tokens=8"
MEMBER_3 = "name=he-3,benchmark=humaneval,test-model=codegen16b,n=3,m=8,problems=3,max-tokens=8"
GATE = "vanilla.pass@1"
BASELINE = "codegen16b"
STEPS = (1000, 2000, 3000)
HOOK = """
import json, os, sys
payload = json.load(sys.stdin)
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps({"env_checkpoint": os.environ["CODERM_CHECKPOINT"], **payload}) + "\\n")
"""


def checkpoints_folder(tiny_model_dir: Path, root: Path, steps: tuple[int, ...]) -> Path:
    """``root/step-<k>`` copies of the tiny model, each its own checkpoint (content)."""
    for step in steps:
        checkpoint(tiny_model_dir, root / f"step-{step}", step)
    return root


def hook_command(tmp_path: Path) -> tuple[str, Path]:
    """A hook that appends its stdin (and CODERM_CHECKPOINT) as one JSON line to a file."""
    script, calls = tmp_path / "hook.py", tmp_path / "hook-calls.jsonl"
    script.write_text(HOOK)
    return f"{sys.executable} {script} {calls}", calls


def evaluations(stack: Stack, suite: str) -> list[dict[str, Any]]:
    rows = query(
        stack,
        """SELECT e.*, m.name AS member FROM checkpoint_evaluations e
           JOIN suites s ON s.id = e.suite_id JOIN suite_members m ON m.id = e.member_id
           WHERE s.name = $1 ORDER BY e.sequence, m.position""",
        suite,
    )
    return [dict(r) for r in rows]


def suite_runs(stack: Stack, suite: str) -> list[dict[str, Any]]:
    rows = query(
        stack,
        "SELECT id, state, config FROM runs WHERE config -> 'suite' ->> 'suite' = $1",
        suite,
    )
    return [{**dict(r), "config": json.loads(r["config"])} for r in rows]


def watch_args(folder: Path, suite: str, *extra: str) -> list[str]:
    return ["watch", str(folder), "--suite", suite, "--settle", "0", "--once", *extra]


def continuous_examples() -> list[str]:
    """The ``sql`` blocks of docs/SQL.md's "Continuous evaluation" section (they read
    the suite ``ci``, this module's)."""
    text = (ROOT / "docs" / "SQL.md").read_text()
    return re.findall(r"```sql\n(.*?)```", text[text.index("## Continuous evaluation") :], re.S)


def add_suite(stack: Stack, name: str, *members: str) -> None:
    args = [a for m in members for a in ("--member", m)]
    done = cli(stack, "suite", "add", name, *args, "--gate", GATE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("imported")
def test_suite_add_list_show_and_user_errors(stack: Stack) -> None:
    """Unknown benchmarks and models, bad member specs and a changed definition under a
    stored name are one-line errors (exit 2); adding the same suite twice changes
    nothing; list and show print it."""
    bad = {
        "benchmark=nosuch,test-model=codegen16b": "benchmark 'nosuch' is not imported",
        "benchmark=humaneval,test-model=nosuch": "test model 'nosuch' is not registered",
        "benchmark=humaneval,test-model=codegen16b,n=abc": "n takes a number",
        "test-model=codegen16b,n=2": "needs benchmark",
        "benchmark=humaneval,test-model=codegen16b,colour=red": "unknown key 'colour'",
        "benchmark=humaneval,test-model=codegen16b,profile=lax": "profile is one of",
        "benchmark humaneval": "KEY=VALUE",
    }
    for spec, message in bad.items():
        done = cli(stack, "suite", "add", "broken", "--member", spec)
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in " ".join(done.stdout.split()), done.stdout
    done = cli(stack, "suite", "add", "broken", "--member", MEMBER_1, "--gate", "nosuch.pass@1")
    assert done.returncode == 2 and "unknown metric" in done.stdout, done.stdout
    twice = cli(stack, "suite", "add", "broken", "--member", MEMBER_1, "--member", MEMBER_1)
    assert twice.returncode == 2 and "given twice" in twice.stdout, twice.stdout

    add_suite(stack, "errors-ok", MEMBER_1, MEMBER_3)
    again = cli(stack, "suite", "add", "errors-ok", "--member", MEMBER_1, "--member", MEMBER_3)
    assert again.returncode == 2 and "exists with other" in again.stdout, again.stdout
    same = cli(
        stack, "suite", "add", "errors-ok", "--member", MEMBER_1, "--member", MEMBER_3,
        "--gate", GATE,
    )  # fmt: skip
    assert same.returncode == 0 and "unchanged" in same.stdout, same.stdout
    listed = cli(stack, "suite", "list")
    assert listed.returncode == 0 and "errors-ok" in listed.stdout and "he-1, he-3" in listed.stdout
    shown = cli(stack, "suite", "show", "errors-ok")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "problems=3" in shown.stdout and "vanilla.pass@1:0" in shown.stdout
    unknown = cli(stack, "suite", "show", "nosuch")
    assert unknown.returncode == 2 and "no suite 'nosuch'" in unknown.stdout
    mixed = cli(stack, "watch", str(ROOT), "--suite", "errors-ok", "--benchmark", "humaneval")
    assert mixed.returncode == 2 and "--suite takes its benchmarks" in mixed.stdout


@pytest.mark.timeout(2400)
@pytest.mark.usefixtures("imported")
def test_watch_suite_runs_every_member_judges_hooks_and_resumes_after_kill(
    stack: Stack, services: Services, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Baseline + three checkpoints x two members: eight runs, each submitted once
    although the watch is SIGKILLed half-way; verdicts stored once; the hook called once
    per regression, never again after the restart."""
    folder = checkpoints_folder(tiny_model_dir, tmp_path / "checkpoints", STEPS)
    add_suite(stack, SUITE, MEMBER_1, MEMBER_3)
    command, calls = hook_command(tmp_path)
    args = watch_args(folder, SUITE, "--baseline", BASELINE, "--on-regression", command)

    log_path = tmp_path / "watch-killed.log"
    with log_path.open("wb") as log:
        first = subprocess.Popen(
            [sys.executable, "-c", "from services.cli.app import main; main()", *args],
            cwd=ROOT,
            env=stack.env(COLUMNS="200"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Killed once step-1000 is judged (its hooks called) and step-2000's runs are
        # being submitted: the restart has runs to await, verdicts and hooks to skip.
        wait_for(
            lambda: (
                first.poll() is not None
                or sum(e["run_id"] is not None for e in evaluations(stack, SUITE)) >= 5
            ),
            1500,
            f"the watch to submit step-2000's runs (log {log_path})",
            every=0.2,
        )
        assert first.poll() is None, log_path.read_text()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    at_kill = evaluations(stack, SUITE)
    hooks_at_kill = len(calls.read_text().splitlines()) if calls.exists() else 0
    assert any(e["state"] == "evaluated" for e in at_kill), log_path.read_text()
    assert any(e["state"] != "evaluated" for e in at_kill), log_path.read_text()

    second = cli(stack, *args, timeout=1800)
    assert second.returncode == 0, log_path.read_text() + second.stdout + second.stderr

    rows = evaluations(stack, SUITE)
    assert len(rows) == 2 * (1 + len(STEPS))
    assert all(r["state"] == "evaluated" and r["run_id"] is not None for r in rows)
    labels = [BASELINE, *(f"step-{s}" for s in STEPS)]
    assert [(r["checkpoint"], r["sequence"]) for r in rows[::2]] == [
        (label, i) for i, label in enumerate(labels)
    ]
    runs = suite_runs(stack, SUITE)
    assert len(runs) == len(rows), "a run was submitted twice"
    assert {r["run_id"] for r in rows} == {r["id"] for r in runs}
    by_run = {r["id"]: r for r in runs}
    assert all(by_run[r["run_id"]]["config"]["suite"]["evaluation"] == r["id"] for r in rows)
    assert all(r["state"] == "finished" for r in runs)

    first_rows = rows[:2]
    assert all(r["verdicts"] is not None for r in rows)
    for r in first_rows:
        verdicts = json.loads(r["verdicts"])
        assert verdicts["previous"] is None and verdicts["best"] is None
    regressed = {(r["checkpoint"], r["member"]) for r in rows if r["regressed"]}
    assert regressed == {(f"step-{s}", "he-1") for s in STEPS}
    for r in rows[2:]:
        verdicts = json.loads(r["verdicts"])
        assert verdicts["best"]["checkpoint"] == BASELINE
        gate = {i["metric"]: i for i in verdicts["best"]["intervals"]}[GATE]
        if r["member"] == "he-1":
            assert gate["verdict"] == "worse" and gate["high"] < 0
        else:
            assert gate["verdict"] == "within noise" and gate["high"] == 0
        if r["checkpoint"] != "step-1000":
            assert verdicts["previous"]["checkpoint"] == f"step-{int(r['checkpoint'][5:]) - 1000}"
            previous = {i["metric"]: i for i in verdicts["previous"]["intervals"]}[GATE]
            assert previous["verdict"] == "within noise" and previous["delta"] == 0

    called = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(called) == len(regressed), called
    assert Counter((c["checkpoint"], c["member"]) for c in called) == Counter(regressed)
    assert all(c["env_checkpoint"] == c["checkpoint"] for c in called)
    assert all(c["regressions"] and c["regressions"][0]["metric"] == GATE for c in called)
    assert hooks_at_kill <= len(called)
    hooked = [r for r in rows if r["regressed"]]
    assert all(r["hook_state"] == "called" and r["hook_exit_code"] == 0 for r in hooked)
    assert all(r["hook_state"] is None for r in rows if not r["regressed"])

    # A third pass finds everything stored: no run, no verdict, no hook.
    third = cli(stack, *args, timeout=600)
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(suite_runs(stack, SUITE)) == len(rows)
    assert len(calls.read_text().splitlines()) == len(called)
    assert [r["verdicts"] for r in evaluations(stack, SUITE)] == [r["verdicts"] for r in rows]

    shown = cli(stack, "suite", "show", SUITE)
    assert shown.returncode == 0 and "step-3000" in shown.stdout, shown.stdout + shown.stderr

    examples = continuous_examples()
    assert len(examples) >= 5
    for sql in examples:
        assert query(stack, sql), f"no rows from:\n{sql}"
