"""Metering core: API keys, customers, meters, events and usage rollups.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_QUANTITY = sa.Text().with_variant(sa.Numeric(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(256), nullable=False, unique=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "meters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False, index=True),
        sa.Column("aggregation", sa.String(16), nullable=False),
        sa.Column("value_property", sa.String(256)),
        sa.Column("group_by", sa.Text, nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("archived_us", sa.BigInteger),
        sa.Column("archived_seq", sa.BigInteger),
    )
    op.create_table(
        "events",
        sa.Column("seq", _SEQ, primary_key=True),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("type", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("digest", sa.LargeBinary(16), nullable=False),
        sa.UniqueConstraint("source", "id", name="uq_events_identity"),
    )
    op.create_index("ix_events_time", "events", ["time_us"])
    op.create_table(
        "usage_rollups",
        sa.Column("meter_id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(256), primary_key=True),
        sa.Column("bucket_us", sa.BigInteger, primary_key=True),
        sa.Column("group_key", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("total", _QUANTITY, nullable=False),
        sa.Column("maximum", _QUANTITY),
        sa.Column("latest_us", sa.BigInteger),
        sa.Column("latest", _QUANTITY),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "usage_distinct",
        sa.Column("meter_id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(256), primary_key=True),
        sa.Column("bucket_us", sa.BigInteger, primary_key=True),
        sa.Column("group_key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in ("usage_distinct", "usage_rollups", "events", "meters", "customers", "api_keys"):
        op.drop_table(table)
