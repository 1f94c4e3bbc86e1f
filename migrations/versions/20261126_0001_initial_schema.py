"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 02:26:58.570453
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "benchmarks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("test_prompt", sa.Text(), nullable=True),
        sa.Column("entry_point", sa.String(length=200), nullable=False),
        sa.Column("canonical_solution", sa.Text(), nullable=False),
        sa.Column("test_code", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["benchmark_id"], ["benchmarks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("benchmark_id", "task_id"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("benchmark_id", sa.Integer(), nullable=False),
        sa.Column("policy_model_id", sa.Integer(), nullable=False),
        sa.Column("test_model_id", sa.Integer(), nullable=False),
        sa.Column("n_solutions", sa.Integer(), nullable=False),
        sa.Column("n_tests", sa.Integer(), nullable=False),
        sa.Column("test_style", sa.String(length=20), nullable=False),
        sa.Column("exec_profile", sa.String(length=200), nullable=False),
        sa.Column("ground_truth_profile", sa.String(length=200), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["benchmark_id"],
            ["benchmarks.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_model_id"],
            ["models.id"],
        ),
        sa.ForeignKeyConstraint(
            ["test_model_id"],
            ["models.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "completions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("generation", sa.String(length=200), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.String(length=40), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("extraction_status", sa.String(length=40), nullable=True),
        sa.Column("extraction_detail", sa.Text(), nullable=True),
        sa.Column("extracted_by", sa.String(length=40), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
        ),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id", "problem_id", "role", "generation", "sample_index"),
    )
    op.create_table(
        "execution_batches",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("solution_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("executed", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "problem_id", "batch_no"),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "name"),
    )
    op.create_table(
        "run_problems",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("solutions_extracted", sa.Boolean(), nullable=False),
        sa.Column("tests_extracted", sa.Boolean(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "problem_id"),
    )
    op.create_table(
        "selections",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("chosen", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "problem_id", "strategy"),
    )
    op.create_table(
        "solutions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("problem_id", "content_hash"),
    )
    op.create_table(
        "unit_tests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("style", sa.String(length=20), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("problem_id", "style", "content_hash"),
    )
    op.create_table(
        "completion_solutions",
        sa.Column("completion_id", sa.BigInteger(), nullable=False),
        sa.Column("solution_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["completion_id"], ["completions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["solution_id"],
            ["solutions.id"],
        ),
        sa.PrimaryKeyConstraint("completion_id"),
    )
    op.create_index(
        op.f("ix_completion_solutions_solution_id"),
        "completion_solutions",
        ["solution_id"],
        unique=False,
    )
    op.create_table(
        "completion_tests",
        sa.Column("completion_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("unit_test_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["completion_id"], ["completions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["unit_test_id"],
            ["unit_tests.id"],
        ),
        sa.PrimaryKeyConstraint("completion_id", "position"),
    )
    op.create_index(
        op.f("ix_completion_tests_unit_test_id"), "completion_tests", ["unit_test_id"], unique=False
    )
    op.create_table(
        "executions",
        sa.Column("solution_id", sa.BigInteger(), nullable=False),
        sa.Column("unit_test_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("tests_run", sa.Integer(), nullable=True),
        sa.Column("tests_passed", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["solution_id"], ["solutions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_test_id"], ["unit_tests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("solution_id", "unit_test_id", "profile"),
    )
    op.create_table(
        "ground_truth",
        sa.Column("solution_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["solution_id"], ["solutions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("solution_id", "profile"),
    )
    op.create_table(
        "run_completions",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("completion_id", sa.BigInteger(), nullable=False),
        sa.Column("problem_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["problem_id"],
            ["problems.id"],
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "completion_id"),
    )
    op.create_index(
        op.f("ix_run_completions_problem_id"), "run_completions", ["problem_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_run_completions_problem_id"), table_name="run_completions")
    op.drop_table("run_completions")
    op.drop_table("ground_truth")
    op.drop_table("executions")
    op.drop_index(op.f("ix_completion_tests_unit_test_id"), table_name="completion_tests")
    op.drop_table("completion_tests")
    op.drop_index(op.f("ix_completion_solutions_solution_id"), table_name="completion_solutions")
    op.drop_table("completion_solutions")
    op.drop_table("unit_tests")
    op.drop_table("solutions")
    op.drop_table("selections")
    op.drop_table("run_problems")
    op.drop_table("run_metrics")
    op.drop_table("execution_batches")
    op.drop_table("completions")
    op.drop_table("runs")
    op.drop_table("problems")
    op.drop_table("models")
    op.drop_table("benchmarks")
