"""Initial schema: invoices, payments, debt queries, the ERP outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import Money, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("invoice_id", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.String(100), nullable=False),
        sa.Column("ticket_message", sa.String(40), nullable=False),
        sa.Column("screen_message", sa.String(15), nullable=False),
        sa.Column("origin", sa.String(4), nullable=False),
        sa.Column("status", sa.String(6), nullable=False),
        sa.Column("due_date_1", sa.Date(), nullable=False),
        sa.Column("amount_1", Money(), nullable=False),
        sa.Column("due_date_2", sa.Date()),
        sa.Column("amount_2", Money()),
        sa.Column("due_date_3", sa.Date()),
        sa.Column("amount_3", Money()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_invoices"),
        sa.UniqueConstraint("biller_id", "customer_id", "invoice_id",
                            name="uq_invoices_biller_id_customer_id_invoice_id"),
        sa.CheckConstraint("currency IN ('ARS', 'USD')", name="ck_invoices_currency"),
        sa.CheckConstraint("origin IN ('BASE', 'ALTA', 'ERP')", name="ck_invoices_origin"),
        sa.CheckConstraint("status IN ('open', 'paid')", name="ck_invoices_status"),
        sa.CheckConstraint("amount_1 >= 0 AND (amount_2 IS NULL OR amount_2 >= 0)"
                           " AND (amount_3 IS NULL OR amount_3 >= 0)", name="ck_invoices_amounts"),
        sa.CheckConstraint("(due_date_2 IS NULL) = (amount_2 IS NULL)"
                           " AND (due_date_3 IS NULL) = (amount_3 IS NULL)",
                           name="ck_invoices_due_pairs"),
        sa.CheckConstraint("due_date_2 IS NULL OR due_date_2 > due_date_1",
                           name="ck_invoices_due_2_after_1"),
        sa.CheckConstraint("due_date_3 IS NULL OR (due_date_2 IS NOT NULL"
                           " AND due_date_3 > due_date_2)", name="ck_invoices_due_3_after_2"),
    )
    op.create_table(
        "payments",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("operation_id", sa.String(36), nullable=False),
        sa.Column("receipt_id", sa.String(36), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("invoice_id", sa.String(20), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("paid_at", UtcDateTime(), nullable=False),
        sa.Column("channel", sa.String(30)),
        sa.Column("query_id", sa.String(36)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("applied_invoice_pk", sa.Integer()),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_payments"),
        sa.UniqueConstraint("operation_id", name="uq_payments_operation_id"),
        sa.UniqueConstraint("receipt_id", name="uq_payments_receipt_id"),
        sa.UniqueConstraint("applied_invoice_pk", name="uq_payments_applied_invoice_pk"),
        sa.ForeignKeyConstraint(["applied_invoice_pk"], ["invoices.pk"],
                                name="fk_payments_applied_invoice_pk_invoices"),
        sa.CheckConstraint("amount >= 0", name="ck_payments_amount"),
        sa.CheckConstraint("currency IN ('ARS', 'USD')", name="ck_payments_currency"),
        sa.CheckConstraint("response_code BETWEEN 0 AND 6", name="ck_payments_response_code"),
        sa.CheckConstraint("(status = 'applied' AND applied_invoice_pk IS NOT NULL"
                           " AND response_code = 0) OR (status = 'observed'"
                           " AND applied_invoice_pk IS NULL AND response_code > 0)",
                           name="ck_payments_applied_iff_linked"),
    )
    op.create_table(
        "debt_queries",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("query_id", sa.String(36), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("invoice_id", sa.String(20)),
        sa.Column("response_code", sa.Integer(), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.Column("asked_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_debt_queries"),
        sa.UniqueConstraint("query_id", name="uq_debt_queries_query_id"),
    )
    op.create_table(
        "erp_forwards",
        sa.Column("pk", sa.Integer(), primary_key=True),
        sa.Column("payment_pk", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(9), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", UtcDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("erp_reference", sa.String(64)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("pk", name="pk_erp_forwards"),
        sa.UniqueConstraint("payment_pk", name="uq_erp_forwards_payment_pk"),
        sa.ForeignKeyConstraint(["payment_pk"], ["payments.pk"],
                                name="fk_erp_forwards_payment_pk_payments"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'rejected')",
                           name="ck_erp_forwards_status"),
        sa.CheckConstraint("attempts >= 0", name="ck_erp_forwards_attempts"),
        sa.CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)",
                           name="ck_erp_forwards_delivered"),
    )
    op.create_index("ix_erp_forwards_due", "erp_forwards", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("erp_forwards")
    op.drop_table("debt_queries")
    op.drop_table("payments")
    op.drop_table("invoices")
