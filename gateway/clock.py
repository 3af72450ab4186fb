"""The emulator's clock: real UTC time, unless a tester froze, set or advanced it.

Every rule that depends on time (the 20-second rule, auto-pay, report delays, paymentDate,
period and reference stamps, GeneratedAt) takes its `now` from a `Clock`. The clock's state
is one database row (`control_state`), so every gateway and worker process on the database
keeps the same time. A process rereads it at most every `REFRESH_SECONDS`; whoever changes it
(`/admin/clock`, `seqr-gateway clock`) waits that long before answering, so that by then every
process uses the new time.

While it runs the clock is real time plus an offset (0 unless advanced or set); frozen, it
stands at one instant until it is set, advanced or resumed (resuming runs on from there).
Job leases and the request journal's timestamps stay on real time.
"""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from storage.database import Database
from storage.models import ControlState, utcnow

REFRESH_SECONDS = 0.05
_ROW_ID = 1


@dataclass(frozen=True)
class ClockState:
    frozen_at: datetime | None = None
    offset_seconds: float = 0.0

    def at(self, real: datetime) -> datetime:
        """The emulator's time when the real time is `real`."""
        if self.frozen_at is not None:
            return self.frozen_at
        if self.offset_seconds:
            return real + timedelta(seconds=self.offset_seconds)
        return real

    @property
    def is_real(self) -> bool:
        return self.frozen_at is None and not self.offset_seconds

    def as_dict(self, real: datetime) -> dict[str, object]:
        return {
            "now": self.at(real).isoformat(), "realNow": real.isoformat(),
            "frozen": self.frozen_at is not None, "offsetSeconds": self.offset_seconds,
            "virtual": not self.is_real,
        }


def read_state(session: Session) -> ClockState:
    row = session.get(ControlState, _ROW_ID)
    if row is None:
        return ClockState()
    return ClockState(row.clock_frozen_at, row.clock_offset_seconds or 0.0)


def _store(session: Session, state: ClockState) -> ClockState:
    row = session.get(ControlState, _ROW_ID, with_for_update=True)
    if row is None:
        row = ControlState(id=_ROW_ID)
        session.add(row)
    row.clock_frozen_at = state.frozen_at
    row.clock_offset_seconds = state.offset_seconds
    row.updated_at = utcnow()
    session.flush()
    return state


def _locked_state(session: Session) -> ClockState:
    row = session.get(ControlState, _ROW_ID, with_for_update=True)
    return ClockState() if row is None else ClockState(row.clock_frozen_at,
                                                         row.clock_offset_seconds or 0.0)


def freeze(session: Session) -> ClockState:
    """Stop the clock at its present time."""
    state = _locked_state(session)
    return _store(session, ClockState(state.at(utcnow()), state.offset_seconds))


def set_time(session: Session, at: datetime) -> ClockState:
    """Make it `at` now: a frozen clock stays frozen there, a running one runs on from it."""
    if at.tzinfo is None:
        raise ValueError("give the time with its UTC offset, e.g. 2026-05-21T09:12:00Z")
    state = _locked_state(session)
    if state.frozen_at is not None:
        return _store(session, ClockState(at, state.offset_seconds))
    return _store(session, ClockState(None, (at - utcnow()).total_seconds()))


def advance(session: Session, seconds: float) -> ClockState:
    """Move the clock forward (or back, with a negative number) by `seconds`."""
    state = _locked_state(session)
    if state.frozen_at is not None:
        return _store(session, ClockState(state.frozen_at + timedelta(seconds=seconds),
                                          state.offset_seconds))
    return _store(session, ClockState(None, state.offset_seconds + seconds))


def resume(session: Session) -> ClockState:
    """Let a frozen clock run again from where it stands."""
    state = _locked_state(session)
    if state.frozen_at is None:
        return state
    return _store(session, ClockState(None, (state.frozen_at - utcnow()).total_seconds()))


def reset(session: Session) -> ClockState:
    """Back to real time."""
    return _store(session, ClockState())


def change(session: Session, action: str, *, seconds: float | None = None,
           at: datetime | None = None) -> ClockState:
    """One change by its name, as the admin API, the console and the CLI ask for it:
    freeze, resume, reset, advance (by `seconds`) or set (to `at`). ValueError says what is
    missing or unknown."""
    if action == "freeze":
        return freeze(session)
    if action == "resume":
        return resume(session)
    if action == "reset":
        return reset(session)
    if action == "advance":
        if seconds is None:
            raise ValueError("advance needs seconds (a number)")
        return advance(session, seconds)
    if action == "set":
        if at is None:
            raise ValueError("set needs a time")
        return set_time(session, at)
    raise ValueError("action must be freeze, set, advance, resume or reset")


class Clock:
    """`now()` for one process: the stored state, reread at most every `refresh` seconds."""

    def __init__(self, db: Database, refresh: float = REFRESH_SECONDS) -> None:
        self.db = db
        self.refresh = refresh
        self._state = ClockState()
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def state(self) -> ClockState:
        if time.monotonic() >= self._valid_until:
            with self._lock:
                started = time.monotonic()  # whatever was committed before this is seen
                if started >= self._valid_until:
                    with self.db.read() as session:
                        self._state = read_state(session)
                    self._valid_until = started + self.refresh
        return self._state

    def now(self) -> datetime:
        return self.state().at(utcnow())


def settle() -> None:
    """Wait until every process has reread the state changed just now (see the module doc)."""
    time.sleep(REFRESH_SECONDS)
