"""Faults of the infrastructure, injected into the private servers of tests/faults/infra.py.

Each :class:`Fault` blocks in :meth:`Fault.inject` until the fault is over (the server
is back, the file system has room again, ...); what it did is in its description.
Used by tests/faults/test_faults.py (one test a fault) and bench/chaos.py (all of
them in a loop). Never point these at the shared servers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.faults.infra import PrivateInfra
from tests.stack import Stack, wait_for

SANDBOX_FILTER = "label=coderm.sandbox=1"
FULL_TABLES = ("verdicts", "verdict_details", "ground_truth")
"""The tables the disk-full fault moves onto its small file system."""
HOLD_S = float(os.environ.get("CODERM_FAULT_HOLD_S", "20"))
"""How long the database faults (disk full, read-only) last."""
RABBIT_DOWN_S = 30.0


@dataclass
class FaultContext:
    """What a fault acts on: the private servers, the stack slice, the run."""

    infra: PrivateInfra
    stack: Stack
    run_id: str = ""
    notes: list[str] = field(default_factory=list)


Step = Callable[[FaultContext], None]


def _nothing(ctx: FaultContext) -> None:
    """No preparation or clean-up."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``prepare`` before the run starts, ``inject`` once batches run
    (returns when the fault is over), ``cleanup`` after the run finished."""

    name: str
    description: str
    inject: Step
    prepare: Step = _nothing
    cleanup: Step = _nothing


def admin(ctx: FaultContext, *sql: str, database: str | None = None) -> list[asyncpg.Record]:
    """Run statements as the private cluster's superuser (on the stack's database
    unless ``database`` names another); the last one's rows."""

    async def run() -> list[asyncpg.Record]:
        dsn = ctx.infra.postgres.admin_dsn.rsplit("/", 1)[0]
        connection = await asyncpg.connect(f"{dsn}/{database or ctx.stack.database}")
        try:
            rows: list[asyncpg.Record] = []
            for statement in sql:
                rows = list(await connection.fetch(statement))
            return rows
        finally:
            await connection.close()

    return asyncio.run(run())


# --- RabbitMQ ---------------------------------------------------------------------------


def rabbitmq_stop(ctx: FaultContext) -> None:
    """Stop the node gracefully, keep it down 30 s, start it again."""
    ctx.infra.rabbit.stop()
    time.sleep(RABBIT_DOWN_S)
    ctx.infra.rabbit.start()


def rabbitmq_kill(ctx: FaultContext) -> None:
    """SIGKILL the node (no shutdown at all), start it again."""
    ctx.infra.rabbit.kill()
    ctx.infra.rabbit.start()


# --- PostgreSQL -------------------------------------------------------------------------


def postgres_restart(ctx: FaultContext) -> None:
    """``pg_ctl restart -m fast``: every session is rolled back and closed."""
    ctx.infra.postgres.restart_fast()


def postgres_terminate_backend(ctx: FaultContext) -> None:
    """``pg_terminate_backend`` of one service backend on the run's database, a busy
    one (in a query or a transaction) if one shows up within 10 s."""
    sql = """SELECT pid, state FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
             ORDER BY state = 'idle' LIMIT 1"""
    deadline = time.monotonic() + 10
    while True:
        rows = admin(ctx, sql)
        if rows and (rows[0]["state"] != "idle" or time.monotonic() > deadline):
            break
        time.sleep(0.05)
    pid, state = rows[0]["pid"], rows[0]["state"]
    admin(ctx, f"SELECT pg_terminate_backend({int(pid)})")
    ctx.notes.append(f"terminated backend {pid} ({state})")


def _mount_point(ctx: FaultContext) -> Path:
    return ctx.infra.base / "small-fs"


def small_tablespace(ctx: FaultContext) -> None:
    """Mount a 64 MiB tmpfs, make it a tablespace and move the verdict tables (and
    their indexes) onto it."""
    point = _mount_point(ctx)
    point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)], check=True)
    shutil.chown(point, "postgres", "postgres")
    admin(ctx, f"CREATE TABLESPACE small LOCATION '{point}'", database="postgres")
    _move_tables(ctx, "small")


