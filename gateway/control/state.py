"""The stored world as a tester sees it: emptied (reset), seeded, summarized, its invoices
listed. Reset, seed and summary take the gateway's database and the journal's
(`journal.database`), which on SQLite are two files."""

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway import clock
from gateway.config import PaymentRules
from gateway.control import fixtures, journal
from storage.database import Database
from storage.models import (
    ErsReferenceAllocation,
    FaultRule,
    Invoice,
    Notification,
    NotificationAttempt,
    PeriodScope,
    ReportDocument,
    ReportDocumentChunk,
    ReportJob,
    Reseller,
    ResellerUser,
    Terminal,
    Transaction,
    TransactionPeriod,
)

OPEN_STATES = (Invoice.ISSUED, Invoice.PENDING_ISSUER_ACKNOWLEDGE, Invoice.RESERVED)
KIND_NAMES = {Terminal.CASH_REGISTER: "cash-register", Terminal.WEBSHOP: "webshop"}


def reset(db: Database, journal_db: Database, shop: str | None = None) -> dict[str, int]:
    """Empty the state: everything (shops, payments, periods, reports, the journal, the
    fault rules, the clock back to real time), or one shop's data only. How many rows of
    each kind went. Readers of the journal settle it first (`journal.settle`)."""
    with db.write() as session:
        removed = _reset(session, shop)
    if shop is None:
        with journal_db.write() as session:
            removed["journal"] = journal.clear(session)
    return removed


def _reset(session: Session, shop: str | None) -> dict[str, int]:
    if shop is None:
        removed = {
            "notificationAttempts": _delete(session, NotificationAttempt),
            "notifications": _delete(session, Notification),
            "invoices": _delete(session, Invoice),
            "reportChunks": _delete(session, ReportDocumentChunk),
            "reports": _delete(session, ReportDocument),
            "reportJobs": _delete(session, ReportJob),
            "transactions": _delete(session, Transaction),
            "periods": _delete(session, TransactionPeriod),
            "periodScopes": _delete(session, PeriodScope),
            "terminals": _delete(session, Terminal),
            "users": _delete(session, ResellerUser),
            "shops": _delete(session, Reseller),
            "references": _delete(session, ErsReferenceAllocation),
            "faultRules": _delete(session, FaultRule),
        }
        clock.reset(session)
        return removed
    invoices = select(Invoice.reference).where(Invoice.reseller_id == shop)
    notifications = select(Notification.id).where(Notification.invoice_reference.in_(invoices))
    periods = select(TransactionPeriod.id).where(TransactionPeriod.reseller_id == shop)
    jobs = select(ReportJob.id).where(ReportJob.period_id.in_(periods))
    return {
        "notificationAttempts": _delete(session, NotificationAttempt,
                                        NotificationAttempt.notification_id.in_(notifications)),
        "notifications": _delete(session, Notification, Notification.id.in_(notifications)),
        "invoices": _delete(session, Invoice, Invoice.reseller_id == shop),
        "reportChunks": _delete(session, ReportDocumentChunk,
                                ReportDocumentChunk.job_id.in_(jobs)),
        "reports": _delete(session, ReportDocument, ReportDocument.job_id.in_(jobs)),
        "reportJobs": _delete(session, ReportJob, ReportJob.id.in_(jobs)),
        "transactions": _delete(session, Transaction, Transaction.reseller_id == shop),
        "periods": _delete(session, TransactionPeriod, TransactionPeriod.reseller_id == shop),
        "periodScopes": _delete(session, PeriodScope, PeriodScope.reseller_id == shop),
        "terminals": _delete(session, Terminal, Terminal.reseller_id == shop),
        "users": _delete(session, ResellerUser, ResellerUser.reseller_id == shop),
        "shops": _delete(session, Reseller, Reseller.id == shop),
    }


