"""The outbox of PMC's collection API: invoices created online (AltaFactura) sent to
PMC with add_invoice, and withdrawn with remove_invoice, in order per invoice.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pmc_deliveries",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("invoice_pk", sa.Integer(), sa.ForeignKey("invoices.pk"), nullable=False),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("status", sa.String(9), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('add', 'remove')", name="kind"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'rejected')", name="status"),
        sa.CheckConstraint("attempts >= 0", name="attempts"),
        sa.CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)",
                           name="delivered"),
    )
    op.create_index("ix_pmc_deliveries_due", "pmc_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_pmc_deliveries_invoice", "pmc_deliveries", ["invoice_pk", "status"])


def downgrade() -> None:
    op.drop_index("ix_pmc_deliveries_invoice", table_name="pmc_deliveries")
    op.drop_index("ix_pmc_deliveries_due", table_name="pmc_deliveries")
    op.drop_table("pmc_deliveries")
