"""Customers get a locale: how invoices format amounts and quantities for them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no backfill: existing customers read as en_US, the formatting they had.
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("locale", sa.String(35)))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("locale")
