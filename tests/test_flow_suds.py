"""The reconciliation flow through suds-community, built from the official WSDL file."""

import pytest
from suds.client import Client

from tests.support.domain import Journal
from tests.support.envelopes import PERIOD_RE
from tests.support.flows import poll_report, report_document
from tests.support.official import OFFICIAL_WSDL
from tests.support.servers import GatewayServer, Shop, terminal_context


@pytest.fixture
def suds(server: GatewayServer) -> Client:
    return Client(OFFICIAL_WSDL.as_uri(), location=server.endpoint, cache=None)


def _context(suds: Client, values: dict):
    context = suds.factory.create("clientContext")
    principal = suds.factory.create("principalId")
    for key, value in values["initiatorPrincipalId"].items():
        setattr(principal, key, value)
    for key, value in values.items():
        if key != "initiatorPrincipalId":
            setattr(context, key, value)
    context.initiatorPrincipalId = principal
    return context


def _params(suds: Client, **entries: str):
    parameter_map = suds.factory.create("parameterMap")
    array = suds.factory.create("mapArray")
    for key, value in entries.items():
        entry = suds.factory.create("parameter")
        entry.key, entry.value = key, value
        array.entry.append(entry)
    parameter_map.parameter = array
    return parameter_map


def test_suds_register_close_and_report(server: GatewayServer, shop: Shop, suds: Client) -> None:
    ctx = _context(suds, shop.context())
    assert suds.service.benchmarkingNop().resultCode == 0
    registered = suds.service.registerTerminal(ctx, "Till 9", "till-pw", "Till 9")
    assert registered.resultCode == 0, registered.resultDescription
    till = registered.terminalId
    assert suds.service.assignSeqrId(
        _context(suds, terminal_context(till, "till-pw")), "SUDS" + shop.reseller_id[-6:]
    ).resultCode == 0

    journal = Journal()
    journal.add(server.db, till, "SALE", "19.90", "eva")
    journal.add(server.db, till, "REFUND", "4.90", "eva")

    as_till = _context(suds, terminal_context(till, "till-pw"))
    mark = suds.service.markTransactionPeriod(as_till, _params(suds, TERMINALID=till))
    assert mark.resultCode == 0 and PERIOD_RE.match(mark.transactionPeriodId)
    period = mark.transactionPeriodId

    answer = poll_report(lambda: suds.service.executeReport(
        as_till, "Reconciliation/STD_RECON_007.xml", "en",
        _params(suds, transactionPeriodId=period, TERMINALID=till)))
    rows = report_document(answer, "STD_RECON_007", period).findall("Row")
    assert [(r.findtext("SalesAmount"), r.findtext("ErsReference")) for r in rows] == [
        ("19.90000", journal.rows[0][3]), ("-4.90000", journal.rows[1][3]),
    ]

    shop_mark = suds.service.markTransactionPeriod(ctx)
    answer = poll_report(lambda: suds.service.executeReport(
        ctx, "Reconciliation/Shop.xml", "en",
        _params(suds, transactionPeriodId=shop_mark.transactionPeriodId)))
    (row,) = report_document(answer, "STD_RECON_001", shop_mark.transactionPeriodId,
                             title="").findall("Row")  # the manual's <title/> for Shop.xml
    assert (row.findtext("SalesTotal"), row.findtext("RefundTotal")) == ("19.90000", "-4.90000")

    assert suds.service.unregisterTerminal(as_till).resultCode == 0
    gone = suds.service.markTransactionPeriod(as_till, _params(suds, TERMINALID=till))
    assert gone.resultCode == 33
