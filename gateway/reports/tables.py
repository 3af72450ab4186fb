"""A report document as a table with totals, and as CSV and JSON: what the console shows and
offers for download.

The document is the one the register gets from `executeReport` once it is stored; before
any register asked for it, it is rendered on the spot by the same renderer (only its
`GeneratedAt` may then differ from a later stored one). Showing a report never queues a job,
so the register's own first `executeReport` still answers REPORT_NOT_READY as SEQR's did.
"""

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from gateway.reports import requests
from gateway.reports.render import NULL, ReportScope, render
from storage import jobs
from storage.models import ReportJob, TransactionPeriod
from wsdl.catalog import ReportSpec

ZERO = Decimal("0.00000")  # the documents' five decimals, so sums print like them
_COUNTS = ("SalesCount", "RefundCount")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass(frozen=True)
class Totals:
    sales_count: int = 0
    sales_total: Decimal = ZERO
    refund_count: int = 0
    refund_total: Decimal = ZERO  # negative, as the documents print refunds

    @property
    def net_total(self) -> Decimal:
        return self.sales_total + self.refund_total


@dataclass(frozen=True)
class ReportTable:
    spec: ReportSpec
    title: str
    #: Meta of the document: ResellerId, TerminalId (006, 007), TransactionPeriodId, GeneratedAt
    meta: dict[str, str]
    columns: tuple[str, ...]
    #: the cells as the document prints them (five decimals, NULL cashiers)
    rows: tuple[tuple[str, ...], ...]
    totals: Totals
    #: the document, byte for byte
    content: bytes
    #: True: the stored document registers get; False: rendered now, none asked for it yet
    stored: bool

    @property
    def filename(self) -> str:
        return self.title.removesuffix(".xml")


def scope(session: Session, spec: ReportSpec, period: TransactionPeriod,
          terminal_id: str | None) -> ReportScope:
    """The report of a closed period (and terminal): SeqrError as executeReport would give."""
    return ReportScope(spec, period, requests.terminal_of(session, spec, period, terminal_id))


def document(session: Session, report: ReportScope, now: datetime) -> tuple[bytes, bool]:
    """The stored document of this report, or one rendered now; and whether it is stored."""
    job = requests.find(session, report)
    if job is not None and job.status == ReportJob.DONE:
        return b"".join(jobs.document_chunks(session, job.id)), True
    out = io.BytesIO()
    render(session, report, now, out)
    return out.getvalue(), False


def table(session: Session, report: ReportScope, now: datetime) -> ReportTable:
    content, stored = document(session, report, now)
    root = etree.fromstring(content, _PARSER)
    meta = {child.tag: child.text or "" for child in root.find("Meta")}
    rows = [[(cell.tag, cell.text or "") for cell in row] for row in root.iterfind("Row")]
    columns = tuple(tag for tag, _ in rows[0]) if rows else _columns(report.spec)
    cells = tuple(tuple(text for _, text in row) for row in rows)
    assert report.period.public_id is not None
    return ReportTable(report.spec, report.spec.title(report.period.public_id), meta, columns,
                       cells, _totals(columns, cells), content, stored)


def _columns(spec: ReportSpec) -> tuple[str, ...]:
    """The columns of a report with no rows (the XSDs' order)."""
    if spec.details:
        return ("TerminalId", "CashierId", "SalesAmount", "ErsReference")
    key = {"STD_RECON_002": ("TerminalId",), "STD_RECON_004": ("CashierId",)}
    return (*key.get(spec.report_id, ()), "SalesCount", "SalesTotal", "RefundCount",
            "RefundTotal")


def _totals(columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> Totals:
    """Details: each row is a sale, or a refund when negative. Summaries: their columns summed."""
    sales_count = refund_count = 0
    sales_total = refund_total = ZERO
    index = {name: i for i, name in enumerate(columns)}
    for row in rows:
        if "SalesAmount" in index:
            amount = Decimal(row[index["SalesAmount"]])
            if amount < 0:
                refund_count, refund_total = refund_count + 1, refund_total + amount
            else:
                sales_count, sales_total = sales_count + 1, sales_total + amount
        else:
            sales_count += int(row[index["SalesCount"]])
            sales_total += Decimal(row[index["SalesTotal"]])
            refund_count += int(row[index["RefundCount"]])
            refund_total += Decimal(row[index["RefundTotal"]])
    return Totals(sales_count, sales_total, refund_count, refund_total)


def to_csv(report: ReportTable) -> str:
    """A header of the element names, then the rows as the document prints them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(report.columns)
    writer.writerows(report.rows)
    return out.getvalue()


def _json_name(tag: str) -> str:
    return tag[0].lower() + tag[1:]


def _json_value(tag: str, text: str) -> Any:
    if tag in _COUNTS:
        return int(text)
    if tag == "CashierId" and text == NULL:
        return None
    return text


def to_json(report: ReportTable) -> dict[str, Any]:
    """The shape of `seqr-client report --format json`: Meta, rows and totals; amounts as
    strings with the document's five decimals, a NULL cashier as null."""
    totals = report.totals
    generated = report.meta.get("GeneratedAt")
    return {
        "reportId": report.spec.report_id,
        "name": report.spec.name,
        "title": report.title,
        "transactionPeriodId": report.meta.get("TransactionPeriodId"),
        "resellerId": report.meta.get("ResellerId"),
        "terminalId": report.meta.get("TerminalId"),
        "generatedAt": (datetime.strptime(generated, "%Y-%m-%d %H:%M").isoformat() + "+00:00"
                        if generated else None),
        "rows": [{_json_name(tag): _json_value(tag, text)
                  for tag, text in zip(report.columns, row, strict=True)}
                 for row in report.rows],
        "totals": {"salesCount": totals.sales_count, "salesTotal": str(totals.sales_total),
                   "refundCount": totals.refund_count, "refundTotal": str(totals.refund_total),
                   "netTotal": str(totals.net_total)},
    }
