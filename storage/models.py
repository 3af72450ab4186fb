"""The tables, as typed SQLAlchemy 2.x models. Times are UTC; money is `Decimal` (`Money`)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import ColumnElement, and_
from sqlalchemy.types import TypeDecorator

from storage.money import Money


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, whatever the backend keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times are UTC with timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Reseller(Base):
    """A shop. Its users authenticate as RESELLERUSER principals."""

    __tablename__ = "resellers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResellerUser(Base):
    __tablename__ = "reseller_users"
    __table_args__ = (UniqueConstraint("reseller_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(200))


class Terminal(Base):
    """A terminal (TERMINALID principal): a cash register, or a webshop's terminal."""

    __tablename__ = "terminals"

    ACTIVE = "ACTIVE"
    UNREGISTERED = "UNREGISTERED"
    #: registered by the shop with registerTerminal: one live invoice at a time
    CASH_REGISTER = "CASH_REGISTER"
    #: created for a webshop by the operator (SEQR did it for webshops): many open invoices
    WEBSHOP = "WEBSHOP"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"), index=True)
    external_terminal_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    seqr_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    unregistered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16), default=CASH_REGISTER,
                                      server_default=CASH_REGISTER)

    @property
    def keeps_one_live_invoice(self) -> bool:
        return self.kind == self.CASH_REGISTER


class PeriodScope(Base):
    """What `markTransactionPeriod` closes: a whole shop or one terminal.

    The row points at the scope's open period. Recording a transaction reads the pointer
    under a shared lock and closing a period swaps it under an exclusive one, so every
    transaction lands in exactly one period of each of its two scopes.
    """

    __tablename__ = "period_scopes"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"))
    terminal_id: Mapped[str | None] = mapped_column(ForeignKey("terminals.id"))
    open_period_id: Mapped[int] = mapped_column(Integer)

    @staticmethod
    def shop_key(reseller_id: str) -> str:
        return f"shop:{reseller_id}"

    @staticmethod
    def terminal_key(terminal_id: str) -> str:
        return f"terminal:{terminal_id}"


