"""The network's payment reports (COB): the files imported and the lines they carry;
payments recorded from a report line, and late notices covered by one.

* ``payments.origin``: 'notice' (every existing row) or 'report', with
  ``report_line_pk`` (unique) for the latter;
* ``payments.covered_by_pk`` (unique) and status 'covered': a notice that came
  after its payment was recorded from the report points at that payment;
* indexes on payments and debt queries by biller and time (a day's close, the
  month's query charges);
* ``payment_decisions``: what a person decided about an observed payment, once;
  payments may be 'resolved' (applied by that decision) or 'dismissed'; the
  outbox carries 'resolution' rows (the ERP applies the payment to that invoice).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

from adapter.storage.orm import Money, UtcDateTime

BEFORE = ("(status = 'applied' AND applied_invoice_pk IS NOT NULL AND response_code = 0)"
          " OR (status = 'observed' AND applied_invoice_pk IS NULL AND response_code > 0)"
          " OR (status = 'reversed' AND applied_invoice_pk IS NULL)")
COVERED = (" OR (status = 'covered' AND applied_invoice_pk IS NULL"
           " AND covered_by_pk IS NOT NULL AND response_code = 0)"
           " OR (status = 'resolved' AND applied_invoice_pk IS NOT NULL AND response_code > 0)"
           " OR (status = 'dismissed' AND applied_invoice_pk IS NULL AND response_code > 0)")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_files",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_report_files"),
        sa.UniqueConstraint("biller_id", "sha256", name="uq_report_files_biller_id_sha256"),
        sa.CheckConstraint("records >= 0 AND rejected >= 0 AND rejected <= records",
                           name="ck_report_files_records"),
    )
    op.create_table(
        "report_lines",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("biller_id", sa.String(4), nullable=False),
        sa.Column("channel", sa.String(2), nullable=False),
        sa.Column("control", sa.String(4), nullable=False),
        sa.Column("invoice_id", sa.String(20), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.String(19), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("movement", sa.String(1), nullable=False),
        sa.Column("credited_on", sa.Date(), nullable=False),
        sa.Column("file_pk", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_report_lines"),
        sa.ForeignKeyConstraint(["file_pk"], ["report_files.pk"],
                                name="fk_report_lines_file_pk_report_files"),
        # the identity, invoice first: what an import looks its batch's twins up by
        sa.UniqueConstraint("biller_id", "invoice_id", "paid_on", "channel", "control",
                            name="uq_report_lines_biller_id_invoice_id_paid_on_channel_control"),
        sa.CheckConstraint("amount >= 0", name="ck_report_lines_amount"),
    )
    op.create_index("ix_report_lines_day", "report_lines", ["biller_id", "paid_on"])
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("origin", sa.String(6), nullable=False,
                                   server_default="notice"))
        batch.add_column(sa.Column("report_line_pk", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("covered_by_pk", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_payments_report_line_pk_report_lines", "report_lines",
                                 ["report_line_pk"], ["pk"])
        batch.create_foreign_key("fk_payments_covered_by_pk_payments", "payments",
                                 ["covered_by_pk"], ["pk"])
        batch.create_unique_constraint("uq_payments_report_line_pk", ["report_line_pk"])
        batch.create_unique_constraint("uq_payments_covered_by_pk", ["covered_by_pk"])
        batch.create_check_constraint(
            "ck_payments_origin",
            "(origin = 'notice' AND report_line_pk IS NULL) OR (origin = 'report' AND "
            "report_line_pk IS NOT NULL AND covered_by_pk IS NULL)")
        batch.drop_constraint("ck_payments_applied_iff_linked", type_="check")
        batch.create_check_constraint("ck_payments_applied_iff_linked", BEFORE + COVERED)
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("status", type_=sa.String(9), existing_type=sa.String(8),
                           existing_nullable=False)
    with op.batch_alter_table("erp_forwards") as batch:
        batch.alter_column("kind", type_=sa.String(10), existing_type=sa.String(8),
                           existing_nullable=False, existing_server_default="payment")
        batch.drop_constraint("ck_erp_forwards_kind", type_="check")
        batch.create_check_constraint("ck_erp_forwards_kind",
                                      "kind IN ('payment', 'reversal', 'resolution')")
    op.create_table(
        "payment_decisions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("payment_pk", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(9), nullable=False),
        sa.Column("invoice_pk", sa.Integer(), nullable=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("decided_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_payment_decisions"),
        sa.ForeignKeyConstraint(["payment_pk"], ["payments.pk"],
                                name="fk_payment_decisions_payment_pk_payments"),
        sa.ForeignKeyConstraint(["invoice_pk"], ["invoices.pk"],
                                name="fk_payment_decisions_invoice_pk_invoices"),
        sa.UniqueConstraint("payment_pk", name="uq_payment_decisions_payment_pk"),
        sa.CheckConstraint("(action = 'applied' AND invoice_pk IS NOT NULL)"
                           " OR (action = 'dismissed' AND invoice_pk IS NULL)",
                           name="ck_payment_decisions_action"),
    )
    # what a day's close and the month's query charges look up
    op.create_index("ix_payments_paid", "payments", ["biller_id", "paid_at"])
    op.create_index("ix_debt_queries_asked", "debt_queries", ["biller_id", "asked_at"])


def downgrade() -> None:
    op.drop_table("payment_decisions")
    with op.batch_alter_table("erp_forwards") as batch:
        batch.drop_constraint("ck_erp_forwards_kind", type_="check")
        batch.create_check_constraint("ck_erp_forwards_kind", "kind IN ('payment', 'reversal')")
        batch.alter_column("kind", type_=sa.String(8), existing_type=sa.String(10),
                           existing_nullable=False, existing_server_default="payment")
    with op.batch_alter_table("payments") as batch:
        batch.alter_column("status", type_=sa.String(8), existing_type=sa.String(9),
                           existing_nullable=False)
    op.drop_index("ix_debt_queries_asked", table_name="debt_queries")
    op.drop_index("ix_payments_paid", table_name="payments")
    # Refused by the database while a payment was recorded from a report or covered.
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("ck_payments_applied_iff_linked", type_="check")
        batch.create_check_constraint("ck_payments_applied_iff_linked", BEFORE)
        batch.drop_constraint("ck_payments_origin", type_="check")
        batch.drop_constraint("uq_payments_covered_by_pk", type_="unique")
        batch.drop_constraint("uq_payments_report_line_pk", type_="unique")
        batch.drop_constraint("fk_payments_covered_by_pk_payments", type_="foreignkey")
        batch.drop_constraint("fk_payments_report_line_pk_report_lines", type_="foreignkey")
        batch.drop_column("covered_by_pk")
        batch.drop_column("report_line_pk")
        batch.drop_column("origin")
    op.drop_index("ix_report_lines_day", table_name="report_lines")
    op.drop_table("report_lines")
    op.drop_table("report_files")
