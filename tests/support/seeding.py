"""A big period bulk-inserted straight into the database.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert

from storage.database import Database
from storage.models import (
    PeriodScope,
    Transaction,
)
from storage.money import SCALE
from tests.support.traffic import Totals

TRANSACTION_COLUMNS = ("ers_reference", "kind", "reseller_id", "terminal_id", "cashier_id",
                       "amount", "currency", "committed_at", "shop_period_id",
                       "terminal_period_id", "invoice_reference", "refunded_reference")


def seed_period(db: Database, reseller_id: str, terminal_ids: list[str], count: int,
                seed: int = 4711) -> Totals:
    """`count` sales and refunds in the open shop period (and the terminals' open periods),
    bulk-inserted as benchmarks/bench_period.py does (COPY on PostgreSQL); their totals."""
    from gateway.references import ers_reference

    rng = random.Random(seed)
    with db.read() as session:
        shop_period = session.get(PeriodScope, PeriodScope.shop_key(reseller_id)).open_period_id
        till_period = {t: session.get(PeriodScope, PeriodScope.terminal_key(t)).open_period_id
                       for t in terminal_ids}
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cashiers = [f"cashier-{k}" for k in range(10)]
    amounts = []
    rows = []
    for i in range(count):
        terminal_id = terminal_ids[i % len(terminal_ids)]
        amount = Decimal(rng.randint(1, 500_000)) / 100
        refund = i % 20 == 19
        signed = -amount if refund else amount
        amounts.append(signed)
        rows.append((
            ers_reference(at, 60_000_000 + i),  # apart from the gateway's own sequence
            Transaction.REFUND if refund else Transaction.SALE, reseller_id, terminal_id,
            None if i % 10 == 3 else rng.choice(cashiers), signed, "SEK",
            at.replace(tzinfo=None), shop_period, till_period[terminal_id],
            None if refund else f"{i:013d}", None,
        ))
    with db.write() as session:
        connection = session.connection()
        if db.is_sqlite:
            connection.execute(insert(Transaction), [
                dict(zip(TRANSACTION_COLUMNS, row, strict=True)) | {"committed_at": at}
                for row in rows])
        else:
            raw = connection.connection.driver_connection
            columns = ", ".join(TRANSACTION_COLUMNS)
            with raw.cursor() as cursor, cursor.copy(
                    f"COPY transactions ({columns}) FROM STDIN") as copy_in:
                for row in rows:
                    scaled = int(row[5].scaleb(SCALE))  # storage.money: 10**-5 units
                    copy_in.write_row((*row[:5], scaled, *row[6:]))
    return Totals.of(amounts)
