"""Retention: archiving and deleting runs, and ``coderm gc``, which removes the verdicts,
completions, solutions and unit tests no kept run (nor the reward gateway) needs.

A run is *kept* unless archived (``runs.archived_at``): an archived run keeps its row,
metrics, selections and samples (``coderm runs``, ``compare`` on its stored metrics),
but its verdicts are no longer kept for it. ``coderm delete`` removes a run and
everything that is its own (its samples, batches, selections, metrics, rounds).

``gc`` then deletes, in one transaction:

1. verdict rows of a (solution, execution profile) no kept run and no reward request
   uses (a run uses its solutions under its execution profile; a reward request its
   solution under its bank's profile);
2. completions no run lists (imported completions stay: later runs replay them);
3. solutions and unit tests no completion, bank or reward request refers to and older
   than ``min_age`` (a live extraction or reward request may be about to link them),
   with their labels and verdicts.

Freed bytes are the deleted rows' sizes (``pg_column_size``): PostgreSQL reuses the
space for new rows after ``VACUUM`` (autovacuum) and returns it to the system only on
``VACUUM FULL``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import IMPORTED_GENERATION, Run


@dataclass(frozen=True)
class Freed:
    """What one step of ``gc`` deleted: rows and their bytes."""

    what: str
    rows: int
    bytes: int


async def archive_run(session: AsyncSession, run_id: uuid.UUID, *, undo: bool = False) -> None:
    """Mark a run archived (``undo``: kept again; its verdicts, if collected meanwhile,
    are computed again when it is resumed or re-run)."""
    await session.execute(
        update(Run).where(Run.id == run_id).values(archived_at=None if undo else datetime.now(UTC))
    )


async def delete_run(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Delete a run and what is its own (cascades); shared code and verdicts stay for
    ``gc``."""
    await session.execute(delete(Run).where(Run.id == run_id))


_KEPT_PAIRS = """
    SELECT DISTINCT cs.solution_id, p.id AS profile_id
    FROM runs r
    JOIN run_completions rc ON rc.run_id = r.id
    JOIN completion_solutions cs ON cs.completion_id = rc.completion_id
    JOIN exec_profiles p ON p.name = r.exec_profile
    WHERE r.archived_at IS NULL
    UNION
    SELECT ri.solution_id, p.id
    FROM reward_items ri
    JOIN test_banks b ON b.id = ri.bank_id
    JOIN exec_profiles p ON p.name = b.exec_profile
    WHERE ri.solution_id IS NOT NULL
"""

STEPS: tuple[tuple[str, str], ...] = (
    (
        "verdict rows",
        f"""WITH kept AS ({_KEPT_PAIRS})
        DELETE FROM verdicts v
        WHERE NOT EXISTS (SELECT 1 FROM kept k
                          WHERE k.solution_id = v.solution_id AND k.profile_id = v.profile_id)
        RETURNING pg_column_size(v.*) AS size""",
    ),
    (
        "completions",
        """DELETE FROM completions c
        WHERE c.generation <> :imported AND c.created_at < :before
          AND NOT EXISTS (SELECT 1 FROM run_completions rc WHERE rc.completion_id = c.id)
        RETURNING pg_column_size(c.*) AS size""",
    ),
    (
        "labels",
        """DELETE FROM ground_truth g
        USING solutions s
        WHERE s.id = g.solution_id AND s.created_at < :before
          AND NOT EXISTS (SELECT 1 FROM completion_solutions cs WHERE cs.solution_id = s.id)
          AND NOT EXISTS (SELECT 1 FROM reward_items ri WHERE ri.solution_id = s.id)
        RETURNING pg_column_size(g.*) AS size""",
    ),
    (
        "solutions",
        """DELETE FROM solutions s
        WHERE s.created_at < :before
          AND NOT EXISTS (SELECT 1 FROM completion_solutions cs WHERE cs.solution_id = s.id)
          AND NOT EXISTS (SELECT 1 FROM reward_items ri WHERE ri.solution_id = s.id)
        RETURNING pg_column_size(s.*) AS size""",
    ),
    (
        "unit tests",
        """DELETE FROM unit_tests t
        WHERE t.created_at < :before
          AND NOT EXISTS (SELECT 1 FROM completion_tests ct WHERE ct.unit_test_id = t.id)
          AND NOT EXISTS (SELECT 1 FROM test_bank_tests b WHERE b.unit_test_id = t.id)
        RETURNING pg_column_size(t.*) AS size""",
    ),
)


async def collect(session: AsyncSession, min_age: timedelta) -> list[Freed]:
    """Delete what no kept run needs (the module's steps, in order); what each freed."""
    params: dict[str, object] = {
        "imported": IMPORTED_GENERATION,
        "before": datetime.now(UTC) - min_age,
    }
    freed = []
    for what, sql in STEPS:
        used = {k: v for k, v in params.items() if f":{k}" in sql}
        sizes = list(await session.scalars(text(sql), used))
        freed.append(Freed(what, len(sizes), sum(sizes)))
    return freed
