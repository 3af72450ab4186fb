"""The payment lifecycle as domain calls (no SOAP, no server), with a simulated clock.

Every rule function takes `now`; the tests pass times around T0 instead of sleeping.
Each call runs in its own write transaction, as the SOAP layer does, so a refused call
leaves nothing behind.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import passwords, payments, principals, terminals
from gateway.auth import Credentials, Principal, authenticate
from gateway.errors import SeqrError
from gateway.invoices import Amount, InvoiceData, InvoiceRow
from gateway.parameters import Parameters
from gateway.payments import BuyerActionError, PaymentRules
from gateway.periods import mark_transaction_period
from storage.database import Database
from storage.models import Invoice, Notification, Terminal, Transaction, TransactionPeriod
from tests.support.domain import fresh_db, new_shop, new_terminal
from wsdl.resultcodes import ResultCode

T0 = datetime(2024, 5, 2, 10, 0, 0, tzinfo=UTC)
RULES = PaymentRules()  # the 20-second rule on, no auto-pay
NO_REVERSAL = PaymentRules(reversal_seconds=0)
ERS_RE = re.compile(r"^\d{25}$")

R = TypeVar("R")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def invoice(total: str | None = "100.00", currency: str | None = "SEK", **fields: Any
            ) -> InvoiceData:
    """A valid two-row invoice unless told otherwise; it states NO_ACKNOWLEDGMENT, as a
    certified register does (an omitted mode waits for the register: see below)."""
    fields.setdefault("acknowledgment_mode", "NO_ACKNOWLEDGMENT")
    fields.setdefault("title", "Coffee and cake")
    fields.setdefault("client_invoice_id", "pos-0001")
    fields.setdefault("cashier_id", "anna")
    fields.setdefault("issue_date", T0)
    fields.setdefault("rows", (
        InvoiceRow(description="Coffee", quantity=Decimal("2"),
                   unit_price=Amount(currency, Decimal("30.00")),
                   total=Amount(currency, Decimal("60.00"))),
        InvoiceRow(description="Cake", quantity=Decimal("1"),
                   total=Amount(currency, Decimal("40.00"))),
    ))
    return InvoiceData(total=Amount(currency, Decimal(total) if total is not None else None),
                       **fields)


def refund_of(total: str | None, currency: str = "SEK", cashier: str | None = None
              ) -> InvoiceData:
    return InvoiceData(total=Amount(currency, Decimal(total) if total is not None else None),
                       cashier_id=cashier)


@dataclass
class World:
    db: Database
    owner: Principal
    till: Principal
    till_name: str = "Till 1"

    def do(self, action: Callable[[Session], R]) -> R:
        with self.db.write() as session:
            return action(session)

    def code(self, action: Callable[[Session], Any]) -> ResultCode:
        """The result code a refused call answers (and its transaction rolled back)."""
        with pytest.raises(SeqrError) as raised:
            self.do(action)
        return raised.value.code

    def buyer_error(self, action: Callable[[Session], Any]) -> BuyerActionError:
        with pytest.raises(BuyerActionError) as raised:
            self.do(action)
        return raised.value

    # the register

    def send(self, data: InvoiceData | None = None, now: datetime = T0,
             rules: PaymentRules = RULES, till: Principal | None = None) -> str:
        return self.do(lambda s: payments.send_invoice(
            s, till or self.till, data or invoice(), rules, now)).reference

    def poll(self, reference: str, now: datetime, rules: PaymentRules = RULES,
             till: Principal | None = None) -> payments.PaymentStatus:
        return self.do(lambda s: payments.get_payment_status(
            s, till or self.till, reference, rules, now))

    # the buyer

    def pay(self, reference: str, now: datetime, rules: PaymentRules = RULES,
            payer: str | None = None) -> Invoice:
        return self.do(lambda s: payments.buyer_pay(s, reference, rules, now, payer))

    def scan(self, reference: str, now: datetime, rules: PaymentRules = RULES) -> Invoice:
        return self.do(lambda s: payments.buyer_scan(s, reference, rules, now))

    def reserve(self, reference: str, now: datetime, rules: PaymentRules = RULES) -> Invoice:
        return self.do(lambda s: payments.buyer_reserve(s, reference, rules, now))

    # looking

    def row(self, reference: str) -> Invoice:
        with self.db.read() as session:
            found = session.get(Invoice, reference)
            assert found is not None
            return found

    def transactions(self, kind: str | None = None) -> list[Transaction]:
        with self.db.read() as session:
            stmt = select(Transaction).order_by(Transaction.id)
            if kind is not None:
                stmt = stmt.where(Transaction.kind == kind)
            return list(session.scalars(stmt))

    def paid(self, data: InvoiceData | None = None, now: datetime = T0,
             rules: PaymentRules = RULES) -> tuple[str, str]:
        """An invoice paid at `now` and polled at once: (invoice ref, payment ref)."""
        reference = self.send(data, now, rules)
        self.pay(reference, now, rules)
        status = self.poll(reference, now + timedelta(seconds=1), rules)
        assert status.status == Invoice.PAID and status.payment_reference is not None
        return reference, status.payment_reference


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrypt at a low cost: the hashes still verify (they carry their cost), but fast."""
    monkeypatch.setattr(passwords, "_N", 2**4)


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = Principal("TERMINALID", owner.reseller_id, terminal_id=new_terminal(db, owner))
    return World(db, owner, till)


def second_till(world: World, label: str = "Till 2") -> Principal:
    return Principal("TERMINALID", world.owner.reseller_id,
                     terminal_id=new_terminal(world.db, world.owner, label))


def webshop_till(world: World, label: str = "Web shop") -> Principal:
    """A webshop's terminal: unlike a cash register it keeps many invoices open."""
    return Principal("TERMINALID", world.owner.reseller_id,
                     terminal_id=new_terminal(world.db, world.owner, label, Terminal.WEBSHOP))


def other_shop(world: World) -> tuple[Principal, Principal]:
    owner = new_shop(world.db, "shop-2")
    return owner, Principal("TERMINALID", "shop-2", terminal_id=new_terminal(world.db, owner))


# --- sendInvoice ----------------------------------------------------------------------------


def test_send_invoice_answers_a_13_digit_reference_and_its_qr_code(world: World) -> None:
    sent = world.do(lambda s: payments.send_invoice(s, world.till, invoice(), RULES, T0))
    assert re.fullmatch(r"\d{13}", sent.reference)
    assert sent.reference == str(int(T0.timestamp() * 1000))
    assert sent.qr_code == "HTTP://SEQR.SE/R" + sent.reference
    # the same millisecond, even from another terminal: the next number
    other = world.send(now=T0, till=second_till(world))
    assert other == f"{int(sent.reference) + 1:013d}"

    row = world.row(sent.reference)
    assert (row.status, row.version) == (Invoice.ISSUED, 1)
    assert (row.terminal_id, row.reseller_id) == (world.till.terminal_id, "shop-1")
    assert (row.currency, row.total_amount) == ("SEK", Decimal("100.00000"))
    assert (row.payment_mode, row.acknowledgment_mode) == ("IMMEDIATE_DEBIT",
                                                           "NO_ACKNOWLEDGMENT")
    assert (row.cashier_id, row.client_invoice_id) == ("anna", "pos-0001")
    assert row.auto_pay_at is None


def test_only_terminals_send_invoices(world: World) -> None:
    assert world.code(lambda s: payments.send_invoice(
        s, world.owner, invoice(), RULES, T0)) == ResultCode.ACCESS_DENIED


