"""The STD_RECON report documents: their ids, and the XML parsed into typed rows and totals.

A detail report (003, 007) has one `DetailRow` per transaction, refunds with a negative
amount; the summaries (001, 002, 004, 006) have `SummaryRow`s with sales and refund counts
and totals. Amounts come with five decimals and stay `Decimal`; `NULL` cashiers become None.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from client.errors import ReportFormatError
from wsdl.catalog import REPORTS, ReportSpec, find_report

ZERO = Decimal("0.00000")  # the documents' precision, so sums print like them


_SHORT = re.compile(r"^(?:std_recon_)?(\d{1,3})$", re.IGNORECASE)


def report_kind(report_id: str) -> ReportSpec:
    """`3`, `003`, `STD_RECON_003`, `Reconciliation/STD_RECON_003.xml` or
    `Reconciliation/Shop.xml` (001) -> the report's kind. ValueError for anything else."""
    text = report_id.strip()
    short = _SHORT.match(text)
    if short:
        text = f"STD_RECON_{int(short.group(1)):03d}"
    elif text.lower() in ("shop.xml", "shop"):
        text = "Reconciliation/Shop.xml"
    kind = find_report(text)
    if kind is None:
        known = ", ".join(REPORTS)
        raise ValueError(f"unknown report id {report_id!r} (known: {known})")
    return kind


@dataclass(frozen=True)
class DetailRow:
    """One transaction of a detail report; a refund has a negative amount."""

    terminal_id: str
    cashier_id: str | None
    amount: Decimal
    ers_reference: str

    @property
    def is_refund(self) -> bool:
        return self.amount < 0


@dataclass(frozen=True)
class SummaryRow:
    """One line of a summary report; `terminal_id` (002) or `cashier_id` (004) name it."""

    sales_count: int
    sales_total: Decimal
    refund_count: int
    refund_total: Decimal  # negative
    terminal_id: str | None = None
    cashier_id: str | None = None

    @property
    def net_total(self) -> Decimal:
        return self.sales_total + self.refund_total


@dataclass(frozen=True)
class Totals:
    """Counts and totals of a report. `refund_total` is negative, as in the documents."""

    sales_count: int = 0
    sales_total: Decimal = ZERO
    refund_count: int = 0
    refund_total: Decimal = ZERO

    @property
    def count(self) -> int:
        return self.sales_count + self.refund_count

    @property
    def net_total(self) -> Decimal:
        return self.sales_total + self.refund_total


@dataclass(frozen=True)
class ReportDocument:
    kind: ReportSpec
    reseller_id: str | None
    terminal_id: str | None  # Meta/TerminalId of the per-terminal reports
    period_id: str | None
    generated_at: datetime | None  # UTC, minute precision
    rows: tuple[DetailRow, ...] | tuple[SummaryRow, ...]
    content: bytes  # the document exactly as received
    title: str | None = None
    mime_type: str | None = None

    @property
    def report_id(self) -> str:
        return self.kind.report_id

    @property
    def details(self) -> tuple[DetailRow, ...]:
        """The transactions of a detail report; () for a summary."""
        return tuple(r for r in self.rows if isinstance(r, DetailRow))

    @property
    def totals(self) -> Totals:
        """Summed from the rows (details: per transaction; summaries: their counts)."""
        sales_count = refund_count = 0
        sales_total = refund_total = ZERO
        for row in self.rows:
            if isinstance(row, DetailRow):
                if row.is_refund:
                    refund_count, refund_total = refund_count + 1, refund_total + row.amount
                else:
                    sales_count, sales_total = sales_count + 1, sales_total + row.amount
            else:
                sales_count += row.sales_count
                sales_total += row.sales_total
                refund_count += row.refund_count
                refund_total += row.refund_total
        return Totals(sales_count, sales_total, refund_count, refund_total)


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_LENIENT = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                           recover=True)


