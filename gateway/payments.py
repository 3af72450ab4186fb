"""The invoice lifecycle: the register's operations, the buyer's actions, and the clock's.

States: ISSUED -> (scan, REQUIRE_ACKNOWLEDGMENT) PENDING_ISSUER_ACKNOWLEDGE -> (updateInvoice)
ISSUED -> PAID, or -> RESERVED -> (commitReservation) PAID; ISSUED/RESERVED/FAILED ->
(cancelInvoice) CANCELED; ISSUED/PENDING -> FAILED. Every change is one database transaction
on a locked invoice row and adds exactly 1 to the invoice's version; a plain poll changes
nothing.

A payment enters the ledger (and so the reconciliation reports) once the register has seen
it: its first poll answering PAID, its receipt, or its own commitReservation. A PAID
invoice the register does not poll within `reversal_seconds` is reversed (CANCELED) and
never counts anywhere. With the rule off (0) a payment enters the ledger when it is made.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from gateway import ledger, limits
from gateway.auth import Principal, require_terminal
from gateway.config import PaymentRules
from gateway.errors import SeqrError
from gateway.invoices import (
    IMMEDIATE_DEBIT,
    REQUIRE_ACKNOWLEDGMENT,
    RESERVATION_REQUIRED,
    InvoiceData,
    check_total,
    validate,
)
from gateway.references import allocate_reference
from gateway.terminals import seqr_id_holder
from storage.database import NarrowQuery, Rows
from storage.models import Invoice, Notification, Terminal, Transaction
from storage.money import money_sum
from wsdl.resultcodes import ResultCode

#: an invoice's QR code reads this followed by its invoiceReference
QR_PREFIX = "HTTP://SEQR.SE/R"
OPEN_STATES = (Invoice.ISSUED, Invoice.PENDING_ISSUER_ACKNOWLEDGE)

__all__ = ["PaymentRules"]  # re-exported: the rules' type lives with the settings


def invoice_qr(reference: str) -> str:
    """The text of an invoice's QR code (`invoiceQRCode`), as the buyer's phone scans it."""
    return QR_PREFIX + reference


@dataclass(frozen=True)
class SentInvoice:
    reference: str
    qr_code: str


@dataclass(frozen=True)
class Receipt:
    terminal_id: str
    payment_date: datetime
    client_invoice_id: str | None
    invoice_reference: str
    payment_reference: str
    payer_terminal_id: str | None
    receiver_name: str | None
    invoice: InvoiceData


@dataclass(frozen=True)
class PaymentStatus:
    reference: str
    status: str
    version: int
    payment_reference: str | None = None
    receipt: Receipt | None = None


class BuyerActionError(Exception):
    """The simulated buyer asked for something impossible (HTTP 404 or 409)."""

    def __init__(self, message: str, *, not_found: bool = False, status: str | None = None):
        super().__init__(message)
        self.not_found = not_found
        self.status = status


# --- loading and changing invoices --------------------------------------------------------


def _locked(session: Session, reference: str | None) -> Invoice | None:
    if not reference:
        return None
    stmt = select(Invoice).where(Invoice.reference == reference.strip()).with_for_update()
    return session.scalars(stmt.execution_options(populate_existing=True)).first()


def _own_invoice(session: Session, principal: Principal, reference: str | None) -> Invoice:
    """The calling terminal's invoice, locked; 54 for any other."""
    terminal_id = require_terminal(principal, "this operation")
    invoice = _locked(session, reference)
    if invoice is None or invoice.terminal_id != terminal_id:
        raise SeqrError(ResultCode.INVALID_INVOICE_REFERENCE, f"no invoice {reference!r}")
    return invoice


def _change(invoice: Invoice, now: datetime, status: str | None = None) -> None:
    if status is not None:
        invoice.status = status
    invoice.version += 1
    invoice.updated_at = now


def reversal_due(rules: PaymentRules, now: datetime) -> ColumnElement[bool] | None:
    """The 20-second rule as a query condition (None while the rule is off)."""
    cutoff = rules.reversal_cutoff(now)
    return None if cutoff is None else Invoice.unpolled_since(cutoff)


