"""model registry and generation metadata

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Columns filled on existing rows by a server default that is dropped afterwards
#: (the application always writes them).
_DEFAULTED = (
    ("role", sa.String(length=20), "both"),
    ("format", sa.String(length=20), "chat"),
    ("dtype", sa.String(length=20), "auto"),
    ("temperature", sa.Float(), "0.8"),
    ("top_p", sa.Float(), "0.95"),
    ("max_tokens", sa.Integer(), "2048"),
)


def upgrade() -> None:
    for name, type_, default in _DEFAULTED:
        op.add_column(
            "models", sa.Column(name, type_, nullable=False, server_default=sa.text(f"'{default}'"))
        )
    op.add_column("models", sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.add_column("models", sa.Column("endpoint", sa.Text(), nullable=True))
    op.add_column("models", sa.Column("served_name", sa.String(length=200), nullable=True))
    op.add_column("models", sa.Column("api_key_ref", sa.String(length=100), nullable=True))
    op.add_column("models", sa.Column("max_model_len", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_models_fingerprint"), "models", ["fingerprint"], unique=False)
    op.execute(
        "UPDATE models SET format = config->>'format', config = config - 'format' "
        "WHERE config ? 'format'"
    )
    for name, _, _ in _DEFAULTED:
        op.alter_column("models", name, server_default=None)


def downgrade() -> None:
    op.execute("UPDATE models SET config = config || jsonb_build_object('format', format)")
    op.drop_index(op.f("ix_models_fingerprint"), table_name="models")
    for name in ("max_model_len", "api_key_ref", "served_name", "endpoint", "fingerprint"):
        op.drop_column("models", name)
    for name, _, _ in reversed(_DEFAULTED):
        op.drop_column("models", name)