def _move_tables(ctx: FaultContext, tablespace: str) -> None:
    for table in FULL_TABLES:
        indexes = admin(ctx, f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'")
        admin(
            ctx,
            f"ALTER TABLE {table} SET TABLESPACE {tablespace}",
            *(f'ALTER INDEX "{r["indexname"]}" SET TABLESPACE {tablespace}' for r in indexes),
        )


def fill_disk(ctx: FaultContext) -> None:
    """Fill the tablespace's file system to the last byte for ``HOLD_S`` seconds: every
    write that needs a new page fails (No space left on device); then free it."""
    filler = _mount_point(ctx) / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:  # unbuffered: no write left to flush
        size = len(chunk)
        while size:
            try:
                out.write(chunk[:size])
            except OSError:
                size //= 2
    ctx.notes.append(f"filled {filler.stat().st_size >> 20} MiB")
    time.sleep(HOLD_S)
    filler.unlink()


def drop_small_tablespace(ctx: FaultContext) -> None:
    """Move the tables back, drop the tablespace, unmount its file system."""
    _move_tables(ctx, "pg_default")
    admin(ctx, "DROP TABLESPACE small", database="postgres")
    subprocess.run(["umount", str(_mount_point(ctx))], check=True)


def read_only(ctx: FaultContext) -> None:
    """``default_transaction_read_only = on`` for the whole cluster (ALTER SYSTEM and a
    reload: every open session too) for ``HOLD_S`` seconds, then off again."""
    admin(
        ctx,
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
        database="postgres",
    )
    time.sleep(HOLD_S)
    admin(
        ctx,
        "SET default_transaction_read_only = off",
        "ALTER SYSTEM RESET default_transaction_read_only",
        "SELECT pg_reload_conf()",
        database="postgres",
    )


# --- Docker -----------------------------------------------------------------------------


def docker_restart(ctx: FaultContext) -> None:
    """Restart the Docker engine (SIGTERM, as its service manager stops it) while
    batches run in sandboxes; the engine stops their containers."""
    wait_for(lambda: bool(running_sandboxes(ctx)), 60, "a running sandbox", 0.05)
    ctx.infra.docker.stop()
    ctx.infra.docker.start()


def running_sandboxes(ctx: FaultContext) -> list[str]:
    """Ids of the sandbox containers running on the private engine now."""
    return ctx.infra.docker.docker("ps", "-q", "--filter", SANDBOX_FILTER).stdout.split()


def sandbox_kill(ctx: FaultContext) -> None:
    """``docker kill`` one running sandbox container from outside."""
    wait_for(lambda: bool(running_sandboxes(ctx)), 60, "a running sandbox", 0.05)
    victim = running_sandboxes(ctx)[0]
    ctx.infra.docker.docker("kill", victim, check=False)
    ctx.notes.append(f"killed {victim[:12]}")


def sandbox_freeze(ctx: FaultContext) -> None:
    """SIGSTOP every process of one running sandbox container: it never answers again
    (the executor's time-out must end it)."""
    wait_for(lambda: bool(running_sandboxes(ctx)), 60, "a running sandbox", 0.05)
    victim = running_sandboxes(ctx)[0]
    top = ctx.infra.docker.docker("top", victim, "-eo", "pid", check=False).stdout.split()[1:]
    for pid in top:
        try:
            os.kill(int(pid), signal.SIGSTOP)
        except (ProcessLookupError, ValueError):
            continue
    ctx.notes.append(f"froze {victim[:12]} ({len(top)} processes)")


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault("rabbitmq-stop-30s", rabbitmq_stop.__doc__ or "", rabbitmq_stop),
        Fault("rabbitmq-sigkill", rabbitmq_kill.__doc__ or "", rabbitmq_kill),
        Fault("postgres-restart-fast", postgres_restart.__doc__ or "", postgres_restart),
        Fault(
            "postgres-terminate-backend",
            postgres_terminate_backend.__doc__ or "",
            postgres_terminate_backend,
        ),
        Fault(
            "postgres-disk-full",
            fill_disk.__doc__ or "",
            fill_disk,
            prepare=small_tablespace,
            cleanup=drop_small_tablespace,
        ),
        Fault("postgres-read-only", read_only.__doc__ or "", read_only),
        Fault("docker-restart", docker_restart.__doc__ or "", docker_restart),
        Fault("sandbox-killed", sandbox_kill.__doc__ or "", sandbox_kill),
        Fault("sandbox-frozen", sandbox_freeze.__doc__ or "", sandbox_freeze),
    )
}
"""Every fault, by name, in the order the bench runs them."""
