"""Invoices as plain data: what a register sends, how it is checked, how it is kept.

The SOAP layer turns the contract's `invoice` into an `InvoiceData`; the payment rules
only ever see these types. Money is `Decimal` throughout.
"""

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from gateway import limits
from gateway.errors import SeqrError
from storage.money import SCALE as MAX_DECIMALS  # what storage keeps exactly, reports print
from wsdl.resultcodes import ResultCode

# the contract's paymentMode: pay at once, let the buyer reserve, or make the buyer reserve
IMMEDIATE_DEBIT = "IMMEDIATE_DEBIT"
RESERVATION_DESIRED = "RESERVATION_DESIRED"
RESERVATION_REQUIRED = "RESERVATION_REQUIRED"
PAYMENT_MODES = (IMMEDIATE_DEBIT, RESERVATION_DESIRED, RESERVATION_REQUIRED)
# the contract's acknowledgmentMode: REQUIRE_ACKNOWLEDGMENT holds a scanned invoice until
# the register acknowledges it (updateInvoice)
NO_ACKNOWLEDGMENT = "NO_ACKNOWLEDGMENT"
OPTIONAL_ACKNOWLEDGMENT = "OPTIONAL_ACKNOWLEDGMENT"
REQUIRE_ACKNOWLEDGMENT = "REQUIRE_ACKNOWLEDGMENT"
ACKNOWLEDGMENT_MODES = (NO_ACKNOWLEDGMENT, OPTIONAL_ACKNOWLEDGMENT, REQUIRE_ACKNOWLEDGMENT)
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
#: invoice totals stay below this, so one stored amount (a 64-bit integer of 10**-5 units)
#: cannot overflow; sums of any number of them are exact (`storage.money.money_sum`)
MAX_TOTAL = Decimal(10) ** 12

#: What an invoice sent without `acknowledgmentMode` gets. SEQR's FAQ: after moving from
#: `/extclientproxy/service` to the v2 endpoints, a register that sent no mode left the
#: buyer's app at "waiting for amount..." until it sent NO_ACKNOWLEDGMENT. On v2 an omitted
#: mode waited for the register's acknowledgment; every endpoint served here is v2.
OMITTED_ACKNOWLEDGMENT_MODE = REQUIRE_ACKNOWLEDGMENT
OMITTED_ACKNOWLEDGMENT_MODE_NOTE = (
    "omitted; on the v2 endpoints that means REQUIRE_ACKNOWLEDGMENT, as on the real service: "
    "a scanned invoice waits in PENDING_ISSUER_ACKNOWLEDGE (the buyer's app at \"waiting for "
    "amount...\") until the register acknowledges it with updateInvoice; send "
    "NO_ACKNOWLEDGMENT to be paid at once"
)


@dataclass(frozen=True)
class Amount:
    currency: str | None = None
    value: Decimal | None = None


@dataclass(frozen=True)
class InvoiceRow:
    description: str | None = None
    discount: Amount | None = None
    ean: str | None = None
    quantity: Decimal | None = None
    sku: str | None = None
    tax_rate: Decimal | None = None
    total: Amount | None = None
    unit: str | None = None
    unit_price: Amount | None = None


