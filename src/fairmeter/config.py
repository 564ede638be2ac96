"""Settings, parsed once from FAIRMETER_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./fairmeter.db"
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 10_000
    backdate_window: timedelta = timedelta(days=35)
    invoice_grace_hours: int = 24
    seller_name: str = "fairmeter"
    seller_address: str = ""
    threshold_check_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("FAIRMETER_DATABASE_URL", cls.database_url),
            host=env.get("FAIRMETER_HOST", cls.host),
            port=_int(env, "FAIRMETER_PORT", cls.port),
            max_body_bytes=_int(env, "FAIRMETER_MAX_BODY_BYTES", cls.max_body_bytes),
            max_batch_events=_int(env, "FAIRMETER_MAX_BATCH_EVENTS", cls.max_batch_events),
            backdate_window=timedelta(
                days=_int(env, "FAIRMETER_BACKDATE_DAYS", cls.backdate_window.days)
            ),
            invoice_grace_hours=_int(
                env, "FAIRMETER_INVOICE_GRACE_HOURS", cls.invoice_grace_hours, minimum=0
            ),
            seller_name=env.get("FAIRMETER_SELLER_NAME") or cls.seller_name,
            # "\n" in the variable separates address lines.
            seller_address=env.get("FAIRMETER_SELLER_ADDRESS", "").replace("\\n", "\n"),
            threshold_check_seconds=_int(
                env, "FAIRMETER_THRESHOLD_CHECK_SECONDS", cls.threshold_check_seconds, minimum=0
            ),
        )


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        kind = "positive" if minimum == 1 else f"at least {minimum}"
        raise SystemExit(f"{name} must be {kind}, not {raw!r}")
    return value
