"""Typed inputs and results of the SEQR operations. Money is `Decimal`, times are UTC."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

RESELLERUSER = "RESELLERUSER"
TERMINALID = "TERMINALID"

#: invoice states after which nothing changes without the register (RESERVED: commit it)
FINAL_STATUSES = frozenset({"PAID", "CANCELED", "FAILED", "RESERVED"})


@dataclass(frozen=True)
class Principal:
    """Who calls: a shop's user (`RESELLERUSER`, id + user_id) or a till (`TERMINALID`)."""

    principal_type: str
    principal_id: str
    user_id: str | None = None

    def __str__(self) -> str:
        user = f"/{self.user_id}" if self.user_id else ""
        return f"{self.principal_type} {self.principal_id}{user}"


@dataclass(frozen=True)
class InvoiceRow:
    description: str
    total_amount: Decimal
    quantity: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    sku: str | None = None
    ean: str | None = None
    tax_rate: Decimal | None = None
    unit: str | None = None
    discount: Decimal | None = None


@dataclass(frozen=True)
class Invoice:
    """What `sendInvoice` / `updateInvoice` / `refundPayment` send. Only `amount` is needed."""

    amount: Decimal
    currency: str = "SEK"
    title: str | None = None
    cashier_id: str | None = None
    client_invoice_id: str | None = None
    payment_mode: str | None = "IMMEDIATE_DEBIT"
    #: stated, not omitted: on SEQR's v2 service an omitted mode waited for the register's
    #: acknowledgment (updateInvoice) after the scan (SEQR FAQ)
    acknowledgment_mode: str | None = "NO_ACKNOWLEDGMENT"
    rows: tuple[InvoiceRow, ...] = ()
    footer: str | None = None
    back_url: str | None = None
    notification_url: str | None = None
    issue_date: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"amount must be a Decimal, not {type(self.amount).__name__}")


@dataclass(frozen=True)
class SentInvoice:
    invoice_reference: str
    qr_code: str | None


@dataclass(frozen=True)
class Receipt:
    """The receipt of a PAID invoice."""

    terminal_id: str | None
    payment_date: datetime | None
    client_invoice_id: str | None
    invoice_reference: str | None
    payment_reference: str | None
    payer_terminal_id: str | None
    receiver_name: str | None
    amount: Decimal | None
    currency: str | None
    cashier_id: str | None
    title: str | None


@dataclass(frozen=True)
class PaymentStatus:
    invoice_reference: str
    status: str
    version: int
    ers_reference: str | None = None
    receipt: Receipt | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class ClosedPeriod:
    """The answer of `markTransactionPeriod`: the id of the period just closed."""

    period_id: str
    terminal_id: str | None  # None: the whole shop
    closed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def scope(self) -> str:
        return f"terminal {self.terminal_id}" if self.terminal_id else "shop"


@dataclass(frozen=True)
class PrincipalInfo:
    principal_id: str | None
    principal_type: str | None
    user_id: str | None
    name: str | None
    status: str | None


@dataclass(frozen=True)
class RawReport:
    """`executeReport`'s `report` as it came: the document bytes, its title and mime type."""

    title: str | None
    mime_type: str | None
    content: bytes


@dataclass(frozen=True)
class Poll:
    """One poll while waiting (for a report or a payment), for progress displays."""

    count: int
    elapsed: float
    state: str


def utc(value: datetime | None) -> datetime | None:
    """`value` in UTC; a naive time is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_decimal(value: Any) -> Decimal | None:
    """zeep gives `xs:decimal` as Decimal already; anything else goes through `str`."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))
