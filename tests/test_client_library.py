"""The reference client as a library (`SeqrClient`), against the real gateway over HTTP."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from client import (
    AccessDeniedError,
    AuthenticationError,
    DetailRow,
    EndpointUnreachableError,
    Invoice,
    NotFoundError,
    ReportFormatError,
    ReportNotReadyError,
    RequestTimeoutError,
    SeqrClient,
    SeqrError,
    ServiceBusyError,
    SummaryRow,
    WaitTimeoutError,
    parse_report,
)
from tests.support.clients import BusyProxy, Till, once_per_run, shop_client, simulate
from tests.support.envelopes import PERIOD_RE
from tests.support.servers import GatewayServer, Shop, make_shop
from wsdl import report_schema
from wsdl.resultcodes import ResultCode

FAST = {"first_poll_after": 0.0, "report_poll_interval": 0.1}


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


def test_the_client_stands_alone_without_the_gateway() -> None:
    """A partner installs the client to talk to a real SEQR: no gateway/storage imports."""
    code = ("import sys, client, client.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('gateway', 'storage', 'spyne', 'sqlalchemy')); print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_payment_lifecycle_gives_typed_results(server: GatewayServer, shop: Shop) -> None:
    owner = shop_client(server, shop)
    till_id = owner.register_terminal("Store 1/Till 1", "till-pw", "Till 1")
    assert len(till_id) == 32
    till = owner.as_terminal(till_id, "till-pw")
    till.assign_seqr_id("LIB" + shop.reseller_id[-8:])
    info = till.request_principal_information()
    assert (info.principal_id, info.principal_type, info.name) == (till_id, "TERMINALID",
                                                                   "Till 1")

    sent = till.send_invoice(Invoice(Decimal("25.50"), cashier_id="anna", title="Coffee"))
    assert sent.qr_code == "HTTP://SEQR.SE/R" + sent.invoice_reference
    issued = till.get_payment_status(sent.invoice_reference)
    assert (issued.status, issued.version, issued.receipt) == ("ISSUED", 1, None)
    assert not issued.is_final

    simulate(server, sent.invoice_reference)
    paid = till.wait_for_payment(sent.invoice_reference, poll_interval=0.1, timeout=10)
    assert (paid.status, paid.version) == ("PAID", 2) and paid.is_final
    assert PERIOD_RE.match(paid.ers_reference)
    receipt = paid.receipt
    assert receipt is not None
    assert receipt.amount == Decimal("25.50") and isinstance(receipt.amount, Decimal)
    assert (receipt.currency, receipt.cashier_id, receipt.terminal_id) == ("SEK", "anna",
                                                                           till_id)
    assert receipt.payment_date is not None and receipt.payment_date.tzinfo == UTC
    till.submit_payment_receipt(paid.ers_reference, b"1 x Coffee 25.50 SEK")

    refund = till.refund_payment(paid.ers_reference, Decimal("5.50"), cashier_id="anna")
    assert PERIOD_RE.match(refund) and refund != paid.ers_reference
    with pytest.raises(SeqrError) as too_much:
        till.refund_payment(paid.ers_reference, Decimal("20.01"))
    assert too_much.value.code == 98
    assert too_much.value.name == "SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION"

    doomed = till.send_invoice(Invoice(Decimal("3")))
    till.cancel_invoice(doomed.invoice_reference)
    assert till.get_payment_status(doomed.invoice_reference).status == "CANCELED"
    with pytest.raises(SeqrError) as again:
        till.cancel_invoice(doomed.invoice_reference)
    assert (again.value.code, again.value.name) == (95, "INVOICE_ALREADY_CANCELED")
    with pytest.raises(NotFoundError) as unknown:
        till.get_payment_status("1234567890123")
    assert unknown.value.code == 54

    with pytest.raises(TypeError):
        Invoice(25.5)  # type: ignore[arg-type]  # money is Decimal, never float


def test_result_codes_raise_one_family_that_says_what_to_do(server: GatewayServer,
                                                            shop: Shop) -> None:
    wrong = SeqrClient.for_shop(server.endpoint, shop.reseller_id, "9900", "wrong-pw")
    with pytest.raises(AuthenticationError) as refused:
        wrong.close_period()
    error = refused.value
    assert (error.code, error.name, error.operation) == (20, "AUTHENTICATION_FAILED",
                                                        "markTransactionPeriod")
    assert "--password" in error.hint and "20 AUTHENTICATION_FAILED" in str(error)

    nobody = SeqrClient.for_shop(server.endpoint, "no-such-shop", "9900", "pw")
    with pytest.raises(AuthenticationError) as unknown_shop:
        nobody.close_period()
    assert unknown_shop.value.code == 37 and "--principal-id" in unknown_shop.value.hint

    owner = shop_client(server, shop)
    till = owner.as_terminal(owner.register_terminal("t", "till-pw"), "till-pw")
    with pytest.raises(AccessDeniedError) as denied:
        till.register_terminal("nested", "till-pw")
    assert denied.value.code == 21

    with pytest.raises(NotFoundError) as no_period:
        owner.fetch_report("STD_RECON_003", "2" * 25, timeout=5, poll_interval=0.1)
    assert no_period.value.code == 23 and "--period" in no_period.value.hint
    with pytest.raises(ValueError, match="unknown report id"):
        owner.execute_report("STD_RECON_042", "2" * 25)


def test_close_and_fetch_every_report_as_typed_rows(server: GatewayServer, shop: Shop) -> None:
    tills = [Till(server, shop, f"Till {i}") for i in range(2)]
    first = tills[0].sell("93.31", "anna")
    tills[0].sell("10.00")
    second = tills[1].sell("250.50", "bob")
    tills[1].refund(second, "50.25", "bob")
    tills[0].refund(first, "3.31")
    owner = shop_client(server, shop, **FAST)

    terminal = owner.close_period(tills[0].id)
    assert PERIOD_RE.match(terminal.period_id) and terminal.terminal_id == tills[0].id
    period = owner.close_period()
    assert period.terminal_id is None and period.closed_at.tzinfo == UTC

    details = owner.fetch_report("STD_RECON_003", period.period_id, timeout=20)
    report_schema("STD_RECON_003").assertValid(etree_of(details.content))
    assert details.period_id == period.period_id and details.reseller_id == shop.reseller_id
    journal = [row for till in tills for row in till.journal]
    assert sorted(details.details, key=lambda r: r.ers_reference) == sorted(
        (DetailRow(terminal_id, cashier, Decimal(amount) * (-1 if kind == "refund" else 1),
                   reference) for reference, terminal_id, cashier, amount, kind in journal),
        key=lambda r: r.ers_reference)
    assert all(isinstance(r.amount, Decimal) for r in details.details)
    totals = details.totals
    assert (totals.sales_count, totals.sales_total) == (3, Decimal("353.81"))
    assert (totals.refund_count, totals.refund_total) == (2, Decimal("-53.56"))
    assert totals.net_total == Decimal("300.25")

    (summary,) = owner.fetch_report("STD_RECON_001", period.period_id, timeout=20).rows
    assert summary == SummaryRow(3, Decimal("353.81"), 2, Decimal("-53.56"))
    by_terminal = {r.terminal_id: r for r in
                   owner.fetch_report("002", period.period_id, timeout=20).rows}
    assert by_terminal[tills[1].id] == SummaryRow(1, Decimal("250.50"), 1, Decimal("-50.25"),
                                                  terminal_id=tills[1].id)
    by_cashier = {r.cashier_id: r for r in
                  owner.fetch_report("Reconciliation/STD_RECON_004.xml", period.period_id,
                                     timeout=20).rows}
    assert set(by_cashier) == {"anna", "bob", None}  # NULL in the document
    assert by_cashier[None].net_total == Decimal("6.69")

    # the till fetches its own terminal reports with its own credentials
    till = tills[0].client
    till.first_poll_after, till.report_poll_interval = 0.0, 0.1
    own = till.fetch_report("STD_RECON_007", terminal.period_id, tills[0].id, timeout=20)
    assert own.terminal_id == tills[0].id and len(own.rows) == 3
    (own_total,) = till.fetch_report("STD_RECON_006", terminal.period_id, timeout=20).rows
    assert own_total.net_total == Decimal("100.00")


def etree_of(content: bytes) -> etree._Element:
    return etree.fromstring(content)


# --- waiting for REPORT_NOT_READY, with the server's --report-delay -------------------------

@pytest.fixture(scope="module")
def slow_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path_factory.mktemp("slow-reports"),
                           "--report-delay", "1.5").start()
    yield server
    server.stop()


def test_fetch_report_polls_report_not_ready_until_ready(slow_reports: GatewayServer) -> None:
    shop = make_shop(slow_reports.db)
    owner = shop_client(slow_reports, shop, first_poll_after=0.3, report_poll_interval=0.2)
    period = owner.close_period()
    with pytest.raises(ReportNotReadyError) as not_ready:
        owner.execute_report("STD_RECON_001", period.period_id)
    assert not_ready.value.code == 2

    polls = []
    document = owner.fetch_report("STD_RECON_001", period.period_id, timeout=30,
                                  on_poll=polls.append)
    assert document.rows == (SummaryRow(0, Decimal(0), 0, Decimal(0)),)
    assert polls[0].count == 0 and "after closing" in polls[0].state  # the wait after the mark
    assert [p.state for p in polls[1:-1]] == ["REPORT_NOT_READY"] * (len(polls) - 2)
    assert len(polls) >= 3 and polls[-1].state == "ready"
    assert [p.count for p in polls] == list(range(len(polls)))

    later = owner.close_period()
    with pytest.raises(WaitTimeoutError) as gave_up:
        owner.fetch_report("STD_RECON_003", later.period_id, timeout=0.5, first_poll_after=0)
    assert later.period_id in str(gave_up.value) and "later" in gave_up.value.hint


# --- busy answers, timeouts, unreachable endpoints -------------------------------------------

@pytest.fixture
def proxy(server: GatewayServer) -> Iterator[BusyProxy]:
    proxy = BusyProxy(server).start()
    yield proxy
    proxy.stop()


def test_busy_answers_are_retried_with_backoff(proxy: BusyProxy, server: GatewayServer,
                                              shop: Shop) -> None:
    waits: list[float] = []
    client = shop_client(proxy.endpoint, shop, retries=3, backoff=0.01, sleep=waits.append)
    proxy.busy = 2
    assert PERIOD_RE.match(client.close_period().period_id)
    assert (proxy.requests, proxy.busy_answers) == (3, 2)
    assert waits == [0.01, 0.02]  # exponential backoff

    proxy.busy, proxy.busy_answers, proxy.requests = 10, 0, 0
    proxy.code = ResultCode.SERVICE_UNAVAILABLE
    with pytest.raises(ServiceBusyError) as gave_up:
        client.close_period()
    assert proxy.requests == 4  # the call and its 3 retries, then no more
    assert (gave_up.value.code, gave_up.value.name) == (94, "SERVICE_UNAVAILABLE")
    assert "3 retries" in str(gave_up.value) and "try again" in gave_up.value.hint


def test_unreachable_and_silent_endpoints(tmp_path: Path, shop: Shop) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = shop_client(f"http://127.0.0.1:{port}/extclientproxy/service/v2", shop)
    with pytest.raises(EndpointUnreachableError) as refused:
        closed.close_period()
    assert "cannot reach" in str(refused.value) and "--endpoint" in refused.value.hint

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/extclientproxy/service/v2"
        with pytest.raises(RequestTimeoutError) as slow:
            shop_client(endpoint, shop, timeout=0.5).close_period()
    assert "--timeout" in slow.value.hint


# --- report documents as SEQR sent them ---------------------------------------------------

def test_parse_reports_as_the_real_service_sent_them() -> None:
    # SEQR's own summaries had no refund columns, and its samples mismatched closing tags
    old = (b'<?xml version="1.0" encoding="UTF-8"?><ResellerTransactionSummary><Meta>'
           b"<ResellerId>4711</ResellerId><TransactionPeriodId>2012053119463656301000002"
           b"</TransactionPeriodId><GeneratedAt>2012-05-31 19:47</GeneratedAt></Meta>"
           b"<Row><SalesCount>2</SalesCount><SalesTotal>93.31000</SalesTotal></Row>"
           b"</TerminalTransactionSummary>")
    document = parse_report(old)
    assert document.report_id == "STD_RECON_001"
    assert document.rows == (SummaryRow(2, Decimal("93.31000"), 0, Decimal(0)),)
    assert document.generated_at is not None and document.generated_at.tzinfo == UTC

    per_terminal = (b"<TerminalTransactionSummary><Meta><ResellerId>1</ResellerId>"
                    b"<TerminalId>" + b"a" * 32 + b"</TerminalId></Meta><Row><SalesCount>1"
                    b"</SalesCount><SalesTotal>1.00000</SalesTotal></Row>"
                    b"</TerminalTransactionSummary>")
    assert parse_report(per_terminal).report_id == "STD_RECON_006"
    with pytest.raises(ReportFormatError):
        parse_report(b"<TransactionDetails><Row><SalesAmount>x</SalesAmount></Row>"
                     b"</TransactionDetails>")
    with pytest.raises(ReportFormatError):
        parse_report(b"not xml at all")