class TransactionPeriod(Base):
    __tablename__ = "transaction_periods"

    OPEN = "OPEN"
    CLOSED = "CLOSED"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_key: Mapped[str] = mapped_column(ForeignKey("period_scopes.key"), index=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"))
    terminal_id: Mapped[str | None] = mapped_column(ForeignKey("terminals.id"))
    #: the 25-digit transactionPeriodId, given when the period is closed
    public_id: Mapped[str | None] = mapped_column(String(25), unique=True)
    status: Mapped[str] = mapped_column(String(8), default=OPEN)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Transaction(Base):
    """A completed sale or refund: what the reconciliation reports count.

    `amount` is signed: sales positive, refunds negative, as the detail reports print them.
    """

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_shop_period", "shop_period_id", "id"),
        Index("ix_transactions_terminal_period", "terminal_period_id", "id"),
    )

    SALE = "SALE"
    REFUND = "REFUND"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ers_reference: Mapped[str] = mapped_column(String(25), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"))
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.id"))
    cashier_id: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shop_period_id: Mapped[int] = mapped_column(ForeignKey("transaction_periods.id"))
    terminal_period_id: Mapped[int] = mapped_column(ForeignKey("transaction_periods.id"))
    invoice_reference: Mapped[str | None] = mapped_column(String(32))
    #: for a refund, the ersReference of the payment it refunds
    refunded_reference: Mapped[str | None] = mapped_column(String(25), index=True)


class ReportJob(Base):
    """One requested report document: queued, claimed by a worker under a lease, done or failed."""

    __tablename__ = "report_jobs"

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: report, period and terminal: one job, and so one document, per distinct request
    job_key: Mapped[str] = mapped_column(String(160), unique=True)
    report_id: Mapped[str] = mapped_column(String(32))
    period_id: Mapped[int] = mapped_column(ForeignKey("transaction_periods.id"))
    terminal_id: Mapped[str | None] = mapped_column(ForeignKey("terminals.id"))
    status: Mapped[str] = mapped_column(String(8), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: how long the stored rendering took
    render_seconds: Mapped[float | None] = mapped_column(Float)


class ReportDocument(Base):
    """The stored rendering of a job; at most one per job, never rewritten.

    Its bytes are kept in `ReportDocumentChunk` rows, so that neither storing nor reading a
    large document needs it whole in one value.
    """

    __tablename__ = "report_documents"

    job_id: Mapped[int] = mapped_column(ForeignKey("report_jobs.id"), primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    mime_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(BigInteger)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportDocumentChunk(Base):
    __tablename__ = "report_document_chunks"

    job_id: Mapped[int] = mapped_column(ForeignKey("report_documents.job_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


def compress_chunks_with_lz4(connection: Connection) -> bool:
    """On a PostgreSQL that has it (14+, built with lz4), keep document chunks lz4-compressed
    instead of the default pglz: storing a million-row report (180 MiB of XML, compressed
    about 7x either way) takes 0.3 s instead of 1.5 s. True when it was set."""
    if connection.dialect.name != "postgresql":
        return False
    available = connection.execute(text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )).scalar()
    if not available:
        return False
    connection.execute(text(
        "ALTER TABLE report_document_chunks ALTER COLUMN data SET COMPRESSION lz4"))
    return True


@event.listens_for(ReportDocumentChunk.__table__, "after_create")
def _after_create(_table: Any, connection: Connection, **_kwargs: Any) -> None:
    compress_chunks_with_lz4(connection)  # create_all() and the migrations agree


class ErsReferenceAllocation(Base):
    """A portable sequence: each row's id numbers one 25-digit ersReference."""

    __tablename__ = "ers_reference_allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invoice(Base):
    """An invoice sent by a terminal, through its lifecycle to a payment (or not)."""

    __tablename__ = "invoices"

    ISSUED = "ISSUED"
    PENDING_ISSUER_ACKNOWLEDGE = "PENDING_ISSUER_ACKNOWLEDGE"
    RESERVED = "RESERVED"
    PAID = "PAID"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    #: the contract's invoiceStatus, in the WSDL's order
    STATUSES = (ISSUED, PAID, PENDING_ISSUER_ACKNOWLEDGE, CANCELED, FAILED, RESERVED)

    reference: Mapped[str] = mapped_column(String(13), primary_key=True)
    reseller_id: Mapped[str] = mapped_column(ForeignKey("resellers.id"))
    terminal_id: Mapped[str] = mapped_column(ForeignKey("terminals.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default=ISSUED)
    #: +1 on every change the register can see; never on a plain poll
    version: Mapped[int] = mapped_column(Integer, default=1)
    payment_mode: Mapped[str] = mapped_column(String(32))
    acknowledgment_mode: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    cashier_id: Mapped[str | None] = mapped_column(String(100))
    client_invoice_id: Mapped[str | None] = mapped_column(String(200))
    notification_url: Mapped[str | None] = mapped_column(Text)
    #: the invoice as the register sent it (JSON), echoed back in the receipt
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_pay_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payer_id: Mapped[str | None] = mapped_column(String(64))
    payment_reference: Mapped[str | None] = mapped_column(String(25), unique=True)
    #: when the register learned of the payment; the sale is in the ledger from then on
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    receipt_mime_type: Mapped[str | None] = mapped_column(String(100))
    receipt_type: Mapped[str | None] = mapped_column(String(100))
    receipt_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    receipt_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The invoice's state checks, each usable on a row and in a query (`select(...).where(...)`).

    @hybrid_property
    def awaits_settlement(self) -> bool:
        """PAID, and its register has not seen it yet (no PAID poll, receipt or commit)."""
        return self.status == Invoice.PAID and self.settled_at is None

    @awaits_settlement.inplace.expression
    @classmethod
    def _awaits_settlement(cls) -> ColumnElement[bool]:
        return and_(cls.status == Invoice.PAID, cls.settled_at.is_(None))

    @hybrid_method
    def unpolled_since(self, cutoff: datetime) -> bool:
        """Paid before `cutoff` and still not seen by its register: due for reversal."""
        return bool(self.awaits_settlement and self.paid_at is not None and self.paid_at < cutoff)

    @unpolled_since.inplace.expression
    @classmethod
    def _unpolled_since(cls, cutoff: datetime) -> ColumnElement[bool]:
        return and_(cls.awaits_settlement, cls.paid_at < cutoff)

    @hybrid_method
    def auto_pay_due(self, now: datetime) -> bool:
        """Open, and its auto-pay time has come."""
        return self.status == Invoice.ISSUED and self.auto_pay_at is not None and (
            self.auto_pay_at <= now)

    @auto_pay_due.inplace.expression
    @classmethod
    def _auto_pay_due(cls, now: datetime) -> ColumnElement[bool]:
        return and_(cls.status == Invoice.ISSUED, cls.auto_pay_at <= now)


class Notification(Base):
    """An outbox entry: call an invoice's notificationUrl after its payment."""

    __tablename__ = "notifications"

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_reference: Mapped[str] = mapped_column(ForeignKey("invoices.reference"), index=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the HTTP status, or None when no answer came
    http_status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    #: the request made, as the outgoing-calls journal (/admin/notifications) shows it
    method: Mapped[str | None] = mapped_column(String(8))
    body: Mapped[str | None] = mapped_column(Text)


# --- the tester's control plane (gateway/control/, /admin/) ----------------------------------


class ControlState(Base):
    """One row (id 1): the emulator's virtual clock. No row, or neither set: real time."""

    __tablename__ = "control_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the clock stands still at this instant (None: it runs)
    clock_frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: while it runs: real UTC time plus this many seconds
    clock_offset_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(Base):
    """One SOAP exchange as the gateway saw it (the request journal). Bodies have their
    passwords masked. Only the newest `--journal-size` entries are kept."""

    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: real UTC time the request arrived
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    operation: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(200))
    principal_type: Mapped[str | None] = mapped_column(String(32))
    principal_id: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(64))
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    http_status: Mapped[int] = mapped_column(Integer)
    result_code: Mapped[int | None] = mapped_column(Integer)
    #: a SOAP fault's faultcode and faultstring, when the answer was one
    fault: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    #: the fault rule that shaped the answer, e.g. "rule 3: result_code 94"
    injected: Mapped[str | None] = mapped_column(String(200))
    #: contract deviations of the request (JSON list), as the wire layer found them
    deviations: Mapped[str | None] = mapped_column(Text)
    request: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)


class FaultRule(Base):
    """A tester's rule to make the gateway misbehave: which calls it matches, which of them
    it hits (the Nth, every Nth, the next K, by chance), and what it does to them."""

    __tablename__ = "fault_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: real UTC time after which the rule no longer applies
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    operation: Mapped[str | None] = mapped_column(String(64))
    principal_id: Mapped[str | None] = mapped_column(String(200))
    terminal_id: Mapped[str | None] = mapped_column(String(64))
    nth: Mapped[int | None] = mapped_column(Integer)
    every: Mapped[int | None] = mapped_column(Integer)
    times: Mapped[int | None] = mapped_column(Integer)
    probability: Mapped[float | None] = mapped_column(Float)
    effect: Mapped[str] = mapped_column(String(32))
    result_code: Mapped[int | None] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    delay_ms: Mapped[int | None] = mapped_column(Integer)
    hold_seconds: Mapped[float | None] = mapped_column(Float)
    #: calls that matched the rule's filters, and those it hit
    matched: Mapped[int] = mapped_column(Integer, default=0)
    fired: Mapped[int] = mapped_column(Integer, default=0)