def seed(db: Database, journal_db: Database, data: dict[str, Any], rules: PaymentRules,
         real_now: datetime, *, reset_first: bool = False) -> fixtures.Seeded:
    """Load a checked fixture at the emulator's present time, everything reset first if asked
    (in the same transaction: a fixture refused leaves the world as it was)."""
    with db.write() as session:
        if reset_first:
            _reset(session, None)
        seeded = fixtures.seed(session, data, rules, clock.read_state(session).at(real_now))
    if reset_first:
        with journal_db.write() as session:
            journal.clear(session)
    return seeded


def _delete(session: Session, model: Any, *where: Any) -> int:
    return session.execute(delete(model).where(*where)).rowcount or 0


def summary(db: Database, journal_db: Database, real_now: datetime) -> dict[str, Any]:
    """Shops with their users and terminals, open invoices, and the control plane's state."""
    with journal_db.read() as session:
        journal_entries = journal.count(session, journal.Filters())
    with db.read() as session:
        return _summary(session, real_now, journal_entries)


def _summary(session: Session, real_now: datetime, journal_entries: int) -> dict[str, Any]:
    open_by_terminal = dict(session.execute(
        select(Invoice.terminal_id, func.count()).where(Invoice.status.in_(OPEN_STATES))
        .group_by(Invoice.terminal_id)).all())
    users: dict[str, list[str]] = {}
    for reseller_id, user_id in session.execute(
            select(ResellerUser.reseller_id, ResellerUser.user_id).order_by(ResellerUser.id)):
        users.setdefault(reseller_id, []).append(user_id)
    tills: dict[str, list[dict[str, Any]]] = {}
    for terminal in session.scalars(select(Terminal).order_by(Terminal.registered_at,
                                                              Terminal.id)):
        tills.setdefault(terminal.reseller_id, []).append({
            "terminalId": terminal.id, "name": terminal.name,
            "externalTerminalId": terminal.external_terminal_id, "seqrId": terminal.seqr_id,
            "kind": KIND_NAMES.get(terminal.kind, terminal.kind), "status": terminal.status,
            "openInvoices": open_by_terminal.get(terminal.id, 0),
        })
    shops = [
        {"id": shop.id, "name": shop.name, "users": users.get(shop.id, []),
         "terminals": tills.get(shop.id, []),
         "openInvoices": sum(t["openInvoices"] for t in tills.get(shop.id, []))}
        for shop in session.scalars(select(Reseller).order_by(Reseller.id))
    ]
    return {
        "shops": shops,
        "openInvoices": sum(open_by_terminal.values()),
        "journalEntries": journal_entries,
        "faultRules": session.scalar(select(func.count(FaultRule.id))) or 0,
        "clock": clock.read_state(session).as_dict(real_now),
    }


def invoices(session: Session, *, shop: str | None = None, terminal: str | None = None,
             status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest `limit` invoices that match, oldest first."""
    stmt = select(Invoice)
    if shop:
        stmt = stmt.where(Invoice.reseller_id == shop)
    if terminal:
        stmt = stmt.where(Invoice.terminal_id == terminal)
    if status:
        stmt = stmt.where(Invoice.status == status)
    rows = session.scalars(stmt.order_by(Invoice.reference.desc()).limit(limit)).all()
    return [describe_invoice(row) for row in reversed(rows)]


def describe_invoice(row: Invoice) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "invoiceReference": row.reference, "shop": row.reseller_id,
        "terminalId": row.terminal_id, "status": row.status, "version": row.version,
        "totalAmount": {"currency": row.currency, "value": str(row.total_amount)},
        "cashierId": row.cashier_id, "clientInvoiceId": row.client_invoice_id,
        "paymentMode": row.payment_mode, "acknowledgmentMode": row.acknowledgment_mode,
        "paymentReference": row.payment_reference, "createdAt": stamp(row.created_at),
        "paidAt": stamp(row.paid_at), "seenByRegisterAt": stamp(row.settled_at),
        "reversedAt": stamp(row.reversed_at), "notificationUrl": row.notification_url,
    }
