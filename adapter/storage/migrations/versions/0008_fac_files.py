"""The billing base files sent to the network (FAC), what each carried of every
invoice, and the rejection files the network left for them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import Money, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fac_files",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(7), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.UniqueConstraint("biller_id", "day", "attempt"),
        sa.UniqueConstraint("biller_id", "name"),
        sa.CheckConstraint("attempt >= 1", name="attempt"),
        sa.CheckConstraint("state IN ('sending', 'sent', 'failed')", name="state"),
        sa.CheckConstraint("(state = 'sent') = (sent_at IS NOT NULL)", name="sent"),
        sa.CheckConstraint("records >= 0", name="records"),
    )
    op.create_index("ux_fac_files_sending", "fac_files", ["biller_id"], unique=True,
                    sqlite_where=sa.text("state = 'sending'"),
                    postgresql_where=sa.text("state = 'sending'"))
    op.create_table(
        "fac_records",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("file_pk", sa.Integer(), sa.ForeignKey("fac_files.pk"), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("invoice_id", sa.String(20), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rejected", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.UniqueConstraint("file_pk", "customer_id", "invoice_id"),
        sa.CheckConstraint("reason IS NULL OR rejected", name="reason"),
    )
    op.create_index("ix_fac_records_invoice", "fac_records",
                    ["biller_id", "customer_id", "invoice_id", "file_pk"])
    op.create_table(
        "fac_rejections",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("file_pk", sa.Integer(), sa.ForeignKey("fac_files.pk"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("whole", sa.Boolean(), nullable=False),
        sa.Column("marked", sa.Integer(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("file_pk"),
        sa.CheckConstraint("marked >= 0", name="marked"),
    )


def downgrade() -> None:
    op.drop_table("fac_rejections")
    op.drop_index("ix_fac_records_invoice", table_name="fac_records")
    op.drop_table("fac_records")
    op.drop_index("ux_fac_files_sending", table_name="fac_files")
    op.drop_table("fac_files")
