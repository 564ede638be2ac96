"""What every use case needs: the database, the clock and the ingest policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairmeter.domain.events import IngestPolicy
from fairmeter.services.clock import Clock, SystemClock
from fairmeter.storage.database import Database


@dataclass
class Runtime:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    policy: IngestPolicy = field(default_factory=IngestPolicy)

    def close(self) -> None:
        self.db.dispose()
