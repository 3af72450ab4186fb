"""Transaction periods: opening a scope's first period and closing periods atomically.

Each scope (a shop, or one terminal) always has exactly one open period, named by its
`PeriodScope` row. A transaction is stamped with the open period of its shop and of its
terminal while holding a shared lock on both scope rows (`ledger.record_transaction`);
`markTransactionPeriod` takes the scope row's exclusive lock, closes the open period and
opens the next. So a transaction committed while a mark runs lands wholly before or wholly
after it, and a closed period's content never changes: closing is O(1), whatever its size.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from gateway.auth import Principal
from gateway.errors import SeqrError
from gateway.parameters import TERMINAL_ID, Parameters
from gateway.references import allocate_reference
from storage.models import PeriodScope, Terminal, TransactionPeriod, utcnow
from wsdl.resultcodes import ResultCode


@dataclass(frozen=True)
class ClosedPeriod:
    transaction_period_id: str
    reseller_id: str
    terminal_id: str | None


def open_scope(session: Session, reseller_id: str, terminal_id: str | None = None,
               now: datetime | None = None) -> PeriodScope:
    if terminal_id:
        key = PeriodScope.terminal_key(terminal_id)
    else:
        key = PeriodScope.shop_key(reseller_id)
    scope = PeriodScope(key=key, reseller_id=reseller_id, terminal_id=terminal_id, open_period_id=0)
    session.add(scope)
    session.flush()
    scope.open_period_id = _open_period(session, key, reseller_id, terminal_id,
                                        now or utcnow())
    session.flush()
    return scope


# markTransactionPeriod is the write registers call at closing time, shop and tills at once:
# its statements are narrow and built once, none loads an ORM object.
_NEW_PERIOD = insert(TransactionPeriod)
_CLOSE_PERIOD = (
    update(TransactionPeriod)
    .where(TransactionPeriod.id == bindparam("period_id"),
           TransactionPeriod.status == TransactionPeriod.OPEN)
    .values(status=TransactionPeriod.CLOSED, closed_at=bindparam("now"),
            public_id=bindparam("new_public_id"))
)
_MOVE_SCOPE = (
    update(PeriodScope).where(PeriodScope.key == bindparam("scope"))
    .values(open_period_id=bindparam("new_period_id"))
)


def _open_period(session: Session, scope_key: str, reseller_id: str, terminal_id: str | None,
                 now: datetime) -> int:
    """A new open period of the scope; its id."""
    created = session.connection().execute(_NEW_PERIOD, {
        "scope_key": scope_key, "reseller_id": reseller_id, "terminal_id": terminal_id,
        "status": TransactionPeriod.OPEN, "opened_at": now,
    })
    return int(created.inserted_primary_key[0])


_LOCK_SCOPE = (
    select(PeriodScope.open_period_id, PeriodScope.reseller_id, PeriodScope.terminal_id)
    .where(PeriodScope.key == bindparam("key"))
    .with_for_update()
)


def lock_scope(session: Session, key: str, *, exclusive: bool) -> PeriodScope:
    """The scope row under a row lock (PostgreSQL); SQLite's write session already holds one."""
    stmt = select(PeriodScope).where(PeriodScope.key == key)
    stmt = stmt.with_for_update(read=not exclusive)
    scope = session.scalars(stmt.execution_options(populate_existing=True)).one()
    return scope


def mark_transaction_period(
    session: Session, principal: Principal, parameters: Parameters,
    now: datetime | None = None,
) -> ClosedPeriod:
    terminal_id = parameters.get(TERMINAL_ID)
    if terminal_id is None:
        if principal.is_terminal:
            raise SeqrError(
                ResultCode.ACCESS_DENIED,
                "a terminal may close only its own period: pass the TERMINALID parameter",
            )
        key = PeriodScope.shop_key(principal.reseller_id)
    else:
        terminal = session.get(Terminal, terminal_id)
        if terminal is None:
            raise SeqrError(ResultCode.INVALID_ERS_REFERENCE, f"no terminal {terminal_id}")
        if terminal.reseller_id != principal.reseller_id or (
            principal.is_terminal and principal.terminal_id != terminal_id
        ):
            raise SeqrError(ResultCode.ACCESS_DENIED, f"terminal {terminal_id} is not yours")
        key = PeriodScope.terminal_key(terminal_id)
    return close_open_period(session, key, now)


def close_open_period(session: Session, scope_key: str,
                      now: datetime | None = None) -> ClosedPeriod:
    now = now or utcnow()
    connection = session.connection()
    open_period_id, reseller_id, terminal_id = connection.execute(
        _LOCK_SCOPE, {"key": scope_key}).one()
    public_id = allocate_reference(session, now)
    closed = connection.execute(
        _CLOSE_PERIOD, {"period_id": open_period_id, "now": now, "new_public_id": public_id})
    assert closed.rowcount == 1, f"period {open_period_id} of {scope_key} was not open"
    new_period_id = _open_period(session, scope_key, reseller_id, terminal_id, now)
    connection.execute(_MOVE_SCOPE, {"scope": scope_key, "new_period_id": new_period_id})
    return ClosedPeriod(public_id, reseller_id, terminal_id)