BAD_INVOICES: list[tuple[str, InvoiceData | None, ResultCode]] = [
    ("no invoice", None, ResultCode.INVALID_INVOICE_DATA),
    ("no totalAmount", InvoiceData(title="x"), ResultCode.INVALID_INVOICE_DATA),
    ("no value", invoice(None), ResultCode.INVALID_INVOICE_DATA),
    ("no currency", invoice("10.00", None), ResultCode.INVALID_INVOICE_DATA),
    ("zero", invoice("0.00", rows=()), ResultCode.INVALID_INVOICE_DATA),
    ("negative", invoice("-5.00", rows=()), ResultCode.INVALID_INVOICE_DATA),
    ("6 decimals", invoice("10.000001", rows=()), ResultCode.INVALID_INVOICE_DATA),
    # more than storage keeps: 49, not a database error (90)
    ("a trillion", invoice("1000000000000", rows=()), ResultCode.INVALID_INVOICE_DATA),
    ("10**20", invoice("100000000000000000000", rows=()), ResultCode.INVALID_INVOICE_DATA),
    ("lowercase currency", invoice(currency="sek"), ResultCode.INVALID_INVOICE_DATA),
    ("4-letter currency", invoice(currency="SEKK"), ResultCode.INVALID_INVOICE_DATA),
    ("digit in currency", invoice(currency="SE1"), ResultCode.INVALID_INVOICE_DATA),
    ("row in another currency", invoice(rows=(
        InvoiceRow(quantity=Decimal(1), total=Amount("EUR", Decimal("100.00"))),
    )), ResultCode.INVALID_INVOICE_DATA),
    ("row unit price in another currency", invoice(rows=(
        InvoiceRow(quantity=Decimal(1), unit_price=Amount("EUR", Decimal("1"))),
    )), ResultCode.INVALID_INVOICE_DATA),
    ("row amount with 6 decimals", invoice(rows=(
        InvoiceRow(quantity=Decimal(1), total=Amount("SEK", Decimal("1.000001"))),
    )), ResultCode.INVALID_INVOICE_DATA),
    ("quantity 0", invoice(rows=(InvoiceRow(quantity=Decimal(0)),)),
     ResultCode.INVALID_INVOICE_DATA),
    ("negative quantity", invoice(rows=(InvoiceRow(quantity=Decimal(-1)),)),
     ResultCode.INVALID_INVOICE_DATA),
    ("NaN quantity", invoice(rows=(InvoiceRow(quantity=Decimal("NaN")),)),
     ResultCode.INVALID_INVOICE_DATA),
    ("ftp notificationUrl", invoice(notification_url="ftp://shop.example/notify"),
     ResultCode.INVALID_NOTIFICATION_URL),
    ("javascript notificationUrl", invoice(notification_url="javascript:alert(1)"),
     ResultCode.INVALID_NOTIFICATION_URL),
    ("mailto notificationUrl", invoice(notification_url="mailto:shop@example.com"),
     ResultCode.INVALID_NOTIFICATION_URL),
    ("notificationUrl without host", invoice(notification_url="http:///notify"),
     ResultCode.INVALID_NOTIFICATION_URL),
    ("relative notificationUrl", invoice(notification_url="/notify"),
     ResultCode.INVALID_NOTIFICATION_URL),
]


@pytest.mark.parametrize(("data", "code"), [(d, c) for _, d, c in BAD_INVOICES],
                         ids=[name for name, _, _ in BAD_INVOICES])
def test_invalid_invoices_are_refused(world: World, data: InvoiceData | None,
                                      code: ResultCode) -> None:
    assert world.code(lambda s: payments.send_invoice(s, world.till, data, RULES, T0)) == code
    with world.db.read() as session:
        assert session.scalars(select(Invoice)).first() is None


@pytest.mark.parametrize("data", [
    invoice(notification_url="http://shop.example/notify?order=1"),
    invoice(notification_url="https://shop.example:8443/seqr/notify"),
    invoice(notification_url="HTTPS://SHOP.EXAMPLE/notify"),
    invoice(notification_url=""),  # an empty <notificationUrl/> is no URL
    invoice(notification_url="   "),
    invoice("0.00001", rows=()),  # five decimals are kept exactly
    invoice("999999999999.99999", rows=()),  # the largest total
    invoice("12.5", currency="EUR"),
    invoice(rows=(InvoiceRow(description="no amounts"),)),
    invoice(rows=(InvoiceRow(quantity=Decimal("0.5"), total=Amount(None, Decimal("1"))),)),
    invoice(rows=()),
], ids=["http", "https", "uppercase scheme", "empty url", "blank url", "5 decimals", "largest",
        "EUR",
        "row without amounts", "row amount without currency", "no rows"])
def test_valid_invoices_are_accepted(world: World, data: InvoiceData) -> None:
    reference = world.send(data)
    assert world.row(reference).total_amount == data.total.value  # type: ignore[union-attr]


def test_the_largest_total_is_kept_exactly(world: World) -> None:
    _, payment_reference = world.paid(invoice("999999999999.99999", rows=()))
    refund(world, payment_reference, refund_of("999999999999.99998"))
    sale, back = world.transactions()
    assert (sale.amount, back.amount) == (Decimal("999999999999.99999"),
                                          Decimal("-999999999999.99998"))
    assert refund_code(world, payment_reference, refund_of("0.00002")) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)
    # a refund is bounded by its payment, however large the amount asked
    assert refund_code(world, payment_reference, refund_of("1" + "0" * 30)) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)


# --- getPaymentStatus -----------------------------------------------------------------------


def test_version_moves_on_every_change_and_never_on_a_poll(world: World) -> None:
    reference = world.send()
    for second in (1, 2, 3):
        status = world.poll(reference, at(second))
        assert (status.status, status.version, status.receipt) == (Invoice.ISSUED, 1, None)
        assert status.payment_reference is None
    world.scan(reference, at(4))  # no acknowledgment asked: scanning changes nothing visible
    assert world.poll(reference, at(5)).version == 1
    world.pay(reference, at(6))
    versions = [world.poll(reference, at(7 + i)).version for i in range(4)]
    assert versions == [2, 2, 2, 2]
    assert world.row(reference).updated_at == at(6)  # the polls (and the settling) wrote no change


def test_the_receipt_of_a_paid_invoice(world: World) -> None:
    data = invoice("93.31", rows=(
        InvoiceRow(description="Socks", quantity=Decimal("3"),
                   unit_price=Amount("SEK", Decimal("31.10333")),
                   total=Amount("SEK", Decimal("93.31")), ean="7310865004703", sku="S-1",
                   tax_rate=Decimal("25"), unit="pair", discount=Amount("SEK", Decimal("0"))),
    ), footer="Thank you", back_url="https://shop.example/back",
        payment_mode="IMMEDIATE_DEBIT", acknowledgment_mode="NO_ACKNOWLEDGMENT")
    reference = world.send(data)
    world.pay(reference, at(2), payer="payer-terminal-7")
    status = world.poll(reference, at(3))

    assert status.status == Invoice.PAID and status.reference == reference
    assert status.payment_reference is not None and ERS_RE.match(status.payment_reference)
    assert status.payment_reference.startswith("20240502100002000")  # stamped with its time
    receipt = status.receipt
    assert receipt is not None
    assert receipt.terminal_id == world.till.terminal_id
    assert receipt.payment_date == at(2)
    assert receipt.client_invoice_id == "pos-0001"
    assert receipt.invoice_reference == reference
    assert receipt.payment_reference == status.payment_reference
    assert receipt.payer_terminal_id == "payer-terminal-7"
    assert receipt.receiver_name == world.till_name
    assert receipt.invoice == data  # the invoice exactly as sent, rows and all


def test_a_payer_without_id_gets_one(world: World) -> None:
    reference = world.send()
    world.pay(reference, at(1))
    receipt = world.poll(reference, at(2)).receipt
    assert receipt is not None and re.fullmatch(r"[0-9a-f]{32}", receipt.payer_terminal_id or "")


def test_status_of_invoices_that_are_not_the_callers(world: World) -> None:
    reference = world.send()
    _, foreign_till = other_shop(world)
    for principal, code in [
        (second_till(world), ResultCode.INVALID_INVOICE_REFERENCE),  # same shop, other till
        (foreign_till, ResultCode.INVALID_INVOICE_REFERENCE),
        # a shop's user is not a register: refused before the invoice is looked at
        (world.owner, ResultCode.ACCESS_DENIED),
    ]:
        assert world.code(lambda s, p=principal: payments.get_payment_status(
            s, p, reference, RULES, at(1))) == code
    for unknown in ("0000000000000", "", None, "not a number"):
        assert world.code(lambda s, u=unknown: payments.get_payment_status(
            s, world.till, u, RULES, at(1))) == ResultCode.INVALID_INVOICE_REFERENCE
    # surrounding blanks are forgiven
    assert world.poll(f" {reference} ", at(1)).status == Invoice.ISSUED


