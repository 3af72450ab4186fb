"""A register's whole reconciliation flow through zeep, built from the official WSDL file."""

from decimal import Decimal

import pytest
import zeep

from tests.support.domain import Journal
from tests.support.envelopes import PERIOD_RE
from tests.support.flows import poll_report, report_document
from tests.support.official import OFFICIAL_WSDL
from tests.support.servers import GatewayServer, Shop, reseller_context, terminal_context
from wsdl import BINDING


@pytest.fixture
def soap(server: GatewayServer):
    return zeep.Client(str(OFFICIAL_WSDL)).create_service(BINDING, server.endpoint)


def _params(**entries: str) -> dict:
    return {"parameter": {"entry": [{"key": k, "value": v} for k, v in entries.items()]}}


def _numbers(row) -> tuple:
    return (
        int(row.findtext("SalesCount")), Decimal(row.findtext("SalesTotal")),
        int(row.findtext("RefundCount")), Decimal(row.findtext("RefundTotal")),
    )


def test_register_close_and_fetch_every_report(server: GatewayServer, shop: Shop, soap) -> None:
    ctx = shop.context()
    tills = []
    for label in ("Store 111/Till 1", "Store 111/Till 2"):
        answer = soap.registerTerminal(ctx, label, "till-pw", label)
        assert answer.resultCode == 0, answer.resultDescription
        assert len(answer.terminalId) == 32 and int(answer.terminalId, 16) >= 0
        tills.append(answer.terminalId)
    for i, till in enumerate(tills):
        sticker = f"TILL{shop.reseller_id[-6:]}{i}"
        answer = soap.assignSeqrId(terminal_context(till, "till-pw"), sticker)
        assert answer.resultCode == 0, answer.resultDescription

    journal = Journal()
    journal.add(server.db, tills[0], "SALE", "93.31", "anna")
    journal.add(server.db, tills[0], "SALE", "10.00", None)
    journal.add(server.db, tills[1], "SALE", "250.50", "bob")
    journal.add(server.db, tills[1], "REFUND", "50.25", "bob")

    terminal_mark = soap.markTransactionPeriod(ctx, _params(TERMINALID=tills[0]))
    assert terminal_mark.resultCode == 0
    terminal_period = terminal_mark.transactionPeriodId
    assert PERIOD_RE.match(terminal_period) and terminal_mark.ersReference == terminal_period
    shop_mark = soap.markTransactionPeriod(ctx, None)
    assert shop_mark.resultCode == 0
    shop_period = shop_mark.transactionPeriodId

    def fetch(report_id: str, period: str, **extra: str):
        answer = poll_report(lambda: soap.executeReport(
            ctx, f"Reconciliation/{report_id}.xml", "en",
            _params(transactionPeriodId=period, **extra)))
        return report_document(answer, report_id, period)

    (row,) = fetch("STD_RECON_001", shop_period).findall("Row")
    assert _numbers(row) == journal.totals()
    by_terminal = {
        r.findtext("TerminalId"): _numbers(r)
        for r in fetch("STD_RECON_002", shop_period).findall("Row")
    }
    assert by_terminal == {t: journal.totals(t) for t in tills}
    details = fetch("STD_RECON_003", shop_period).findall("Row")
    assert [r.findtext("ErsReference") for r in details] == [row[3] for row in journal.rows]
    assert details[3].findtext("SalesAmount") == "-50.25000"
    by_cashier = {
        r.findtext("CashierId"): _numbers(r)
        for r in fetch("STD_RECON_004", shop_period).findall("Row")
    }
    assert by_cashier == {
        "anna": journal.totals(cashier="anna"), "bob": journal.totals(cashier="bob"),
        "NULL": journal.totals(cashier=None),
    }
    summary = fetch("STD_RECON_006", terminal_period, TERMINALID=tills[0])
    assert summary.findtext("Meta/TerminalId") == tills[0]
    assert [_numbers(r) for r in summary.findall("Row")] == [journal.totals(tills[0])]
    terminal_details = fetch("STD_RECON_007", terminal_period, TERMINALID=tills[0])
    assert len(terminal_details.findall("Row")) == 2

    # the register itself may fetch its own terminal report, with its own credentials
    own = soap.executeReport(terminal_context(tills[0], "till-pw"), "STD_RECON_007", "en",
                             _params(transactionPeriodId=terminal_period, TERMINALID=tills[0]))
    assert own.resultCode == 0
    # the same report again: identical document
    again = soap.executeReport(ctx, "Reconciliation/STD_RECON_003.xml", "en",
                               _params(transactionPeriodId=shop_period))
    assert again.report.contentString == fetch_cached(soap, ctx, shop_period)

    # unregistering: the terminal can no longer authenticate (33)
    assert soap.unregisterTerminal(terminal_context(tills[1], "till-pw")).resultCode == 0
    gone = soap.markTransactionPeriod(terminal_context(tills[1], "till-pw"),
                                      _params(TERMINALID=tills[1]))
    assert gone.resultCode == 33
    # ... but its shop can still close its last terminal period
    assert soap.markTransactionPeriod(ctx, _params(TERMINALID=tills[1])).resultCode == 0


