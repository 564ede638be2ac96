"""Real-time limits: customer overrides, suspension, denial statistics.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limit_overrides",
        sa.Column("customer_key", sa.String(256), primary_key=True),
        sa.Column("meter_key", sa.String(64), primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "customer_suspensions",
        sa.Column("customer_key", sa.String(256), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("suspended_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "limit_denials",
        sa.Column("customer_key", sa.String(256), primary_key=True),
        sa.Column("meter_key", sa.String(64), primary_key=True),
        sa.Column("period_start_us", sa.BigInteger, primary_key=True),
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("limit_denials", "customer_suspensions", "limit_overrides"):
        op.drop_table(table)
