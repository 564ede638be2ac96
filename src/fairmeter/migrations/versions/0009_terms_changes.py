"""A version of everything a customer's limits are built from, bumped by triggers.

The limits engine keeps each (customer, meter)'s terms in memory and used to read them all
again every second. One read of this version now tells it that nothing they are built
from changed, whoever wrote (another server process, the CLI, plain SQL).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# What entitlement_terms.TermsCache._load reads: the customer, the meter and the others of
# its event type, the subscription and its segments, the plan, overrides, suspensions.
TABLES = (
    "customers",
    "meters",
    "plans",
    "subscriptions",
    "subscription_segments",
    "limit_overrides",
    "customer_suspensions",
)
_BUMP = (
    "INSERT INTO terms_changes (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = terms_changes.version + 1"
)


def upgrade() -> None:
    op.create_table(
        "terms_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION fm_terms_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER fm_terms_{table} AFTER INSERT OR UPDATE OR DELETE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION fm_terms_changed()"
            )
        return
    for table in TABLES:
        for operation in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER fm_terms_{table}_{operation.lower()} AFTER {operation}"
                f" ON {table} BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER fm_terms_{table} ON {table}")
        op.execute("DROP FUNCTION fm_terms_changed()")
    else:
        for table in TABLES:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER fm_terms_{table}_{operation}")
    op.drop_table("terms_changes")
