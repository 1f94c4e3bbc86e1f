"""Verdict storage at continuous-evaluation scale: K synthetic checkpoints' verdicts on
the CodeT HumanEval problems and tests, in the packed layout (migration 0009) and, for
the smaller K, in the old one-row-a-verdict table side by side.

Problems are HumanEval's; each problem's tests are CodeT's: the asserts of its 100
CodeGen-16B test samples (``extract_completion_asserts``, deduplicated), about 54 a
problem as in the stored CodeT run. Each checkpoint is a run of 100 solution samples a
problem whose distinct solutions reproduce the CodeT set's duplicate rate (11,341
distinct of 16,400 samples: each sample repeats an earlier one of its problem and
checkpoint with probability 0.31), a third of a checkpoint's distinct solutions being
ones an earlier checkpoint also produced (their verdicts are reused, not stored again).
Outcomes reproduce the CodeT run's mix (19 % pass, 47 % fail, 33 % error, 0.3 %
timeout): a quarter of the solutions fail to load and error on every test with one
detail, the others pass each test with their own rate, failing with
``AssertionError:`` or erroring with one of a few dozen messages.

For K = 1, 10, 30 it prints the bytes a verdict (the verdict tables with their indexes
and the detail dictionary), the insert rate through the executor's write path
(``shared.db.verdicts.save_verdicts``, COPY; the old layout: COPY into a staging table
and ``INSERT ... ON CONFLICT DO NOTHING`` as the old executor did), and the time of the
report's matrix load (``shared.db.matrices.load_matrices`` of the last checkpoint),
compare's (two checkpoints' matrices) and the dashboard's view
(``v_test_quality_run`` of the last checkpoint); for the old layout the same queries on
its table (the old ``_passes`` query for the matrices' verdicts, the old view body).

    .venv/bin/python -m bench.storage [--ks 1,10,30] [--old-up-to 10]

It creates (and drops) the database ``coderm_bench_storage`` on the configured server.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.util
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from shared.core.extraction import content_hash, extract_completion_asserts
from shared.db.matrices import load_matrices
from shared.db.models import Problem, Run
from shared.db.verdicts import VerdictRow, passed_pairs, save_verdicts
from shared.enums import ExtractionStatus, Outcome
from shared.settings import ServiceSettings, reference_data_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = reference_data_dir()
PROBLEMS = DATA / "humaneval" / "HumanEval_for_code_generation.jsonl.gz"
TEST_PROMPTS = DATA / "humaneval" / "HumanEval_for_test_case_generation.jsonl.gz"
TESTS = (
    DATA
    / "codet-codegen16b"
    / "HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_test_case.jsonl.gz"
)
DATABASE = "coderm_bench_storage"
MIGRATION = ROOT / "migrations" / "versions" / "20261207_0009_packed_verdicts.py"
PROFILE = "sbx4/assert/t100ms-s3000ms"
SAMPLES = 100
REPEAT = 0.31
SHARED_ACROSS = 1 / 3
ERRORS = [f"NameError: name '{'_' * n}' is not defined" for n in range(3, 20)] + [
    "setup: IndentationError: unindent does not match any outer indentation level",
    "setup: SyntaxError: unterminated triple-quoted string literal",
    "IndexError: list index out of range",
    "TypeError: 'NoneType' object is not iterable",
    "setup: ModuleNotFoundError: No module named 'django'",
    "NameError: name 're' is not defined",
    "RecursionError: maximum recursion depth exceeded",
    "ValueError: invalid literal for int() with base 10: ''",
    "KeyError: 0",
    "ZeroDivisionError: division by zero",
]

OLD_TABLE = """
CREATE SCHEMA old;
CREATE TABLE old.executions (
    solution_id bigint NOT NULL REFERENCES solutions(id) ON DELETE CASCADE,
    unit_test_id bigint NOT NULL REFERENCES unit_tests(id) ON DELETE CASCADE,
    profile varchar(200) NOT NULL, outcome varchar(20) NOT NULL, passed boolean NOT NULL,
    tests_run integer, tests_passed integer, duration_ms double precision, detail text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (solution_id, unit_test_id, profile));
"""


@dataclass
class World:
    """The bench database's problems, their tests, the solution pool and runs."""

    problems: list[tuple[int, list[int]]]
    pool: dict[int, list[int]]
    known: set[int]


