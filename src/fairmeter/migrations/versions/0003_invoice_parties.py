"""Invoices keep the seller and buyer as they were when the invoice was issued.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON snapshots taken at finalization: a PDF rendered years later names the parties
    # exactly as the issued invoice did, whatever the customer record says now.
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("seller", sa.Text))
        batch.add_column(sa.Column("buyer", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("buyer")
        batch.drop_column("seller")
