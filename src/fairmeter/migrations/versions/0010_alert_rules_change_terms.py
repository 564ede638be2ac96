"""Alert rules bump the terms version too.

Alert evaluation keeps each busy customer's context (plan in force, period, limits,
budget, the rules that apply) and used to read it all again every second. With the rules
among the tables that bump `terms_changes.version` (migration 0009), one read of the
version tells it that nothing the context is built from changed.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "alert_rules"
_BUMP = (
    "INSERT INTO terms_changes (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = terms_changes.version + 1"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER fm_terms_{TABLE} AFTER INSERT OR UPDATE OR DELETE ON {TABLE}"
            " FOR EACH STATEMENT EXECUTE FUNCTION fm_terms_changed()"
        )
        return
    for operation in ("INSERT", "UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER fm_terms_{TABLE}_{operation.lower()} AFTER {operation}"
            f" ON {TABLE} BEGIN {_BUMP}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER fm_terms_{TABLE} ON {TABLE}")
        return
    for operation in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER fm_terms_{TABLE}_{operation}")
