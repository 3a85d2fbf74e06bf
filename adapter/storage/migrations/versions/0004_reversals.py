"""Reversals (AnularPago), and the outbox rows that take them to the ERP.

* ``reversals``: one per biller and payment operation ID, applied to its
  payment, pending until the payment's notice arrives, or refused then.
* ``payments.status`` may be 'reversed' (pointing at no invoice: the invoice it
  paid is open again).
* ``erp_forwards.kind``: 'payment' (every existing row) or 'reversal'; unique on
  ``(payment_pk, kind)`` instead of ``payment_pk``.

Check constraints are named as in 0002 (see there). SQLite rebuilds the altered
tables in batch mode, with foreign keys checked before commit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import Money, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPLIED_IFF_LINKED = (
    "(status = 'applied' AND applied_invoice_pk IS NOT NULL AND response_code = 0)"
    " OR (status = 'observed' AND applied_invoice_pk IS NULL AND response_code > 0)")


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("ck_payments_applied_iff_linked", type_="check")
        batch.create_check_constraint(
            "ck_payments_applied_iff_linked",
            APPLIED_IFF_LINKED + " OR (status = 'reversed' AND applied_invoice_pk IS NULL)")
    with op.batch_alter_table("erp_forwards") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False,
                                   server_default="payment"))
        batch.drop_constraint("uq_erp_forwards_payment_pk", type_="unique")
        batch.create_unique_constraint("uq_erp_forwards_payment_pk_kind", ["payment_pk", "kind"])
        batch.create_check_constraint("ck_erp_forwards_kind", "kind IN ('payment', 'reversal')")
    op.create_table(
        "reversals",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("reversal_id", sa.String(36), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("operation_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("invoice_id", sa.String(20), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reversed_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(100), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("refusal_code", sa.Integer(), nullable=True),
        sa.Column("payment_pk", sa.Integer(), nullable=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_reversals"),
        sa.ForeignKeyConstraint(["payment_pk"], ["payments.pk"],
                                name="fk_reversals_payment_pk_payments"),
        sa.UniqueConstraint("biller_id", "operation_id",
                            name="uq_reversals_biller_id_operation_id"),
        sa.UniqueConstraint("reversal_id", name="uq_reversals_reversal_id"),
        sa.UniqueConstraint("payment_pk", name="uq_reversals_payment_pk"),
        sa.CheckConstraint("amount >= 0", name="ck_reversals_amount"),
        sa.CheckConstraint("currency IN ('ARS', 'USD')", name="ck_reversals_currency"),
        sa.CheckConstraint("response_code IN (0, 8)", name="ck_reversals_response_code"),
        sa.CheckConstraint(
            "(status = 'applied' AND payment_pk IS NOT NULL AND refusal_code IS NULL)"
            " OR (status = 'pending' AND payment_pk IS NULL AND refusal_code IS NULL"
            " AND response_code = 8)"
            " OR (status = 'refused' AND payment_pk IS NULL AND refusal_code IN (9, 10))",
            name="ck_reversals_state"),
    )


def downgrade() -> None:
    # Refused by the database while a payment is reversed or a reversal is in the
    # outbox: going back would forget a reversal.
    op.drop_table("reversals")
    with op.batch_alter_table("erp_forwards") as batch:
        batch.drop_constraint("ck_erp_forwards_kind", type_="check")
        batch.drop_constraint("uq_erp_forwards_payment_pk_kind", type_="unique")
        batch.create_unique_constraint("uq_erp_forwards_payment_pk", ["payment_pk"])
        batch.drop_column("kind")
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("ck_payments_applied_iff_linked", type_="check")
        batch.create_check_constraint("ck_payments_applied_iff_linked", APPLIED_IFF_LINKED)