def _read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _dsn() -> str:
    url = ServiceSettings().database.url.get_secret_value()
    return url.rsplit("/", 1)[0].replace("+asyncpg", "") + "/"


async def _setup(pg: asyncpg.Connection) -> World:
    problems = _read(PROBLEMS)
    test_prompts = {str(r["task_id"]): str(r["prompt"]) for r in _read(TEST_PROMPTS)}
    samples_by_prompt = {str(r["prompt"]): r for r in _read(TESTS)}
    test_samples = [samples_by_prompt[test_prompts[str(p["task_id"])]] for p in problems]
    benchmark = await pg.fetchval(
        "INSERT INTO benchmarks (name, source) VALUES ('bench', '') RETURNING id"
    )
    test_model = await pg.fetchval(
        "INSERT INTO models (name, backend, role, format, dtype, temperature, top_p, "
        "max_tokens, config) VALUES ('tests', 'replay', 'both', 'completion', 'auto', 0.8, "
        "0.95, 300, '{}') RETURNING id"
    )
    out = []
    for position, (problem, samples) in enumerate(zip(problems, test_samples, strict=True)):
        pid = await pg.fetchval(
            "INSERT INTO problems (benchmark_id, task_id, position, prompt, entry_point, "
            "canonical_solution, test_code, ground_truth) VALUES ($1, $2, $3, $4, $5, '', "
            "$6, 'tests') RETURNING id",
            benchmark,
            problem["task_id"],
            position,
            problem["prompt"],
            problem["entry_point"],
            problem["test"],
        )
        asserts: dict[str, None] = {}
        for sample in samples["samples"]:
            extracted = extract_completion_asserts(sample, problem["entry_point"])
            if extracted.status is ExtractionStatus.OK:
                asserts.update(dict.fromkeys(extracted.code))
        test_ids = []
        for index, code in enumerate(asserts):
            tid = await pg.fetchval(
                "INSERT INTO unit_tests (problem_id, style, content_hash, code) "
                "VALUES ($1, 'assert', $2, $3) RETURNING id",
                pid,
                content_hash(code),
                code,
            )
            cid = await pg.fetchval(
                "INSERT INTO completions (model_id, problem_id, role, generation, "
                "sample_index, format, text) VALUES ($1, $2, 'test', 'bench', $3, "
                "'completion', '') RETURNING id",
                test_model,
                pid,
                index,
            )
            await pg.execute(
                "INSERT INTO completion_tests (completion_id, position, unit_test_id) "
                "VALUES ($1, 0, $2)",
                cid,
                tid,
            )
            test_ids.append(tid)
        out.append((pid, test_ids))
    return World(out, {pid: [] for pid, _ in out}, set())


def _outcomes(rng: random.Random, tests: Sequence[int], sid: int) -> list[VerdictRow]:
    if rng.random() < 0.25:
        detail = rng.choice(ERRORS)
        return [VerdictRow(sid, t, Outcome.ERROR, detail) for t in tests]
    rate = rng.betavariate(0.5, 1.4)
    errors = rng.sample(ERRORS, 2)
    rows = []
    for t in tests:
        draw = rng.random()
        if draw < rate:
            rows.append(VerdictRow(sid, t, Outcome.PASS))
        elif draw < rate + (1 - rate) * 0.8:
            rows.append(VerdictRow(sid, t, Outcome.FAIL, "AssertionError: "))
        elif draw < 0.996:
            rows.append(VerdictRow(sid, t, Outcome.ERROR, rng.choice(errors)))
        else:
            rows.append(VerdictRow(sid, t, Outcome.TIMEOUT, "timeout after 0.1 s"))
    return rows