def _reversal_due(invoice: Invoice, rules: PaymentRules, now: datetime) -> bool:
    """The 20-second rule for one invoice."""
    cutoff = rules.reversal_cutoff(now)
    return cutoff is not None and invoice.unpolled_since(cutoff)


def _awaits_acknowledgment(invoice: Invoice) -> bool:
    """Scanned or not, the register must still acknowledge it (updateInvoice) before payment."""
    return invoice.acknowledgment_mode == REQUIRE_ACKNOWLEDGMENT and invoice.acknowledged_at is None


def _reverse(invoice: Invoice, now: datetime) -> None:
    _change(invoice, now, Invoice.CANCELED)
    invoice.reversed_at = now


def _settle(session: Session, invoice: Invoice, now: datetime) -> None:
    """The register knows of the payment: the sale enters the ledger, once."""
    if invoice.settled_at is not None:
        return
    terminal = session.get(Terminal, invoice.terminal_id)
    assert terminal is not None and invoice.payment_reference is not None
    ledger.record_transaction(
        session, terminal, Transaction.SALE, invoice.total_amount, invoice.currency,
        invoice.cashier_id, invoice_reference=invoice.reference,
        ers_reference=invoice.payment_reference, at=now,
    )
    invoice.settled_at = now


def _catch_up(session: Session, invoice: Invoice, rules: PaymentRules, now: datetime,
              *, register_sees_it: bool) -> None:
    """Apply the 20-second rule, or settle a payment the register is now seeing."""
    if _reversal_due(invoice, rules, now):
        _reverse(invoice, now)
    elif register_sees_it and invoice.status == Invoice.PAID:
        _settle(session, invoice, now)


def _pay(session: Session, invoice: Invoice, rules: PaymentRules, now: datetime,
         payer_id: str | None, *, register_sees_it: bool) -> None:
    _change(invoice, now, Invoice.PAID)
    invoice.paid_at = now
    invoice.payer_id = payer_id or uuid.uuid4().hex
    invoice.payment_reference = allocate_reference(session, now)
    invoice.auto_pay_at = None
    url = (invoice.notification_url or "").strip()
    if url:
        session.add(Notification(invoice_reference=invoice.reference, url=url,
                                 next_attempt_at=now))
    if register_sees_it or rules.reversal_cutoff(now) is None:
        _settle(session, invoice, now)


# --- the register's operations -------------------------------------------------------------


def _new_reference(session: Session, now: datetime) -> str:
    """13 digits, epoch milliseconds style, unique."""
    candidate = int(now.timestamp() * 1000)
    latest = session.scalar(select(func.max(Invoice.reference)))
    if latest is not None and int(latest) >= candidate:
        candidate = int(latest) + 1
    return f"{candidate:013d}"


