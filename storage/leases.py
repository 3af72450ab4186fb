"""Claiming a queue's next due row under a lease, for one claimant only, on every backend.

Both queues (report jobs, `storage.jobs`; notificationUrl calls,
`gateway.background.notifications`) claim this way: an idle look in a read transaction (so
idle loops never queue for SQLite's write lock), then the candidate picked in a write
transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, so claimants do not queue behind each
other) and taken by a conditional UPDATE that re-checks it is still due; the one claimant
whose UPDATE changes the row has it. A claimant that dies leaves the lease to expire, and the
row falls due again.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from storage.database import Database
from storage.models import utcnow

Due = Callable[[datetime], ColumnElement[bool]]
#: the UPDATE's values that take the row (a lease), or None to pass it over this time (the
#: callback may have changed it in `session`, e.g. failed it for good)
Take = Callable[[Session, Row[Any], datetime], dict[str, Any] | None]


def claim_next(db: Database, model: Any, due: Due, take: Take, *,
               columns: Sequence[Any], order_by: Sequence[Any], tries: int = 5,
               clock: Callable[[], datetime] = utcnow) -> Row[Any] | None:
    """The claimed row (`model.id` and `columns`, as they were before the claim), or None.
    `due` and `take` are given `clock()`: real time, or the emulator's (`gateway.clock`)."""
    with db.read() as session:
        if session.scalar(select(model.id).where(due(clock())).limit(1)) is None:
            return None
    for _ in range(tries):  # lost a race with another claimant, or passed one over: look again
        with db.write() as session:
            now = clock()
            candidate = session.execute(
                select(model.id, *columns).where(due(now)).order_by(*order_by).limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if candidate is None:
                return None
            values = take(session, candidate, now)
            if values is None:
                continue
            claimed = session.execute(
                update(model).where(model.id == candidate.id, due(now)).values(**values))
            if claimed.rowcount == 1:
                return candidate
    return None
