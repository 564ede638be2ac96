"""An invoice as a PDF (fpdf2, pure Python): A4, no network.

The text is set in DejaVu Sans, vendored in api/fonts (license beside it) and embedded
(subset) in the file, so names and currency signs in Latin, Greek, Cyrillic, Arabic, Hebrew
and more render as written: "Ümlaut", "₹", "€", "¥". DejaVu has no CJK glyphs: Japanese or
Chinese names print as blank boxes. The document's dates are the invoice's own, so rendering
an issued invoice twice gives the same file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from fairmeter.api.invoice_render import InvoiceView, LineView

FONTS = Path(__file__).resolve().parent / "fonts"
_FONT = "DejaVu"
_WIDTHS = (88, 24, 22, 24, 32)  # mm: description, quantity, included, unit price, amount
_GREY = (110, 110, 110)


def invoice_pdf(view: InvoiceView, dated: datetime | None = None) -> bytes:
    pdf = FPDF(format="A4")
    pdf.add_font(_FONT, "", FONTS / "DejaVuSans.ttf")
    pdf.add_font(_FONT, "B", FONTS / "DejaVuSans-Bold.ttf")
    pdf.set_creation_date(dated or datetime(1970, 1, 1, tzinfo=UTC))
    pdf.set_title(view.title)
    pdf.set_author(view.seller_name)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    _header(pdf, view)
    _parties(pdf, view)
    _lines(pdf, view)
    _totals(pdf, view)
    return bytes(pdf.output())


def _header(pdf: FPDF, view: InvoiceView) -> None:
    pdf.set_font(_FONT, "B", 18)
    pdf.cell(0, 10, view.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, "", 9)
    pdf.set_text_color(*_GREY)
    pdf.cell(0, 5, f"Status: {view.status.upper()}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    facts = [
        ("Invoice number", view.number),
        ("Issue date", view.issued),
        ("Due date", view.due),
        ("Billing period", view.period),
        ("Currency", view.currency),
    ]
    if view.covers_until:
        facts.insert(4, ("Usage up to", view.covers_until))
    for label, value in facts:
        pdf.set_font(_FONT, "", 9)
        pdf.set_text_color(*_GREY)
        pdf.cell(35, 5, label)
        pdf.set_text_color(0, 0, 0)
        pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")


def _parties(pdf: FPDF, view: InvoiceView) -> None:
    pdf.ln(5)
    top = pdf.get_y()
    _party(pdf, "FROM", view.seller_name, view.seller_address, 15, top)
    left_bottom = pdf.get_y()
    _party(pdf, "BILL TO", view.buyer_name, view.buyer_lines, 110, top)
    pdf.set_xy(15, max(left_bottom, pdf.get_y()) + 6)


def _party(pdf: FPDF, label: str, name: str, lines: tuple[str, ...], x: float, y: float) -> None:
    pdf.set_xy(x, y)
    pdf.set_font(_FONT, "B", 8)
    pdf.set_text_color(*_GREY)
    pdf.cell(85, 5, label, new_x="LEFT", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(_FONT, "B", 10)
    pdf.multi_cell(85, 5, name, new_x="LEFT", new_y="NEXT")
    pdf.set_font(_FONT, "", 9)
    for line in lines:
        pdf.multi_cell(85, 5, line, new_x="LEFT", new_y="NEXT")


def _lines(pdf: FPDF, view: InvoiceView) -> None:
    pdf.set_font(_FONT, "", 9)
    heading = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))
    with pdf.table(
        col_widths=_WIDTHS,
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        headings_style=heading,
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
        padding=1.2,
    ) as table:
        table.row(["Description", "Quantity", "Included", "Unit price", "Amount"])
        for line in view.lines:
            table.row(
                [
                    _description(line),
                    line.quantity,
                    line.included,
                    line.unit_price,
                    line.amount,
                ]
            )


def _description(line: LineView) -> str:
    parts = [line.description, line.period]
    parts.extend(f"  {tier}" for tier in line.tiers)
    if line.note:
        parts.append(line.note)
    return "\n".join(parts)


def _totals(pdf: FPDF, view: InvoiceView) -> None:
    pdf.ln(3)
    label_width = sum(_WIDTHS[:-1])
    pdf.set_font(_FONT, "", 10)
    pdf.cell(label_width, 6, "Subtotal", align="R")
    pdf.cell(_WIDTHS[-1], 6, view.subtotal, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, "B", 11)
    pdf.cell(label_width, 7, "Total", align="R")
    pdf.cell(_WIDTHS[-1], 7, view.total, align="R", new_x="LMARGIN", new_y="NEXT")
    if view.late_note:
        pdf.ln(4)
        pdf.set_font(_FONT, "", 8)
        pdf.set_text_color(*_GREY)
        pdf.multi_cell(0, 4, view.late_note)