def send_invoice(session: Session, principal: Principal, invoice: InvoiceData | None,
                 rules: PaymentRules, now: datetime) -> SentInvoice:
    """A new ISSUED invoice. On a cash register it replaces the till's unpaid one: SEQR kept
    one live invoice per registered terminal (its FAQ; certification step 4 sends a second
    invoice and expects the first CANCELED). A webshop's terminal keeps many open."""
    terminal_id = require_terminal(principal, "sendInvoice")
    data = validate(invoice)
    currency, total = check_total(data.total)
    terminal = session.get(Terminal, terminal_id, with_for_update=True)  # one sale at a time
    if terminal is not None and terminal.keeps_one_live_invoice:
        cancel_open_invoices(session, terminal_id, now)
    for _ in range(5):
        reference = _new_reference(session, now)
        row = Invoice(
            reference=reference, reseller_id=principal.reseller_id, terminal_id=terminal_id,
            status=Invoice.ISSUED, version=1,
            payment_mode=data.effective_payment_mode,
            acknowledgment_mode=data.effective_acknowledgment_mode,
            currency=currency, total_amount=total, cashier_id=data.cashier_id,
            client_invoice_id=data.client_invoice_id,
            notification_url=data.notification_url, document=data.to_json(),
            created_at=now, updated_at=now,
            auto_pay_at=rules.auto_pay_at(now),
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another terminal took that millisecond: take the next
            continue
        return SentInvoice(reference, invoice_qr(reference))
    raise SeqrError(ResultCode.SYSTEM_BUSY, "could not allocate an invoice reference")


def cancel_open_invoices(session: Session, terminal_id: str, now: datetime) -> int:
    """Cancel the terminal's unpaid invoices (ISSUED, or scanned and waiting for the
    register); a reservation or payment is left alone. How many."""
    stmt = (
        select(Invoice)
        .where(Invoice.terminal_id == terminal_id, Invoice.status.in_(OPEN_STATES))
        .with_for_update()
    )
    rows = list(session.scalars(stmt.execution_options(populate_existing=True)))
    for row in rows:
        row.auto_pay_at = None
        _change(row, now, Invoice.CANCELED)
    return len(rows)


def update_invoice(session: Session, principal: Principal, reference: str | None,
                   invoice: InvoiceData | None, rules: PaymentRules, now: datetime) -> None:
    """Replace an unpaid invoice's content; it also acknowledges a scanned invoice."""
    row = _own_invoice(session, principal, reference)
    _catch_up(session, row, rules, now, register_sees_it=False)
    if row.status == Invoice.CANCELED:
        raise SeqrError(ResultCode.INVOICE_ALREADY_CANCELED, f"invoice {row.reference} is canceled")
    if row.status not in OPEN_STATES:
        raise SeqrError(ResultCode.PAYMENT_IN_PROGRESS,
                        f"invoice {row.reference} is {row.status}: it can no longer change")
    data = validate(invoice)
    currency, total = check_total(data.total)
    row.currency, row.total_amount = currency, total
    row.payment_mode = data.effective_payment_mode
    row.acknowledgment_mode = data.effective_acknowledgment_mode
    row.cashier_id = data.cashier_id
    row.client_invoice_id = data.client_invoice_id
    row.notification_url = data.notification_url
    row.document = data.to_json()
    if row.status == Invoice.PENDING_ISSUER_ACKNOWLEDGE:
        row.acknowledged_at = now
    _change(row, now, Invoice.ISSUED)


# The once-a-second poll: one narrow statement, built once, for what the answer holds.
_PEEK = NarrowQuery(
    select(Invoice.reference, Invoice.terminal_id, Invoice.status, Invoice.version,
           Invoice.awaits_settlement.label("awaits_settlement"), Invoice.paid_at,
           Invoice.payment_reference, Invoice.client_invoice_id, Invoice.payer_id,
           Invoice.document, Terminal.name.label("receiver_name"))
    .outerjoin(Terminal, Terminal.id == Invoice.terminal_id)
    .where(Invoice.reference == bindparam("reference"))
)


def peek_payment_status(session: Session | Connection | Rows, principal: Principal,
                        reference: str | None) -> PaymentStatus | None:
    """A poll that changes nothing, answered without a lock (a read transaction); None when
    the poll must write (it settles or reverses a payment) or fails: ask
    `get_payment_status` then."""
    terminal_id = require_terminal(principal, "getPaymentStatus")
    if not reference:
        return None
    row = _PEEK.first(session, reference=reference.strip())
    if row is None or row.terminal_id != terminal_id or row.awaits_settlement:
        return None
    return _status(row, row.receiver_name)


def get_payment_status(session: Session, principal: Principal, reference: str | None,
                       rules: PaymentRules, now: datetime) -> PaymentStatus:
    row = _own_invoice(session, principal, reference)
    _catch_up(session, row, rules, now, register_sees_it=True)
    return status_of(session, row)


def status_of(session: Session, row: Invoice) -> PaymentStatus:
    terminal = session.get(Terminal, row.terminal_id) if row.status == Invoice.PAID else None
    return _status(row, terminal.name if terminal is not None else None)


def _status(row: Any, receiver_name: str | None) -> PaymentStatus:
    """The answer for an invoice (a model or a row with its columns)."""
    if row.status != Invoice.PAID:
        return PaymentStatus(row.reference, row.status, row.version)
    assert row.paid_at is not None and row.payment_reference is not None
    receipt = Receipt(
        terminal_id=row.terminal_id, payment_date=row.paid_at,
        client_invoice_id=row.client_invoice_id, invoice_reference=row.reference,
        payment_reference=row.payment_reference, payer_terminal_id=row.payer_id,
        receiver_name=receiver_name, invoice=InvoiceData.from_json(row.document),
    )
    return PaymentStatus(row.reference, row.status, row.version, row.payment_reference, receipt)


def cancel_invoice(session: Session, principal: Principal, reference: str | None,
                   rules: PaymentRules, now: datetime) -> None:
    row = _own_invoice(session, principal, reference)
    _catch_up(session, row, rules, now, register_sees_it=False)
    if row.status == Invoice.PAID:
        raise SeqrError(ResultCode.CANNOT_CANCEL_PAID_INVOICE, f"invoice {row.reference} is paid")
    if row.status == Invoice.PENDING_ISSUER_ACKNOWLEDGE:
        raise SeqrError(ResultCode.CANNOT_CANCEL_INVOICE_IN_PROGRESS,
                        f"invoice {row.reference} is being paid")
    if row.status == Invoice.CANCELED:
        raise SeqrError(ResultCode.INVOICE_ALREADY_CANCELED,
                        f"invoice {row.reference} is already canceled")
    row.auto_pay_at = None
    _change(row, now, Invoice.CANCELED)


def commit_reservation(session: Session, principal: Principal, reference: str | None,
                       rules: PaymentRules, now: datetime) -> None:
    row = _own_invoice(session, principal, reference)
    if row.status != Invoice.RESERVED:
        raise SeqrError(ResultCode.INVOICE_STATE_NOT_RESERVED,
                        f"invoice {row.reference} is {row.status}, not RESERVED")
    _pay(session, row, rules, now, row.payer_id, register_sees_it=True)


def _payment(session: Session, principal: Principal, ers_reference: str | None) -> Invoice:
    """The shop's payment with this ersReference, locked; 23 for any other."""
    row = None
    if ers_reference:
        stmt = select(Invoice).where(Invoice.payment_reference == ers_reference.strip())
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
        row = session.scalars(stmt).first()
    if row is None or row.reseller_id != principal.reseller_id:  # any till of the shop
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, f"no payment {ers_reference!r}")
    return row


