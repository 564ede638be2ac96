"""The invoice API on every backend: billing runs, listing, status changes, HTML and PDF."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pypdf import PdfReader
from tests.api.conftest import assert_problem
from tests.services.billing_world import World

from fairmeter.services.runtime import Runtime

SEP = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
CALLS = {
    "meter": "calls",
    "model": "graduated",
    "included": "1000",
    "tiers": [
        {"up_to": "10000", "unit_price": "0.002"},
        {"up_to": None, "unit_price": "0.001", "flat_fee": "5"},
    ],
}


def _bill(
    runtime: Runtime,
    api: httpx.Client,
    at: datetime = OCT + timedelta(days=2),
    currency: str = "USD",
    **customer: Any,
) -> Any:
    world = World(runtime).at(SEP).meter("calls", "sum")
    customer = {"name": "Acme Corp", "email": "billing@acme.example", **customer}
    world.customer("acme", currency=currency, **customer)
    world.plan(
        "pro", name="Pro", currency=currency, base_fee="1234.5", charges=[CALLS], net_terms_days=30
    )
    world.subscribe("acme", "pro", SEP)
    world.at(SEP + timedelta(days=3)).use("acme", "calls", SEP + timedelta(days=2), 4_501_000)
    world.at(at)
    response = api.post("/v1/billing/run")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_run_reports_what_it_created_and_issued_and_repeats_harmlessly(
    runtime: Runtime, api: httpx.Client
) -> None:
    report = _bill(runtime, api)
    assert [i["number"] for i in report["finalized"]] == ["FM-2026-000001"]
    assert len(report["created"]) == 1
    again = api.post("/v1/billing/run", json={}).json()
    assert again["created"] == again["finalized"] == again["updated"] == []
    listed = api.get("/v1/invoices", params={"customer": "acme", "status": "finalized"}).json()
    assert [i["number"] for i in listed["data"]] == ["FM-2026-000001"]
    assert listed["has_more"] is False


def test_an_invoice_shows_each_line_with_its_tiers_and_the_total(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api)["finalized"][0]["id"]
    body = api.get(f"/v1/invoices/{invoice_id}").json()
    fee, calls = body["lines"]
    assert (fee["description"], fee["amount"]) == ("Pro base fee", "1234.50")
    assert (calls["quantity"], calls["included"], calls["billable"]) == (
        "4501000",
        "1000",
        "4500000",
    )
    # 10,000 x 0.002 + 4,490,000 x 0.001 + 5 flat = 4,515.00
    assert [t["amount"] for t in calls["tiers"]] == ["20", "4495"]
    assert calls["amount"] == "4515.00"
    assert (body["subtotal"], body["total"], body["total_minor"]) == ("5749.50", "5749.50", 574950)
    assert body["period"] == {"from": "2026-09-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"}
    assert body["issued_at"] == "2026-10-03T00:00:00Z"
    assert body["due_at"] == "2026-11-02T00:00:00Z"
    assert body["late_events"] == {"billed": 0, "dropped": 0}
    assert body["buyer"]["name"] == "Acme Corp"


def test_status_changes_follow_the_rules_and_name_the_status_when_refused(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api)["finalized"][0]["id"]
    paid = api.post(f"/v1/invoices/{invoice_id}/pay")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    for action in ("pay", "void", "mark-uncollectible"):
        refused = assert_problem(
            api.post(f"/v1/invoices/{invoice_id}/{action}"), 409, "invalid_transition"
        )
        assert "paid" in refused["detail"] and refused["invoice_status"] == "paid"
    assert_problem(api.post("/v1/invoices/in_nope/pay"), 404, "not_found")
    assert_problem(api.get("/v1/invoices", params={"status": "lost"}), 422, "invalid_input")


def test_a_draft_cannot_be_voided_and_renders_as_draft(runtime: Runtime, api: httpx.Client) -> None:
    draft = _bill(runtime, api, at=OCT + timedelta(hours=2))["created"][0]
    assert draft["status"] == "draft" and draft["number"] is None
    assert_problem(api.post(f"/v1/invoices/{draft['id']}/void"), 409, "invalid_transition")
    html = api.get(f"/v1/invoices/{draft['id']}.html").text
    assert "Invoice DRAFT" in html


def test_the_html_invoice_lists_the_lines_parties_and_total(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api)["finalized"][0]["id"]
    response = api.get(f"/v1/invoices/{invoice_id}.html")
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for text in ("FM-2026-000001", "Acme Corp", "billing@acme.example", "Pro base fee"):
        assert text in html
    for text in ("4,501,000", "$4,515.00", "$5,749.50", "2026-10-03", "2026-11-02"):
        assert text in html
    assert "<dt>Currency</dt><dd>USD</dd>" in html


def test_the_pdf_invoice_is_a_real_pdf_with_the_same_content(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api)["finalized"][0]["id"]
    response = api.get(f"/v1/invoices/{invoice_id}.pdf")
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    for expected in ("FM-2026-000001", "Acme Corp", "Pro base fee", "$5,749.50", "4,501,000"):
        assert expected in text
    assert reader.metadata is not None and reader.metadata.title == "Invoice FM-2026-000001"
    assert api.get(f"/v1/invoices/{invoice_id}.pdf").content == response.content


def _pdf_text(api: httpx.Client, invoice_id: str) -> str:
    reader = PdfReader(io.BytesIO(api.get(f"/v1/invoices/{invoice_id}.pdf").content))
    # Babel separates number and sign with a no-break space; text extraction may not keep it.
    return "\n".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")


def test_the_documents_write_amounts_the_way_the_buyers_locale_does(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api, currency="EUR", locale="es_ES")["finalized"][0]["id"]
    html = api.get(f"/v1/invoices/{invoice_id}.html").text
    # es_ES: '.' groups thousands, ',' separates decimals, the sign follows the number.
    for text in ("4.501.000", "4.515,00\xa0€", "5.749,50\xa0€", "<dd>EUR</dd>"):
        assert text in html
    assert "5,749.50" not in html
    pdf = _pdf_text(api, invoice_id)
    for text in ("4.501.000", "5.749,50 €", "EUR"):
        assert text in pdf
    body = api.get(f"/v1/invoices/{invoice_id}").json()
    assert (body["total"], body["currency"], body["total_minor"]) == ("5749.50", "EUR", 574950)


def test_an_issued_invoice_follows_the_customers_current_locale(
    runtime: Runtime, api: httpx.Client
) -> None:
    invoice_id = _bill(runtime, api)["finalized"][0]["id"]
    assert api.patch("/v1/customers/acme", json={"locale": "de_DE"}).status_code == 200
    assert "5.749,50\xa0$" in api.get(f"/v1/invoices/{invoice_id}.html").text


def test_the_pdf_writes_names_and_signs_beyond_latin_1(runtime: Runtime, api: httpx.Client) -> None:
    name = "Ümlaut Ünïcode ₹"
    report = _bill(runtime, api, currency="INR", locale="hi_IN", name=name)
    pdf = _pdf_text(api, report["finalized"][0]["id"])
    assert name in pdf
    assert "₹5,749.50" in pdf


def test_a_run_refuses_a_bad_or_future_as_of(runtime: Runtime, api: httpx.Client) -> None:
    future = (runtime.clock.now() + timedelta(days=1)).isoformat()
    assert_problem(api.post("/v1/billing/run", json={"as_of": future}), 422, "invalid_input")
    assert_problem(api.post("/v1/billing/run", json={"as_of": "soon"}), 422, "invalid_input")
    assert_problem(api.post("/v1/billing/run", json={"when": "now"}), 422, "invalid_input")


def test_thresholds_can_be_checked_on_demand(runtime: Runtime, api: httpx.Client) -> None:
    world = World(runtime).at(SEP).meter("calls", "sum").customer("acme", threshold="100")
    world.plan("pro", charges=[CALLS])
    world.subscribe("acme", "pro", SEP)
    world.at(SEP + timedelta(days=3)).use("acme", "calls", SEP + timedelta(days=2), 200_000)
    issued = api.post("/v1/billing/thresholds", json={"customer": "acme"}).json()["issued"]
    assert [(i["kind"], i["total"], i["number"]) for i in issued] == [
        ("threshold", "214.00", "FM-2026-000001")
    ]
    assert api.post("/v1/billing/thresholds").json()["issued"] == []
