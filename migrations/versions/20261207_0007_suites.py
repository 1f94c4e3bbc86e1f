"""suites of benchmarks and checkpoint evaluations (continuous evaluation)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:00:00

``suites`` (a named list of benchmarks with their run settings, ``coderm suite add``),
``suite_members`` (one benchmark of a suite: test model, N, M, profile, the other run
settings as JSON) and ``checkpoint_evaluations`` (one member's run of one checkpoint,
its verdicts against the previous checkpoint and the best so far, and whether the
regression hook was called; written by ``coderm watch --suite``), with three views
over them for dashboards (documented in docs/SQL.md, read by ``coderm dashboard``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS: dict[str, str] = {
    # One row per member of a suite: the benchmark and the settings of its runs.
    "v_suite_members": """
        SELECT s.name AS suite, s.headline, s.gates, m.position, m.name AS member,
               m.benchmark, m.test_model, m.n, m.m, m.profile, m.settings, s.created_at
        FROM suites s
        JOIN suite_members m ON m.suite_id = s.id
    """,
    # One row per checkpoint and member of a suite: the run, its headline figure, the
    # checkpoints it was compared with and the headline verdicts against them, whether
    # a gated metric regressed, and the hook; with the run's pass@1 figures (percent).
    "v_checkpoint_evaluations": """
        SELECT e.id AS evaluation_id, s.name AS suite, m.name AS member, m.position,
               m.benchmark, m.test_model, e.sequence, e.checkpoint, pm.name AS policy_model,
               e.run_id, r.state AS run_state, e.state, e.headline, e.headline_value,
               e.previous_run_id, e.verdicts #>> '{previous,checkpoint}' AS previous_checkpoint,
               e.verdicts #>> '{previous,headline,verdict}' AS verdict_previous,
               e.best_run_id, e.verdicts #>> '{best,checkpoint}' AS best_checkpoint,
               e.verdicts #>> '{best,headline,verdict}' AS verdict_best,
               e.regressed, jsonb_array_length(e.regressions) AS regressions,
               e.hook_state, e.hook_called_at, e.hook_exit_code,
               sm.vanilla_pass_at_1, sm.oracle_pass_at_1, sm.coderm_majority_pass_at_1,
               sm.codet_pass_at_1, e.created_at, e.finished_at
        FROM checkpoint_evaluations e
        JOIN suites s ON s.id = e.suite_id
        JOIN suite_members m ON m.id = e.member_id
        JOIN models pm ON pm.id = e.policy_model_id
        LEFT JOIN runs r ON r.id = e.run_id
        LEFT JOIN v_run_summary sm ON sm.run_id = e.run_id
    """,
    # One row per evaluation, baseline (previous or best) and metric: the figures of
    # both runs (percent), the delta, its paired-bootstrap interval and verdict, as
    # `coderm compare` computes them (A the checkpoint, B the baseline).
    "v_checkpoint_verdicts": """
        SELECT e.id AS evaluation_id, s.name AS suite, m.name AS member, m.benchmark,
               e.sequence, e.checkpoint, b.against, e.verdicts -> b.against ->> 'checkpoint'
                   AS baseline_checkpoint,
               (e.verdicts -> b.against ->> 'run_id')::uuid AS baseline_run_id,
               i ->> 'metric' AS metric, (i ->> 'a')::float AS a, (i ->> 'b')::float AS b,
               (i ->> 'delta')::float AS delta, (i ->> 'low')::float AS low,
               (i ->> 'high')::float AS high, (i ->> 'level')::float AS level,
               i ->> 'verdict' AS verdict, (i ->> 'problems')::int AS problems
        FROM checkpoint_evaluations e
        JOIN suites s ON s.id = e.suite_id
        JOIN suite_members m ON m.id = e.member_id
        CROSS JOIN (VALUES ('previous'), ('best')) AS b(against)
        CROSS JOIN LATERAL jsonb_array_elements(
            coalesce(e.verdicts -> b.against -> 'intervals', '[]'::jsonb)
        ) AS i
    """,
}


def upgrade() -> None:
    op.create_table(
        "suites",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("headline", sa.String(80), nullable=False),
        sa.Column("gates", JSONB(), nullable=False, server_default="[]"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "suite_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "suite_id", sa.Integer(), sa.ForeignKey("suites.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("benchmark", sa.String(100), nullable=False),
        sa.Column("test_model", sa.String(200), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(20), nullable=False),
        sa.Column("settings", JSONB(), nullable=False, server_default="{}"),
        sa.UniqueConstraint("suite_id", "name"),
        sa.UniqueConstraint("suite_id", "position"),
    )
    op.create_table(
        "checkpoint_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "suite_id", sa.Integer(), sa.ForeignKey("suites.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "member_id",
            sa.Integer(),
            sa.ForeignKey("suite_members.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("policy_model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("headline", sa.String(80), nullable=False),
        sa.Column("headline_value", sa.Float(), nullable=True),
        sa.Column("previous_run_id", UUID(as_uuid=True), nullable=True),
        sa.Column("best_run_id", UUID(as_uuid=True), nullable=True),
        sa.Column("verdicts", JSONB(), nullable=True),
        sa.Column("regressions", JSONB(), nullable=False, server_default="[]"),
        sa.Column("regressed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("hook_state", sa.String(20), nullable=True),
        sa.Column("hook_called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hook_exit_code", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("suite_id", "member_id", "policy_model_id"),
    )
    op.create_index(
        "ix_checkpoint_evaluations_suite_sequence",
        "checkpoint_evaluations",
        ["suite_id", "sequence"],
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("checkpoint_evaluations")
    op.drop_table("suite_members")
    op.drop_table("suites")
