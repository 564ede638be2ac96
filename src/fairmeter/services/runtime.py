"""What every use case needs: the database, the clock and the ingest policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from fairmeter.domain.events import IngestPolicy
from fairmeter.domain.invoices import BillingSettings
from fairmeter.services.clock import Clock, SystemClock
from fairmeter.services.hooks import Hooks
from fairmeter.services.ingest_queue import GroupCommitter
from fairmeter.storage.database import Database


@dataclass
class Runtime:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    policy: IngestPolicy = field(default_factory=IngestPolicy)
    billing: BillingSettings = field(default_factory=BillingSettings)
    hooks: Hooks = field(default_factory=Hooks)

    @cached_property
    def ingest(self) -> GroupCommitter:
        """Where the API sends events: concurrent requests share commits."""
        return GroupCommitter(
            self.db, max_events=max(self.policy.max_batch_events, 20_000), hooks=self.hooks
        )

    def close(self) -> None:
        if "ingest" in self.__dict__:
            self.ingest.close()
        self.db.dispose()
