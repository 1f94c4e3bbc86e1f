"""rounds of a run with a test budget (dynamic unit-test scaling)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 15:00:00

``run_rounds`` (one row a round) and ``run_round_problems`` (a problem's part of a
round), the round a run problem is in, and two views over them for dashboards
(documented in docs/SQL.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS: dict[str, str] = {
    # One row per round of a run with a test budget: test samples granted, spent before
    # and after it, problems given tests, and the run's best-of-N figures once the round
    # was scored (NULL while it runs).
    "v_run_rounds": """
        SELECT rr.run_id, rr.round, rr.units, rr.spent_before,
               rr.spent_before + rr.units AS spent_after, rr.problems,
               (rr.metrics ->> 'coderm_majority.pass@1')::float AS coderm_majority_pass_at_1,
               (rr.metrics ->> 'codet.pass@1')::float AS codet_pass_at_1,
               rr.created_at, rr.scored_at
        FROM run_rounds rr
    """,
    # One row per problem and round: the task, test samples before the round, granted in
    # it, the allocation's estimate and its reason.
    "v_run_round_problems": """
        SELECT rrp.run_id, rrp.round, p.task_id, rrp.problem_id, rrp.tests_before,
               rrp.granted, rrp.tests_before + rrp.granted AS tests_after,
               rrp.estimate, rrp.reason
        FROM run_round_problems rrp
        JOIN problems p ON p.id = rrp.problem_id
    """,
}


def upgrade() -> None:
    op.add_column(
        "run_problems",
        sa.Column("round", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_table(
        "run_rounds",
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("round", sa.Integer(), primary_key=True),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("spent_before", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("metrics", JSONB(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "run_round_problems",
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("round", sa.Integer(), primary_key=True),
        sa.Column("problem_id", sa.Integer(), sa.ForeignKey("problems.id"), primary_key=True),
        sa.Column("tests_before", sa.Integer(), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("estimate", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("run_round_problems")
    op.drop_table("run_rounds")
    op.drop_column("run_problems", "round")