async def _checkpoint(
    pg: asyncpg.Connection, world: World, k: int, rng: random.Random
) -> tuple[uuid.UUID, dict[int, list[VerdictRow]]]:
    """Store checkpoint k's run and samples; return the run and the verdicts to store
    (by problem) of its solutions not stored before."""
    model = await pg.fetchval(
        "INSERT INTO models (name, backend, role, format, dtype, temperature, top_p, "
        "max_tokens, config) VALUES ($1, 'replay', 'both', 'completion', 'auto', 0.8, 0.95, "
        "300, '{}') RETURNING id",
        f"checkpoint-{k}",
    )
    run = uuid.uuid4()
    benchmark = await pg.fetchval("SELECT id FROM benchmarks WHERE name = 'bench'")
    test_model = await pg.fetchval("SELECT id FROM models WHERE name = 'tests'")
    limits = {"time_limit_s": 0.1, "setup_time_limit_s": 3.0}
    await pg.execute(
        "INSERT INTO runs (id, name, benchmark_id, policy_model_id, test_model_id, "
        "n_solutions, n_tests, test_style, exec_profile, ground_truth_profile, config, state) "
        "VALUES ($1, $2, $3, $4, $5, 100, 100, 'assert', $6, 'gt', $7, 'finished')",
        run,
        f"checkpoint-{k}",
        benchmark,
        model,
        test_model,
        PROFILE,
        json.dumps({"limits": limits}),
    )
    pids = [pid for pid, _ in world.problems]
    await pg.execute(
        "INSERT INTO run_problems (run_id, problem_id, state, solutions_extracted, "
        "tests_extracted) SELECT $1, unnest($2::int[]), 'scored', true, true",
        run,
        pids,
    )
    samples: list[tuple[int, int, int | str]] = []  # problem, index, solution id or new key
    fresh: dict[str, tuple[int, list[int]]] = {}
    for pid, tests in world.problems:
        mine: list[int | str] = []
        for index in range(SAMPLES):
            if mine and rng.random() < REPEAT:
                sid: int | str = rng.choice(mine)
            elif world.pool[pid] and rng.random() < SHARED_ACROSS:
                sid = rng.choice(world.pool[pid])
                mine.append(sid)
            else:
                sid = uuid.uuid4().hex
                fresh[sid] = (pid, tests)
                mine.append(sid)
            samples.append((pid, index, sid))
    keys = list(fresh)
    ids = dict(
        await pg.fetch(
            "INSERT INTO solutions (problem_id, content_hash, code) "
            "SELECT unnest($1::int[]), unnest($2::text[]), 'pass' RETURNING content_hash, id",
            [fresh[key][0] for key in keys],
            keys,
        )
    )
    todo: dict[int, list[VerdictRow]] = {pid: [] for pid in pids}
    for key in keys:
        pid, tests = fresh[key]
        world.pool[pid].append(ids[key])
        todo[pid].extend(_outcomes(rng, tests, ids[key]))
    completions = await pg.fetch(
        "INSERT INTO completions (model_id, problem_id, role, generation, sample_index, "
        "format, text) SELECT $1, unnest($2::int[]), 'solution', 'bench', unnest($3::int[]), "
        "'completion', '' RETURNING id, problem_id, sample_index",
        model,
        [s[0] for s in samples],
        [s[1] for s in samples],
    )
    by_sample = {(r["problem_id"], r["sample_index"]): r["id"] for r in completions}
    await pg.execute(
        "INSERT INTO completion_solutions (completion_id, solution_id) "
        "SELECT unnest($1::bigint[]), unnest($2::bigint[])",
        [by_sample[pid, index] for pid, index, _ in samples],
        [ids[sid] if isinstance(sid, str) else sid for _, _, sid in samples],
    )
    await pg.execute(
        "INSERT INTO run_completions (run_id, completion_id, problem_id, role) "
        "SELECT $1, c.id, c.problem_id, c.role FROM completions c "
        "WHERE c.model_id = $2 OR (c.model_id = $3 AND c.role = 'test')",
        run,
        model,
        test_model,
    )
    return run, todo


async def _store_new(
    sessions: async_sessionmaker[AsyncSession], todo: dict[int, list[VerdictRow]]
) -> float:
    started = time.perf_counter()
    for rows in todo.values():
        async with sessions.begin() as session:
            await save_verdicts(session, PROFILE, rows)
    return time.perf_counter() - started


