"""What every use case needs: the database, the clock and the ingest policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from fairmeter.domain.events import IngestPolicy
from fairmeter.domain.invoices import BillingSettings
from fairmeter.domain.notifications import ChannelSettings
from fairmeter.services.clock import Clock, SystemClock
from fairmeter.services.hooks import Hooks
from fairmeter.services.ingest_queue import GroupCommitter
from fairmeter.services.keys import VerifiedKeys
from fairmeter.services.usage_heads import HeadCache
from fairmeter.storage.database import Database

if TYPE_CHECKING:
    from fairmeter.services.alert_evaluator import AlertEvaluator
    from fairmeter.services.entitlements import Enforcer


@dataclass
class Runtime:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    policy: IngestPolicy = field(default_factory=IngestPolicy)
    billing: BillingSettings = field(default_factory=BillingSettings)
    hooks: Hooks = field(default_factory=Hooks)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    verified_keys: VerifiedKeys = field(default_factory=VerifiedKeys)
    # Evaluates alert rules as usage is recorded (wiring starts it; None: no alerts).
    alerts: AlertEvaluator | None = None
    # The limits engine (wiring builds it; None: limits are not enforced in this process).
    limits: Enforcer | None = None

    @cached_property
    def ingest(self) -> GroupCommitter:
        """Where the API sends events: concurrent requests share commits."""
        return GroupCommitter(
            self.db, max_events=max(self.policy.max_batch_events, 20_000), hooks=self.hooks
        )

    @cached_property
    def heads(self) -> HeadCache:
        """What periods' first buckets hold before they start (see `usage_heads`); it
        listens to recorded usage from its first use (nothing is kept before that)."""
        cache = HeadCache()
        self.hooks.on_usage(cache.listener)
        return cache

    def close(self) -> None:
        if self.limits is not None:
            self.limits.close()  # before ingest: it writes the usage admit() gathered
        if "ingest" in self.__dict__:
            self.ingest.close()
        if self.alerts is not None:
            self.alerts.close()  # after ingest: what it committed last is evaluated
        self.db.dispose()