def submit_payment_receipt(session: Session, principal: Principal, ers_reference: str | None,
                           mime_type: str | None, data: bytes | None, receipt_type: str | None,
                           rules: PaymentRules, now: datetime) -> str:
    """The register confirms it saw PAID, and attaches its receipt (`receiptData` may be
    empty or absent: certification step 5). The receipt's own ersReference, as the
    manual's example answers."""
    terminal_id = require_terminal(principal, "submitPaymentReceipt")
    row = _payment(session, principal, ers_reference)
    if row.terminal_id != terminal_id:
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, f"no payment {ers_reference!r}")
    _catch_up(session, row, rules, now, register_sees_it=True)
    if row.status != Invoice.PAID:
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE,
                        f"payment {ers_reference} was reversed: the register never polled it")
    rejected = ResultCode.REJECTED_BUSINESS_LOGIC
    limits.check_length(mime_type, limits.RECEIPT_MIME_TYPE, "receipt mimeType", rejected)
    limits.check_length(receipt_type, limits.RECEIPT_TYPE, "receiptType", rejected)
    limits.check_length(data, limits.RECEIPT_BYTES, "receiptData", rejected, "bytes")
    row.receipt_mime_type, row.receipt_type, row.receipt_data = mime_type, receipt_type, data
    row.receipt_submitted_at = now
    return allocate_reference(session, now)


def refunded_so_far(session: Session, payment_reference: str) -> Decimal:
    total = session.scalar(
        select(money_sum(Transaction.amount)).where(
            Transaction.refunded_reference == payment_reference,
            Transaction.kind == Transaction.REFUND,
        )
    )
    return -(total or Decimal(0))