async def _store_old(pg: asyncpg.Connection, todo: dict[int, list[VerdictRow]]) -> float:
    columns = ["solution_id", "unit_test_id", "profile", "outcome", "passed", "detail"]
    started = time.perf_counter()
    for rows in todo.values():
        async with pg.transaction():
            await pg.execute(
                "CREATE TEMP TABLE IF NOT EXISTS old_staging (LIKE old.executions "
                "INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            await pg.copy_records_to_table(
                "old_staging",
                records=[
                    (
                        r.solution_id,
                        r.unit_test_id,
                        PROFILE,
                        r.outcome.value,
                        r.outcome is Outcome.PASS,
                        r.detail,
                    )
                    for r in rows
                ],
                columns=columns,
            )
            await pg.execute(
                f"INSERT INTO old.executions ({', '.join(columns)}) SELECT "
                f"{', '.join(columns)} FROM old_staging ON CONFLICT DO NOTHING"
            )
    return time.perf_counter() - started


async def _timed(work: Callable[[], Awaitable[object]], repeat: int = 3) -> float:
    """The best of ``repeat`` runs (the machine is shared: the minimum is the least
    disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        best = min(best, time.perf_counter() - started)
    return best


async def _matrices(sessions: async_sessionmaker[AsyncSession], runs: Sequence[uuid.UUID]) -> None:
    async with sessions() as session:
        for run_id in runs:
            run = await session.get(Run, run_id)
            assert run is not None
            problems = list(await session.scalars(select(Problem).order_by(Problem.position)))
            await load_matrices(session, run, problems)


OLD_PASSES = """
SELECT e.solution_id, e.unit_test_id FROM old.executions e
WHERE e.profile = $1 AND e.passed AND e.solution_id = ANY($2::bigint[])
  AND e.unit_test_id = ANY($3::bigint[])