# --- updateInvoice --------------------------------------------------------------------------


def test_update_invoice_replaces_an_unpaid_invoice(world: World) -> None:
    reference = world.send()
    new = invoice("25.50", rows=(InvoiceRow(description="Tea", quantity=Decimal(1),
                                            total=Amount("SEK", Decimal("25.50"))),),
                  cashier_id="bo", client_invoice_id="pos-0002")
    world.do(lambda s: payments.update_invoice(s, world.till, reference, new, RULES, at(1)))
    row = world.row(reference)
    assert (row.status, row.version, row.total_amount) == (Invoice.ISSUED, 2, Decimal("25.5"))
    assert (row.cashier_id, row.client_invoice_id) == ("bo", "pos-0002")
    assert row.acknowledged_at is None  # nothing was waiting for an acknowledgment

    world.pay(reference, at(2))
    status = world.poll(reference, at(3))
    assert status.version == 3 and status.receipt is not None
    assert status.receipt.invoice == new and status.receipt.client_invoice_id == "pos-0002"
    [sale] = world.transactions()
    assert (sale.amount, sale.cashier_id) == (Decimal("25.5"), "bo")


def test_update_invoice_refusals(world: World) -> None:
    def update(reference: str, data: InvoiceData | None = None,
               principal: Principal | None = None, now: datetime | None = None) -> ResultCode:
        return world.code(lambda s: payments.update_invoice(
            s, principal or world.till, reference, data or invoice("5.00", rows=()), RULES,
            now or at(50)))

    issued = world.send()
    assert update(issued, invoice("0")) == ResultCode.INVALID_INVOICE_DATA
    assert update(issued, invoice("1000000000000", rows=())) == ResultCode.INVALID_INVOICE_DATA
    assert update(issued, invoice(notification_url="ftp://x/y")) == (
        ResultCode.INVALID_NOTIFICATION_URL)
    assert update(issued, principal=second_till(world)) == ResultCode.INVALID_INVOICE_REFERENCE
    assert update(issued, principal=world.owner) == ResultCode.ACCESS_DENIED
    assert update("1234567890123") == ResultCode.INVALID_INVOICE_REFERENCE
    assert world.row(issued).version == 1  # none of that changed anything

    paid, _ = world.paid()
    assert update(paid) == ResultCode.PAYMENT_IN_PROGRESS

    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    world.reserve(reserved, at(1))
    assert update(reserved) == ResultCode.PAYMENT_IN_PROGRESS

    failed = world.send()
    world.do(lambda s: payments.buyer_fail(s, failed, RULES, at(1)))
    assert update(failed) == ResultCode.PAYMENT_IN_PROGRESS

    # a canceled invoice answers 95 (more precise than the issue's blanket 48)
    canceled = world.send()
    world.do(lambda s: payments.cancel_invoice(s, world.till, canceled, RULES, at(1)))
    assert update(canceled) == ResultCode.INVOICE_ALREADY_CANCELED

    # paid but never polled, past the deadline: reversed, so "canceled"
    unpolled = world.send()
    world.pay(unpolled, at(1))
    assert update(unpolled, now=at(30)) == ResultCode.INVOICE_ALREADY_CANCELED


# --- cancelInvoice --------------------------------------------------------------------------


def test_cancel_invoice(world: World) -> None:
    def cancel(reference: str, principal: Principal | None = None) -> None:
        world.do(lambda s: payments.cancel_invoice(
            s, principal or world.till, reference, RULES, at(5)))

    def refused(reference: str, principal: Principal | None = None) -> ResultCode:
        return world.code(lambda s: payments.cancel_invoice(
            s, principal or world.till, reference, RULES, at(5)))

    issued = world.send()
    assert refused(issued, second_till(world)) == ResultCode.INVALID_INVOICE_REFERENCE
    assert refused(issued, world.owner) == ResultCode.ACCESS_DENIED
    cancel(issued)
    status = world.poll(issued, at(6))
    assert (status.status, status.version) == (Invoice.CANCELED, 2)
    assert refused(issued) == ResultCode.INVOICE_ALREADY_CANCELED
    assert world.poll(issued, at(7)).version == 2
    assert world.buyer_error(lambda s: payments.buyer_pay(s, issued, RULES, at(8))).status == (
        Invoice.CANCELED)

    paid, _ = world.paid()
    assert refused(paid) == ResultCode.CANNOT_CANCEL_PAID_INVOICE
    paid_unpolled = world.send()
    world.pay(paid_unpolled, at(4))
    assert refused(paid_unpolled) == ResultCode.CANNOT_CANCEL_PAID_INVOICE

    pending = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"))
    world.scan(pending, at(1))
    assert refused(pending) == ResultCode.CANNOT_CANCEL_INVOICE_IN_PROGRESS

    reserved = world.send(invoice(payment_mode="RESERVATION_DESIRED"))
    world.reserve(reserved, at(1))
    cancel(reserved)  # a reservation is released
    assert (world.row(reserved).status, world.row(reserved).version) == (Invoice.CANCELED, 3)

    # what the code does with a FAILED invoice: it becomes CANCELED
    failed = world.send()
    world.do(lambda s: payments.buyer_fail(s, failed, RULES, at(1)))
    cancel(failed)
    assert world.row(failed).status == Invoice.CANCELED
    assert [t.kind for t in world.transactions()] == [Transaction.SALE]  # the paid one only


# --- acknowledgment -------------------------------------------------------------------------


