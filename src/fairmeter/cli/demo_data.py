"""The demo data set: five customers, five meters and almost four months of usage.

`generate(seed, now, scale)` is a pure function: the same arguments give the same
customers, meters and events (same ids, times and values), so loading it twice adds
nothing. The events start when the subscriptions do (`period_starts`: three whole
monthly billing periods, then the current one, 20 days old). The last 30 days hold about
200,000 events; the months before are quieter, except that Acme's traffic doubles from
the start of the last whole period -- the spike behind its surprise bill. Events come
from an iterator rather than a list: at full scale there are about 530,000 of them, and
holding them all as dicts would cost gigabytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from math import exp
from zoneinfo import ZoneInfo

import msgspec

SEED = 2026
SOURCE = "fairmeter-demo"
DAYS = 30  # the recent month, at the volumes of `Profile.requests`
CURRENT_DAYS = 20  # how far into its current billing period each customer is at the end
PAST_PERIODS = 3  # whole billing periods before the current one
SNAPSHOT_EVERY_HOURS = 3
_ENCODER = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Profile:
    """How one demo customer uses the API: `requests` in the last 30 days, over which
    traffic grows `growth`-fold. Before them traffic is flat: at the level the 30 days
    start at over the `steady_periods` whole billing periods before the current one, and
    at `earlier` times that level before."""

    key: str
    name: str
    timezone: str
    currency: str
    requests: int  # API requests in the month at scale 1
    users: int
    growth: float  # traffic at the end of the month relative to the start
    large_share: float  # share of chat requests on the large model
    storage_gb: int  # at the start of the month
    seats: int
    earlier: float = 0.8
    steady_periods: int = 0


PROFILES = (
    Profile("acme", "Acme Corp", "Europe/Madrid", "USD", 87_000, 140, 1.0, 0.5, 420, 40, 0.45, 1),
    Profile("globex", "Globex", "America/New_York", "USD", 50_000, 80, 2.2, 0.3, 180, 25),
    Profile("initech", "Initech KK", "Asia/Tokyo", "JPY", 30_000, 45, 1.1, 0.2, 95, 12),
    Profile("umbrella", "Umbrella Health", "Asia/Kolkata", "INR", 20_000, 30, 1.3, 0.4, 60, 9),
    Profile("hooli", "Hooli", "UTC", "EUR", 10_000, 12, 1.0, 0.7, 12, 4),
)

METERS: tuple[dict[str, object], ...] = (
    {"key": "api_calls", "name": "API calls", "event_type": "api.request",
     "aggregation": "count", "group_by": {"endpoint": "$.endpoint"}, "unit": "calls"},
    {"key": "tokens", "name": "LLM tokens", "event_type": "api.request", "aggregation": "sum",
     "value_property": "$.tokens", "group_by": {"model": "$.model"}, "unit": "tokens"},
    {"key": "storage_gb", "name": "Storage", "event_type": "storage.snapshot",
     "aggregation": "max", "value_property": "$.gb", "unit": "GB"},
    {"key": "active_users", "name": "Active users", "event_type": "api.request",
     "aggregation": "unique_count", "value_property": "$.user_id", "unit": "users"},
    {"key": "seats", "name": "Seats", "event_type": "seats.changed", "aggregation": "latest",
     "value_property": "$.seats", "unit": "seats"},
)  # fmt: skip

_ENDPOINTS = ("/v1/chat", "/v1/embeddings", "/v1/images", "/v1/moderations")
_ENDPOINT_WEIGHTS = (0.55, 0.25, 0.08, 0.12)
# Hooli's runaway integration: six hours of six times its usual traffic, three days ago.
_BURST = ("hooli", 72, 6, 6.0)
_STORAGE_GROWTH_HOURS = 4 * 120 * 24  # storage grows by a quarter in 120 days
# The data spans at least the current period and three of 28 days at their shortest.
_MIN_HOURS = (CURRENT_DAYS + 28 * PAST_PERIODS) * 24


@dataclass(frozen=True)
class Slot:
    """One customer's hour: [start, start + 1 h) and how many requests it holds."""

    profile: Profile
    index: int
    start: datetime
    requests: int


