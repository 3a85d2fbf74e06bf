"""Whether a payment notice gave its time: PMC's JSON notice may not, and its payment is
then timed when it was received (a replay, received later, is the same notice).
Every existing notice gave it (SOAP's fechaPago is required).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("paid_at_stated", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("paid_at_stated")
