"""API keys carry a checksum so a mistyped key fails before any lookup."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmeter.domain.keys import Scope, display_prefix, format_key, is_well_formed, key_hash

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
SECRETS = st.binary(min_size=32, max_size=32)


@given(SECRETS)
def test_a_formatted_key_is_well_formed(secret: bytes) -> None:
    key = format_key(secret)
    assert key.startswith("fm_")
    assert is_well_formed(key)


@given(SECRETS, SECRETS)
def test_different_secrets_give_different_keys(a: bytes, b: bytes) -> None:
    assert (format_key(a) == format_key(b)) == (a == b)


# Fixed secrets: parameters must be the same in every xdist worker.
@pytest.mark.parametrize(
    "secret", [bytes(32), b"\xff" * 32, bytes(range(32))], ids=["zeros", "ones", "counting"]
)
def test_a_one_character_typo_anywhere_fails_the_checksum(secret: bytes) -> None:
    key = format_key(secret)
    for position, original in enumerate(key):
        for replacement in (ALPHABET[(ALPHABET.index(original) + 1) % len(ALPHABET)], "_"):
            if replacement == original:
                continue
            typo = key[:position] + replacement + key[position + 1 :]
            assert not is_well_formed(typo), typo


@pytest.mark.parametrize("key", ["", "fm_", "fm__", "sk_abc_def", "fm_abc", "FM_abc_xyz"])
def test_malformed_keys_are_not_well_formed(key: str) -> None:
    assert not is_well_formed(key)


def test_a_dropped_or_added_character_fails_the_checksum() -> None:
    key = format_key(secrets.token_bytes(32))
    assert not is_well_formed(key[:-1])
    assert not is_well_formed(key[:10] + key[11:])
    assert not is_well_formed(key[:10] + "a" + key[10:])


def test_only_a_hash_and_a_short_prefix_identify_the_key() -> None:
    key = format_key(secrets.token_bytes(32))
    digest = key_hash(key)
    assert len(digest) == 64 and key not in digest
    assert key_hash(key) == digest
    assert key.startswith(display_prefix(key)) and len(display_prefix(key)) < len(key) // 4


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Scope.ADMIN, Scope.ADMIN, True),
        (Scope.ADMIN, Scope.INGEST, True),
        (Scope.INGEST, Scope.INGEST, True),
        (Scope.INGEST, Scope.ADMIN, False),
    ],
)
def test_admin_keys_may_do_everything_ingest_keys_only_ingest(
    held: Scope, needed: Scope, allowed: bool
) -> None:
    assert held.allows(needed) is allowed
