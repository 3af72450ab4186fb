"""Read-only views of the stored state, for the operator's web console.

Shops with their users and terminals, the newest invoices with what the buyer may do to
them, and the transaction periods of every scope. Nothing here changes anything; the rules
it shows come from their own modules (`payments.buyer_refusals`, `terminals.sticker_qr`).
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import payments, terminals
from gateway.invoices import InvoiceData, InvoiceRow
from gateway.payments import PaymentRules
from storage.models import (
    Invoice,
    PeriodScope,
    Reseller,
    ResellerUser,
    Terminal,
    Transaction,
    TransactionPeriod,
)

#: invoices the phone lists, newest first
RECENT_INVOICES = 25
#: closed periods listed per scope, newest first
RECENT_PERIODS = 10


@dataclass(frozen=True)
class InvoiceView:
    invoice: Invoice
    terminal_name: str | None
    data: InvoiceData
    #: for each buyer action (`payments.BUYER_ACTIONS`), why it would be refused, or None
    refusals: dict[str, str | None]
    #: when the register must have polled the payment, or it is reversed
    reversal_deadline: datetime | None
    #: what the register's next getPaymentStatus answers
    next_poll_status: str

    @property
    def reference(self) -> str:
        return self.invoice.reference

    @property
    def qr_text(self) -> str:
        return payments.invoice_qr(self.invoice.reference)

    @property
    def rows(self) -> tuple[InvoiceRow, ...]:
        return self.data.rows

    @property
    def open(self) -> bool:
        return self.invoice.status in payments.OPEN_STATES


@dataclass(frozen=True)
class TerminalView:
    terminal: Terminal
    #: its newest open invoice, and how many it has open
    open_invoice: Invoice | None
    open_invoices: int
    #: why scanning its sticker and paying would be refused now, or None (the invoice it
    #: pays is `payments.sticker_invoice_of`)
    sticker_refusal: str | None

    @property
    def sticker_qr(self) -> str | None:
        seqr_id = self.terminal.seqr_id
        return terminals.sticker_qr(seqr_id) if seqr_id else None


@dataclass(frozen=True)
class ShopView:
    reseller: Reseller
    user_ids: tuple[str, ...]
    terminals: tuple[TerminalView, ...]


@dataclass(frozen=True)
class PeriodView:
    period: TransactionPeriod
    transactions: int
    net_total: Decimal

    @property
    def closed(self) -> bool:
        return self.period.status == TransactionPeriod.CLOSED


@dataclass(frozen=True)
class ScopeView:
    """A shop or one of its terminals, and its periods (the open one first)."""

    reseller_id: str
    terminal: Terminal | None
    periods: tuple[PeriodView, ...]

    @property
    def label(self) -> str:
        if self.terminal is None:
            return f"Shop {self.reseller_id}"
        return f"Terminal {self.terminal.name or self.terminal.id}"


@dataclass(frozen=True)
class Counts:
    shops: int
    terminals: int
    open_invoices: int
    closed_periods: int


def counts(session: Session) -> Counts:
    def count(stmt: object) -> int:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]

    return Counts(
        shops=count(select(func.count()).select_from(Reseller)),
        terminals=count(select(func.count()).select_from(Terminal)
                        .where(Terminal.status == Terminal.ACTIVE)),
        open_invoices=count(select(func.count()).select_from(Invoice)
                            .where(Invoice.status.in_(payments.OPEN_STATES))),
        closed_periods=count(select(func.count()).select_from(TransactionPeriod)
                             .where(TransactionPeriod.status == TransactionPeriod.CLOSED)),
    )


def shops(session: Session, rules: PaymentRules, now: datetime) -> list[ShopView]:
    users: dict[str, list[str]] = {}
    for reseller_id, user_id in session.execute(
            select(ResellerUser.reseller_id, ResellerUser.user_id).order_by(ResellerUser.id)):
        users.setdefault(reseller_id, []).append(user_id)
    tills: dict[str, list[TerminalView]] = {}
    for terminal in session.scalars(select(Terminal).order_by(Terminal.registered_at,
                                                               Terminal.id)):
        tills.setdefault(terminal.reseller_id, []).append(terminal_view(session, terminal,
                                                                        rules, now))
    return [
        ShopView(reseller, tuple(users.get(reseller.id, ())), tuple(tills.get(reseller.id, ())))
        for reseller in session.scalars(select(Reseller).order_by(Reseller.created_at,
                                                                  Reseller.id))
    ]


def terminal_view(session: Session, terminal: Terminal, rules: PaymentRules,
                  now: datetime) -> TerminalView:
    open_rows = list(session.scalars(
        select(Invoice).where(Invoice.terminal_id == terminal.id,
                              Invoice.status.in_(payments.OPEN_STATES))
        .order_by(Invoice.created_at.desc(), Invoice.reference.desc())))
    if terminal.status != Terminal.ACTIVE:
        why: str | None = "the terminal is unregistered"
    elif not terminal.seqr_id:
        why = "no SEQR ID is assigned to it (assignSeqrId)"
    else:
        paid_by_sticker = payments.sticker_invoice_of(session, terminal.id)
        if paid_by_sticker is None:
            why = "it has no open invoice"
        else:
            why = payments.buyer_refusals(paid_by_sticker, rules, now)["pay"]
    return TerminalView(terminal, open_rows[0] if open_rows else None, len(open_rows), why)


def invoice_view(session: Session, invoice: Invoice, rules: PaymentRules, now: datetime,
                 terminal_name: str | None = None) -> InvoiceView:
    if terminal_name is None:
        terminal = session.get(Terminal, invoice.terminal_id)
        terminal_name = terminal.name if terminal is not None else None
    return InvoiceView(
        invoice=invoice, terminal_name=terminal_name,
        data=InvoiceData.from_json(invoice.document),
        refusals=payments.buyer_refusals(invoice, rules, now),
        reversal_deadline=payments.reversal_deadline(invoice, rules),
        next_poll_status=payments.next_poll_status(invoice, rules, now),
    )


def recent_invoices(session: Session, rules: PaymentRules, now: datetime,
                    terminal_id: str | None = None,
                    limit: int = RECENT_INVOICES) -> list[InvoiceView]:
    stmt = (select(Invoice, Terminal.name).join(Terminal, Terminal.id == Invoice.terminal_id)
            .order_by(Invoice.created_at.desc(), Invoice.reference.desc()).limit(limit))
    if terminal_id:
        stmt = stmt.where(Invoice.terminal_id == terminal_id)
    return [invoice_view(session, invoice, rules, now, name or "")
            for invoice, name in session.execute(stmt)]


def scopes(session: Session, limit: int = RECENT_PERIODS) -> list[ScopeView]:
    """Every scope (each shop, then its terminals) with its open period and newest closed ones."""
    terminals_by_id = {t.id: t for t in session.scalars(select(Terminal))}
    scope_rows = list(session.scalars(select(PeriodScope)))
    wanted: dict[str, list[TransactionPeriod]] = {}
    for scope in scope_rows:
        stmt = (select(TransactionPeriod).where(TransactionPeriod.scope_key == scope.key)
                .order_by(TransactionPeriod.id.desc()).limit(limit + 1))
        wanted[scope.key] = list(session.scalars(stmt))
    ids = [p.id for periods in wanted.values() for p in periods]
    totals = _period_totals(session, ids)
    views = []
    for scope in scope_rows:
        periods = tuple(PeriodView(p, *totals.get(p.id, (0, Decimal(0))))
                        for p in wanted[scope.key])
        terminal = terminals_by_id.get(scope.terminal_id) if scope.terminal_id else None
        views.append(ScopeView(scope.reseller_id, terminal, periods))
    views.sort(key=lambda v: (v.reseller_id, v.terminal is not None,
                              v.terminal.registered_at if v.terminal else datetime.min,
                              v.terminal.id if v.terminal else ""))
    return views


def _period_totals(session: Session, period_ids: list[int]) -> dict[int, tuple[int, Decimal]]:
    """Transactions and net total of each period (shop or terminal)."""
    totals: dict[int, tuple[int, Decimal]] = {}
    if not period_ids:
        return totals
    for column in (Transaction.shop_period_id, Transaction.terminal_period_id):
        stmt = (select(column, func.count(), func.sum(Transaction.amount))
                .where(column.in_(period_ids)).group_by(column))
        for period_id, count, total in session.execute(stmt):
            totals[period_id] = (int(count), total or Decimal(0))
    return totals


def period_view(session: Session, period: TransactionPeriod) -> PeriodView:
    count, total = _period_totals(session, [period.id]).get(period.id, (0, Decimal(0)))
    return PeriodView(period, count, total)


def closed_period(session: Session, public_id: str) -> TransactionPeriod | None:
    return session.scalar(select(TransactionPeriod).where(
        TransactionPeriod.public_id == public_id, TransactionPeriod.status ==
        TransactionPeriod.CLOSED))


def all_terminals(session: Session) -> list[Terminal]:
    return list(session.scalars(select(Terminal).order_by(Terminal.reseller_id,
                                                          Terminal.registered_at, Terminal.id)))


def shop_terminals(session: Session, reseller_id: str) -> list[Terminal]:
    return list(session.scalars(select(Terminal).where(Terminal.reseller_id == reseller_id)
                                .order_by(Terminal.registered_at, Terminal.id)))
