"""evalplus benchmarks: inputs, expected outputs, base and plus verdicts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "problems",
        sa.Column("ground_truth", sa.String(length=20), server_default="tests", nullable=False),
    )
    op.add_column(
        "problems",
        sa.Column("oracle", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "problems",
        sa.Column("solution_messages", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "problems",
        sa.Column("test_messages", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("ground_truth", sa.Column("base_passed", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("ground_truth", "base_passed")
    op.drop_column("problems", "test_messages")
    op.drop_column("problems", "solution_messages")
    op.drop_column("problems", "oracle")
    op.drop_column("problems", "ground_truth")
