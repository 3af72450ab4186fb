"""A sample of a cash register's integration tests, written against the seqr-client library
and run against the SEQR emulator through its pytest plugin (`seqr_gateway` fixture)."""

from decimal import Decimal

import pytest

from client import Invoice, SeqrClient, ServiceBusyError


@pytest.fixture(autouse=True)
def fresh_world(seqr_gateway):
    """Every test starts from the seeded world: no invoices, no journal, no fault rules."""
    seqr_gateway.reset()


@pytest.fixture
def till(seqr_gateway) -> SeqrClient:
    terminal = seqr_gateway.credentials.terminal
    return SeqrClient.for_terminal(seqr_gateway.endpoint, terminal.terminal_id,
                                   terminal.password, timeout=10, retries=2, backoff=0.05,
                                   payment_poll_interval=0.1)


def test_a_sale_is_paid_and_the_register_polled_for_it(seqr_gateway, till):
    sent = till.send_invoice(Invoice(Decimal("4.50"), cashier_id="anna"))
    seqr_gateway.pay(sent.invoice_reference)  # the buyer's phone
    status = till.wait_for_payment(sent.invoice_reference, timeout=10)
    assert status.status == "PAID" and status.receipt.amount == Decimal("4.50")

    assert seqr_gateway.count(operation="sendInvoice") == 1
    assert seqr_gateway.count(operation="getPaymentStatus", result_code=0) >= 1
    [sale] = seqr_gateway.journal(operation="sendInvoice")
    assert sale["terminalId"] == seqr_gateway.credentials.terminal.terminal_id
    assert "till-password" not in sale["request"]  # passwords are masked


def test_the_register_retries_when_seqr_is_busy(seqr_gateway, till):
    sent = till.send_invoice(Invoice(Decimal("2.00")))
    seqr_gateway.faults.add(operation="getPaymentStatus", times=1, effect="result_code",
                            result_code=93)
    assert till.get_payment_status(sent.invoice_reference).status == "ISSUED"
    polls = seqr_gateway.journal(operation="getPaymentStatus")
    assert [entry["resultCode"] for entry in polls] == [93, 0]


def test_a_register_that_keeps_meeting_busy_gives_up(seqr_gateway, till):
    sent = till.send_invoice(Invoice(Decimal("2.00")))
    seqr_gateway.faults.add(operation="getPaymentStatus", effect="result_code", result_code=94)
    with pytest.raises(ServiceBusyError):
        till.get_payment_status(sent.invoice_reference)
    assert seqr_gateway.count(operation="getPaymentStatus") == 3  # the call and 2 retries


def test_a_payment_the_register_never_polls_is_reversed(seqr_gateway, till):
    sent = till.send_invoice(Invoice(Decimal("9.90")))
    seqr_gateway.pay(sent.invoice_reference)
    seqr_gateway.clock.advance(20)  # no waiting: the emulator's clock moves
    assert till.get_payment_status(sent.invoice_reference).status == "CANCELED"


def test_the_in_process_emulator_serves_the_same_world(seqr_gateway_inprocess):
    terminal = seqr_gateway_inprocess.credentials.terminal
    till = SeqrClient.for_terminal(seqr_gateway_inprocess.endpoint, terminal.terminal_id,
                                   terminal.password, timeout=10)
    sent = till.send_invoice(Invoice(Decimal("1.00")))
    seqr_gateway_inprocess.pay(sent.invoice_reference)
    assert till.get_payment_status(sent.invoice_reference).status == "PAID"
