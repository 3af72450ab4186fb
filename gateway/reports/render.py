"""Report documents, streamed from the database into an incremental XML writer.

Detail reports never hold the period in memory: rows come from the database in batches
(`yield_per`, a server-side cursor on PostgreSQL) and go straight into `lxml.etree.xmlfile`.
Summaries are SQL aggregates (`money_sum`: exact, never overflowing, on every backend).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from lxml import etree
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from storage.models import Transaction, TransactionPeriod
from storage.money import format_amount, money_sum
from wsdl.catalog import Layout, ReportSpec

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
NULL = "NULL"
_BATCH = 2000


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
    spec = scope.spec
    out.write(XML_DECLARATION)
    with etree.xmlfile(out, encoding="UTF-8") as xf, xf.element(spec.root):
        xf.write("\n")
        xf.write(_meta(scope, generated_at))
        for row in _rows(session, scope):
            xf.write("\n")
            xf.write(row)
        xf.write("\n")
    out.write(b"\n")


def _element(tag: str, children: Iterable[tuple[str, str]]) -> Any:
    node = etree.Element(tag)
    for name, text in children:
        etree.SubElement(node, name).text = text
    return node


def _meta(scope: ReportScope, generated_at: datetime) -> Any:
    fields = [("ResellerId", scope.period.reseller_id)]
    if scope.spec.per_terminal:
        fields.append(("TerminalId", scope.terminal_id or scope.period.terminal_id or ""))
    fields += [
        ("TransactionPeriodId", scope.period.public_id or ""),
        ("GeneratedAt", generated_at.strftime("%Y-%m-%d %H:%M")),
    ]
    return _element("Meta", fields)


def _rows(session: Session, scope: ReportScope) -> Iterator[Any]:
    layout = scope.spec.layout
    if layout is Layout.DETAILS:
        yield from _detail_rows(session, scope)
    elif layout is Layout.TOTAL:
        yield from _summary_rows(session, scope, None, None)
    elif layout is Layout.BY_TERMINAL:
        yield from _summary_rows(session, scope, Transaction.terminal_id, "TerminalId")
    else:
        yield from _summary_rows(session, scope, Transaction.cashier_id, "CashierId")


def _detail_rows(session: Session, scope: ReportScope) -> Iterator[Any]:
    stmt = (
        select(
            Transaction.terminal_id,
            Transaction.cashier_id,
            Transaction.amount,
            Transaction.ers_reference,
        )
        .where(*scope.conditions())
        .order_by(Transaction.id)
        .execution_options(yield_per=_BATCH)
    )
    for terminal_id, cashier_id, amount, reference in session.execute(stmt):
        yield _element(
            "Row",
            (
                ("TerminalId", terminal_id),
                ("CashierId", cashier_id if cashier_id is not None else NULL),
                ("SalesAmount", format_amount(amount)),
                ("ErsReference", reference),
            ),
        )


def _summary_rows(
    session: Session, scope: ReportScope, group_by: Any, group_tag: str | None
) -> Iterator[Any]:
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
