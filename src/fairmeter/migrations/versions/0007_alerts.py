"""Alert rules and customer budgets.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("budget", sa.Text))
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("customer_key", sa.String(256)),
        sa.Column("plan_key", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(64)),
        sa.Column("measure", sa.String(16), nullable=False),
        sa.Column("base", sa.String(16)),
        sa.Column("thresholds", sa.Text, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alert_rules_customer_key", "alert_rules", ["customer_key"])
    op.create_index("ix_alert_rules_plan_key", "alert_rules", ["plan_key"])


def downgrade() -> None:
    op.drop_table("alert_rules")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("budget")
