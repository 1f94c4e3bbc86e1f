"""Packed verdicts on a real run: the in-place migration from the old layout gives the
same report, a second run over the same pairs executes nothing, and gc frees what no
kept run needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import (
    ROOT,
    Services,
    Stack,
    cli,
    metrics,
    query,
    submit,
    wait_run_finished,
)

pytestmark = [pytest.mark.integration, pytest.mark.long]
RUN_ARGS = ("--benchmark", "humaneval", "--policy", "codegen16b", "--test-model", "codegen16b")
SMALL = ("--n", "6", "--m", "8", "--problems", "3")
MIGRATION = "migrations/versions/20261207_0009_packed_verdicts.py"


def _alembic(stack: Stack, *args: str, cwd: Path = ROOT) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=cwd,
        env={**stack.env(), "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _report(stack: Stack, run_id: str, out: Path, code: Path = ROOT) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from services.cli.app import main; main()",
            *("report", run_id, "--format", "json", "--draws", "3", "--out", str(out)),
        ],
        cwd=code,
        env={**stack.env(), "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def old_code() -> Iterator[Path]:
    """The code before packed verdicts (the parent of the commit adding migration 0009),
    or the checkout itself before that commit exists."""
    found = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", MIGRATION],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    commit = found.stdout.split()[-1] if found.returncode == 0 and found.stdout.split() else ""
    if not commit:
        pytest.skip("migration 0009 is not committed yet: no old code to compare with")
    target = Path(tempfile.mkdtemp(prefix="coderm-old-"))
    archive = subprocess.run(
        ["git", "archive", f"{commit}^"], cwd=ROOT, capture_output=True, check=True
    )
    tar = target / "old.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as handle:
        handle.extractall(target, filter="data")
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture(scope="module")
def first_run(stack: Stack, services: Services, imported: None) -> str:
    """A small finished run."""
    run_id = submit(stack, *RUN_ARGS, *SMALL)
    wait_run_finished(stack, services, run_id, timeout=300)
    return run_id


def test_migration_from_the_old_layout_keeps_the_report(
    stack: Stack, first_run: str, old_code: Path, tmp_path: Path
) -> None:
    """Packed -> old table (downgrade to 0008) -> old code's report -> upgrade to 0009 in
    place -> the report is the same, verdict for verdict."""
    packed = _report(stack, first_run, tmp_path / "packed")
    before = query(
        stack, "SELECT solution_id, unit_test_id, profile, outcome, detail FROM executions"
    )
    assert before
    try:
        _alembic(stack, "downgrade", "0008")
        kind = query(
            stack, "SELECT relkind::text AS relkind FROM pg_class WHERE relname = 'executions'"
        )
        assert kind[0]["relkind"] == "r"  # the old table, rows unpacked into it
        old = _report(stack, first_run, tmp_path / "old", code=old_code)
    finally:
        _alembic(stack, "upgrade", "head")
    after = query(
        stack, "SELECT solution_id, unit_test_id, profile, outcome, detail FROM executions"
    )
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))
    migrated = _report(stack, first_run, tmp_path / "migrated")
    assert old == packed == migrated
    assert (tmp_path / "old" / "report.md").read_text() == (
        tmp_path / "migrated" / "report.md"
    ).read_text()


def test_a_second_run_over_the_same_pairs_executes_nothing(
    stack: Stack, services: Services, first_run: str
) -> None:
    """Verdicts are keyed by (solution, test, profile): another run over the same pairs
    reuses every one of them and gets the same numbers."""
    count = "SELECT count(*) AS n FROM executions"
    stored = query(stack, count)[0]["n"]
    second = submit(stack, *RUN_ARGS, *SMALL)
    wait_run_finished(stack, services, second, timeout=300)
    executed = query(
        stack,
        "SELECT coalesce(sum(executed), 0) AS n, count(*) AS batches FROM execution_batches "
        "WHERE run_id = $1",
        uuid.UUID(second),
    )[0]
    assert executed["batches"] > 0
    assert executed["n"] == 0
    assert query(stack, count)[0]["n"] == stored
    assert metrics(stack, second) == metrics(stack, first_run)


def _freed(output: str) -> dict[str, int]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 3 and cells[1].replace(",", "").isdigit():
            rows[cells[0]] = int(cells[1].replace(",", ""))
    return rows


def test_gc_frees_what_no_kept_run_needs(stack: Stack, first_run: str) -> None:
    """Archived runs' verdicts go once no kept run uses them; orphan code goes; kept
    runs keep their verdicts and their report."""
    runs = [
        str(r["id"])
        for r in query(
            stack,
            "SELECT id FROM runs WHERE n_solutions = 6 AND n_tests = 8 AND archived_at IS NULL",
        )
    ]
    assert first_run in runs and len(runs) >= 2
    query(
        stack,
        "INSERT INTO unit_tests (problem_id, style, content_hash, code, created_at) "
        "SELECT id, 'assert', 'orphan-test', 'assert True', now() - interval '2 hours' "
        "FROM problems LIMIT 1",
    )
    query(
        stack,
        "INSERT INTO solutions (problem_id, content_hash, code, created_at) "
        "SELECT id, 'orphan-solution', 'pass', now() - interval '2 hours' FROM problems LIMIT 1",
    )
    keep = runs[0] if runs[0] != first_run else runs[1]
    archive = cli(stack, "archive", first_run)
    assert archive.returncode == 0, archive.stdout + archive.stderr
    shared = cli(stack, "gc")
    assert shared.returncode == 0, shared.stdout + shared.stderr
    freed = _freed(shared.stdout)
    assert freed["solutions"] >= 1 and freed["unit tests"] >= 1, shared.stdout
    # the kept run has the same solutions under the same profile: no verdict goes
    assert freed["verdict rows"] == 0, shared.stdout
    assert freed["total"] == sum(v for k, v in freed.items() if k != "total")

    others = [r for r in runs if r != first_run]
    for run in others:
        assert cli(stack, "archive", run).returncode == 0
    dry = _freed(cli(stack, "gc", "--dry-run").stdout)
    assert dry["verdict rows"] > 0
    done = cli(stack, "gc")
    assert _freed(done.stdout)["verdict rows"] == dry["verdict rows"], done.stdout
    assert _freed(cli(stack, "gc").stdout)["total"] == 0
    assert "bytes" in done.stdout

    for run in [keep]:
        assert cli(stack, "archive", run, "--undo").returncode == 0
    deleted = cli(stack, "delete", first_run, "--yes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert not query(stack, "SELECT 1 FROM runs WHERE id = $1", uuid.UUID(first_run))