@dataclass(frozen=True)
class InvoiceData:
    payment_mode: str | None = None
    acknowledgment_mode: str | None = None
    issue_date: datetime | None = None
    title: str | None = None
    client_invoice_id: str | None = None
    rows: tuple[InvoiceRow, ...] = field(default_factory=tuple)
    total: Amount | None = None
    cashier_id: str | None = None
    footer: str | None = None
    back_url: str | None = None
    notification_url: str | None = None

    @property
    def effective_payment_mode(self) -> str:
        return self.payment_mode or IMMEDIATE_DEBIT

    @property
    def effective_acknowledgment_mode(self) -> str:
        return self.acknowledgment_mode or OMITTED_ACKNOWLEDGMENT_MODE

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_encode, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "InvoiceData":
        raw = json.loads(text)
        return cls(
            payment_mode=raw["payment_mode"],
            acknowledgment_mode=raw["acknowledgment_mode"],
            issue_date=datetime.fromisoformat(raw["issue_date"]) if raw["issue_date"] else None,
            title=raw["title"],
            client_invoice_id=raw["client_invoice_id"],
            rows=tuple(_row(r) for r in raw["rows"]),
            total=_amount(raw["total"]),
            cashier_id=raw["cashier_id"],
            footer=raw["footer"],
            back_url=raw["back_url"],
            notification_url=raw["notification_url"],
        )


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decimal(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def _amount(raw: dict[str, Any] | None) -> Amount | None:
    return Amount(raw["currency"], _decimal(raw["value"])) if raw is not None else None


def _row(raw: dict[str, Any]) -> InvoiceRow:
    return InvoiceRow(
        description=raw["description"], discount=_amount(raw["discount"]), ean=raw["ean"],
        quantity=_decimal(raw["quantity"]), sku=raw["sku"], tax_rate=_decimal(raw["tax_rate"]),
        total=_amount(raw["total"]), unit=raw["unit"], unit_price=_amount(raw["unit_price"]),
    )


def _invalid(detail: str) -> SeqrError:
    return SeqrError(ResultCode.INVALID_INVOICE_DATA, detail)


def _check_decimals(value: Decimal, what: str) -> None:
    try:
        exponent = value.as_tuple().exponent
    except InvalidOperation:  # pragma: no cover - Decimal from the parser is finite
        raise _invalid(f"{what} is not a number") from None
    if not value.is_finite() or (isinstance(exponent, int) and -exponent > MAX_DECIMALS):
        raise _invalid(f"{what} {value} has more than {MAX_DECIMALS} decimals")


def check_total(total: Amount | None, what: str = "totalAmount") -> tuple[str, Decimal]:
    """A positive amount in a 3-letter currency: its (currency, value)."""
    if total is None or total.value is None:
        raise _invalid(f"{what} is missing")
    if total.currency is None or not CURRENCY_RE.match(total.currency):
        raise _invalid(f"{what} currency {total.currency!r} is not an ISO 4217 code")
    _check_decimals(total.value, what)
    if total.value <= 0:
        raise _invalid(f"{what} must be more than 0, not {total.value}")
    return total.currency, total.value


def check_sizes(invoice: InvoiceData) -> None:
    """Every field and the rows within their limits (`gateway.limits`), else 49 (64 for a
    notificationUrl) naming the field and its limit."""
    limits.check_count(len(invoice.rows), limits.INVOICE_ROWS, "invoiceRows")
    limits.check_length(invoice.cashier_id, limits.CASHIER_ID, "cashierId")
    limits.check_length(invoice.client_invoice_id, limits.CLIENT_INVOICE_ID, "clientInvoiceId")
    limits.check_length(invoice.title, limits.INVOICE_TEXT, "title")
    limits.check_length(invoice.footer, limits.INVOICE_TEXT, "footer")
    limits.check_length(invoice.back_url, limits.URL, "backURL")
    limits.check_length(invoice.notification_url, limits.URL, "notificationUrl",
                        ResultCode.INVALID_NOTIFICATION_URL)
    for number, row in enumerate(invoice.rows, start=1):
        for name, value in (("itemDescription", row.description), ("itemEAN", row.ean),
                            ("itemSKU", row.sku), ("itemUnit", row.unit)):
            limits.check_length(value, limits.ROW_TEXT, f"invoiceRow {number} {name}")


def validate(invoice: InvoiceData | None) -> InvoiceData:
    """The invoice if it can be paid; else 49 INVALID_INVOICE_DATA or 64 (notificationUrl)."""
    if invoice is None:
        raise _invalid("invoice is missing")
    check_sizes(invoice)
    currency, total = check_total(invoice.total)
    if total >= MAX_TOTAL:
        raise _invalid(f"totalAmount {total} is too large: it must be less than {MAX_TOTAL}")
    for number, row in enumerate(invoice.rows, start=1):
        what = f"invoiceRow {number}"
        if row.quantity is not None and (not row.quantity.is_finite() or row.quantity <= 0):
            raise _invalid(f"{what} itemQuantity must be more than 0")
        for name, amount in (
            ("itemTotalAmount", row.total), ("itemUnitPrice", row.unit_price),
            ("itemDiscount", row.discount),
        ):
            if amount is None:
                continue
            if amount.currency is not None and amount.currency != currency:
                raise _invalid(
                    f"{what} {name} is in {amount.currency}, the invoice in {currency}"
                )
            if amount.value is not None:
                _check_decimals(amount.value, f"{what} {name}")
    if invoice.notification_url is not None and invoice.notification_url.strip():
        # an empty <notificationUrl/> (as some generated clients send) means no URL
        parts = urlsplit(invoice.notification_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SeqrError(
                ResultCode.INVALID_NOTIFICATION_URL,
                f"notificationUrl {invoice.notification_url!r} is not an http(s) URL",
            )
    return invoice
