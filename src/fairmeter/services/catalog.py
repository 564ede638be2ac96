"""Use cases for customers and meters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from fairmeter.domain.customers import Customer
from fairmeter.domain.errors import FieldError, InUse, NotFound
from fairmeter.domain.meters import EventNotMetered, Meter
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.services.rollups import RollupBatch
from fairmeter.storage.catalog import Customers, Meters
from fairmeter.storage.database import Database
from fairmeter.storage.usage import Usage


def create_customer(db: Database, clock: Clock, customer: Customer) -> Customer:
    with db.write() as conn:
        return Customers(conn).add(customer, to_us(clock.now()))


def update_customer(
    db: Database, clock: Clock, key: str, changes: Mapping[str, object]
) -> Customer:
    with db.write() as conn:
        repo = Customers(conn)
        if repo.by_key(key) is None:
            raise NotFound(f"no customer with key {key!r}")
        if changes:
            repo.update(key, changes, to_us(clock.now()))
        found = repo.by_key(key)
    assert found is not None
    return found


def get_customer(db: Database, key: str) -> Customer:
    with db.read() as conn:
        found = Customers(conn).by_key(key)
    if found is None:
        raise NotFound(f"no customer with key {key!r}")
    return found


def list_customers(db: Database, after: str | None = None, limit: int = 100) -> list[Customer]:
    with db.read() as conn:
        return Customers(conn).page(after, limit)


def create_meter(db: Database, clock: Clock, meter: Meter) -> tuple[Meter, int]:
    """Create a meter and roll up the events of its type already stored, in one transaction.

    Returns the meter and how many stored events it counted."""
    with db.write() as conn:
        created = Meters(conn).add(meter, to_us(clock.now()))
        usage = Usage(conn)
        batch = RollupBatch()
        counted = 0
        for subject, time_us, data_json, copies in usage.all_raw_events(created.event_type):
            data = json.loads(data_json, parse_float=Decimal)
            try:
                batch.add_event(created, subject, time_us, data, copies)
            except EventNotMetered:
                continue
            counted += copies
        batch.write(usage)
    return created, counted


def get_meter(db: Database, key: str) -> Meter:
    with db.read() as conn:
        found = Meters(conn).by_key(key)
    if found is None:
        raise NotFound(f"no meter with key {key!r}")
    return found


def list_meters(db: Database, include_archived: bool = False) -> list[Meter]:
    with db.read() as conn:
        return Meters(conn).all(include_archived)


def archive_meter(db: Database, clock: Clock, key: str) -> Meter:
    with db.write() as conn:
        repo = Meters(conn)
        if repo.by_key(key) is None:
            raise NotFound(f"no meter with key {key!r}")
        repo.archive(key, to_us(clock.now()))
        found = repo.by_key(key)
    assert found is not None
    return found


def delete_meter(db: Database, key: str) -> None:
    """Only a meter no stored event refers to can be deleted; otherwise archive it."""
    with db.write() as conn:
        repo = Meters(conn)
        meter = repo.by_key(key)
        if meter is None:
            raise NotFound(f"no meter with key {key!r}")
        if repo.has_events(meter):
            raise InUse(
                f"events of type {meter.event_type!r} refer to meter {key!r}; archive it instead",
                errors=(FieldError("/key", "has events; use POST /v1/meters/{key}/archive"),),
            )
        repo.delete(key)
