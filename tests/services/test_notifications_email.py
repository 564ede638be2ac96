"""Email notifications against a real SMTP server (aiosmtpd): rendered text and HTML say
what was used, the limit, the projected bill and how to upgrade or set a budget."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from tests.conftest import free_port
from tests.services.billing_world import World
from tests.services.notification_receivers import attempts_of, deliveries_of

from fairmeter.config import Settings
from fairmeter.domain.windows import to_us
from fairmeter.services.clock import FixedClock
from fairmeter.services.delivery import DeliveryWorker
from fairmeter.services.email import Smtp
from fairmeter.services.notifications import NewNotification, notify
from fairmeter.services.runtime import Runtime
from fairmeter.wiring import build

SEP = datetime(2026, 9, 1, tzinfo=UTC)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 try again later"
        message = email.message_from_bytes(envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    found = Inbox()
    port = free_port()
    controller = Controller(found, hostname="127.0.0.1", port=port)
    controller.start()
    yield found, port
    controller.stop()


@pytest.fixture
def rt(database_url: str, inbox: tuple[Inbox, int]) -> Iterator[Runtime]:
    smtp = f"smtp://127.0.0.1:{inbox[1]}?from=billing@seller.test"
    settings = Settings(database_url=database_url, smtp_url=smtp, seller_name="Seller Inc")
    found = build(settings, clock=FixedClock(SEP + timedelta(days=10)))
    yield found
    found.close()


def _world(rt: Runtime) -> None:
    world = World(rt).at(SEP).meter("calls", "sum")
    world.customer("acme", name="Acme Corp", email="ops@acme.test")
    world.plan("pro", name="Pro", next_plan=None, base_fee="100", charges=[
        {"meter": "calls", "model": "per_unit", "unit_price": "0.01"}
    ])  # fmt: skip
    world.subscribe("acme", "pro", SEP)
    world.at(SEP + timedelta(days=10)).use("acme", "calls", SEP + timedelta(days=5), 80_000)


def _parts(message: Message) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode()
        elif part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode()
    return text, html


def test_an_email_tells_the_usage_the_limit_the_projected_bill_and_what_to_do(
    rt: Runtime, inbox: tuple[Inbox, int]
) -> None:
    _world(rt)
    note = NewNotification(
        customer="acme",
        kind="alert.usage_threshold",
        dedupe_key="acme:calls:80",
        title="You have used 80% of your calls",
        details={"meter": "calls", "unit": "calls", "usage": "80000", "limit": "100000",
                 "percent": "80", "next_plan": "Scale"},
        period_start_us=to_us(SEP),
        period_end_us=to_us(datetime(2026, 10, 1, tzinfo=UTC)),
    )  # fmt: skip
    notification_id = notify(rt.db, note, to_us(rt.clock.now()))
    assert notification_id is not None
    with DeliveryWorker(rt) as worker:
        assert worker.run_once().delivered == 1
    ((sender, recipients, message),) = inbox[0].messages
    assert (sender, recipients) == ("billing@seller.test", ["ops@acme.test"])
    assert message["Subject"] == "You have used 80% of your calls (Seller Inc)"
    text, html = _parts(message)
    assert "Hello Acme Corp," in text
    assert "What you used: 80000 calls of calls in the period 01 Sep 2026 to 01 Oct 2026." in text
    assert "Your limit: 100000 calls (80% used)." in text
    # 80,000 x 0.01 + 100 so far; run on over the whole month (10 of 30 days elapsed): x3.
    assert "Your bill so far this period: USD 900.00" in text
    assert "projected bill at the end of the period: USD 2,500.00" in text
    assert "Upgrade to the Scale plan to raise your limit." in text
    assert "Set a budget: you will be warned at 80% and 100% of it." in text
    assert '<th align="left">Projected bill</th><td>USD 2,500.00</td>' in html
    assert "<strong>Scale</strong>" in html
    (delivery,) = deliveries_of(rt, notification_id)
    assert (delivery["status"], delivery["last_status_code"]) == ("delivered", 250)


def test_html_email_escapes_what_came_from_outside(rt: Runtime, inbox: tuple[Inbox, int]) -> None:
    _world(rt)
    note = NewNotification("acme", "limit.reached", "x", "Limit <b>reached</b>", {"meter": "<i>"})
    notify(rt.db, note, to_us(rt.clock.now()))
    with DeliveryWorker(rt) as worker:
        worker.run_once()
    text, html = _parts(inbox[0].messages[0][2])
    assert "Limit &lt;b&gt;reached&lt;/b&gt;" in html and "<b>reached" not in html
    assert "Limit <b>reached</b>." in text


def test_a_refused_email_is_retried_later(rt: Runtime, inbox: tuple[Inbox, int]) -> None:
    _world(rt)
    inbox[0].refuse = True
    notification_id = notify(rt.db, NewNotification("acme", "limit.reached", "x", "Limit"), 1)
    assert notification_id is not None
    with DeliveryWorker(rt, jitter=lambda: 0.0) as worker:
        assert worker.run_once().retrying == 1
        inbox[0].refuse = False
        rt.clock.advance(timedelta(seconds=10))  # type: ignore[attr-defined]
        assert worker.run_once().delivered == 1
    (delivery,) = deliveries_of(rt, notification_id)
    codes = [a["status_code"] for a in attempts_of(rt, delivery["id"])]
    assert codes == [451, 250]
    assert len(inbox[0].messages) == 1


def test_smtp_urls_name_host_port_credentials_tls_and_sender() -> None:
    smtp = Smtp.parse("smtp://user%40x:p%3Ass@mail.test:587?starttls=true&from=bill@x.test")
    assert (smtp.host, smtp.port, smtp.username, smtp.password) == (
        "mail.test", 587, "user@x", "p:ss"
    )  # fmt: skip
    assert (smtp.starttls, smtp.tls, smtp.sender) == (True, False, "bill@x.test")
    assert Smtp.parse("smtps://mail.test").port == 465
    with pytest.raises(ValueError):
        Smtp.parse("http://mail.test")


def test_a_spend_forecast_email_says_the_projected_charges_and_the_crossing_day(
    rt: Runtime, inbox: tuple[Inbox, int]
) -> None:
    _world(rt)
    message = "At this pace you will reach USD 1,000.00 on 19 Sep"
    details = {
        "amount": "800",
        "budget": "1000",
        "currency": "USD",
        "projected_total": "2500",
        "crossing_at": "2026-09-19T06:00:00Z",
        "message": message,
    }
    notify(rt.db, NewNotification("acme", "alert.forecast", "f", "Spend forecast", details), 1)
    with DeliveryWorker(rt) as worker:
        worker.run_once()
    text, html = _parts(inbox[0].messages[0][2])
    assert message in text and message in html
    assert "Charges so far: USD 800.00." in text
    assert "Your budget: USD 1,000.00." in text
    assert (
        "Projected charges by the end of the period: USD 2,500.00"
        " (reaching USD 1,000.00 on 19 Sep 2026)."
    ) in text
