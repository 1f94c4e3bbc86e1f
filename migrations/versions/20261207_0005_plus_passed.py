"""ground truth: the plus inputs' verdict alone (evalplus's plus_status)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ground_truth", sa.Column("plus_passed", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("ground_truth", "plus_passed")
