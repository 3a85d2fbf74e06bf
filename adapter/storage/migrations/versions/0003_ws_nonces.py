"""WS-Security nonces seen, so that a PasswordDigest token is accepted only once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ws_nonces",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_ws_nonces"),
        sa.UniqueConstraint("caller", "nonce", name="uq_ws_nonces_caller_nonce"),
    )
    op.create_index("ix_ws_nonces_expires_at", "ws_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_ws_nonces_expires_at", table_name="ws_nonces")
    op.drop_table("ws_nonces")
