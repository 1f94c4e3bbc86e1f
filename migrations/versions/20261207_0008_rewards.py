"""reward service: test banks, API tokens, reward requests and their items

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "test_banks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("problem_id", sa.Integer(), sa.ForeignKey("problems.id"), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("style", sa.String(20), nullable=False),
        sa.Column("exec_profile", sa.String(200), nullable=False),
        sa.Column("limits", JSONB(), nullable=False),
        _created(),
        sa.UniqueConstraint("problem_id", "source"),
    )
    op.create_index("ix_test_banks_problem_id", "test_banks", ["problem_id"])
    op.create_table(
        "test_bank_tests",
        sa.Column(
            "bank_id",
            sa.Integer(),
            sa.ForeignKey("test_banks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "unit_test_id", sa.BigInteger(), sa.ForeignKey("unit_tests.id"), primary_key=True
        ),
        sa.Column("weight", sa.Integer(), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _created(),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "reward_requests",
        sa.Column("request_key", sa.String(200), primary_key=True),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("meta", JSONB(), nullable=False),
        sa.Column("response", JSONB(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "reward_items",
        sa.Column(
            "request_key",
            sa.String(200),
            sa.ForeignKey("reward_requests.request_key", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("problem_id", sa.Integer(), sa.ForeignKey("problems.id"), nullable=False),
        sa.Column("bank_id", sa.Integer(), sa.ForeignKey("test_banks.id"), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("solution_id", sa.BigInteger(), sa.ForeignKey("solutions.id"), nullable=True),
        sa.Column("extraction_status", sa.String(40), nullable=False),
        sa.Column("tests_run", sa.Integer(), nullable=False),
        sa.Column("tests_passed", sa.Integer(), nullable=False),
        sa.Column("rewards", JSONB(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reward_items")
    op.drop_table("reward_requests")
    op.drop_table("api_tokens")
    op.drop_table("test_bank_tests")
    op.drop_table("test_banks")
