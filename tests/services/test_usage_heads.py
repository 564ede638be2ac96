"""HeadCache: kept heads expire (another process may record a late event unheard of here),
are copies (a reader's arithmetic never changes them), and the cache stays bounded."""

from __future__ import annotations

from decimal import Decimal

from fairmeter.domain.aggregates import Partial
from fairmeter.services.usage_heads import HeadCache


def test_a_head_expires_after_its_ttl_and_is_handed_out_as_a_copy() -> None:
    now = [100.0]
    cache = HeadCache(ttl_s=60, monotonic=lambda: now[0])
    key = ("api.call", "acme", 1, 0, 10)
    cache.put(key, Partial(count=3, total=Decimal("4.5")), cache.generation())
    got = cache.get(key)
    assert got is not None and (got.count, got.total) == (3, Decimal("4.5"))
    got.count = 0
    assert cache.get(key) == Partial(count=3, total=Decimal("4.5"))
    now[0] += 59.9
    assert cache.get(key) is not None
    now[0] += 0.2
    assert cache.get(key) is None


def test_the_cache_is_bounded() -> None:
    cache = HeadCache(limit=10)
    for n in range(25):
        cache.put(("t", f"c{n}", 1, 0, 10), Partial(count=n), cache.generation())
    assert cache.get(("t", "c24", 1, 0, 10)) == Partial(count=24)
    assert cache.get(("t", "c0", 1, 0, 10)) is None