def test_require_acknowledgment(world: World) -> None:
    reference = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"))
    # the buyer must scan first, then the register acknowledges
    for action in (payments.buyer_pay, payments.buyer_reserve):
        error = world.buyer_error(lambda s, a=action: a(s, reference, RULES, at(1)))
        assert (error.status, error.not_found) == (Invoice.ISSUED, False)

    world.scan(reference, at(2))
    status = world.poll(reference, at(3))
    assert (status.status, status.version) == (Invoice.PENDING_ISSUER_ACKNOWLEDGE, 2)
    assert world.poll(reference, at(4)).version == 2
    error = world.buyer_error(lambda s: payments.buyer_pay(s, reference, RULES, at(5)))
    assert error.status == Invoice.PENDING_ISSUER_ACKNOWLEDGE
    assert "acknowledged" in str(error)
    assert world.buyer_error(lambda s: payments.buyer_scan(s, reference, RULES, at(5))).status == (
        Invoice.PENDING_ISSUER_ACKNOWLEDGE)
    assert world.code(lambda s: payments.cancel_invoice(s, world.till, reference, RULES, at(5))
                      ) == ResultCode.CANNOT_CANCEL_INVOICE_IN_PROGRESS
    assert world.code(lambda s: payments.commit_reservation(
        s, world.till, reference, RULES, at(5))) == ResultCode.INVOICE_STATE_NOT_RESERVED

    # updateInvoice acknowledges (and may change the amount)
    acknowledged = invoice("90.00", rows=(), acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT")
    world.do(lambda s: payments.update_invoice(
        s, world.till, reference, acknowledged, RULES, at(6)))
    row = world.row(reference)
    assert (row.status, row.version, row.acknowledged_at) == (Invoice.ISSUED, 3, at(6))
    world.scan(reference, at(7))  # a second scan after the acknowledgment asks for nothing
    assert world.row(reference).version == 3
    world.pay(reference, at(8))
    status = world.poll(reference, at(9))
    assert (status.status, status.version) == (Invoice.PAID, 4)
    [sale] = world.transactions()
    assert sale.amount == Decimal("90.00")


def test_an_acknowledged_invoice_may_be_reserved(world: World) -> None:
    reference = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT",
                                   payment_mode="RESERVATION_REQUIRED"))
    world.scan(reference, at(1))
    world.do(lambda s: payments.update_invoice(s, world.till, reference, invoice(
        acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT", payment_mode="RESERVATION_REQUIRED"),
        RULES, at(2)))
    world.reserve(reference, at(3))
    assert (world.row(reference).status, world.row(reference).version) == (Invoice.RESERVED, 4)


def test_the_buyer_may_give_up_while_waiting_for_the_acknowledgment(world: World) -> None:
    reference = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"))
    world.scan(reference, at(1))
    world.do(lambda s: payments.buyer_fail(s, reference, RULES, at(2)))
    status = world.poll(reference, at(3))
    assert (status.status, status.version) == (Invoice.FAILED, 3)
    assert world.code(lambda s: payments.update_invoice(
        s, world.till, reference, invoice(), RULES, at(4))) == ResultCode.PAYMENT_IN_PROGRESS


def test_an_omitted_acknowledgment_mode_waits_for_the_register(world: World) -> None:
    """On the v2 service an invoice without acknowledgmentMode behaves as
    REQUIRE_ACKNOWLEDGMENT (SEQR's FAQ: the buyer's app stays at "waiting for amount..."
    until the register acknowledges with updateInvoice)."""
    reference = world.send(invoice(acknowledgment_mode=None))
    assert world.row(reference).acknowledgment_mode == "REQUIRE_ACKNOWLEDGMENT"
    world.scan(reference, at(1))
    assert world.poll(reference, at(2)).status == Invoice.PENDING_ISSUER_ACKNOWLEDGE
    assert "acknowledged" in str(world.buyer_error(lambda s: payments.buyer_pay(
        s, reference, RULES, at(3))))
    world.do(lambda s: payments.update_invoice(s, world.till, reference,
                                               invoice(acknowledgment_mode=None), RULES, at(4)))
    world.pay(reference, at(5))
    assert world.poll(reference, at(6)).status == Invoice.PAID


@pytest.mark.parametrize("mode", ["NO_ACKNOWLEDGMENT", "OPTIONAL_ACKNOWLEDGMENT"])
def test_no_acknowledgment_needed(world: World, mode: str | None) -> None:
    reference = world.send(invoice(acknowledgment_mode=mode))
    world.scan(reference, at(1))
    assert (world.row(reference).status, world.row(reference).version) == (Invoice.ISSUED, 1)
    world.pay(reference, at(2))
    assert world.poll(reference, at(3)).status == Invoice.PAID


# --- one live invoice per cash register ---------------------------------------------------


def test_a_cash_register_keeps_one_live_invoice(world: World) -> None:
    """A new sendInvoice on a registered terminal cancels its unpaid invoice (ISSUED, or
    scanned and waiting for the register); reservations and payments stay."""
    first = world.send(now=at(0))
    second = world.send(now=at(1))
    assert (world.row(first).status, world.row(first).version) == (Invoice.CANCELED, 2)
    assert world.poll(first, at(2)).status == Invoice.CANCELED
    assert world.row(second).status == Invoice.ISSUED
    waiting = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"), now=at(3))
    world.scan(waiting, at(4))
    assert world.row(waiting).status == Invoice.PENDING_ISSUER_ACKNOWLEDGE
    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED"), now=at(5))
    assert world.row(waiting).status == Invoice.CANCELED
    world.reserve(reserved, at(6))
    paid = world.send(now=at(7))
    world.pay(paid, at(8))
    last = world.send(now=at(9))
    assert {ref: world.row(ref).status for ref in (second, reserved, paid, last)} == {
        second: Invoice.CANCELED, reserved: Invoice.RESERVED, paid: Invoice.PAID,
        last: Invoice.ISSUED}
    # another till of the shop is another register: untouched
    other = second_till(world)
    world.send(now=at(10), till=other)
    assert world.row(last).status == Invoice.ISSUED


def test_a_webshop_terminal_keeps_many_open_invoices(world: World) -> None:
    web = webshop_till(world)
    references = [world.send(now=at(i), till=web) for i in range(3)]
    assert [world.row(ref).status for ref in references] == [Invoice.ISSUED] * 3
    world.pay(references[1], at(4))
    assert world.poll(references[1], at(5), till=web).status == Invoice.PAID
    assert world.poll(references[0], at(5), till=web).status == Invoice.ISSUED


def _states(world: World, payment_mode: str, ack: str) -> dict[str, str]:
    """One invoice in each state a buyer meets, for this payment and acknowledgment mode,
    all of one webshop terminal (a cash register keeps only one invoice live)."""
    web = webshop_till(world, f"Web {uuid.uuid4().hex[:6]}")
    data = lambda: invoice(payment_mode=payment_mode, acknowledgment_mode=ack)  # noqa: E731
    send = lambda: world.send(data(), till=web)  # noqa: E731

    def acknowledge(reference: str) -> None:
        world.scan(reference, at(1))
        world.do(lambda s: payments.update_invoice(s, web, reference, data(), RULES, at(2)))

    states = {"issued": send()}
    if ack == "REQUIRE_ACKNOWLEDGMENT":
        states["pending"] = send()
        world.scan(states["pending"], at(1))
        states["acknowledged"] = send()
        acknowledge(states["acknowledged"])
    if payment_mode != "IMMEDIATE_DEBIT":
        states["reserved"] = send()
        if ack == "REQUIRE_ACKNOWLEDGMENT":
            acknowledge(states["reserved"])
        world.reserve(states["reserved"], at(3))
    if payment_mode != "RESERVATION_REQUIRED":
        states["paid"] = send()
        if ack == "REQUIRE_ACKNOWLEDGMENT":
            acknowledge(states["paid"])
        world.pay(states["paid"], at(3))  # unpolled: reversed once 20 s have passed
    states["failed"] = send()
    world.do(lambda s: payments.buyer_fail(s, states["failed"], RULES, at(3)))
    states["canceled"] = send()
    world.do(lambda s: payments.cancel_invoice(s, web, states["canceled"], RULES, at(3)))
    expected = {"issued": Invoice.ISSUED, "pending": Invoice.PENDING_ISSUER_ACKNOWLEDGE,
                "acknowledged": Invoice.ISSUED, "reserved": Invoice.RESERVED,
                "paid": Invoice.PAID, "failed": Invoice.FAILED, "canceled": Invoice.CANCELED}
    assert {name: world.row(ref).status for name, ref in states.items()} == {
        name: expected[name] for name in states}
    return states


@pytest.mark.parametrize("payment_mode", ["IMMEDIATE_DEBIT", "RESERVATION_DESIRED",
                                          "RESERVATION_REQUIRED"])
@pytest.mark.parametrize("ack", ["NO_ACKNOWLEDGMENT", "REQUIRE_ACKNOWLEDGMENT"])
@pytest.mark.parametrize("when", [4, 30])  # before and after the unpolled payment's reversal
def test_buyer_refusals_say_what_the_actions_do(world: World, payment_mode: str, ack: str,
                                                when: int) -> None:
    """The console's disabled buttons and their tooltips come from `buyer_refusals`: for
    every state, it names a reason exactly when the action itself refuses, with its words."""
    actions = {"scan": payments.buyer_scan, "pay": payments.buyer_pay,
               "reserve": payments.buyer_reserve, "fail": payments.buyer_fail}
    assert tuple(actions) == payments.BUYER_ACTIONS
    for state, reference in _states(world, payment_mode, ack).items():
        refusals = payments.buyer_refusals(world.row(reference), RULES, at(when))
        for action, function in actions.items():
            why = refusals[action]
            if why is None:
                with world.db.write() as session:
                    function(session, reference, RULES, at(when))
                    session.rollback()  # leave the state for the next action
            else:
                error = world.buyer_error(
                    lambda s, f=function, r=reference: f(s, r, RULES, at(when)))
                assert str(error).endswith(why), (state, action, str(error), why)
    allowed = payments.buyer_refusals(world.row(_states(world, payment_mode, ack)["issued"]),
                                      RULES, at(when))
    assert allowed["fail"] is None  # an open invoice can always fail
    assert (allowed["pay"] is None) == (
        payment_mode != "RESERVATION_REQUIRED" and ack == "NO_ACKNOWLEDGMENT")


def test_reversal_deadline(world: World) -> None:
    reference = world.send()
    assert payments.reversal_deadline(world.row(reference), RULES) is None
    world.pay(reference, at(1))
    assert payments.reversal_deadline(world.row(reference), RULES) == at(21)
    assert payments.reversal_deadline(world.row(reference), NO_REVERSAL) is None
    world.poll(reference, at(2))
    assert payments.reversal_deadline(world.row(reference), RULES) is None  # settled


# --- payment modes, reservations -------------------------------------------------------------


def test_immediate_debit_cannot_be_reserved(world: World) -> None:
    for mode in (None, "IMMEDIATE_DEBIT"):
        reference = world.send(invoice(payment_mode=mode))
        error = world.buyer_error(lambda s, r=reference: payments.buyer_reserve(
            s, r, RULES, at(1)))
        assert (error.status, error.not_found) == (Invoice.ISSUED, False)
        world.pay(reference, at(2))
        assert world.poll(reference, at(3)).status == Invoice.PAID


def test_reservation_required(world: World) -> None:
    reference = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    error = world.buyer_error(lambda s: payments.buyer_pay(s, reference, RULES, at(1)))
    assert error.status == Invoice.ISSUED and "RESERVATION_REQUIRED" in str(error)

    world.reserve(reference, at(2))
    status = world.poll(reference, at(3))
    assert (status.status, status.version, status.receipt) == (Invoice.RESERVED, 2, None)
    assert world.transactions() == []  # a reservation is no sale
    for action in (payments.buyer_pay, payments.buyer_reserve, payments.buyer_scan):
        assert world.buyer_error(lambda s, a=action: a(s, reference, RULES, at(4))).status == (
            Invoice.RESERVED)
    # a reservation is never reversed by the 20-second rule
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(600))) == 0
    assert world.poll(reference, at(600)).status == Invoice.RESERVED

    world.do(lambda s: payments.commit_reservation(s, world.till, reference, RULES, at(601)))
    row = world.row(reference)
    assert (row.status, row.version, row.paid_at, row.settled_at) == (
        Invoice.PAID, 3, at(601), at(601))  # the register committed it: it knows
    [sale] = world.transactions()
    assert sale.ers_reference == row.payment_reference and sale.committed_at == at(601)
    # so it is not reversed either, polled or not
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(700))) == 0
    status = world.poll(reference, at(700))
    assert (status.status, status.version) == (Invoice.PAID, 3)
    assert len(world.transactions()) == 1

    assert world.code(lambda s: payments.commit_reservation(
        s, world.till, reference, RULES, at(701))) == ResultCode.INVOICE_STATE_NOT_RESERVED


