"""Completed sales and refunds: the transactions the reconciliation reports count."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from gateway.periods import lock_scope
from gateway.references import allocate_reference
from storage.models import PeriodScope, Terminal, Transaction, utcnow


def record_transaction(
    session: Session,
    terminal: Terminal,
    kind: str,
    amount: Decimal,
    currency: str,
    cashier_id: str | None = None,
    *,
    invoice_reference: str | None = None,
    refunded_reference: str | None = None,
    ers_reference: str | None = None,
    at: datetime | None = None,
) -> Transaction:
    """Record a sale (amount > 0) or a refund (amount given > 0, stored negative).

    Stamps the transaction with the open period of its shop and of its terminal while
    holding shared locks on both scopes, so it cannot straddle a concurrent close.
    """
    if kind not in (Transaction.SALE, Transaction.REFUND):
        raise ValueError(f"unknown transaction kind {kind!r}")
    amount = Decimal(amount)
    if amount <= 0:
        raise ValueError("amount must be positive")
    shop = lock_scope(session, PeriodScope.shop_key(terminal.reseller_id), exclusive=False)
    till = lock_scope(session, PeriodScope.terminal_key(terminal.id), exclusive=False)
    now = at or utcnow()
    txn = Transaction(
        ers_reference=ers_reference or allocate_reference(session, now),
        kind=kind,
        reseller_id=terminal.reseller_id,
        terminal_id=terminal.id,
        cashier_id=cashier_id,
        amount=amount if kind == Transaction.SALE else -amount,
        currency=currency,
        committed_at=now,
        shop_period_id=shop.open_period_id,
        terminal_period_id=till.open_period_id,
        invoice_reference=invoice_reference,
        refunded_reference=refunded_reference,
    )
    session.add(txn)
    session.flush()
    return txn
