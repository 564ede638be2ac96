"""Email notifications: rendered from templates (plain text and HTML), sent over SMTP."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import RowMapping

from fairmeter.domain.errors import FairmeterError
from fairmeter.domain.money import Money
from fairmeter.domain.windows import from_us
from fairmeter.services.catalog import get_customer
from fairmeter.services.runtime import Runtime
from fairmeter.services.upcoming import upcoming_invoice
from fairmeter.services.webhooks import Outcome

TIMEOUT_SECONDS = 10.0
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "email"),
    autoescape=select_autoescape(["html"], default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
_SHOWN = (
    "meter", "unit", "usage", "limit", "allowance", "threshold", "percent", "projected_usage",
    "plan", "next_plan", "invoice_number", "message",
)  # fmt: skip
_AMOUNTS = ("amount", "budget", "projected_total")


@dataclass(frozen=True)
class Smtp:
    """`smtp://user:pass@host:587?starttls=true&from=billing@example.com`; `smtps://` for
    TLS from the first byte (port 465)."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> Smtp:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("FAIRMETER_SMTP_URL must look like smtp://user:pass@host:587")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            sender=query.get("from", f"fairmeter@{parts.hostname}"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", "false").lower() in ("1", "true", "yes"),
            tls=tls,
        )


@dataclass(frozen=True)
class Email:
    recipient: str
    subject: str
    text: str
    html: str


def compose(rt: Runtime, notification: RowMapping, recipient: str) -> Email:
    """The message for one notification; the bill so far and projected are read now."""
    context = _context(rt, notification)
    return Email(
        recipient=recipient,
        subject=f"{notification['title']} ({rt.billing.seller_name})",
        text=_TEMPLATES.get_template("notification.txt").render(context),
        html=_TEMPLATES.get_template("notification.html").render(context),
    )


def send_email(smtp: Smtp, email: Email, message_id: str) -> Outcome:
    """Hand one message to the SMTP server; a refusal or a timeout is a failed attempt."""
    started = time.monotonic()
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = email.recipient
    message["Subject"] = email.subject
    message["Message-ID"] = make_msgid(message_id.replace("_", "."))
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    try:
        with _connect(smtp) as server:
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context())
            if smtp.username:
                server.login(smtp.username, smtp.password or "")
            server.send_message(message)
    except smtplib.SMTPResponseException as exc:
        return Outcome(
            exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:500], _ms(started)
        )
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    # 250: the server accepted the message (recorded like an HTTP status for the proof).
    return Outcome(250, None, _ms(started))


def _connect(smtp: Smtp) -> smtplib.SMTP:
    if smtp.tls:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS, context=context)
    return smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS)


def _context(rt: Runtime, notification: RowMapping) -> dict[str, object]:
    details: dict[str, Any] = json.loads(notification["details"])
    currency = details.get("currency")
    context: dict[str, object] = {k: details.get(k) for k in _SHOWN}
    for key in _AMOUNTS:
        context[key] = _money(details.get(key), currency)
    context.update(
        crossing_at=_day(details.get("crossing_at")),
        customer=_customer_name(rt, notification["customer_key"]),
        title=notification["title"],
        period=_period(notification),
        bill=_bill(rt, notification["customer_key"]),
        seller=rt.billing.seller_name,
        notification_id=notification["id"],
    )
    return context


def _money(raw: object, currency: object) -> str | None:
    if raw is None:
        return None
    try:
        return Money.of(Decimal(str(raw)), str(currency)).format() if currency else str(raw)
    except (InvalidOperation, ValueError, FairmeterError):
        return str(raw)


def _day(raw: object) -> str | None:
    """An instant from the details as a date people read ("19 Nov 2026")."""
    if not isinstance(raw, str):
        return None
    try:
        return f"{datetime.fromisoformat(raw.replace('Z', '+00:00')):%d %b %Y}"
    except ValueError:
        return raw


def _period(notification: RowMapping) -> str | None:
    start, end = notification["period_start_us"], notification["period_end_us"]
    if start is None or end is None:
        return None
    return f"{from_us(start):%d %b %Y} to {from_us(end):%d %b %Y}"


def _bill(rt: Runtime, customer_key: str) -> dict[str, str] | None:
    """The bill so far and projected, as the upcoming invoice says now; None without an
    active subscription."""
    try:
        upcoming = upcoming_invoice(rt.db, rt.clock, customer_key)
    except FairmeterError:
        return None
    if not upcoming.currency:
        return None
    so_far = Money(upcoming.total_minor, upcoming.currency).format()
    return {
        "so_far": so_far,
        "projected": Money(upcoming.projected_total_minor, upcoming.currency).format(),
    }


def _customer_name(rt: Runtime, key: str) -> str:
    try:
        return get_customer(rt.db, key).name
    except FairmeterError:
        return key


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