def test_reservation_desired_may_be_paid_or_reserved(world: World) -> None:
    paid = world.send(invoice(payment_mode="RESERVATION_DESIRED"))
    world.pay(paid, at(1))
    assert world.poll(paid, at(2)).status == Invoice.PAID

    reserved = world.send(invoice(payment_mode="RESERVATION_DESIRED"))
    world.reserve(reserved, at(1))
    assert world.poll(reserved, at(2)).status == Invoice.RESERVED
    world.do(lambda s: payments.commit_reservation(s, world.till, reserved, RULES, at(3)))
    assert world.poll(reserved, at(4)).status == Invoice.PAID
    assert len(world.transactions(Transaction.SALE)) == 2


def test_commit_reservation_refusals(world: World) -> None:
    def commit(reference: str | None, principal: Principal | None = None) -> ResultCode:
        return world.code(lambda s: payments.commit_reservation(
            s, principal or world.till, reference, RULES, at(10)))

    issued = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    assert commit(issued) == ResultCode.INVOICE_STATE_NOT_RESERVED
    paid, _ = world.paid()
    assert commit(paid) == ResultCode.INVOICE_STATE_NOT_RESERVED
    canceled = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    world.reserve(canceled, at(1))
    world.do(lambda s: payments.cancel_invoice(s, world.till, canceled, RULES, at(2)))
    assert commit(canceled) == ResultCode.INVOICE_STATE_NOT_RESERVED

    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    world.reserve(reserved, at(1))
    assert commit(reserved, second_till(world)) == ResultCode.INVALID_INVOICE_REFERENCE
    assert commit(reserved, world.owner) == ResultCode.ACCESS_DENIED
    assert commit(None) == ResultCode.INVALID_INVOICE_REFERENCE
    assert world.row(reserved).status == Invoice.RESERVED


def test_buyer_actions_on_unknown_or_finished_invoices(world: World) -> None:
    for action in (payments.buyer_scan, payments.buyer_pay, payments.buyer_reserve,
                   payments.buyer_fail):
        error = world.buyer_error(lambda s, a=action: a(s, "9999999999999", RULES, at(1)))
        assert error.not_found and error.status is None

    reference = world.send()
    world.do(lambda s: payments.buyer_fail(s, reference, RULES, at(1)))
    status = world.poll(reference, at(2))
    assert (status.status, status.version) == (Invoice.FAILED, 2)
    for action in (payments.buyer_scan, payments.buyer_pay, payments.buyer_fail):
        error = world.buyer_error(lambda s, a=action: a(s, reference, RULES, at(3)))
        assert (error.status, error.not_found) == (Invoice.FAILED, False)

    paid, _ = world.paid()
    error = world.buyer_error(lambda s: payments.buyer_fail(s, paid, RULES, at(5)))
    assert error.status == Invoice.PAID
    assert world.buyer_error(lambda s: payments.buyer_pay(s, paid, RULES, at(5))).status == (
        Invoice.PAID)
    assert len(world.transactions()) == 1


# --- the 20-second rule ---------------------------------------------------------------------


def test_a_payment_not_polled_in_time_is_reversed(world: World) -> None:
    reference = world.send()
    world.pay(reference, at(0))
    payment_reference = world.row(reference).payment_reference
    assert payment_reference is not None

    status = world.poll(reference, at(21))
    assert (status.status, status.version) == (Invoice.CANCELED, 3)
    assert (status.payment_reference, status.receipt) == (None, None)
    row = world.row(reference)
    assert (row.reversed_at, row.settled_at) == (at(21), None)
    assert world.transactions() == []

    assert world.poll(reference, at(22)).version == 3  # stays put
    assert world.code(lambda s: payments.refund_payment(
        s, world.till, payment_reference, refund_of("1.00"), RULES, at(23))
    ) == ResultCode.INVALID_ERS_REFERENCE
    assert world.code(lambda s: payments.submit_payment_receipt(
        s, world.till, payment_reference, "text/plain", b"r", "CUSTOMER", RULES, at(23))
    ) == ResultCode.INVALID_ERS_REFERENCE
    assert world.code(lambda s: payments.cancel_invoice(
        s, world.till, reference, RULES, at(24))) == ResultCode.INVOICE_ALREADY_CANCELED
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(100))) == 0
    assert world.do(lambda s: payments.auto_pay_due(s, RULES, at(100))) == 0
    assert world.transactions() == []
    assert world.row(reference).version == 3


def test_a_payment_polled_in_time_is_a_sale_once(world: World) -> None:
    reference = world.send(invoice("42.00", rows=()))
    world.pay(reference, at(0))
    assert world.transactions() == []  # not before the register has seen it
    status = world.poll(reference, at(19))
    assert (status.status, status.version) == (Invoice.PAID, 2)

    for second in (19.5, 25, 100, 1000):  # later polls neither reverse nor count it again
        assert world.poll(reference, at(second)).version == 2
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(1000))) == 0
    world.do(lambda s: payments.submit_payment_receipt(
        s, world.till, status.payment_reference, "text/plain", b"receipt", "CUSTOMER", RULES,
        at(1001)))

    [sale] = world.transactions()
    assert sale.kind == Transaction.SALE
    assert sale.ers_reference == status.payment_reference
    assert (sale.amount, sale.currency, sale.cashier_id) == (Decimal("42.00"), "SEK", "anna")
    assert (sale.terminal_id, sale.reseller_id) == (world.till.terminal_id, "shop-1")
    assert (sale.invoice_reference, sale.refunded_reference) == (reference, None)
    assert sale.committed_at == at(19)  # when the register learned of it
    assert world.row(reference).settled_at == at(19)


def test_the_deadline_itself_is_still_in_time(world: World) -> None:
    reference = world.send()
    world.pay(reference, at(0))
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(20))) == 0
    assert world.poll(reference, at(20)).status == Invoice.PAID


