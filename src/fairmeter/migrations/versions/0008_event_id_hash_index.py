"""PostgreSQL: a hash index on events.id for the dedupe lookup.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A b-tree probe of (source, id) reads three index pages; a hash probe one bucket page.
    # The unique b-tree stays: it is what ON CONFLICT (source, id) decides on. SQLite has no
    # hash index, and its identity b-tree is in its page cache anyway.
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_events_id_hash", "events", ["id"], postgresql_using="hash")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_events_id_hash", table_name="events")
