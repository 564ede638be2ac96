"""The plan catalog: create, edit (versioned), read, and quote a period's price.

Editing a plan (`edit_plan`) compares terms first: the same terms change nothing; a plan
version some subscription holds (or held, or waits for) is never rewritten -- the edit
becomes a new version, and those subscriptions keep theirs; a version nobody holds is
replaced in place, keeping its number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from fairmeter.domain.errors import AlreadyExists, FieldError, InvalidInput, NotFound, Problems
from fairmeter.domain.plans import (
    Line,
    Plan,
    rate_period,
    require_known_meters,
    same_terms,
    total_minor,
)
from fairmeter.domain.pricing.fields import escape
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.storage.billing import PlanEntry as PlanEntry  # re-exported for the API
from fairmeter.storage.billing import Plans
from fairmeter.storage.catalog import Meters
from fairmeter.storage.database import Database


class Edit(StrEnum):
    """What an edit did."""

    UNCHANGED = "unchanged"
    REPLACED = "replaced"
    NEW_VERSION = "new_version"


@dataclass(frozen=True)
class Quote:
    plan: Plan
    lines: list[Line]
    total_minor: int


def create_plan(db: Database, clock: Clock, plan: Plan) -> PlanEntry:
    """Version 1 of a new plan; a key in use is AlreadyExists at /key."""
    with db.write() as conn:
        repo = Plans(conn)
        if repo.current(plan.key) is not None:
            raise AlreadyExists(
                f"a plan with key {plan.key!r} exists; edit it with PUT /v1/plans/{plan.key}",
                errors=(FieldError("/key", "is taken", "already_exists"),),
            )
        _check_references(repo, Meters(conn), plan)
        return repo.add(replace(plan, version=1), to_us(clock.now()))


def edit_plan(db: Database, clock: Clock, key: str, plan: Plan) -> tuple[PlanEntry, Edit]:
    """New terms for plan `key` (see the module's docstring for versions)."""
    if plan.key != key:
        raise InvalidInput(
            "the plan's key is its name in the URL and cannot change",
            errors=(FieldError("/key", f"must be {key!r}, the key in the path"),),
        )
    with db.write() as conn:
        repo = Plans(conn)
        current = repo.entry(key)
        if current is None:
            raise NotFound(f"no plan with key {key!r}; create it with POST /v1/plans")
        if same_terms(current.plan, plan):
            return current, Edit.UNCHANGED
        _check_references(repo, Meters(conn), plan)
        _check_climbers(repo, plan)
        version = current.plan.version
        if repo.in_use(key, version):
            return repo.add(
                replace(plan, version=version + 1), to_us(clock.now())
            ), Edit.NEW_VERSION
        edited = replace(plan, version=version)
        repo.replace(edited)
        return PlanEntry(edited, current.created_us), Edit.REPLACED


def _check_references(repo: Plans, meters: Meters, plan: Plan) -> None:
    """Every charge prices a meter that counts (not archived); the next plan exists and
    bills in the same currency and interval (an upgrade must be a like-for-like step)."""
    require_known_meters(plan, {meter.key for meter in meters.all()})
    if plan.next_plan is None:
        return
    following = repo.current(plan.next_plan)
    if following is None:
        detail = f"no plan has the key {plan.next_plan!r}"
        _refuse("/next_plan", detail, "unknown_plan")
    elif (following.currency, following.interval) != (plan.currency, plan.interval):
        detail = (
            f"plan {following.key!r} bills in {following.currency} every {following.interval}"
            f"; the next plan must bill like this one ({plan.currency}, {plan.interval})"
        )
        _refuse("/next_plan", detail, "next_plan_mismatch")


def _check_climbers(repo: Plans, plan: Plan) -> None:
    """Plans that name this one as their next plan keep a like-for-like step."""
    for lower in repo.climbing_to(plan.key):
        if (lower.currency, lower.interval) != (plan.currency, plan.interval):
            detail = (
                f"plan {lower.key!r} upgrades to this plan and bills in {lower.currency} "
                f"every {lower.interval}; keep the currency and the interval"
            )
            _refuse("/currency", detail, "next_plan_mismatch")


def _refuse(pointer: str, detail: str, code: str) -> None:
    raise InvalidInput("The plan is not valid", errors=(FieldError(pointer, detail, code),))


def get_plan(db: Database, key: str, version: int | None = None) -> PlanEntry:
    with db.read() as conn:
        found = Plans(conn).entry(key, version)
    if found is None:
        which = "" if version is None else f" version {version}"
        raise NotFound(f"no plan with key {key!r}{which}")
    return found


def list_plans(db: Database, include_versions: bool = False) -> list[PlanEntry]:
    with db.read() as conn:
        return Plans(conn).catalog(include_versions)


def quote(
    db: Database, key: str, usage: Mapping[str, Decimal], version: int | None = None
) -> Quote:
    """What one whole period of plan `key` costs with `usage` (meter key -> quantity)."""
    plan = get_plan(db, key, version).plan
    problems = Problems()
    for meter in usage:
        if plan.charge_for(meter) is None:
            known = ", ".join(plan.meters) or "none"
            detail = f"plan {key!r} does not price this meter (it prices: {known})"
            problems.add(f"/usage/{escape(meter)}", detail, "unknown_meter")
    problems.raise_if_any("The usage names meters the plan does not price")
    lines = rate_period(plan, usage)
    return Quote(plan, lines, total_minor(lines))