def test_reverse_unpolled_reverses_only_what_is_due(world: World) -> None:
    web = webshop_till(world)  # many invoices open at once
    early = world.send(now=at(0), till=web)
    world.pay(early, at(0))
    late = world.send(now=at(0), till=web)
    world.pay(late, at(10))
    polled = world.send(now=at(0), till=web)
    world.pay(polled, at(0))
    world.poll(polled, at(1), till=web)
    issued = world.send(now=at(0), till=web)
    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED"), now=at(0), till=web)
    world.reserve(reserved, at(0))
    pending = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"), now=at(0),
                         till=web)
    world.scan(pending, at(0))

    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(25))) == 1
    assert world.row(early).status == Invoice.CANCELED
    assert world.row(early).version == 3 and world.row(early).reversed_at == at(25)
    assert world.row(late).status == Invoice.PAID
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(31))) == 1
    assert world.row(late).status == Invoice.CANCELED
    assert world.do(lambda s: payments.reverse_unpolled(s, RULES, at(3600))) == 0
    expected = {polled: Invoice.PAID, issued: Invoice.ISSUED, reserved: Invoice.RESERVED,
                pending: Invoice.PENDING_ISSUER_ACKNOWLEDGE}
    assert {ref: world.row(ref).status for ref in expected} == expected
    assert [t.invoice_reference for t in world.transactions()] == [polled]
    # a shorter deadline is honoured as given
    quick = PaymentRules(reversal_seconds=0.5)
    fast = world.send(now=at(4000), rules=quick)
    world.pay(fast, at(4000), quick)
    assert world.do(lambda s: payments.reverse_unpolled(s, quick, at(4000.4))) == 0
    assert world.do(lambda s: payments.reverse_unpolled(s, quick, at(4000.6))) == 1


def test_with_the_rule_off_a_payment_is_a_sale_at_once(world: World) -> None:
    reference = world.send(rules=NO_REVERSAL)
    world.pay(reference, at(5), NO_REVERSAL)
    [sale] = world.transactions()
    row = world.row(reference)
    assert (sale.ers_reference, sale.committed_at) == (row.payment_reference, at(5))
    assert row.settled_at == at(5)
    assert world.do(lambda s: payments.reverse_unpolled(s, NO_REVERSAL, at(10_000))) == 0
    status = world.poll(reference, at(10_000), NO_REVERSAL)
    assert (status.status, status.version) == (Invoice.PAID, 2)
    assert len(world.transactions()) == 1


def test_the_receipt_counts_as_seeing_the_payment(world: World) -> None:
    reference = world.send()
    world.pay(reference, at(0))
    payment_reference = world.row(reference).payment_reference
    world.do(lambda s: payments.submit_payment_receipt(
        s, world.till, payment_reference, "application/pdf", b"%PDF-1.4 ...", "CUSTOMER",
        RULES, at(5)))
    row = world.row(reference)
    assert (row.receipt_mime_type, row.receipt_type, row.receipt_data) == (
        "application/pdf", "CUSTOMER", b"%PDF-1.4 ...")
    assert (row.receipt_submitted_at, row.settled_at, row.version) == (at(5), at(5), 2)
    assert world.poll(reference, at(60)).status == Invoice.PAID  # never reversed now
    [sale] = world.transactions()
    assert sale.ers_reference == payment_reference
    # a second receipt replaces the document, and counts nothing again
    world.do(lambda s: payments.submit_payment_receipt(
        s, world.till, payment_reference, "text/plain", b"copy", None, RULES, at(61)))
    assert world.row(reference).receipt_data == b"copy"
    assert len(world.transactions()) == 1


def test_a_late_receipt_is_refused_and_the_payment_stays_reversed(world: World) -> None:
    reference = world.send()
    world.pay(reference, at(0))
    payment_reference = world.row(reference).payment_reference
    assert world.code(lambda s: payments.submit_payment_receipt(
        s, world.till, payment_reference, "text/plain", b"r", None, RULES, at(30))
    ) == ResultCode.INVALID_ERS_REFERENCE
    assert world.row(reference).receipt_data is None
    status = world.poll(reference, at(31))
    assert status.status == Invoice.CANCELED
    assert world.transactions() == []


def test_submit_payment_receipt_refusals(world: World) -> None:
    reference, payment_reference = world.paid()
    _, foreign_till = other_shop(world)
    for principal, ers, code in [
        (world.till, None, ResultCode.INVALID_ERS_REFERENCE),
        (world.till, "", ResultCode.INVALID_ERS_REFERENCE),
        (world.till, "2024050210000000000000999", ResultCode.INVALID_ERS_REFERENCE),
        (world.till, reference, ResultCode.INVALID_ERS_REFERENCE),  # an invoice reference
        (second_till(world), payment_reference, ResultCode.INVALID_ERS_REFERENCE),
        (foreign_till, payment_reference, ResultCode.INVALID_ERS_REFERENCE),
        (world.owner, payment_reference, ResultCode.ACCESS_DENIED),
    ]:
        assert world.code(lambda s, p=principal, e=ers: payments.submit_payment_receipt(
            s, p, e, "text/plain", b"r", None, RULES, at(5))) == code
    assert world.row(reference).receipt_data is None


# --- refunds --------------------------------------------------------------------------------


def refund(world: World, payment_reference: str | None, data: InvoiceData | None,
           principal: Principal | None = None, now: datetime | None = None,
           rules: PaymentRules = RULES) -> str:
    return world.do(lambda s: payments.refund_payment(
        s, principal or world.till, payment_reference, data, rules, now or at(100)))


def refund_code(world: World, payment_reference: str | None, data: InvoiceData | None,
                principal: Principal | None = None) -> ResultCode:
    return world.code(lambda s: payments.refund_payment(
        s, principal or world.till, payment_reference, data, RULES, at(100)))


def test_partial_refunds_up_to_the_payment(world: World) -> None:
    reference, payment_reference = world.paid(invoice("100.00"))
    first = refund(world, payment_reference, refund_of("30.00", cashier="bo"))
    second = refund(world, payment_reference, refund_of("49.99"))
    assert refund_code(world, payment_reference, refund_of("20.02")) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)
    third = refund(world, payment_reference, refund_of("20.01"))  # exactly the rest
    assert refund_code(world, payment_reference, refund_of("0.00001")) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)

    references = [first, second, third]
    assert all(ERS_RE.match(r) for r in references)
    assert len({*references, payment_reference}) == 4
    refunds = world.transactions(Transaction.REFUND)
    assert [r.ers_reference for r in refunds] == references
    assert [r.amount for r in refunds] == [Decimal("-30.00"), Decimal("-49.99"),
                                           Decimal("-20.01")]
    assert {(r.refunded_reference, r.invoice_reference, r.terminal_id, r.currency)
            for r in refunds} == {(payment_reference, reference, world.till.terminal_id, "SEK")}
    assert [r.cashier_id for r in refunds] == ["bo", None, None]
    with world.db.read() as session:
        assert payments.refunded_so_far(session, payment_reference) == Decimal("100.00")
    # the payment itself is untouched
    assert world.poll(reference, at(200)).status == Invoice.PAID
    assert len(world.transactions(Transaction.SALE)) == 1


def test_a_full_refund_and_one_cent_over(world: World) -> None:
    _, over = world.paid(invoice("100.00"))
    assert refund_code(world, over, refund_of("100.01")) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)
    assert world.transactions(Transaction.REFUND) == []
    _, full = world.paid(invoice("100.00"))
    refund(world, full, refund_of("100"))
    assert refund_code(world, full, refund_of("0.01")) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)


@pytest.mark.parametrize(("data", "code"), [
    (refund_of("10.00", "EUR"), ResultCode.INVALID_INVOICE_DATA),
    (refund_of("10.00", "sek"), ResultCode.INVALID_INVOICE_DATA),
    (refund_of(None), ResultCode.INVALID_INVOICE_DATA),
    (InvoiceData(), ResultCode.INVALID_INVOICE_DATA),
    (None, ResultCode.INVALID_INVOICE_DATA),
    (refund_of("0"), ResultCode.INVALID_INVOICE_DATA),
    (refund_of("-1.00"), ResultCode.INVALID_INVOICE_DATA),
    (refund_of("1.000001"), ResultCode.INVALID_INVOICE_DATA),
], ids=["other currency", "lowercase currency", "no value", "no total", "no invoice", "zero",
        "negative", "6 decimals"])
