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
    # Notifications (docs/notifications.md): SMTP for email, hosts/CIDRs webhooks may target
    # although private, and how often an idle delivery worker looks for due deliveries.
    smtp_url: str = ""
    webhook_allow_private: tuple[str, ...] = ()
    worker_poll_seconds: float = 1.0
    # Limits (docs/limits.md): Redis for counters shared by several processes, and what a
    # decision does when Redis cannot be reached ("open": admit uncounted; "closed": refuse).
    redis_url: str = ""
    redis_failure: str = "closed"
    redis_prefix: str = "fm:"  # every Redis key starts with it (several deployments, tests)

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
            smtp_url=env.get("FAIRMETER_SMTP_URL", ""),
            webhook_allow_private=tuple(
                h.strip()
                for h in env.get("FAIRMETER_WEBHOOK_ALLOW_PRIVATE", "").split(",")
                if h.strip()
            ),
            worker_poll_seconds=_int(env, "FAIRMETER_WORKER_POLL_MS", 1000) / 1000,
            redis_url=env.get("FAIRMETER_REDIS_URL", ""),
            redis_failure=_failure(env.get("FAIRMETER_REDIS_FAILURE") or cls.redis_failure),
            redis_prefix=env.get("FAIRMETER_REDIS_PREFIX") or cls.redis_prefix,
        )


def _failure(raw: str) -> str:
    if raw not in ("open", "closed"):
        raise SystemExit(f"FAIRMETER_REDIS_FAILURE must be open or closed, not {raw!r}")
    return raw


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
