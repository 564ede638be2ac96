"""Billing: plans (versioned), subscriptions and their segments, invoices and numbering.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("invoice_threshold", sa.Text))
        batch.add_column(sa.Column("net_terms_days", sa.Integer))
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("next_plan", sa.String(64)),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("key", "version", name="uq_plans_key_version"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("customer_key", sa.String(256), nullable=False, index=True),
        sa.Column("plan_key", sa.String(64), nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("anchor_local", sa.String(32), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("cancel_at_us", sa.BigInteger),
        sa.Column("ended_us", sa.BigInteger),
        sa.Column("pending_plan_key", sa.String(64)),
        sa.Column("pending_plan_version", sa.Integer),
        sa.Column("max_overage_amount", sa.Text),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "subscription_segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("plan_key", sa.String(64), nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_segments_subscription_start", "subscription_segments", ["subscription_id", "start_us"]
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("customer_key", sa.String(256), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period_start_us", sa.BigInteger, nullable=False),
        sa.Column("period_end_us", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("covers_until_us", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("rounding", sa.String(16), nullable=False),
        sa.Column("lines", sa.Text, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("number", sa.String(32), unique=True),
        sa.Column("issued_us", sa.BigInteger),
        sa.Column("due_us", sa.BigInteger),
        sa.Column("finalize_after_us", sa.BigInteger, nullable=False),
        sa.Column("finalized_us", sa.BigInteger),
        sa.Column("paid_us", sa.BigInteger),
        sa.Column("voided_us", sa.BigInteger),
        sa.Column("uncollectible_us", sa.BigInteger),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        # One invoice per (subscription, period, kind, sequence): a repeated or concurrent
        # billing run cannot create a second one.
        sa.UniqueConstraint(
            "subscription_id", "period_start_us", "kind", "sequence", name="uq_invoices_period"
        ),
    )
    op.create_index("ix_invoices_status", "invoices", ["status", "finalize_after_us"])
    op.create_table(
        "invoice_series",
        sa.Column("series", sa.String(16), primary_key=True),
        sa.Column("next_number", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("invoice_series", "invoices", "subscription_segments", "subscriptions", "plans"):
        op.drop_table(table)
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("net_terms_days")
        batch.drop_column("invoice_threshold")
