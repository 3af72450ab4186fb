"""Closing transaction periods: what a period holds, scopes, and atomicity under concurrency."""

import threading
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.auth import Principal
from gateway.errors import SeqrError
from gateway.parameters import Parameters
from gateway.periods import mark_transaction_period
from storage.models import Transaction, TransactionPeriod
from tests.support.domain import Journal, fresh_db, new_shop, new_terminal
from tests.support.envelopes import PERIOD_RE
from wsdl.resultcodes import ResultCode


def _mark(db, principal: Principal, terminal_id: str | None = None) -> str:
    params = Parameters.of({"TERMINALID": terminal_id} if terminal_id else {})
    with db.write() as session:
        return mark_transaction_period(session, principal, params).transaction_period_id


def _references_in(db, period_public_id: str) -> set[str]:
    with db.read() as session:
        period = session.scalars(
            select(TransactionPeriod).where(TransactionPeriod.public_id == period_public_id)
        ).one()
        column = (
            Transaction.terminal_period_id if period.terminal_id else Transaction.shop_period_id
        )
        return set(session.scalars(select(Transaction.ers_reference).where(column == period.id)))


def test_a_period_holds_what_happened_since_the_previous_mark(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = new_terminal(db, owner)
    journal = Journal()
    first = {journal.add(db, till, "SALE", "10.00"), journal.add(db, till, "SALE", "5.50")}
    period_1 = _mark(db, owner)
    second = {journal.add(db, till, "REFUND", "2.00")}
    period_2 = _mark(db, owner)
    period_3 = _mark(db, owner)

    assert PERIOD_RE.match(period_1) and period_1 != period_2 != period_3
    assert _references_in(db, period_1) == first
    assert _references_in(db, period_2) == second
    assert _references_in(db, period_3) == set()


def test_shop_and_terminal_scopes_are_independent(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till_a, till_b = new_terminal(db, owner, "A"), new_terminal(db, owner, "B")
    journal = Journal()
    a1 = journal.add(db, till_a, "SALE", "1.00")
    b1 = journal.add(db, till_b, "SALE", "2.00")
    terminal_period_a = _mark(db, owner, till_a)
    a2 = journal.add(db, till_a, "SALE", "3.00")
    shop_period = _mark(db, owner)
    terminal_period_a2 = _mark(db, owner, till_a)
    terminal_period_b = _mark(db, owner, till_b)

    assert _references_in(db, terminal_period_a) == {a1}
    assert _references_in(db, terminal_period_a2) == {a2}
    assert _references_in(db, terminal_period_b) == {b1}
    assert _references_in(db, shop_period) == {a1, b1, a2}


def test_who_may_close_what(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    owner = new_shop(db, "shop-1")
    other = new_shop(db, "shop-2")
    till = new_terminal(db, owner)
    foreign_till = new_terminal(db, other)
    as_terminal = Principal("TERMINALID", "shop-1", terminal_id=till)

    assert PERIOD_RE.match(_mark(db, as_terminal, till))  # a terminal closes its own period
    for principal, terminal, code in [
        (as_terminal, None, ResultCode.ACCESS_DENIED),  # but not the shop's
        (as_terminal, foreign_till, ResultCode.ACCESS_DENIED),
        (owner, foreign_till, ResultCode.ACCESS_DENIED),  # another shop's terminal
        (owner, "0" * 32, ResultCode.INVALID_ERS_REFERENCE),  # no such terminal
    ]:
        with pytest.raises(SeqrError) as raised:
            _mark(db, principal, terminal)
        assert raised.value.code == code


def test_closing_is_atomic_under_concurrent_sales_and_marks(tmp_path: Path) -> None:
    """Every transaction lands in exactly one period per scope, and a closed period's
    content is the same later as the moment it was closed."""
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    tills = [new_terminal(db, owner, f"Till {i}") for i in range(3)]
    journal = Journal()
    closed_snapshots: dict[str, set[str]] = {}
    errors: list[Exception] = []
    done = threading.Event()

    def sell(till: str) -> None:
        try:
            for i in range(40):
                journal.add(db, till, "SALE" if i % 7 else "REFUND", f"{i + 1}.25", f"c{i % 3}")
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    def close(terminal_id: str | None) -> None:
        try:
            while not done.is_set():
                period = _mark(db, owner, terminal_id)
                closed_snapshots[period] = _references_in(db, period)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    sellers = [threading.Thread(target=sell, args=(t,)) for t in tills]
    closers = [threading.Thread(target=close, args=(t,)) for t in (None, tills[0], tills[1])]
    for thread in sellers + closers:
        thread.start()
    for thread in sellers:
        thread.join()
    done.set()
    for thread in closers:
        thread.join()
    assert not errors, errors
    final_shop = _mark(db, owner)
    closed_snapshots[final_shop] = _references_in(db, final_shop)
    for till in tills:
        period = _mark(db, owner, till)
        closed_snapshots[period] = _references_in(db, period)

    recorded = {row[3] for row in journal.rows}
    assert len(recorded) == 120
    # a closed period never changes
    for period, snapshot in closed_snapshots.items():
        assert _references_in(db, period) == snapshot
    # each transaction in exactly one shop period and one terminal period
    with db.read() as session:
        shop_periods = {
            p.public_id for p in session.scalars(
                select(TransactionPeriod).where(TransactionPeriod.terminal_id.is_(None),
                                                TransactionPeriod.public_id.is_not(None)))
        }
    shop_count = Counter(ref for p in shop_periods for ref in _references_in(db, p))
    terminal_count = Counter(
        ref for p in closed_snapshots if p not in shop_periods for ref in _references_in(db, p)
    )
    assert set(shop_count) == recorded and set(shop_count.values()) == {1}
    assert set(terminal_count) == recorded and set(terminal_count.values()) == {1}
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Transaction)) == 120


def test_period_ids_and_transaction_references_never_coincide(tmp_path: Path) -> None:
    """The period id is also the mark's ersReference: one sequence numbers them all."""
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = new_terminal(db, owner)
    journal = Journal()
    references = []
    for _ in range(5):
        references.append(journal.add(db, till, "SALE", "1.00"))
        references.append(_mark(db, owner))
        references.append(_mark(db, owner, till))
    assert len(set(references)) == len(references) == 15
    assert all(PERIOD_RE.match(r) for r in references)