def refund_payment(session: Session, principal: Principal, ers_reference: str | None,
                   invoice: InvoiceData | None, rules: PaymentRules, now: datetime) -> str:
    """A partial or full refund of a payment of the caller's shop; the refund's ersReference."""
    row = _payment(session, principal, ers_reference)
    _catch_up(session, row, rules, now, register_sees_it=True)
    if row.status != Invoice.PAID:
        raise SeqrError(ResultCode.INVALID_ERS_REFERENCE,
                        f"payment {ers_reference} was reversed: there is nothing to refund")
    currency, amount = check_total(invoice.total if invoice else None, "refund totalAmount")
    limits.check_length(invoice.cashier_id if invoice else None, limits.CASHIER_ID,
                        "refund cashierId")
    if currency != row.currency:
        raise SeqrError(ResultCode.INVALID_INVOICE_DATA,
                        f"the refund is in {currency}, the payment was in {row.currency}")
    already = refunded_so_far(session, row.payment_reference or "")
    if already + amount > row.total_amount:
        raise SeqrError(
            ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION,
            f"{already} of {row.total_amount} {currency} already refunded; {amount} is too much",
        )
    terminal = session.get(Terminal, principal.terminal_id or row.terminal_id)
    assert terminal is not None
    refund = ledger.record_transaction(
        session, terminal, Transaction.REFUND, amount, currency,
        invoice.cashier_id if invoice else None, invoice_reference=row.reference,
        refunded_reference=row.payment_reference, at=now,
    )
    return refund.ers_reference


# --- the buyer (the simulator) --------------------------------------------------------------


def _buyer_invoice(session: Session, reference: str) -> Invoice:
    row = _locked(session, reference)
    if row is None:
        raise BuyerActionError(f"no invoice {reference}", not_found=True)
    return row


def _conflict(row: Invoice, action: str, why: str) -> BuyerActionError:
    return BuyerActionError(f"cannot {action} invoice {row.reference}: {why}", status=row.status)


#: the buyer's actions on an invoice, in the order a phone offers them
BUYER_ACTIONS = ("scan", "pay", "reserve", "fail")


def _refusal(row: Invoice, action: str, status: str) -> str | None:
    """Why the buyer may not do `action` to an invoice in `status` (None: they may)."""
    if action == "fail":
        return None if status in OPEN_STATES else f"it is {status}"
    if action == "pay" and status == Invoice.PENDING_ISSUER_ACKNOWLEDGE:
        return "the register has not acknowledged it yet (updateInvoice)"
    if status != Invoice.ISSUED:
        return f"it is {status}"
    if action == "scan":
        return None
    if action == "reserve" and row.payment_mode == IMMEDIATE_DEBIT:
        return "its payment mode is IMMEDIATE_DEBIT"
    if _awaits_acknowledgment(row):
        return "it must be scanned and acknowledged by the register first"
    if action == "pay" and row.payment_mode == RESERVATION_REQUIRED:
        return "its payment mode is RESERVATION_REQUIRED: reserve it"
    return None


def buyer_refusals(row: Invoice, rules: PaymentRules, now: datetime) -> dict[str, str | None]:
    """For each buyer action, why it would be refused now (None: it would be done). Reads
    only: a payment due for reversal counts as already CANCELED, as the action would find it."""
    status = next_poll_status(row, rules, now)
    return {action: _refusal(row, action, status) for action in BUYER_ACTIONS}


def next_poll_status(row: Invoice, rules: PaymentRules, now: datetime) -> str:
    """The status the register's next getPaymentStatus would answer (reads only)."""
    return Invoice.CANCELED if _reversal_due(row, rules, now) else row.status


def reversal_deadline(row: Invoice, rules: PaymentRules) -> datetime | None:
    """When an unpolled payment will be reversed (the 20-second rule), or None."""
    if not row.awaits_settlement or row.paid_at is None:
        return None
    return rules.reversal_at(row.paid_at)


def _check_buyer(row: Invoice, action: str) -> None:
    why = _refusal(row, action, row.status)
    if why is not None:
        raise _conflict(row, action, why)


def buyer_scan(session: Session, reference: str, rules: PaymentRules, now: datetime) -> Invoice:
    """The buyer opens the invoice on the phone."""
    row = _buyer_invoice(session, reference)
    _catch_up(session, row, rules, now, register_sees_it=False)
    _check_buyer(row, "scan")
    row.scanned_at = row.scanned_at or now
    if _awaits_acknowledgment(row):
        _change(row, now, Invoice.PENDING_ISSUER_ACKNOWLEDGE)
    return row


def buyer_pay(session: Session, reference: str, rules: PaymentRules, now: datetime,
              payer_id: str | None = None) -> Invoice:
    row = _buyer_invoice(session, reference)
    return _buyer_pays(session, row, rules, now, payer_id)