def fetch_cached(soap, ctx, period: str) -> str:
    answer = soap.executeReport(ctx, "STD_RECON_003", "en",
                                _params(transactionPeriodId=period))
    assert answer.resultCode == 0
    return answer.report.contentString


def test_report_request_errors(server: GatewayServer, shop: Shop, soap) -> None:
    ctx = shop.context()
    period = soap.markTransactionPeriod(ctx, None).transactionPeriodId

    def ask(report: str, **params: str):
        return soap.executeReport(ctx, report, "en", _params(**params) if params else None)

    assert ask("STD_RECON_001").resultCode == 23  # no transactionPeriodId
    assert ask("STD_RECON_001", transactionPeriodId="2" * 25).resultCode == 23
    unknown = ask("Reconciliation/STD_RECON_042.xml", transactionPeriodId=period)
    assert unknown.resultCode == 91 and "STD_RECON_042" in unknown.resultDescription
    assert ask("STD_RECON_006", transactionPeriodId=period).resultCode == 10

    other = soap.registerTerminal(ctx, "x", "till-pw", "x").terminalId
    foreign_ctx = reseller_context("nobody-" + shop.reseller_id, "9900", "pw")
    assert soap.executeReport(foreign_ctx, "STD_RECON_001", "en",
                              _params(transactionPeriodId=period)).resultCode == 37
    # a terminal may not read its shop's whole-shop reports
    as_till = terminal_context(other, "till-pw")
    denied = soap.executeReport(as_till, "STD_RECON_001", "en",
                                _params(transactionPeriodId=period))
    assert denied.resultCode == 21


def test_another_shops_period_is_denied(server: GatewayServer, soap) -> None:
    from tests.support.servers import make_shop

    first, second = make_shop(server.db), make_shop(server.db)
    period = soap.markTransactionPeriod(first.context(), None).transactionPeriodId
    answer = soap.executeReport(second.context(), "STD_RECON_001", "en",
                                _params(transactionPeriodId=period))
    assert answer.resultCode == 21
    till = soap.registerTerminal(first.context(), "t", "till-pw", "t").terminalId
    assert soap.markTransactionPeriod(second.context(), _params(TERMINALID=till)).resultCode == 21


def test_terminal_registration_rules(server: GatewayServer, shop: Shop, soap) -> None:
    ctx = shop.context()
    assert soap.registerTerminal(ctx, "short", "abc", "short").resultCode == 21
    till = soap.registerTerminal(ctx, "ok", "abcd", "ok").terminalId
    as_till = terminal_context(till, "abcd")
    assert soap.registerTerminal(as_till, "nested", "abcd", "n").resultCode == 21
    sticker = "QR" + shop.reseller_id[-8:]
    assert soap.assignSeqrId(as_till, sticker).resultCode == 0
    assert soap.assignSeqrId(as_till, sticker).resultCode == 0  # again: still its own
    other = soap.registerTerminal(ctx, "other", "abcd", "other").terminalId
    taken = soap.assignSeqrId(terminal_context(other, "abcd"), sticker)
    assert taken.resultCode == 53
    assert soap.assignSeqrId(terminal_context(other, "abcd"), "not valid!").resultCode == 53
    assert soap.assignSeqrId(ctx, "ABC123").resultCode == 21  # a shop user is not a terminal
    assert soap.assignSeqrId(terminal_context(till, "wrong"), "ABC").resultCode == 20
    assert soap.assignSeqrId(terminal_context("f" * 32, "abcd"), "ABC").resultCode == 29
    # unregistering frees the sticker for another till
    assert soap.unregisterTerminal(as_till).resultCode == 0
    assert soap.assignSeqrId(terminal_context(other, "abcd"), sticker).resultCode == 0
