"""The schema, as SQLAlchemy Core tables; Alembic migrations create the same."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class Quantity(TypeDecorator[str]):
    """Exact decimals: NUMERIC on PostgreSQL, decimal text on SQLite (which has no exact type).

    Values cross this boundary as decimal strings; arithmetic in SQL uses the dialect's
    functions (see dialect.py)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):  # type: ignore[no-untyped-def]
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Text())


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(256), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("email", String(320)),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

meters = Table(
    "meters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("event_type", String(256), nullable=False, index=True),
    Column("aggregation", String(16), nullable=False),
    Column("value_property", String(256)),
    Column("group_by", Text, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("archived_us", BigInteger),
    # The last event (by seq) stored before archiving: later ones are not counted.
    Column("archived_seq", BigInteger),
)

# Rows are appended in arrival order (seq); (source, id) is the identity that dedupes.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source", String(256), nullable=False),
    Column("id", String(256), nullable=False),
    Column("type", String(256), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    Column("digest", LargeBinary(16), nullable=False),
    # How many identical events the row stands for: 1, or a count meter's admitted calls
    # written as one run (ids `id`, `id:2` .. `id:<copies>`; ADR 13).
    Column("copies", BigInteger, nullable=False, server_default="1"),
    UniqueConstraint("source", "id", name="uq_events_identity"),
    # Only time: new events land at its right edge (cheap to maintain); a usage query reads
    # raw events only for the partial buckets at its edges, a few minutes of all events.
    Index("ix_events_time", "time_us"),
    # PostgreSQL only: the dedupe lookup probes this instead of the identity b-tree
    # (migration 0008; ADR 3).
    Index("ix_events_id_hash", "id", postgresql_using="hash").ddl_if(dialect="postgresql"),
)

# Per meter, subject, 15-minute bucket and group: what its events add up to.
usage_rollups = Table(
    "usage_rollups",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("bucket_us", BigInteger, primary_key=True),
    Column("group_key", Text, primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("total", Quantity, nullable=False),
    Column("maximum", Quantity),
    Column("latest_us", BigInteger),
    Column("latest", Quantity),
    # Clustered on its key in SQLite: a customer's range is read without a second lookup.
    sqlite_with_rowid=False,
)

# unique_count stays exact: the distinct values seen per bucket and group.
usage_distinct = Table(
    "usage_distinct",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("bucket_us", BigInteger, primary_key=True),
    Column("group_key", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    sqlite_with_rowid=False,
)

# --- billing (migration 0002) -------------------------------------------------------------
customers.append_column(Column("invoice_threshold", Text))
customers.append_column(Column("net_terms_days", Integer))
# How invoices format numbers for the customer (migration 0004); null reads as en_US.
customers.append_column(Column("locale", String(35)))

# A plan's versions: editing a plan that has subscribers adds a version; `definition` is
# the plan as `domain.plans.Plan.as_dict()` writes it.
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("next_plan", String(64)),
    Column("definition", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("key", "version", name="uq_plans_key_version"),
)

# `anchor_local` is the naive wall time (ISO 8601) in `zone` that periods repeat from
# (domain.periods.Anchor); the current plan is the open segment's.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_key", String(256), nullable=False, index=True),
    Column("plan_key", String(64), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("anchor_local", String(32), nullable=False),
    Column("start_us", BigInteger, nullable=False),
    Column("cancel_at_us", BigInteger),
    Column("ended_us", BigInteger),
    Column("pending_plan_key", String(64)),
    Column("pending_plan_version", Integer),
    Column("max_overage_amount", Text),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# The plan in force over [start, end) of a subscription's life; end is NULL while open.
subscription_segments = Table(
    "subscription_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(40), nullable=False),
    Column("plan_key", String(64), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger),
    Column("reason", String(32), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_segments_subscription_start", "subscription_id", "start_us"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subscription_id", String(40), nullable=False),
    Column("customer_key", String(256), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("period_start_us", BigInteger, nullable=False),
    Column("period_end_us", BigInteger, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("covers_until_us", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("rounding", String(16), nullable=False),
    Column("lines", Text, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("series", String(16), nullable=False),
    Column("number", String(32), unique=True),
    Column("issued_us", BigInteger),
    Column("due_us", BigInteger),
    Column("finalize_after_us", BigInteger, nullable=False),
    Column("finalized_us", BigInteger),
    Column("paid_us", BigInteger),
    Column("voided_us", BigInteger),
    Column("uncollectible_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint(
        "subscription_id", "period_start_us", "kind", "sequence", name="uq_invoices_period"
    ),
    Index("ix_invoices_status", "status", "finalize_after_us"),
)

# Seller and buyer as issued (migration 0003): JSON snapshots taken at finalization.
invoices.append_column(Column("seller", Text))
invoices.append_column(Column("buyer", Text))

# Gapless numbering: the next number of each series, taken under a row lock when an
# invoice is finalized, in the same transaction.
invoice_series = Table(
    "invoice_series",
    metadata,
    Column("series", String(16), primary_key=True),
    Column("next_number", BigInteger, nullable=False),
)

# --- notifications (migration 0006) -------------------------------------------------------
# What a customer was told, once per `dedupe_key` forever: the proof of warning.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer_key", String(256), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("dedupe_key", String(512), nullable=False),
    Column("title", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("rule_id", String(64)),
    Column("period_start_us", BigInteger),
    Column("period_end_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("dedupe_key", name="uq_notifications_dedupe"),
    Index("ix_notifications_customer", "customer_key", "created_us"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("disabled_us", BigInteger),
    Column("disabled_reason", Text),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# The outbox: one row per notification and channel, written in the transaction that caused
# it; a worker claims due rows with a lease (`lease_token` tells whose result counts).
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("notification_id", String(40), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("endpoint_id", String(40)),
    Column("recipient", String(320)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("lease_until_us", BigInteger),
    Column("lease_token", String(32)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_deliveries_due", "status", "next_attempt_us"),
    Index("ix_deliveries_notification", "notification_id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_delivery_attempts_delivery", "delivery_id"),
)

# --- alerts (migration 0007) --------------------------------------------------------------
# A customer's own spending budget per period, a decimal string in its currency.
customers.append_column(Column("budget", Text))

# Alert rules, on a plan (every subscriber) or on one customer. `thresholds` is a JSON list
# of decimal strings: percentages of `base` (limit, included or budget) when `measure` is
# "percent", else absolute quantities or amounts.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("customer_key", String(256), index=True),
    Column("plan_key", String(64), index=True),
    Column("kind", String(32), nullable=False),
    Column("meter", String(64)),
    Column("measure", String(16), nullable=False),
    Column("base", String(16)),
    Column("thresholds", Text, nullable=False),
    Column("enabled", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# --- limits (migration 0005) --------------------------------------------------------------
# A customer's overrides of a plan's limit per meter; `definition` is
# `domain.limits.Override.as_dict()` as JSON.
limit_overrides = Table(
    "limit_overrides",
    metadata,
    Column("customer_key", String(256), primary_key=True),
    Column("meter_key", String(64), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# Customers whose access is suspended (every check answers "suspended") until restored.
customer_suspensions = Table(
    "customer_suspensions",
    metadata,
    Column("customer_key", String(256), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("suspended_us", BigInteger, nullable=False),
)

# Refused consumes per customer, meter, period and reason (added to in batches).
limit_denials = Table(
    "limit_denials",
    metadata,
    Column("customer_key", String(256), primary_key=True),
    Column("meter_key", String(64), primary_key=True),
    Column("period_start_us", BigInteger, primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# One row (id 1): bumped by a trigger on every write to a table the limits engine builds a
# customer's terms from (migration 0009), so a process can tell in one read that none of
# them changed (see services/entitlement_terms.py).
terms_changes = Table(
    "terms_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