def parse_report(content: bytes, report_id: str | None = None, *, title: str | None = None,
                 mime_type: str | None = None) -> ReportDocument:
    """A report document (bytes) as typed rows. `report_id` tells 002 from 006 (same root);
    without it the kind is guessed from the root element and Meta."""
    root = _parse_xml(content)
    kind = report_kind(report_id) if report_id else _guess_kind(root)
    if root.tag != kind.root:
        raise ReportFormatError(f"{kind.report_id}: root element {root.tag!r}, "
                                f"expected {kind.root!r}")
    rows = tuple(
        _detail_row(row, kind) if kind.details else _summary_row(row, kind)
        for row in root.iterfind("Row")
    )
    return ReportDocument(
        kind=kind,
        reseller_id=_text(root, "Meta/ResellerId"),
        terminal_id=_text(root, "Meta/TerminalId"),
        period_id=_text(root, "Meta/TransactionPeriodId"),
        generated_at=_generated_at(_text(root, "Meta/GeneratedAt")),
        rows=rows,  # type: ignore[arg-type]
        content=content,
        title=title,
        mime_type=mime_type,
    )


def _parse_xml(content: bytes) -> etree._Element:
    try:
        return etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as error:
        # the published SEQR samples had mismatched closing tags: read what can be read
        root = etree.fromstring(content, _LENIENT) if content.strip() else None
        if root is None:
            raise ReportFormatError(f"the report is not XML: {error}") from error
        return root


def _guess_kind(root: etree._Element) -> ReportSpec:
    per_terminal = root.find("Meta/TerminalId") is not None
    row = root.find("Row")
    for kind in REPORTS.values():
        if kind.root != root.tag or kind.per_terminal != per_terminal:
            continue
        if kind.root == "TerminalTransactionSummary" and row is not None and (
            (row.find("TerminalId") is not None) == per_terminal
        ):
            continue  # 002 names a terminal per row, 006 in Meta
        return kind
    raise ReportFormatError(f"not a STD_RECON report: root element {root.tag!r}")


def _text(element: etree._Element, path: str) -> str | None:
    text = element.findtext(path)
    return text.strip() if text is not None else None


def _required(row: etree._Element, name: str, kind: ReportSpec) -> str:
    text = _text(row, name)
    if not text:
        raise ReportFormatError(f"{kind.report_id}: a Row without {name} "
                                f"(line {row.sourceline})")
    return text


def _amount(row: etree._Element, name: str, kind: ReportSpec) -> Decimal:
    text = _required(row, name, kind)
    try:
        return Decimal(text)
    except InvalidOperation as error:
        raise ReportFormatError(f"{kind.report_id}: {name} {text!r} is not an amount "
                                f"(line {row.sourceline})") from error


def _count(row: etree._Element, name: str, kind: ReportSpec) -> int:
    text = _required(row, name, kind)
    if not text.isdigit():
        raise ReportFormatError(f"{kind.report_id}: {name} {text!r} is not a count "
                                f"(line {row.sourceline})")
    return int(text)


def _cashier(text: str | None) -> str | None:
    return None if text in (None, "", "NULL") else text


def _detail_row(row: etree._Element, kind: ReportSpec) -> DetailRow:
    return DetailRow(
        terminal_id=_required(row, "TerminalId", kind),
        cashier_id=_cashier(_text(row, "CashierId")),
        amount=_amount(row, "SalesAmount", kind),
        ers_reference=_required(row, "ErsReference", kind),
    )


def _summary_row(row: etree._Element, kind: ReportSpec) -> SummaryRow:
    return SummaryRow(
        sales_count=_count(row, "SalesCount", kind),
        sales_total=_amount(row, "SalesTotal", kind),
        refund_count=_count(row, "RefundCount", kind) if row.find("RefundCount") is not None
        else 0,
        refund_total=_amount(row, "RefundTotal", kind) if row.find("RefundTotal") is not None
        else ZERO,
        terminal_id=_text(row, "TerminalId"),
        cashier_id=_cashier(_text(row, "CashierId")),
    )


def _generated_at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError:
        return None
