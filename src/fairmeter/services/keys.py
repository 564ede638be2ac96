"""API keys: created once, shown once, verified by hash."""

from __future__ import annotations

import hmac
import secrets

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


def authorize(db: Database, key: str | None, needed: Scope) -> Scope:
    """The key's scope if it may do what `needed` names; raises otherwise."""
    if not key or not is_well_formed(key):
        raise Unauthorized("send a valid API key as 'Authorization: Bearer fm_...'")
    digest = key_hash(key)
    with db.read() as conn:
        found = ApiKeys(conn).by_hash(digest)
    if found is None or not hmac.compare_digest(found[0], digest):
        raise Unauthorized("the API key is not known or was revoked")
    scope = found[1]
    if not scope.allows(needed):
        raise Forbidden(f"this {scope.value} key cannot do what needs the {needed.value} scope")
    return scope


def list_keys(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        return ApiKeys(conn).listing()
