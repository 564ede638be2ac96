"""events.copies: how many identical events a row stands for.

A count meter's admitted calls (the limits writer's run, ADR 13) are one row with
`copies` = the number of calls, where they were one row per call. Every other row
stands for one event. Adding a column with a constant default rewrites no row on
SQLite or PostgreSQL 11+.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "events", sa.Column("copies", sa.BigInteger(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    op.drop_column("events", "copies")
