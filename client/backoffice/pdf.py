"""The settlement report as PDF, laid out with ReportLab from the same model as the HTML.

A4 portrait. Long tables are cut into pages with their header row repeated; every page
names the period and says "page N of M". The standard PDF fonts (Helvetica, Courier for
ids) cover Latin-1; other characters print as `?`.
"""

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from client.backoffice.settlement import RECONCILED, Section, SettlementReport

FONT, BOLD, MONO = "Helvetica", "Helvetica-Bold", "Courier"
SIZE = 7.5
MARGIN = 12 * mm
WIDTH = A4[0] - 2 * MARGIN
GREEN, RED, FLAG = colors.HexColor("#1a7f37"), colors.HexColor("#c62828"), \
    colors.HexColor("#ffe3e0")
CHUNK = 400  # rows per table: splitting one 10,000-row table page by page costs O(n²)

_TITLE = ParagraphStyle("title", fontName=BOLD, fontSize=15, leading=18, spaceAfter=4)
_H2 = ParagraphStyle("h2", fontName=BOLD, fontSize=10.5, leading=13, spaceBefore=7,
                     spaceAfter=2)
_NOTE = ParagraphStyle("note", fontName=FONT, fontSize=7.5, leading=9,
                       textColor=colors.HexColor("#555555"), spaceAfter=2)
_TEXT = ParagraphStyle("text", fontName=FONT, fontSize=8.5, leading=11, alignment=TA_LEFT)
_STATUS = ParagraphStyle("status", fontName=BOLD, fontSize=10, leading=13)


def render_pdf(report: SettlementReport) -> bytes:
    """The report as a PDF document (bytes)."""
    buffer = io.BytesIO()
    footer = f"{report.title}, period {report.period_id}"
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm, title=f"{report.title} {report.period_id}",
        author="seqr-client", subject=report.status_line, creator="seqr-client",
        invariant=True,
    )
    story: list[Flowable] = [Paragraph(_text(report.title), _TITLE), _facts(report),
                             Spacer(1, 6), _status(report)]
    for section in report.sections:
        story.extend(_section(section))
    story.append(_signoff(report))
    document.build(story, canvasmaker=_numbered(footer))
    return buffer.getvalue()


def _text(value: str) -> str:
    """Paragraph markup of plain text, in what the standard fonts can print."""
    return escape(_latin(value))


def _latin(value: str) -> str:
    return value.encode("cp1252", "replace").decode("cp1252")


def _facts(report: SettlementReport) -> Table:
    cells = [Paragraph(f"<b>{_text(name)}</b>" if i % 2 == 0 else _text(text), _TEXT)
             for name, value in report.facts for i, text in enumerate((name, value))]
    rows = [cells[i:i + 4] for i in range(0, len(cells), 4)]
    label, half = 22 * mm, WIDTH / 2
    table = Table(rows, colWidths=(label, half - label, 28 * mm, half - 28 * mm),
                  hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("TOPPADDING", (0, 0), (-1, -1), 0.5),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return table


def _status(report: SettlementReport) -> Table:
    table = Table([[Paragraph(_text(report.status_line), _STATUS)]], colWidths=(WIDTH,))
    table.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.5, GREEN if report.status == RECONCILED else RED),
        ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return table


def _section(section: Section) -> list[Flowable]:
    heading: list[Flowable] = [Paragraph(_text(section.title), _H2)]
    if section.note:
        heading.append(Paragraph(_text(section.note), _NOTE))
    widths = _widths(section)
    fonts = [MONO if _is_ids(section, i) else FONT for i in range(len(section.columns))]
    header = [_latin(c) for c in section.columns]
    tables: list[Flowable] = []
    for start in range(0, max(len(section.rows), 1), CHUNK):
        rows = section.rows[start:start + CHUNK]
        data = [header, *[[_fit(cell, widths[i], fonts[i]) for i, cell in enumerate(row)]
                          for row in rows]]
        table = LongTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        table.setStyle(_style(section, fonts, start, len(rows)))
        tables.append(table)
    if len(section.rows) <= 30:  # a short table is not cut from its heading
        return [KeepTogether([*heading, *tables])]
    return [CondPageBreak(35 * mm), *heading, *tables]  # a heading not alone at the foot


def _widths(section: Section) -> list[float]:
    relative = section.widths or (1.0,) * len(section.columns)
    scale = WIDTH / sum(relative)
    return [w * scale for w in relative]


def _is_ids(section: Section, column: int) -> bool:
    values = [row[column] for row in section.rows[:50] if row[column] not in ("", "-")]
    return bool(values) and all(len(v) >= 20 and " " not in v for v in values)


def _fit(text: str, width: float, font: str) -> str:
    """The cell's text, cut with an ellipsis where it would overflow its column."""
    text = _latin(text)
    room = width - 4
    if stringWidth(text, font, SIZE) <= room:
        return text
    while text and stringWidth(text + "...", font, SIZE) > room:
        text = text[:-1]
    return text + "..."


def _style(section: Section, fonts: Sequence[str], offset: int, count: int) -> TableStyle:
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, 0), BOLD, SIZE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("FONTSIZE", (0, 1), (-1, -1), SIZE),
        ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    for column, font in enumerate(fonts):
        commands.append(("FONTNAME", (column, 1), (column, -1), font))
        if section.numeric[column]:
            commands.append(("ALIGN", (column, 0), (column, -1), "RIGHT"))
    for index in section.subtotal:
        if offset <= index < offset + count:
            row = index - offset + 1
            commands.append(("LINEBELOW", (0, row), (-1, row), 0.4, colors.grey))
    for index in section.flagged:
        if offset <= index < offset + count:
            row = index - offset + 1
            commands += [("BACKGROUND", (0, row), (-1, row), FLAG),
                         ("FONTNAME", (1, row), (-1, row), BOLD)]
    return TableStyle(commands)


def _signoff(report: SettlementReport) -> Flowable:
    notes = "<br/>".join(_text(n) for n in report.notes) or "&nbsp;"
    box = Table([[Paragraph(notes, _TEXT)]], colWidths=(WIDTH,), rowHeights=None)
    box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.5, colors.grey),
                             ("TOPPADDING", (0, 0), (-1, -1), 4),
                             ("BOTTOMPADDING", (0, 0), (-1, -1), 18)]))
    count = len(report.signature_lines)
    gap = 8 * mm
    cells: list[str] = []
    for line in report.signature_lines:
        cells += [line, ""]
    lines = Table([cells[:-1]], colWidths=[(WIDTH - gap * (count - 1)) / count, gap]
                  * (count - 1) + [(WIDTH - gap * (count - 1)) / count])
    lines.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), FONT, 7.5),
        ("TEXTCOLOR", (0, 0), (-1, -1), colors.HexColor("#555555")),
        *[("LINEABOVE", (2 * i, 0), (2 * i, 0), 0.6, colors.black) for i in range(count)],
        ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return KeepTogether([Paragraph("Notes", _H2), box, Spacer(1, 20), lines])


def _numbered(footer: str) -> type[pdfcanvas.Canvas]:
    """A canvas that writes "page N of M" once it knows M (the pages are kept until the
    end, then drawn)."""

    class NumberedCanvas(pdfcanvas.Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(FONT, 7)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(MARGIN, MARGIN - 2 * mm, _latin(footer))
                self.drawRightString(A4[0] - MARGIN, MARGIN - 2 * mm,
                                     f"page {self._pageNumber} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas
