"""Report documents, streamed from the database as preformatted XML text.

Detail reports never hold the period in memory: rows come from the database in batches as
plain tuples (`storage.database.stream_rows`, a server-side cursor on PostgreSQL), are
formatted into text a batch at a time and written out. Summaries are SQL aggregates
(`money_sum`: exact, never overflowing, on every backend).

The text is what lxml wrote for the same elements (tests/test_report_golden.py holds every
document to the bytes it wrote): text escaped as libxml2 escapes it (`&`, `<`, `>` and a
carriage return as `&#13;`), and a string XML cannot hold refused with the error lxml gave.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from storage.database import stream_rows
from storage.models import Transaction, TransactionPeriod
from storage.money import format_amount, format_units, money_sum
from wsdl.catalog import Layout, ReportSpec

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NULL = "NULL"
_BATCH = 5000  # detail rows per fetch and per write: about 1 MB of text

#: what text content cannot hold as it is: escaped, or (control characters) refused
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NOT_XML_ERROR = (
    "All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters"
)


def xml_text(value: str) -> str:
    """`value` as element content."""
    if _SPECIAL.search(value) is None:
        return value
    if _NOT_XML.search(value) is not None:
        raise ValueError(_NOT_XML_ERROR)
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


@dataclass(frozen=True)
class ReportScope:
    """Which transactions a document covers, and what its Meta says."""

    spec: ReportSpec
    period: TransactionPeriod
    terminal_id: str | None

    def conditions(self) -> list[ColumnElement[bool]]:
        if self.period.terminal_id is not None:
            where = [Transaction.terminal_period_id == self.period.id]
        else:
            where = [Transaction.shop_period_id == self.period.id]
        if self.terminal_id is not None and self.period.terminal_id is None:
            where.append(Transaction.terminal_id == self.terminal_id)
        return where


def render(session: Session, scope: ReportScope, generated_at: datetime, out: IO[bytes]) -> None:
    root = scope.spec.root
    out.write(XML_DECLARATION + f"<{root}>\n{_meta(scope, generated_at)}".encode())
    for text in _rows(session, scope):
        out.write(text.encode())
    out.write(f"\n</{root}>\n".encode())


def _element(tag: str, children: Iterable[tuple[str, str]]) -> str:
    inner = "".join(f"<{name}>{xml_text(text)}</{name}>" for name, text in children)
    return f"<{tag}>{inner}</{tag}>"


def _meta(scope: ReportScope, generated_at: datetime) -> str:
    fields = [("ResellerId", scope.period.reseller_id)]
    if scope.spec.per_terminal:
        fields.append(("TerminalId", scope.terminal_id or scope.period.terminal_id or ""))
    fields += [
        ("TransactionPeriodId", scope.period.public_id or ""),
        ("GeneratedAt", generated_at.strftime("%Y-%m-%d %H:%M")),
    ]
    return _element("Meta", fields)


def _rows(session: Session, scope: ReportScope) -> Iterator[str]:
    """The document's rows as text, each after a line break; several rows per piece."""
    layout = scope.spec.layout
    if layout is Layout.DETAILS:
        yield from _detail_rows(session, scope)
        return
    if layout is Layout.TOTAL:
        rows = _summary_rows(session, scope, None, None)
    elif layout is Layout.BY_TERMINAL:
        rows = _summary_rows(session, scope, Transaction.terminal_id, "TerminalId")
    else:
        rows = _summary_rows(session, scope, Transaction.cashier_id, "CashierId")
    for row in rows:
        yield "\n" + row


def _detail_rows(session: Session, scope: ReportScope) -> Iterator[str]:
    """One Row per transaction, a batch of rows per piece of text.

    A period has few terminals and cashiers, so the start of a row up to its amount is made
    once per (terminal, cashier) and looked up after that."""
    stmt = (
        select(
            Transaction.terminal_id,
            Transaction.cashier_id,
            Transaction.amount,  # as stored: an integer of 10**-5 units
            Transaction.ers_reference,
        )
        .where(*scope.conditions())
        .order_by(Transaction.id)
    )
    starts: dict[tuple[str, str | None], str] = {}

    def start(terminal_id: str, cashier_id: str | None) -> str:
        cashier = xml_text(cashier_id) if cashier_id is not None else NULL
        text = starts[terminal_id, cashier_id] = (
            f"\n<Row><TerminalId>{xml_text(terminal_id)}</TerminalId>"
            f"<CashierId>{cashier}</CashierId><SalesAmount>"
        )
        return text

    special = _SPECIAL.search
    for batch in stream_rows(session, stmt, _BATCH, binary=True):
        known = starts.get
        yield "".join([
            f"{known((terminal_id, cashier_id)) or start(terminal_id, cashier_id)}"
            f"{format_units(units)}</SalesAmount><ErsReference>"
            f"{reference if special(reference) is None else xml_text(reference)}"
            "</ErsReference></Row>"
            for terminal_id, cashier_id, units, reference in batch
        ])


def _summary_rows(
    session: Session, scope: ReportScope, group_by: Any, group_tag: str | None
) -> Iterator[str]:
    is_sale = Transaction.kind == Transaction.SALE
    is_refund = Transaction.kind == Transaction.REFUND
    totals = (
        func.count(case((is_sale, 1))),
        money_sum(case((is_sale, Transaction.amount))),
        func.count(case((is_refund, 1))),
        money_sum(case((is_refund, Transaction.amount))),
    )
    if group_by is None:
        stmt = select(*totals).where(*scope.conditions())
    else:
        stmt = (
            select(group_by, *totals)
            .where(*scope.conditions())
            .group_by(group_by)
            .order_by(group_by)
        )
    for result in session.execute(stmt):
        fields = []
        if group_tag is not None:
            key, *numbers = result
            fields.append((group_tag, key if key is not None else NULL))
        else:
            numbers = list(result)
        sales_count, sales_total, refund_count, refund_total = numbers
        fields += [
            ("SalesCount", str(sales_count)),
            ("SalesTotal", format_amount(sales_total or Decimal(0))),
            ("RefundCount", str(refund_count)),
            ("RefundTotal", format_amount(refund_total or Decimal(0))),
        ]
        yield _element("Row", fields)
