"""Sharespine Integration Platform records of a SEQR period (record types after Sharespine's
"Record types" documentation, the project's seed `004_d9146e694ff3a41b.txt`).

- **Z reports**: a cash register's daily taking. One per cash register (terminal) and
  business day (the UTC date of each transaction) and currency: sales and returns
  aggregated (count and amount), the same per payment method (`salesPayments`,
  `returnsRefunds`), rounding none. Made from the register's journal after a
  reconciliation (what the register took), from SEQR's rows in an export.
- **Settlement report**: the period at the payment provider: `paidPerPaymentMethod`
  (customer to PSP) and `refundedPerPaymentMethod` (PSP to customer), from SEQR's rows.
  `depositedPerPaymentMethod` and `creditedPerPaymentMethod` are left out: SEQR's reports
  say nothing about payouts.
- **Payment transaction events**: `payment` per SEQR sale, `refund` per refund, with
  `eventTime` (the time in its ersReference), `amount` and `correlationId` (the
  ersReference), shaped as the seed's event examples.

Money is Sharespine's `{"currency": "SEK", "amount": "100.00"}`, the amount a string,
positive (the record type says which way the money went).
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from client.backoffice.period import (
    DEFAULT_TENDER,
    Period,
    Transaction,
    flows,
    iso_utc,
    total,
)
from client.reconcile import money as money_text

DEFAULT_PAYMENT_METHOD = DEFAULT_TENDER


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"currency": currency, "amount": money_text(abs(amount))}


def _tally(count: int, amount: Decimal, currency: str) -> dict[str, Any]:
    return {"count": count, "amount": money(amount, currency)}


def z_reports(period: Period, *, payment_method: str = DEFAULT_PAYMENT_METHOD
              ) -> list[dict[str, Any]]:
    """The Z reports of `period`: per terminal, business day and currency."""
    source = period.register if period.register is not None else period.seqr
    days: dict[tuple[str, date, str], list[Transaction]] = defaultdict(list)
    for transaction in source:
        moment = transaction.time
        day = moment.date() if moment is not None else period.business_date
        days[(transaction.terminal_id, day, transaction.currency)].append(transaction)
    reports = []
    for (terminal, day, currency), transactions in sorted(days.items()):
        flow = total(transactions)
        reports.append({
            "cashRegister": {"id": terminal},
            "date": day.isoformat(),
            "currency": currency,
            "sales": _tally(flow.sales_count, flow.sales_amount, currency),
            "returns": _tally(flow.refund_count, flow.refund_amount, currency),
            "salesPayments": [{"paymentMethod": payment_method,
                               **_tally(flow.sales_count, flow.sales_amount, currency)}],
            "returnsRefunds": [{"paymentMethod": payment_method,
                                **_tally(flow.refund_count, flow.refund_amount, currency)}],
            "rounding": money(Decimal("0.00"), currency),
        })
    return reports


def settlement_report(period: Period, *, payment_method: str = DEFAULT_PAYMENT_METHOD
                      ) -> dict[str, Any]:
    """The settlement report of `period` from SEQR's rows, per payment method and
    currency."""
    by_currency = flows(period.seqr, lambda t: t.currency)
    paid, refunded = [], []
    for currency in sorted(by_currency):
        flow = by_currency[currency]
        paid.append({"paymentMethod": payment_method,
                     **_tally(flow.sales_count, flow.sales_amount, currency)})
        refunded.append({"paymentMethod": payment_method,
                         **_tally(flow.refund_count, flow.refund_amount, currency)})
    return {
        "settlementId": period.period_id,
        "account": period.shop_id,
        "cashRegister": {"id": period.terminal_id} if period.terminal_id else None,
        "startTime": iso_utc(period.start) if period.start else None,
        "endTime": iso_utc(period.end) if period.end else None,
        "paidPerPaymentMethod": paid,
        "refundedPerPaymentMethod": refunded,
    }


def payment_events(period: Period) -> list[dict[str, Any]]:
    """One payment transaction event per SEQR transaction of `period`, oldest first."""
    ordered = sorted(period.seqr, key=lambda t: (t.time is None, t.time or 0, t.ers_reference))
    return [{
        "type": "refund" if t.is_refund else "payment",
        "eventTime": iso_utc(t.time) if t.time else None,
        "amount": money(t.amount, t.currency),
        "correlationId": t.ers_reference,
    } for t in ordered]
