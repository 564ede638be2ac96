"""The questions the limits engine asks of the database: a customer's overrides, whether
it is suspended, and how many of its consumes were refused, and why."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from fairmeter.domain.limits import Override, override_from_stored
from fairmeter.storage.tables import (
    customer_suspensions,
    limit_denials,
    limit_overrides,
    terms_changes,
)

# (customer, meter, period_start_us, reason) -> refused consumes
DenialKey = tuple[str, str, int, str]


@dataclass(frozen=True)
class Suspension:
    customer: str
    reason: str
    suspended_us: int


class Limits:
    def __init__(self, conn: Connection):
        self.conn = conn

    # -- what terms are built from -------------------------------------------------------

    def terms_version(self) -> int:
        """Bumped by every write to a table terms are built from (migration 0009); 0 before
        the first one."""
        version = self.conn.execute(select(terms_changes.c.version)).scalar()
        return int(version or 0)

    # -- overrides ----------------------------------------------------------------------

    def override(self, customer: str, meter: str) -> Override | None:
        o = limit_overrides.c
        query = select(o.definition).where(o.customer_key == customer, o.meter_key == meter)
        raw = self.conn.execute(query).scalar()
        return None if raw is None else override_from_stored(json.loads(raw))

    def overrides(self, customer: str) -> dict[str, Override]:
        """The customer's overrides by meter key."""
        o = limit_overrides.c
        query = select(o.meter_key, o.definition).where(o.customer_key == customer)
        rows = self.conn.execute(query.order_by(o.meter_key))
        return {meter: override_from_stored(json.loads(raw)) for meter, raw in rows}

    def put_override(self, customer: str, meter: str, override: Override, now_us: int) -> None:
        definition = json.dumps(override.as_dict(), sort_keys=True)
        values = {"definition": definition, "updated_us": now_us}
        o = limit_overrides.c
        changed = self.conn.execute(
            update(limit_overrides)
            .where(o.customer_key == customer, o.meter_key == meter)
            .values(**values)
        ).rowcount
        if not changed:
            row = {"customer_key": customer, "meter_key": meter, **values}
            self.conn.execute(insert(limit_overrides).values(**row))

    def delete_override(self, customer: str, meter: str) -> bool:
        o = limit_overrides.c
        statement = delete(limit_overrides).where(o.customer_key == customer, o.meter_key == meter)
        return bool(self.conn.execute(statement).rowcount)

    # -- suspension ---------------------------------------------------------------------

    def suspension(self, customer: str) -> Suspension | None:
        s = customer_suspensions.c
        row = self.conn.execute(
            select(s.reason, s.suspended_us).where(s.customer_key == customer)
        ).first()
        return None if row is None else Suspension(customer, row[0], row[1])

    def suspend(self, customer: str, reason: str, now_us: int) -> bool:
        """Suspend the customer; False (and nothing changes) when it is suspended already."""
        if self.suspension(customer) is not None:
            return False
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(customer_suspensions).values(
                        customer_key=customer, reason=reason, suspended_us=now_us
                    )
                )
        except IntegrityError:
            return False  # suspended by a concurrent request
        return True

    def restore(self, customer: str) -> bool:
        """Lift a suspension; whether there was one."""
        s = customer_suspensions.c
        statement = delete(customer_suspensions).where(s.customer_key == customer)
        return bool(self.conn.execute(statement).rowcount)

    # -- denial statistics --------------------------------------------------------------

    def add_denials(self, counts: Mapping[DenialKey, int]) -> None:
        """Add refused consumes to the totals (one row per key; concurrent adders safe)."""
        d = limit_denials.c
        for (customer, meter, period_start_us, reason), count in counts.items():
            where = (
                d.customer_key == customer,
                d.meter_key == meter,
                d.period_start_us == period_start_us,
                d.reason == reason,
            )
            bump = update(limit_denials).where(*where).values(count=d.count + count)
            if self.conn.execute(bump).rowcount:
                continue
            try:
                with self.conn.begin_nested():
                    self.conn.execute(
                        insert(limit_denials).values(
                            customer_key=customer,
                            meter_key=meter,
                            period_start_us=period_start_us,
                            reason=reason,
                            count=count,
                        )
                    )
            except IntegrityError:  # another process inserted it first
                self.conn.execute(bump)

    def denials(self, customer: str, period_start_us: int) -> dict[tuple[str, str], int]:
        """Refused consumes of the period by (meter, reason)."""
        d = limit_denials.c
        query = select(d.meter_key, d.reason, d.count).where(
            d.customer_key == customer, d.period_start_us == period_start_us
        )
        return {(meter, reason): count for meter, reason, count in self.conn.execute(query)}
