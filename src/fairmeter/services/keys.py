"""API keys: created once, shown once, verified by hash."""

from __future__ import annotations

import hmac
import secrets
import threading
import time

from fairmeter.domain.errors import Forbidden, Unauthorized
from fairmeter.domain.keys import Scope, display_prefix, format_key, is_well_formed, key_hash
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import Clock
from fairmeter.storage.catalog import ApiKeys
from fairmeter.storage.database import Database


def create_key(db: Database, clock: Clock, scope: Scope, name: str = "") -> str:
    key = format_key(secrets.token_bytes(32))
    with db.write() as conn:
        ApiKeys(conn).add(
            name or f"{scope.value} key",
            scope,
            key_hash(key),
            display_prefix(key),
            to_us(clock.now()),
        )
    return key


def scope_of(db: Database, key: str | None) -> Scope:
    """The scope of a known, unrevoked key; Unauthorized otherwise."""
    digest = _digest(key)
    with db.read() as conn:
        found = ApiKeys(conn).by_hash(digest)
    if found is None or not hmac.compare_digest(found[0], digest):
        raise Unauthorized("the API key is not known or was revoked")
    return found[1]


def permitted(scope: Scope, needed: Scope) -> Scope:
    """`scope` if it may do what `needed` names; Forbidden otherwise."""
    if not scope.allows(needed):
        raise Forbidden(f"this {scope.value} key cannot do what needs the {needed.value} scope")
    return scope


def _digest(key: str | None) -> str:
    if not key or not is_well_formed(key):
        raise Unauthorized("send a valid API key as 'Authorization: Bearer fm_...'")
    return key_hash(key)


class VerifiedKeys:
    """Keys verified in the last `ttl_s` seconds, by hash: the request path reads the
    database once per key and interval instead of once per request (a key revoked in the
    database stops working within `ttl_s`). Unknown keys are never remembered."""

    def __init__(self, ttl_s: float = 10.0, size: int = 10_000) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._scopes: dict[str, tuple[Scope, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str | None) -> Scope | None:
        """The scope when the key was verified recently; None when the database must say."""
        if not key or not is_well_formed(key):
            return None
        found = self._scopes.get(key_hash(key))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def verify(self, db: Database, key: str | None) -> Scope:
        scope = scope_of(db, key)
        with self._lock:
            if len(self._scopes) >= self.size:
                self._scopes.clear()  # rare: a fleet of keys; forget, then re-learn
            self._scopes[_digest(key)] = (scope, time.monotonic() + self.ttl_s)
        return scope


def list_keys(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        return ApiKeys(conn).listing()
