"""API keys: `fm_<scope letter><random>_<checksum>`; only a hash is ever stored."""

from __future__ import annotations

import hashlib
import hmac
import zlib
from enum import StrEnum

PREFIX = "fm_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Scope(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"

    def allows(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or self is needed


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def format_key(secret: bytes) -> str:
    """Turn 32 random bytes into a key; the checksum lets typos fail without a lookup."""
    body = PREFIX + _base62(int.from_bytes(secret, "big"), 43)
    return f"{body}_{_checksum(body)}"


def is_well_formed(key: str) -> bool:
    body, sep, check = key.rpartition("_")
    return key.startswith(PREFIX) and sep == "_" and hmac.compare_digest(check, _checksum(body))


def key_hash(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough; there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:10]