def test_refund_amount_refusals(world: World, data: InvoiceData | None, code: ResultCode) -> None:
    _, payment_reference = world.paid()
    assert refund_code(world, payment_reference, data) == code
    assert world.transactions(Transaction.REFUND) == []


def test_refund_of_payments_that_are_not_the_shops(world: World) -> None:
    reference, payment_reference = world.paid()
    foreign_owner, foreign_till = other_shop(world)
    for principal, ers in [
        (foreign_till, payment_reference), (foreign_owner, payment_reference),
        (world.till, None), (world.till, ""), (world.till, "2024050210000000000000999"),
        (world.till, reference),
    ]:
        assert refund_code(world, ers, refund_of("1.00"), principal) == (
            ResultCode.INVALID_ERS_REFERENCE)
    # invoices that were never paid have no payment to refund
    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED"))
    world.reserve(reserved, at(1))
    assert world.row(reserved).payment_reference is None
    assert world.transactions(Transaction.REFUND) == []


def test_another_till_of_the_shop_may_refund(world: World) -> None:
    reference, payment_reference = world.paid(invoice("50.00"))
    till_2 = second_till(world)
    refund_reference = refund(world, payment_reference, refund_of("20.00"), till_2)
    [row] = world.transactions(Transaction.REFUND)
    assert (row.ers_reference, row.terminal_id, row.refunded_reference, row.invoice_reference
            ) == (refund_reference, till_2.terminal_id, payment_reference, reference)
    # what the code does for the shop's user: allowed, recorded on the payment's till
    refund(world, payment_reference, refund_of("30.00"), world.owner)
    assert world.transactions(Transaction.REFUND)[-1].terminal_id == world.till.terminal_id
    assert refund_code(world, payment_reference, refund_of("0.01"), till_2) == (
        ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION)


def test_refund_of_a_payment_not_yet_polled_settles_it_first(world: World) -> None:
    reference = world.send(invoice("80.00"))
    world.pay(reference, at(0))
    payment_reference = world.row(reference).payment_reference
    refund_reference = refund(world, payment_reference, refund_of("80.00"), now=at(3))
    sale, back = world.transactions()
    assert (sale.kind, sale.ers_reference, sale.amount, sale.committed_at) == (
        Transaction.SALE, payment_reference, Decimal("80.00"), at(3))
    assert (back.kind, back.ers_reference, back.amount) == (
        Transaction.REFUND, refund_reference, Decimal("-80.00"))
    assert world.row(reference).settled_at == at(3)
    # the register's poll after the deadline sees PAID (refunded, not reversed), counted once
    status = world.poll(reference, at(60))
    assert (status.status, status.version) == (Invoice.PAID, 2)
    assert len(world.transactions(Transaction.SALE)) == 1


def test_a_refused_refund_of_an_unpolled_payment_leaves_it_unpolled(world: World) -> None:
    reference = world.send(invoice("10.00", rows=()))
    world.pay(reference, at(0))
    payment_reference = world.row(reference).payment_reference
    assert world.code(lambda s: payments.refund_payment(
        s, world.till, payment_reference, refund_of("11.00"), RULES, at(3))
    ) == ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION
    assert world.row(reference).settled_at is None and world.transactions() == []
    assert world.poll(reference, at(30)).status == Invoice.CANCELED


def test_refund_with_the_rule_off(world: World) -> None:
    reference = world.send(rules=NO_REVERSAL)
    world.pay(reference, at(0), NO_REVERSAL)
    payment_reference = world.row(reference).payment_reference
    refund(world, payment_reference, refund_of("100.00"), now=at(3600), rules=NO_REVERSAL)
    assert [t.kind for t in world.transactions()] == [Transaction.SALE, Transaction.REFUND]


# --- the ledger and periods -----------------------------------------------------------------


def _period_of(world: World, txn: Transaction, terminal: bool) -> str | None:
    with world.db.read() as session:
        period = session.get(TransactionPeriod,
                             txn.terminal_period_id if terminal else txn.shop_period_id)
        assert period is not None
        assert (period.terminal_id is not None) == terminal
        return period.public_id


def test_a_sale_lands_in_the_period_in_which_the_register_saw_it(world: World) -> None:
    def mark(terminal: bool) -> str:
        params = Parameters.of({"TERMINALID": world.till.terminal_id} if terminal else {})
        return world.do(lambda s: mark_transaction_period(
            s, world.owner, params).transaction_period_id)

    before, before_payment = world.paid(invoice("10.00", rows=()))
    straddling = world.send(invoice("20.00", rows=()), now=at(2))
    world.pay(straddling, at(3))  # paid before the close, seen after it
    shop_1, till_1 = mark(False), mark(True)
    world.poll(straddling, at(4))
    refund(world, before_payment, refund_of("5.00"), now=at(5))
    shop_2, till_2 = mark(False), mark(True)

    sale_1, sale_2, refund_1 = world.transactions()
    assert sale_1.invoice_reference == before and sale_2.invoice_reference == straddling
    for txn, periods in [(sale_1, (shop_1, till_1)), (sale_2, (shop_2, till_2)),
                         (refund_1, (shop_2, till_2))]:
        assert (_period_of(world, txn, False), _period_of(world, txn, True)) == periods


# --- the till's sticker ---------------------------------------------------------------------


def test_pay_by_seqr_id_pays_the_newest_issued_invoice(world: World) -> None:
    world.do(lambda s: terminals.assign_seqr_id(s, world.till, "STICKER1"))
    till_2 = second_till(world)
    world.do(lambda s: terminals.assign_seqr_id(s, till_2, "STICKER2"))

    def by_sticker(seqr_id: str, now: datetime) -> Invoice:
        return world.do(lambda s: payments.pay_by_seqr_id(s, seqr_id, RULES, now, "payer-1"))

    error = world.buyer_error(lambda s: payments.pay_by_seqr_id(s, "STICKER1", RULES, at(0)))
    assert (error.not_found, error.status) == (False, None)  # 409: nothing to pay

    replaced = world.send(now=at(1))
    newest = world.send(now=at(2))  # a cash register's new sale replaces its unpaid one
    world.send(now=at(4), till=till_2)  # another till's, newer still

    paid = by_sticker("STICKER1", at(5))
    assert (paid.reference, paid.status, paid.payer_id) == (newest, Invoice.PAID, "payer-1")
    assert world.row(replaced).status == Invoice.CANCELED
    assert world.buyer_error(lambda s: payments.pay_by_seqr_id(
        s, "STICKER1", RULES, at(7))).not_found is False  # nothing open: 409
    assert world.poll(newest, at(8)).status == Invoice.PAID

    # the newest open invoice cannot be paid this way: 409 with its status
    world.send(invoice(payment_mode="RESERVATION_REQUIRED"), now=at(9))
    error = world.buyer_error(lambda s: payments.pay_by_seqr_id(s, "STICKER1", RULES, at(10)))
    assert (error.not_found, error.status) == (False, Invoice.ISSUED)

    assert world.buyer_error(lambda s: payments.pay_by_seqr_id(
        s, "NOSUCHSTICKER", RULES, at(10))).not_found
    world.do(lambda s: terminals.unregister_terminal(s, till_2))
    assert world.buyer_error(lambda s: payments.pay_by_seqr_id(
        s, "STICKER2", RULES, at(10))).not_found


# --- auto-pay -------------------------------------------------------------------------------


