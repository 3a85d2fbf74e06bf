"""Operation IDs are unique per biller; payments may be stored with code 11 (future date).

* ``payments``: the unique key on ``operation_id`` alone becomes one on
  ``(biller_id, operation_id)``: PMC numbers operations per biller, and the
  same ``idOperacion`` for two billers is two payments.
* ``payments.response_code`` admits 11, a notice dated after the server's
  clock (plus the allowed skew), stored as observed.

SQLite cannot alter constraints: batch mode rebuilds the table (copy, drop,
rename). ``upgrade_schema`` runs SQLite migrations with foreign keys off, so
that dropping the old ``payments`` does not trip ``erp_forwards``' reference
to it, and checks every foreign key before committing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# Check constraints are named as in 0001: the target metadata's naming convention
# ("ck_%(table_name)s_%(constraint_name)s") is applied to these names too, so
# "ck_payments_response_code" stands for the "ck_payments_ck_payments_response_code"
# that 0001 created.


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("uq_payments_operation_id", type_="unique")
        batch.create_unique_constraint("uq_payments_biller_id_operation_id",
                                       ["biller_id", "operation_id"])
        batch.drop_constraint("ck_payments_response_code", type_="check")
        batch.create_check_constraint("ck_payments_response_code",
                                      "response_code BETWEEN 0 AND 6 OR response_code = 11")


def downgrade() -> None:
    # Refused by the database while one operation ID is stored for two billers, or a
    # payment with code 11 exists: going back would have to drop a payment.
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("ck_payments_response_code", type_="check")
        batch.create_check_constraint("ck_payments_response_code",
                                      "response_code BETWEEN 0 AND 6")
        batch.drop_constraint("uq_payments_biller_id_operation_id", type_="unique")
        batch.create_unique_constraint("uq_payments_operation_id", ["operation_id"])