@dataclass(frozen=True)
class DemoData:
    seed: int
    start: datetime
    end: datetime
    customers: list[dict[str, object]]
    meters: list[dict[str, object]]
    slots: tuple[Slot, ...]

    @property
    def total_events(self) -> int:
        snapshots = sum(1 for s in self.slots if s.index % SNAPSHOT_EVERY_HOURS == 0)
        seat_changes = sum(len(_seat_changes(self.seed, p)) for p in PROFILES)
        return sum(s.requests for s in self.slots) + snapshots + seat_changes

    def events(self) -> Iterator[dict[str, object]]:
        """Every event as a CloudEvent dict, in time order hour by hour."""
        for slot in self.slots:
            yield from _slot_events(self.seed, slot)


def generate(seed: int = SEED, now: datetime | None = None, scale: float = 1.0) -> DemoData:
    """The data set from the first subscription start to `now` (floored to the hour),
    `scale` x the volume. Flooring to the hour means a re-run within the same hour
    regenerates identical events."""
    if now is None or now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if scale <= 0:
        raise ValueError("scale must be positive")
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    periods = {p.key: period_starts(end, p.timezone) for p in PROFILES}
    first = min(starts[0] for starts in periods.values()).astimezone(UTC)
    start = first.replace(minute=0, second=0, microsecond=0)
    hours = (end - start) // timedelta(hours=1)
    slots: list[Slot] = []
    counts = {p.key: _hourly_requests(seed, p, periods[p.key], end, hours, scale) for p in PROFILES}
    for index in range(hours):
        at = start + timedelta(hours=index)
        slots.extend(Slot(p, index, at, counts[p.key][index]) for p in PROFILES)
    customers = [_customer_body(p) for p in PROFILES]
    return DemoData(seed, start, end, customers, [dict(m) for m in METERS], tuple(slots))


