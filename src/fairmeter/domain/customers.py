"""Customers: the accounts usage is attributed to, by their key (an event's subject)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError

from fairmeter.domain.errors import Problems
from fairmeter.domain.money import NotAnAmount, is_currency, parse_decimal

CUSTOMER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_LOCALE = "en_US"
EDITABLE = (
    "name",
    "email",
    "currency",
    "timezone",
    "locale",
    "metadata",
    "invoice_threshold",
    "net_terms_days",
    "budget",
)


@dataclass(frozen=True)
class Customer:
    key: str
    name: str
    email: str | None
    currency: str
    timezone: str
    metadata: Mapping[str, object] = field(default_factory=dict)
    id: int = 0
    # Billing terms that override the plan's when set.
    invoice_threshold: Decimal | None = None
    net_terms_days: int | None = None
    # How invoices show numbers to this customer (CLDR: "6.841,67 €" for es_ES).
    locale: str = DEFAULT_LOCALE
    # The customer's own spending budget per period, in its currency (alerts at 80%, 100%).
    budget: Decimal | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_customer(body: Mapping[str, object]) -> Customer:
    problems = Problems()
    key = body.get("key")
    if not isinstance(key, str) or not CUSTOMER_KEY.match(key):
        problems.add("/key", "is required: letters, digits and . _ : @ - (at most 256)")
    fields = _fields(body, problems, defaults=True)
    problems.raise_if_any("The customer is not valid")
    assert isinstance(key, str)
    return Customer(key=key, **fields)  # type: ignore[arg-type]


def parse_customer_changes(body: Mapping[str, object]) -> dict[str, object]:
    problems = Problems()
    for name in body:
        if name not in EDITABLE:
            problems.add(f"/{name}", "cannot be changed (editable: " + ", ".join(EDITABLE) + ")")
    fields = _fields(body, problems, defaults=False)
    problems.raise_if_any("The customer changes are not valid")
    return fields


def _fields(body: Mapping[str, object], problems: Problems, defaults: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            problems.add("/name", "must be a non-empty string of at most 256 characters")
        out["name"] = name
    elif defaults:
        # The name defaults to the key; a valid key is a valid name, and an invalid one is
        # reported at /key only, not at a /name the caller never sent.
        out["name"] = body.get("key")
    if "email" in body or defaults:
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
            problems.add("/email", "must be an email address")
        out["email"] = email
    if "currency" in body or defaults:
        currency = body.get("currency", "USD")
        if not isinstance(currency, str) or not is_currency(currency):
            problems.add("/currency", "must be an ISO 4217 code such as USD, EUR or JPY")
        out["currency"] = currency
    if "timezone" in body or defaults:
        out["timezone"] = _timezone(body.get("timezone", "UTC"), problems)
    if "locale" in body or defaults:
        out["locale"] = _locale(body.get("locale"), problems)
    if "metadata" in body or defaults:
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            problems.add("/metadata", "must be an object")
        else:
            bad = _non_finite(metadata, "/metadata")
            if bad:
                problems.add(bad, "NaN and Infinity are not JSON numbers")
        out["metadata"] = metadata
    _billing_terms(body, problems, out)
    return out


def _billing_terms(body: Mapping[str, object], problems: Problems, out: dict[str, object]) -> None:
    if body.get("invoice_threshold") is not None:
        try:
            threshold = parse_decimal(body["invoice_threshold"])
            if threshold <= 0:
                raise NotAnAmount("must be greater than zero")
            out["invoice_threshold"] = threshold
        except NotAnAmount as exc:
            problems.add("/invoice_threshold", f'{exc} (a decimal string such as "1000")')
    elif "invoice_threshold" in body:
        out["invoice_threshold"] = None
    if body.get("net_terms_days") is not None:
        days = body["net_terms_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 365:
            problems.add("/net_terms_days", "must be a whole number of days from 0 to 365")
        out["net_terms_days"] = days
    elif "net_terms_days" in body:
        out["net_terms_days"] = None
    _budget(body, problems, out)


def _budget(body: Mapping[str, object], problems: Problems, out: dict[str, object]) -> None:
    if body.get("budget") is None:
        if "budget" in body:
            out["budget"] = None
        return
    try:
        budget = parse_decimal(body["budget"])
        if budget <= 0:
            raise NotAnAmount("must be greater than zero")
        out["budget"] = budget
    except NotAnAmount as exc:
        problems.add("/budget", f'{exc} (a decimal string such as "500.00"; null for none)')


def _timezone(raw: object, problems: Problems) -> object:
    try:
        if not isinstance(raw, str):
            raise ValueError
        ZoneInfo(raw)
    except (ValueError, ZoneInfoNotFoundError):
        problems.add("/timezone", "must be an IANA time zone such as Europe/Madrid")
    return raw


def _locale(raw: object, problems: Problems) -> object:
    """The canonical CLDR identifier ("es-ES" is stored as "es_ES"); null means the default.
    Babel is the one non-stdlib import here: it is pure data (CLDR), no I/O or framework."""
    if raw is None:
        return DEFAULT_LOCALE
    try:
        if not isinstance(raw, str) or len(raw) > 35:
            raise ValueError
        return str(Locale.parse(raw, sep="-" if "-" in raw else "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        problems.add("/locale", "must be a known locale such as en_US, es_ES, ja_JP or de_DE")
        return raw


def _non_finite(node: object, pointer: str) -> str | None:
    """The pointer of a NaN or Infinity inside metadata (lenient JSON parsers let them in)."""
    if isinstance(node, float) and not math.isfinite(node):
        return pointer
    items = (
        node.items()
        if isinstance(node, Mapping)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        found = _non_finite(child, f"{pointer}/{key}")
        if found:
            return found
    return None
