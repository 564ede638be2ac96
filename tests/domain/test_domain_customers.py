"""Customers are parsed at the edge; every bad field is named by its pointer."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from fairmeter.domain.customers import parse_customer, parse_customer_changes
from fairmeter.domain.errors import InvalidInput

Parser = Callable[[Mapping[str, object]], object]


def _pointers(parse: Parser, body: Mapping[str, object]) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(body)
    return [error.pointer for error in caught.value.errors]


def test_a_minimal_customer_gets_documented_defaults() -> None:
    customer = parse_customer({"key": "acme"})
    assert (customer.key, customer.name, customer.email) == ("acme", "acme", None)
    assert (customer.currency, customer.timezone) == ("USD", "UTC")
    assert dict(customer.metadata) == {}


def test_a_full_customer_keeps_every_field() -> None:
    customer = parse_customer(
        {
            "key": "acme:eu@1",
            "name": "Acme",
            "email": "billing@acme.example",
            "currency": "JPY",
            "timezone": "Asia/Kathmandu",
            "metadata": {"crm": 42},
        }
    )
    assert customer.currency == "JPY"
    assert customer.zone.key == "Asia/Kathmandu"
    assert dict(customer.metadata) == {"crm": 42}


@pytest.mark.parametrize("currency", ["usd", "XXX", "US", "EURO", 978, None])
def test_a_currency_must_be_an_iso_4217_code(currency: object) -> None:
    assert _pointers(parse_customer, {"key": "acme", "currency": currency}) == ["/currency"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "utc", "CEST", 1])
def test_a_timezone_must_be_an_iana_zone(zone: object) -> None:
    assert _pointers(parse_customer, {"key": "acme", "timezone": zone}) == ["/timezone"]


@pytest.mark.parametrize("email", ["nope", "a@b", "a b@c.de", "@c.de", 5])
def test_an_email_must_look_like_an_address(email: object) -> None:
    assert _pointers(parse_customer, {"key": "acme", "email": email}) == ["/email"]


@pytest.mark.parametrize("key", ["", " acme", "-acme", "a/b", "x" * 257, None, 7])
def test_a_customer_key_is_a_bounded_plain_identifier(key: object) -> None:
    assert "/key" in _pointers(parse_customer, {"key": key, "name": "Acme"})


def test_all_bad_fields_are_reported_together() -> None:
    body = {"key": "acme", "currency": "usd", "timezone": "Nowhere", "email": "x", "metadata": 3}
    pointers = _pointers(parse_customer, body)
    assert set(pointers) == {"/currency", "/timezone", "/email", "/metadata"}


def test_changes_hold_only_the_fields_sent() -> None:
    changes = parse_customer_changes({"timezone": "Europe/Madrid", "email": None})
    assert changes == {"timezone": "Europe/Madrid", "email": None}


@pytest.mark.parametrize("field", ["key", "id", "plan", "created_at"])
def test_a_change_to_an_unknown_or_fixed_field_is_refused(field: str) -> None:
    assert _pointers(parse_customer_changes, {field: "x"}) == [f"/{field}"]


def test_changes_are_checked_like_a_new_customer() -> None:
    pointers = _pointers(parse_customer_changes, {"currency": "usd", "name": " "})
    assert set(pointers) == {"/currency", "/name"}
