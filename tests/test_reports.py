"""Report documents: each of the six, against its XSD and against totals computed here."""

import io
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.auth import Principal
from gateway.errors import SeqrError
from gateway.parameters import Parameters
from gateway.periods import mark_transaction_period
from gateway.reports.catalog import lookup
from gateway.reports.render import ReportScope, render
from storage.models import TransactionPeriod, utcnow
from tests.support.domain import Journal, fresh_db, new_shop, new_terminal
from wsdl import report_schema
from wsdl.catalog import REPORTS
from wsdl.resultcodes import ResultCode


def _close(db, owner: Principal, terminal_id: str | None = None) -> TransactionPeriod:
    params = Parameters.of({"TERMINALID": terminal_id} if terminal_id else {})
    with db.write() as session:
        public_id = mark_transaction_period(session, owner, params).transaction_period_id
    with db.read() as session:
        return session.scalars(
            select(TransactionPeriod).where(TransactionPeriod.public_id == public_id)
        ).one()


def _render(db, report_id: str, period: TransactionPeriod, terminal_id: str | None = None):
    out = io.BytesIO()
    with db.read() as session:
        render(session, ReportScope(REPORTS[report_id], period, terminal_id), utcnow(), out)
    document = out.getvalue()
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = etree.fromstring(document)
    report_schema(report_id).assertValid(root)
    return root


def _numbers(row) -> tuple:
    return (
        int(row.findtext("SalesCount")), Decimal(row.findtext("SalesTotal")),
        int(row.findtext("RefundCount")), Decimal(row.findtext("RefundTotal")),
    )


@pytest.fixture
def trading_day(tmp_path: Path):
    """Two terminals, three cashiers (one sale without a cashier), sales and refunds."""
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till_a, till_b = new_terminal(db, owner, "A"), new_terminal(db, owner, "B")
    journal = Journal()
    journal.add(db, till_a, "SALE", "93.31", "anna")
    journal.add(db, till_a, "SALE", "0.10", "anna")
    journal.add(db, till_a, "REFUND", "20.00", "bob")
    journal.add(db, till_b, "SALE", "1234.5", "bob")
    journal.add(db, till_b, "SALE", "7.77", None)
    journal.add(db, till_b, "SALE", "0.01", "Ånna & <Co>")
    journal.add(db, till_b, "REFUND", "0.01", "Ånna & <Co>")
    return db, owner, till_a, till_b, journal


def test_001_is_the_shop_total(trading_day) -> None:
    db, owner, _, _, journal = trading_day
    period = _close(db, owner)
    root = _render(db, "STD_RECON_001", period)
    assert root.tag == "ResellerTransactionSummary"
    assert root.findtext("Meta/ResellerId") == owner.reseller_id
    assert root.findtext("Meta/TransactionPeriodId") == period.public_id
    assert root.find("Meta/TerminalId") is None
    (row,) = root.findall("Row")
    assert _numbers(row) == journal.totals() == (5, Decimal("1335.69"), 2, Decimal("-20.01"))
    assert row.findtext("SalesTotal") == "1335.69000"


def test_002_totals_terminal_by_terminal(trading_day) -> None:
    db, owner, till_a, till_b, journal = trading_day
    root = _render(db, "STD_RECON_002", _close(db, owner))
    rows = {row.findtext("TerminalId"): _numbers(row) for row in root.findall("Row")}
    assert rows == {till_a: journal.totals(till_a), till_b: journal.totals(till_b)}


def test_003_lists_every_transaction_with_signed_amounts(trading_day) -> None:
    db, owner, _, _, journal = trading_day
    root = _render(db, "STD_RECON_003", _close(db, owner))
    rows = [
        (r.findtext("TerminalId"), r.findtext("CashierId"), Decimal(r.findtext("SalesAmount")),
         r.findtext("ErsReference"))
        for r in root.findall("Row")
    ]
    expected = [(t, c if c is not None else "NULL", a, ref) for t, c, a, ref in journal.rows]
    assert rows == expected
    amounts = [r.findtext("SalesAmount") for r in root.findall("Row")]
    assert amounts[0] == "93.31000" and amounts[2] == "-20.00000"


def test_004_totals_cashier_by_cashier_with_null(trading_day) -> None:
    db, owner, _, _, journal = trading_day
    root = _render(db, "STD_RECON_004", _close(db, owner))
    rows = {row.findtext("CashierId"): _numbers(row) for row in root.findall("Row")}
    assert rows == {
        "anna": journal.totals(cashier="anna"),
        "bob": journal.totals(cashier="bob"),
        "NULL": journal.totals(cashier=None),
        "Ånna & <Co>": journal.totals(cashier="Ånna & <Co>"),
    }


def test_006_and_007_on_a_terminal_period(trading_day) -> None:
    db, owner, till_a, _, journal = trading_day
    period = _close(db, owner, till_a)
    summary = _render(db, "STD_RECON_006", period, till_a)
    assert summary.tag == "TerminalTransactionSummary"
    assert summary.findtext("Meta/TerminalId") == till_a
    assert [_numbers(r) for r in summary.findall("Row")] == [journal.totals(till_a)]
    details = _render(db, "STD_RECON_007", period, till_a)
    assert details.findtext("Meta/TerminalId") == till_a
    assert [r.findtext("ErsReference") for r in details.findall("Row")] == [
        ref for t, _, _, ref in journal.rows if t == till_a
    ]


def test_terminal_reports_of_a_shop_period_filter_by_terminal(trading_day) -> None:
    db, owner, _, till_b, journal = trading_day
    period = _close(db, owner)
    summary = _render(db, "STD_RECON_006", period, till_b)
    assert [_numbers(r) for r in summary.findall("Row")] == [journal.totals(till_b)]


def test_an_empty_period_still_gives_valid_documents(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = new_terminal(db, owner)
    period = _close(db, owner)
    assert _numbers(_render(db, "STD_RECON_001", period).find("Row")) == (0, 0, 0, 0)
    for report_id in ("STD_RECON_002", "STD_RECON_003", "STD_RECON_004"):
        assert _render(db, report_id, period).findall("Row") == []
    _render(db, "STD_RECON_007", _close(db, owner, till), till)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Reconciliation/STD_RECON_003.xml", "STD_RECON_003"),
        ("STD_RECON_006", "STD_RECON_006"),
        ("Reconciliation/Shop.xml", "STD_RECON_001"),
        ("  reconciliation/std_recon_002.xml ", "STD_RECON_002"),
    ],
)
def test_report_ids_registers_send(raw: str, expected: str) -> None:
    assert lookup(raw).report_id == expected


@pytest.mark.parametrize("raw", ["STD_RECON_005", "Reconciliation/Other.xml", "", None, "../x"])
def test_unknown_report_ids_answer_91_naming_the_id(raw) -> None:
    with pytest.raises(SeqrError) as raised:
        lookup(raw)
    assert raised.value.code == ResultCode.UNSUPPORTED_OPERATION
    assert repr((raw or "").strip()) in raised.value.description
