"""Building blocks for tests that use the domain modules directly, without SOAP."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select

from gateway import ledger, shops, terminals
from gateway.auth import Principal
from storage.database import Database
from storage.models import PeriodScope, Terminal, Transaction
from tests.support.databases import new_database_url


def fresh_db(tmp_path: Path, name: str = "domain") -> Database:
    """A new database with the schema, on the backend under test."""
    db = Database(new_database_url(tmp_path, name))
    db.create_schema()
    return db


def new_shop(db: Database, reseller_id: str = "shop-1") -> Principal:
    with db.write() as session:
        shops.add_reseller(session, reseller_id, "9900", "secret-pw", "Shop One")
    return Principal("RESELLERUSER", reseller_id, user_id="9900")


def new_terminal(db: Database, owner: Principal, label: str = "Till 1",
                 kind: str = Terminal.CASH_REGISTER) -> str:
    """A cash register registered by the shop, or (`Terminal.WEBSHOP`) a webshop's terminal."""
    with db.write() as session:
        if kind == Terminal.CASH_REGISTER:
            return terminals.register_terminal(session, owner, label, "till-pw", label)
        return terminals.add_terminal(session, owner.reseller_id, label, "till-pw", label, kind)


def webshop_terminal(db: Database, reseller_id: str, password: str = "till-pw",
                     name: str = "Web shop") -> str:
    """A webshop's terminal, as the operator makes it (`seqr-gateway add-terminal --webshop`):
    many invoices open at once, where a cash register keeps one."""
    with db.write() as session:
        return terminals.add_terminal(session, reseller_id, name, password, name,
                                      Terminal.WEBSHOP)


@dataclass
class Journal:
    """What a test did, to compute report totals independently of the gateway."""

    rows: list[tuple[str, str | None, Decimal, str]] = field(default_factory=list)

    def add(self, db: Database, terminal_id: str, kind: str, amount: str,
            cashier: str | None = None) -> str:
        with db.write() as session:
            terminal = session.get(Terminal, terminal_id)
            assert terminal is not None
            txn = ledger.record_transaction(
                session, terminal, kind, Decimal(amount), "SEK", cashier
            )
            signed = Decimal(amount) if kind == Transaction.SALE else -Decimal(amount)
            self.rows.append((terminal_id, cashier, signed, txn.ers_reference))
            return txn.ers_reference

    def totals(self, terminal_id: str | None = None, cashier: object = ...) -> tuple:
        """(sales count, sales total, refund count, refund total) over matching rows."""
        rows = [
            r for r in self.rows
            if (terminal_id is None or r[0] == terminal_id) and (cashier is ... or r[1] == cashier)
        ]
        sales = [r[2] for r in rows if r[2] > 0]
        refunds = [r[2] for r in rows if r[2] < 0]
        return len(sales), sum(sales, Decimal(0)), len(refunds), sum(refunds, Decimal(0))


def add_transactions(db: Database, reseller_id: str,
                     rows: list[tuple[str, str | None, Decimal]], start: datetime,
                     first_sequence: int) -> None:
    """Many transactions at once, in the open periods of their shop and terminals: (terminal,
    cashier, signed amount) each, committed 7 s apart from `start`, ersReferences numbered
    from `first_sequence`. Every value fixed, so documents over them are always the same."""
    with db.write() as session:
        scopes = {s.key: s.open_period_id for s in session.scalars(select(PeriodScope))}
        values = []
        for i, (terminal_id, cashier, amount) in enumerate(rows):
            at = start + timedelta(seconds=7 * i)
            values.append({
                "ers_reference": at.strftime("%Y%m%d%H%M%S") + f"000{first_sequence + i:08d}",
                "kind": Transaction.SALE if amount > 0 else Transaction.REFUND,
                "reseller_id": reseller_id, "terminal_id": terminal_id, "cashier_id": cashier,
                "amount": amount, "currency": "SEK", "committed_at": at,
                "shop_period_id": scopes[PeriodScope.shop_key(reseller_id)],
                "terminal_period_id": scopes[PeriodScope.terminal_key(terminal_id)],
            })
        session.execute(insert(Transaction), values)