def test_auto_pay_due(world: World) -> None:
    auto = PaymentRules(auto_pay_after=5)
    web = webshop_till(world)  # many invoices open at once
    immediate = world.send(invoice(payment_mode="IMMEDIATE_DEBIT"), at(0), auto, web)
    desired = world.send(invoice(payment_mode="RESERVATION_DESIRED"), at(0), auto, web)
    required = world.send(invoice(payment_mode="RESERVATION_REQUIRED"), at(0), auto, web)
    acknowledge = world.send(invoice(acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"), at(0), auto,
                             web)
    canceled = world.send(invoice(), at(0), auto, web)
    world.do(lambda s: payments.cancel_invoice(s, web, canceled, auto, at(1)))
    later = world.send(invoice(), at(3), auto, web)
    manual = world.send(invoice(), at(0), RULES, web)  # sent without auto-pay
    assert world.row(immediate).auto_pay_at == at(5) and world.row(manual).auto_pay_at is None

    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(4.9))) == 0
    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(5))) == 4
    states = {ref: (world.row(ref).status, world.row(ref).version)
              for ref in (immediate, desired, required, acknowledge, canceled, later, manual)}
    assert states == {
        immediate: (Invoice.PAID, 2), desired: (Invoice.PAID, 2),
        required: (Invoice.RESERVED, 2),
        acknowledge: (Invoice.PENDING_ISSUER_ACKNOWLEDGE, 2),  # scanned; the register is next
        canceled: (Invoice.CANCELED, 2), later: (Invoice.ISSUED, 1), manual: (Invoice.ISSUED, 1),
    }
    assert world.row(immediate).auto_pay_at is None
    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(6))) == 0

    world.do(lambda s: payments.update_invoice(s, web, acknowledge, invoice(
        acknowledgment_mode="REQUIRE_ACKNOWLEDGMENT"), auto, at(7)))
    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(8))) == 2  # it and `later`
    assert world.row(acknowledge).status == Invoice.PAID
    assert world.row(later).status == Invoice.PAID
    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(3600))) == 0
    assert world.row(manual).status == Invoice.ISSUED
    # auto-paid payments follow the 20-second rule like any other
    assert world.poll(immediate, at(9), auto, web).status == Invoice.PAID
    assert world.poll(desired, at(60), auto, web).status == Invoice.CANCELED


def test_auto_pay_with_the_rule_off_enters_the_ledger(world: World) -> None:
    auto = PaymentRules(reversal_seconds=0, auto_pay_after=0)
    reference = world.send(invoice(), at(0), auto)
    assert world.do(lambda s: payments.auto_pay_due(s, auto, at(0))) == 1
    [sale] = world.transactions()
    assert sale.invoice_reference == reference


# --- notifications are queued, not sent -----------------------------------------------------


def test_a_payment_queues_one_notification(world: World) -> None:
    web = webshop_till(world)
    reference = world.send(invoice(notification_url=" http://shop.example/n?id=1 "), till=web)
    unset = world.send(invoice(), till=web)
    blank = world.send(invoice(notification_url=" "), till=web)
    for ref in (reference, unset, blank):
        world.pay(ref, at(1))
        world.poll(ref, at(2), till=web)
    reserved = world.send(invoice(payment_mode="RESERVATION_REQUIRED",
                                  notification_url="https://shop.example/r"), till=web)
    world.reserve(reserved, at(3))
    with world.db.read() as session:
        assert [(n.invoice_reference, n.url) for n in session.scalars(select(Notification))] == [
            (reference, "http://shop.example/n?id=1")]
    world.do(lambda s: payments.commit_reservation(s, web, reserved, RULES, at(4)))
    with world.db.read() as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
    assert [(n.invoice_reference, n.status, n.attempts) for n in rows] == [
        (reference, Notification.PENDING, 0), (reserved, Notification.PENDING, 0)]
    assert rows[1].next_attempt_at == at(4)


# --- principals -----------------------------------------------------------------------------


def test_request_principal_information(world: World) -> None:
    def info(principal: Principal, requested: Credentials | None = None
             ) -> principals.PrincipalInfo:
        with world.db.read() as session:
            return principals.request_principal_information(session, principal, requested)

    def refused(principal: Principal, requested: Credentials | None) -> ResultCode:
        with pytest.raises(SeqrError) as raised:
            info(principal, requested)
        return raised.value.code

    till_id = world.till.terminal_id
    assert info(world.owner) == principals.PrincipalInfo(
        "shop-1", "RESELLERUSER", "9900", "Shop One", "ACTIVE")
    assert info(world.till) == principals.PrincipalInfo(
        till_id, "TERMINALID", None, "Till 1", "ACTIVE")
    assert info(world.owner, Credentials("TERMINALID", till_id)) == info(world.till)
    assert info(world.till, Credentials("terminalid", f" {till_id} ")) == info(world.till)
    assert info(world.till, Credentials()) == info(world.till)  # an empty principal: the caller

    till_2 = second_till(world)
    foreign_owner, foreign_till = other_shop(world)
    for principal, requested, code in [
        (world.owner, Credentials("TERMINALID", foreign_till.terminal_id),
         ResultCode.ACCESS_DENIED),
        (world.till, Credentials("TERMINALID", foreign_till.terminal_id),
         ResultCode.ACCESS_DENIED),
        (world.till, Credentials("TERMINALID", till_2.terminal_id), ResultCode.ACCESS_DENIED),
        (world.till, Credentials("RESELLERUSER", "shop-1", "9900"), ResultCode.ACCESS_DENIED),
        (world.owner, Credentials("RESELLERUSER", "shop-2", "9900"), ResultCode.ACCESS_DENIED),
        (world.owner, Credentials("RESELLERUSER", "shop-1", "1234"), ResultCode.ACCESS_DENIED),
        (world.owner, Credentials("TERMINALID", "0" * 32), ResultCode.ACCESS_DENIED),
        (world.owner, Credentials("CUSTOMER", "x"), ResultCode.INVALID_INITIATOR_PRINCIPAL_ID),
    ]:
        assert refused(principal, requested) == code
    assert info(foreign_owner).principal_id == "shop-2"


def test_change_principal_password(world: World) -> None:
    def change(principal: Principal, new: str | None,
               requested: Credentials | None = None) -> None:
        world.do(lambda s: principals.change_principal_password(s, principal, requested, new))

    def login(creds: Credentials) -> Principal | ResultCode:
        with world.db.read() as session:
            try:
                return authenticate(session, creds)
            except SeqrError as error:
                return error.code

    till_id = world.till.terminal_id
    for short in (None, "", "abc"):
        assert world.code(lambda s, p=short: principals.change_principal_password(
            s, world.till, None, p)) == ResultCode.INVALID_NEW_PASSWORD
    assert login(Credentials("TERMINALID", till_id, password="till-pw")) == world.till

    change(world.till, "new-till-pw")
    assert login(Credentials("TERMINALID", till_id, password="till-pw")) == (
        ResultCode.AUTHENTICATION_FAILED)
    assert login(Credentials("TERMINALID", till_id, password="new-till-pw")) == world.till

    change(world.owner, "abcd")  # four characters are enough
    assert login(Credentials("RESELLERUSER", "shop-1", "9900", "secret-pw")) == (
        ResultCode.AUTHENTICATION_FAILED)
    assert login(Credentials("RESELLERUSER", "shop-1", "9900", "abcd")) == world.owner

    # the shop's user may set one of its terminals' passwords; nobody else's
    change(world.owner, "set-by-shop", Credentials("TERMINALID", till_id))
    assert login(Credentials("TERMINALID", till_id, password="set-by-shop")) == world.till
    _, foreign_till = other_shop(world)
    for principal, requested in [
        (world.owner, Credentials("TERMINALID", foreign_till.terminal_id)),
        (world.till, Credentials("TERMINALID", second_till(world).terminal_id)),
        (world.till, Credentials("RESELLERUSER", "shop-1", "9900")),
    ]:
        assert world.code(lambda s, p=principal, r=requested: principals.change_principal_password(
            s, p, r, "long-enough")) == ResultCode.ACCESS_DENIED
    assert login(Credentials("RESELLERUSER", "shop-1", "9900", "abcd")) == world.owner


def test_update_invoice_applies_new_payment_and_acknowledgment_modes(world: World) -> None:
    """What the receipt shows is what the rules apply: a mode change takes effect."""
    reference = world.send()
    reserved_only = invoice(payment_mode="RESERVATION_REQUIRED")
    world.do(lambda s: payments.update_invoice(s, world.till, reference, reserved_only,
                                               RULES, at(1)))
    assert world.buyer_error(lambda s: payments.buyer_pay(s, reference, RULES, at(2))).status \
        == "ISSUED"
    assert world.reserve(reference, at(3)).status == "RESERVED"