def _buyer_pays(session: Session, row: Invoice, rules: PaymentRules, now: datetime,
                payer_id: str | None) -> Invoice:
    _catch_up(session, row, rules, now, register_sees_it=False)
    _check_buyer(row, "pay")
    row.scanned_at = row.scanned_at or now
    _pay(session, row, rules, now, payer_id, register_sees_it=False)
    return row


def buyer_reserve(session: Session, reference: str, rules: PaymentRules, now: datetime,
                  payer_id: str | None = None) -> Invoice:
    row = _buyer_invoice(session, reference)
    _catch_up(session, row, rules, now, register_sees_it=False)
    _check_buyer(row, "reserve")
    row.scanned_at = row.scanned_at or now
    row.payer_id = payer_id or uuid.uuid4().hex
    row.auto_pay_at = None
    _change(row, now, Invoice.RESERVED)
    return row


def buyer_fail(session: Session, reference: str, rules: PaymentRules, now: datetime) -> Invoice:
    """The payment fails on the buyer's side (declined, phone gone)."""
    row = _buyer_invoice(session, reference)
    _catch_up(session, row, rules, now, register_sees_it=False)
    _check_buyer(row, "fail")
    row.auto_pay_at = None
    _change(row, now, Invoice.FAILED)
    return row


#: the invoices a buyer action through the till's sticker may reach, by action
_STICKER_STATES = {
    "scan": (Invoice.ISSUED,), "pay": (Invoice.ISSUED,), "reserve": (Invoice.ISSUED,),
    "fail": OPEN_STATES,
}


def _sticker_query(terminal_id: str, action: str) -> Any:
    return (
        select(Invoice)
        .where(Invoice.terminal_id == terminal_id,
               Invoice.status.in_(_STICKER_STATES[action]))
        .order_by(Invoice.created_at.desc(), Invoice.reference.desc())
        .limit(1)
    )


def sticker_invoice_of(session: Session, terminal_id: str, action: str = "pay"
                       ) -> Invoice | None:
    """Read only: the invoice scanning this terminal's sticker would reach for `action`."""
    return session.scalars(_sticker_query(terminal_id, action)).first()


def sticker_invoice(session: Session, seqr_id: str, action: str = "pay") -> str:
    """The invoice scanning the till's sticker reaches for `action`: the terminal's newest
    open one (ISSUED; for `fail` also one waiting for the register's acknowledgment)."""
    terminal = seqr_id_holder(session, seqr_id)
    if terminal is None or terminal.status != Terminal.ACTIVE:
        raise BuyerActionError(f"no terminal has SEQR ID {seqr_id}", not_found=True)
    stmt = _sticker_query(terminal.id, action).with_for_update()
    row = session.scalars(stmt.execution_options(populate_existing=True)).first()
    if row is None:
        raise BuyerActionError(f"terminal with SEQR ID {seqr_id} has no open invoice")
    return row.reference


def pay_by_seqr_id(session: Session, seqr_id: str, rules: PaymentRules, now: datetime,
                   payer_id: str | None = None) -> Invoice:
    """Scanning the till's sticker pays the terminal's newest open invoice."""
    return buyer_pay(session, sticker_invoice(session, seqr_id, "pay"), rules, now, payer_id)


# --- the clock -----------------------------------------------------------------------------


def reverse_unpolled(session: Session, rules: PaymentRules, now: datetime) -> int:
    """Reverse every payment the register has not polled in time; how many."""
    due = reversal_due(rules, now)
    if due is None:
        return 0
    stmt = select(Invoice).where(due).with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt.execution_options(populate_existing=True)))
    for row in rows:
        _reverse(row, now)
    return len(rows)


def auto_pay_due(session: Session, rules: PaymentRules, now: datetime) -> int:
    """Pay (or reserve) every open invoice whose auto-pay time has come; how many changed."""
    stmt = select(Invoice).where(Invoice.auto_pay_due(now)).with_for_update(skip_locked=True)
    changed = 0
    for row in session.scalars(stmt.execution_options(populate_existing=True)):
        if _awaits_acknowledgment(row):
            if row.scanned_at is None:
                buyer_scan(session, row.reference, rules, now)  # then wait for the register
                changed += 1
            continue
        if row.payment_mode == RESERVATION_REQUIRED:
            buyer_reserve(session, row.reference, rules, now)
        else:
            _buyer_pays(session, row, rules, now, None)
        changed += 1
    return changed
