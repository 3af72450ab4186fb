"""The facts of one closed period that every back-office format is made from.

A `Period` holds SEQR's side (the detail report's rows) and, after a reconciliation, the
register's side (its journal) as `Transaction`s with a currency, plus the period's id, scope,
time span and business date. SEQR's reports name no currency: a transaction takes the one
its journal line gives, else the run's currency (`--currency`, SEK by default).

Times are UTC. A SEQR reference (ersReference, transactionPeriodId) is 25 digits starting
with its UTC timestamp `yyyyMMddHHmmssSSS`, so a transaction's time and a period's end (the
moment it was marked) are read from them.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

from client.journal import JournalEntry
from client.reconcile import Reconciliation
from client.reports import DetailRow, ReportDocument

ZERO = Decimal("0.00")
DEFAULT_CURRENCY = "SEK"
DEFAULT_TENDER = "SEQR"  # SEQR as a tender (Hii Retail) or payment method (Sharespine)

K = TypeVar("K", bound=Hashable)


def reference_time(reference: str | None) -> datetime | None:
    """The UTC time a 25-digit SEQR reference was made; None for anything else."""
    if reference is None or len(reference) != 25 or not reference.isdigit():
        return None
    try:
        stamp = datetime.strptime(reference[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return stamp.replace(microsecond=int(reference[14:17]) * 1000, tzinfo=UTC)


@dataclass(frozen=True)
class Transaction:
    """A sale (positive amount) or a refund (negative), on either side."""

    ers_reference: str
    terminal_id: str
    cashier_id: str | None
    amount: Decimal
    currency: str

    @property
    def is_refund(self) -> bool:
        return self.amount < 0

    @property
    def kind(self) -> str:
        return "refund" if self.is_refund else "sale"

    @property
    def time(self) -> datetime | None:
        return reference_time(self.ers_reference)


@dataclass(frozen=True)
class Flow:
    """Sales and refunds of a group: counts, amounts (refunds negative, as SEQR prints
    them) and the net."""

    sales_count: int = 0
    sales_amount: Decimal = ZERO
    refund_count: int = 0
    refund_amount: Decimal = ZERO

    def add(self, amount: Decimal) -> "Flow":
        if amount < 0:
            return Flow(self.sales_count, self.sales_amount, self.refund_count + 1,
                        self.refund_amount + amount)
        return Flow(self.sales_count + 1, self.sales_amount + amount, self.refund_count,
                    self.refund_amount)

    @property
    def count(self) -> int:
        return self.sales_count + self.refund_count

    @property
    def net(self) -> Decimal:
        return self.sales_amount + self.refund_amount

    def minus(self, other: "Flow") -> "Flow":
        """self - other, field by field (actual minus expected)."""
        return Flow(self.sales_count - other.sales_count,
                    self.sales_amount - other.sales_amount,
                    self.refund_count - other.refund_count,
                    self.refund_amount - other.refund_amount)


def total(transactions: Iterable[Transaction]) -> Flow:
    flow = Flow()
    for transaction in transactions:
        flow = flow.add(transaction.amount)
    return flow


def flows(transactions: Iterable[Transaction], key: Callable[[Transaction], K]
          ) -> dict[K, Flow]:
    """The flow of each group of `transactions`, by `key`."""
    groups: dict[K, Flow] = defaultdict(Flow)
    for transaction in transactions:
        k = key(transaction)
        groups[k] = groups[k].add(transaction.amount)
    return dict(groups)


@dataclass(frozen=True)
class Period:
    """One closed SEQR period: its rows, the journal's when reconciled, and its facts."""

    period_id: str
    shop_id: str | None  # the report's ResellerId
    terminal_id: str | None  # None: the whole shop
    report_id: str
    start: datetime | None  # None: not known here (since the previous mark of the scope)
    end: datetime | None
    business_date: date
    currency: str  # the run's currency
    seqr: tuple[Transaction, ...]
    register: tuple[Transaction, ...] | None  # None: no journal (an export)
    reconciliation: Reconciliation | None = None

    @property
    def scope(self) -> str:
        return f"terminal {self.terminal_id}" if self.terminal_id else "shop"

    @property
    def currencies(self) -> list[str]:
        found = {t.currency for t in self.seqr} | {t.currency for t in self.register or ()}
        return sorted(found or {self.currency})

    def journal_side(self) -> tuple[Transaction, ...]:
        if self.register is None:
            raise ValueError("this period has no journal: reconcile it first")
        return self.register


def period_facts(report: ReportDocument, reconciliation: Reconciliation | None = None, *,
                 currency: str = DEFAULT_CURRENCY, start: datetime | None = None,
                 end: datetime | None = None, business_date: date | None = None,
                 now: datetime | None = None) -> Period:
    """The `Period` of a detail `report`, with the journal's side when `reconciliation` is
    given. `end` defaults to the moment the period was marked (its id's timestamp),
    `business_date` to the UTC date of the end."""
    if not report.kind.details:
        raise ValueError(f"{report.report_id} is a summary; the back-office formats need a "
                         "detail report (STD_RECON_003 or STD_RECON_007)")
    currency = currency.upper()
    if reconciliation is not None:
        entries: tuple[JournalEntry, ...] | None = reconciliation.entries
        rows: tuple[DetailRow, ...] = reconciliation.rows
        terminal_id = reconciliation.terminal_id
    else:
        entries, rows, terminal_id = None, report.details, report.terminal_id
    journal_currency = {e.ers_reference: e.currency for e in entries or () if e.currency}
    seqr = tuple(Transaction(r.ers_reference, r.terminal_id, r.cashier_id, r.amount,
                             journal_currency.get(r.ers_reference, currency)) for r in rows)
    register = None if entries is None else tuple(
        Transaction(e.ers_reference, e.terminal_id, e.cashier_id, e.amount,
                    e.currency or currency) for e in entries)
    end = end or reference_time(report.period_id)
    if start is not None and end is not None and not start < end:
        raise ValueError(f"the period starts ({start.isoformat()}) at or after its end "
                         f"({end.isoformat()})")
    return Period(
        period_id=report.period_id or "", shop_id=report.reseller_id,
        terminal_id=terminal_id, report_id=report.report_id, start=start, end=end,
        business_date=business_date or (end or now or datetime.now(UTC)).date(),
        currency=currency, seqr=seqr, register=register, reconciliation=reconciliation,
    )


def iso_utc(moment: datetime, *, milliseconds: bool = False) -> str:
    """`2026-05-21T09:12:15Z` (or `.301Z` with milliseconds): UTC, as JSON formats want."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if milliseconds:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"