def period_starts(end: datetime, timezone: str) -> list[datetime]:
    """The starts of a customer's monthly billing periods (midnights in its zone): the
    PAST_PERIODS whole ones, then the current one, which began CURRENT_DAYS before `end`
    (or a few more: on the 28th at the latest, a day every month has)."""
    zone = ZoneInfo(timezone)
    day = (end - timedelta(days=CURRENT_DAYS)).astimezone(zone).date()
    day = day.replace(day=min(day.day, 28))
    starts = []
    for back in range(PAST_PERIODS, -1, -1):
        month = day.year * 12 + day.month - 1 - back
        local = day.replace(year=month // 12, month=month % 12 + 1)
        starts.append(datetime.combine(local, time(), zone))
    return starts


def encode(events: list[dict[str, object]]) -> bytes:
    """A JSON array of events, with Decimal values written as exact JSON numbers."""
    return _ENCODER.encode(events)


def _customer_body(p: Profile) -> dict[str, object]:
    return {
        "key": p.key,
        "name": p.name,
        "email": f"billing@{p.key}.example",
        "currency": p.currency,
        "timezone": p.timezone,
        "metadata": {"demo": True},
    }


def _shape(local: datetime) -> float:
    """Traffic relative to the peak: a working-day curve around 14:00, quieter weekends."""
    daytime = 0.12 + exp(-(((local.hour + 0.5 - 14) / 4.0) ** 2))
    return daytime * (0.45 if local.weekday() >= 5 else 1.0)


def _level(p: Profile, hours_before_end: int, steady_hours: int) -> float:
    """Traffic relative to the level at the start of the recent month (see `Profile`)."""
    recent = DAYS * 24
    if hours_before_end <= recent:
        return 1 + (p.growth - 1) * (recent - hours_before_end) / recent
    return 1.0 if hours_before_end <= steady_hours else p.earlier


def _hourly_requests(
    seed: int, p: Profile, periods: list[datetime], end: datetime, hours: int, scale: float
) -> list[int]:
    rng = random.Random(f"{seed}:plan:{p.key}")
    zone = ZoneInfo(p.timezone)
    steady_since = periods[-1 - p.steady_periods] if p.steady_periods else end
    steady_hours = max(DAYS * 24, (end - steady_since) // timedelta(hours=1))
    weights = []
    for index in range(hours):
        local = (end - timedelta(hours=hours - index)).astimezone(zone)
        weights.append(_shape(local) * _level(p, hours - index, steady_hours))
    # `requests` is the volume of the last 30 days; the months before follow from levels.
    per_weight = p.requests * scale / sum(weights[-DAYS * 24 :])
    counts = []
    for index, weight in enumerate(weights):
        expected = weight * per_weight * rng.uniform(0.8, 1.2)
        key, burst_start, burst_hours, factor = _BURST
        if p.key == key and hours - burst_start <= index < hours - burst_start + burst_hours:
            expected *= factor
        # Rounding up at random keeps small scales from rounding every hour to zero.
        counts.append(int(expected + rng.random()))
    return counts


def _slot_events(seed: int, slot: Slot) -> Iterator[dict[str, object]]:
    p = slot.profile
    rng = random.Random(f"{seed}:{p.key}:{slot.index}")
    offsets = sorted(rng.randrange(3600) for _ in range(slot.requests))
    for n, offset in enumerate(offsets):
        at = slot.start + timedelta(seconds=offset)
        yield _event(f"req-{p.key}-{slot.index}-{n}", "api.request", p, at, _request(rng, p))
    if slot.index % SNAPSHOT_EVERY_HOURS == 0:
        growth = Decimal(1) + Decimal(slot.index) / Decimal(_STORAGE_GROWTH_HOURS)
        jitter = Decimal(rng.randrange(-150, 150)) / Decimal(10_000)
        gb = (Decimal(p.storage_gb) * (growth + jitter)).quantize(Decimal("0.01"))
        yield _event(f"snap-{p.key}-{slot.index}", "storage.snapshot", p, slot.start, {"gb": gb})
    for change, (index, seats) in enumerate(_seat_changes(seed, p)):
        if index == slot.index:
            at = slot.start + timedelta(minutes=17)
            yield _event(f"seats-{p.key}-{change}", "seats.changed", p, at, {"seats": seats})


def _request(rng: random.Random, p: Profile) -> dict[str, object]:
    endpoint = rng.choices(_ENDPOINTS, _ENDPOINT_WEIGHTS)[0]
    if endpoint == "/v1/chat":
        model = "large" if rng.random() < p.large_share else rng.choice(("small", "medium"))
        tokens = rng.randint(300, 6000) if model == "large" else rng.randint(40, 1800)
    elif endpoint == "/v1/embeddings":
        model, tokens = "embed-1", rng.randint(20, 900)
    elif endpoint == "/v1/images":
        model, tokens = "image-1", 1000
    else:
        model, tokens = "guard-1", rng.randint(10, 300)
    # Squaring skews activity toward a few power users, as in real accounts.
    user = int(p.users * rng.random() ** 2)
    return {"endpoint": endpoint, "model": model, "tokens": tokens, "user_id": f"u{user:03d}"}


def _seat_changes(seed: int, p: Profile) -> list[tuple[int, int]]:
    """(hour index, seat count): the seats at the start, then a few changes."""
    rng = random.Random(f"{seed}:seats:{p.key}")
    changes = [(0, p.seats)]
    seats = p.seats
    for index in sorted(rng.sample(range(1, _MIN_HOURS), rng.randint(3, 8))):
        seats = max(1, seats + rng.choice((-2, -1, 1, 2, 3)))
        changes.append((index, seats))
    return changes


def _event(
    event_id: str, kind: str, p: Profile, at: datetime, data: dict[str, object]
) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": kind,
        "subject": p.key,
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