"""


async def _old_matrices(pg: asyncpg.Connection, runs: Sequence[uuid.UUID]) -> None:
    for run_id in runs:
        solutions = await pg.fetch(
            "SELECT DISTINCT cs.solution_id FROM run_completions rc JOIN completion_solutions "
            "cs ON cs.completion_id = rc.completion_id WHERE rc.run_id = $1",
            run_id,
        )
        tests = await pg.fetch(
            "SELECT DISTINCT ct.unit_test_id FROM run_completions rc JOIN completion_tests ct "
            "ON ct.completion_id = rc.completion_id WHERE rc.run_id = $1",
            run_id,
        )
        await pg.fetch(
            OLD_PASSES,
            PROFILE,
            [r[0] for r in solutions],
            [r[0] for r in tests],
        )


async def _sizes(pg: asyncpg.Connection) -> dict[str, int]:
    row = await pg.fetchrow(
        """SELECT
          pg_total_relation_size('verdicts') + pg_total_relation_size('verdict_details')
            + pg_total_relation_size('verdict_detail_overflow')
            + pg_total_relation_size('exec_profiles') AS new,
          (SELECT count(*) FROM executions) AS verdicts,
          CASE WHEN to_regclass('old.executions') IS NULL THEN 0
               ELSE pg_total_relation_size('old.executions') END AS old,
          CASE WHEN to_regclass('old.executions') IS NULL THEN 0
               ELSE (SELECT count(*) FROM old.executions) END AS old_verdicts"""
    )
    assert row is not None
    return dict(row)


async def bench(ks: Sequence[int], old_up_to: int) -> list[dict[str, Any]]:
    """Fill the bench database checkpoint by checkpoint, measuring at each K in ``ks``."""
    admin = await asyncpg.connect(_dsn() + "postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    url = ServiceSettings().database.url.get_secret_value().rsplit("/", 1)[0] + f"/{DATABASE}"
    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "upgrade",
        "head",
        cwd=ROOT,
        env={**os.environ, "CODERM_DATABASE__URL": url, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await migrate.wait() == 0, "alembic upgrade head failed"
    pg = await asyncpg.connect(_dsn() + DATABASE)
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    rows: list[dict[str, Any]] = []
    try:
        await pg.execute(OLD_TABLE)
        await pg.execute(
            "CREATE VIEW old.v_test_quality AS "
            + _migration().OLD_TEST_QUALITY.replace("JOIN executions", "JOIN old.executions")
        )
        world = await _setup(pg)
        rng = random.Random(0)
        runs: list[uuid.UUID] = []
        new_seconds = old_seconds = 0.0
        new_count = old_count = 0
        for k in range(1, max(ks) + 1):
            run, todo = await _checkpoint(pg, world, k, rng)
            runs.append(run)
            count = sum(len(r) for r in todo.values())
            new_seconds += await _store_new(sessions, todo)
            new_count += count
            if k <= old_up_to:
                old_seconds += await _store_old(pg, todo)
                old_count += count
            if k not in ks:
                continue
            await pg.execute("VACUUM ANALYZE")
            sizes = await _sizes(pg)
            last = runs[-2:] if len(runs) > 1 else runs * 2
            row: dict[str, Any] = {
                "K": k,
                "verdicts": sizes["verdicts"],
                "bytes/verdict": sizes["new"] / sizes["verdicts"],
                "verdicts/s": new_count / new_seconds,
                "report s": await _timed(lambda: _matrices(sessions, runs[-1:])),
                "compare s": await _timed(partial(_matrices, sessions, last)),
                "view s": await _timed(
                    lambda: pg.fetch("SELECT * FROM v_test_quality_run WHERE run_id = $1", runs[-1])
                ),
            }
            if k <= old_up_to:
                row.update(
                    {
                        "old bytes/verdict": sizes["old"] / sizes["old_verdicts"],
                        "old verdicts/s": old_count / old_seconds,
                        "old verdicts s (report)": await _timed(
                            lambda: _old_matrices(pg, runs[-1:])
                        ),
                        "old verdicts s (compare)": await _timed(partial(_old_matrices, pg, last)),
                        "old view s": await _timed(
                            lambda: pg.fetch(
                                "SELECT run_id, sum(tp), sum(fp), sum(tn), sum(fn) FROM "
                                "old.v_test_quality WHERE run_id = $1 GROUP BY run_id",
                                runs[-1],
                            )
                        ),
                        "verdicts s (report)": await _timed(
                            lambda: _new_verdicts(sessions, runs[-1:])
                        ),
                    }
                )
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        await pg.close()
        await engine.dispose()
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await admin.close()
    return rows


async def _new_verdicts(
    sessions: async_sessionmaker[AsyncSession], runs: Sequence[uuid.UUID]
) -> None:
    """The packed layout's share of a report: the passed pairs of the run's solutions
    and tests (what the old ``_passes`` query read)."""
    async with sessions() as session:
        for run_id in runs:
            solutions = await session.execute(
                text(
                    "SELECT DISTINCT cs.solution_id FROM run_completions rc JOIN "
                    "completion_solutions cs ON cs.completion_id = rc.completion_id "
                    "WHERE rc.run_id = :run"
                ),
                {"run": run_id},
            )
            tests = await session.execute(
                text(
                    "SELECT DISTINCT ct.unit_test_id FROM run_completions rc JOIN "
                    "completion_tests ct ON ct.completion_id = rc.completion_id "
                    "WHERE rc.run_id = :run"
                ),
                {"run": run_id},
            )
            await passed_pairs(session, PROFILE, {r[0] for r in solutions}, {r[0] for r in tests})


def _migration() -> Any:
    """Migration 0009's module (the old ``v_test_quality`` body)."""
    spec = importlib.util.spec_from_file_location("m0009", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The measurements as a Markdown table."""
    head = (
        "| K | verdicts | bytes/verdict (packed / old) | verdicts/s stored (packed / old) "
        "| report verdict read s (packed / old) | report matrices s | compare matrices s "
        "| dashboard view s (packed / old) |"
    )
    lines = [head, "|" + " --- |" * 8]
    for r in rows:
        old = "old bytes/verdict" in r

        def pair(new: str, before: str, fmt: str, row: dict[str, Any] = r, has: bool = old) -> str:
            value = format(row[new], fmt)
            return f"{value} / {format(row[before], fmt)}" if has else value

        lines.append(
            f"| {r['K']} | {r['verdicts']:,} | {pair('bytes/verdict', 'old bytes/verdict', '.1f')} "
            f"| {pair('verdicts/s', 'old verdicts/s', ',.0f')} "
            f"| {pair('verdicts s (report)', 'old verdicts s (report)', '.2f') if old else '-'} "
            f"| {r['report s']:.2f} | {r['compare s']:.2f} "
            f"| {pair('view s', 'old view s', '.2f')} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Run the bench and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="1,10,30")
    parser.add_argument("--old-up-to", type=int, default=10)
    args = parser.parse_args()
    ks = sorted(int(k) for k in args.ks.split(","))
    rows = asyncio.run(bench(ks, args.old_up_to))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
