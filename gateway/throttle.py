"""Password guessing: failures throttled per principal, and scrypt work rationed.

Per process, by design. Every gateway process keeps its own counts in memory: recording
each failed guess in the database would make guessing a way to take SQLite's single
write lock (and a write per guess on PostgreSQL). With N gateway processes behind a load
balancer a guesser gets at most N times the allowance below before every process refuses
it; the lockout still bounds the rate to N * `max_failures` guesses per `lockout_seconds`.

- After `max_failures` failed password checks for one principal from one client address
  within `lockout_seconds`, further attempts for that principal from that address are
  refused (20) for `lockout_seconds`, without any password check. After five times as many
  failures from all addresses together, attempts from every address are refused the same
  way. `max_failures` 0 switches the throttle off (load tests).
- While refused, a password this process verified for the principal in the last few
  minutes (`passwords.remembered`) is still accepted: a register that polls every second
  keeps working while someone else guesses, as does its owner from another address.
- At most `parallel_checks` scrypt verifications run at once in a process (half its
  threads): a flood of guesses cannot occupy every thread, the rest keep serving
  registers. A check that finds no free slot within `slot_wait` answers 93 SYSTEM_BUSY.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from gateway import passwords
from gateway.errors import SeqrError
from wsdl.resultcodes import ResultCode

#: how many times more failures, from all addresses together, lock a principal for everyone
ALL_ADDRESSES_FACTOR = 5
#: principals (and addresses) tracked at once; the oldest are forgotten past this
MAX_TRACKED = 100_000
TOO_MANY = "too many failed attempts for this principal: try again later"


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class PasswordGuard:
    def __init__(self, max_failures: int = 10, lockout_seconds: float = 60.0,
                 parallel_checks: int = 4, slot_wait: float = 1.0) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.slot_wait = slot_wait
        self._slots = threading.BoundedSemaphore(max(1, parallel_checks))
        self._records: dict[tuple[str, str | None], _Record] = {}
        self._lock = threading.Lock()

    def _keys(self, principal: str, address: str | None) -> tuple[tuple[str, str | None], ...]:
        return ((principal, address), (principal, None))  # (None: from every address)

    def _limit(self, key: tuple[str, str | None]) -> int:
        return self.max_failures * (ALL_ADDRESSES_FACTOR if key[1] is None else 1)

    def locked(self, principal: str, address: str | None) -> bool:
        if self.max_failures <= 0:
            return False
        now = time.monotonic()
        with self._lock:
            return any(
                record is not None and record.locked_until > now
                for record in (self._records.get(key) for key in self._keys(principal, address))
            )

    def failed(self, principal: str, address: str | None) -> None:
        if self.max_failures <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._records) >= MAX_TRACKED:
                self._forget_oldest(now)
            for key in self._keys(principal, address):
                record = self._records.pop(key, None) or _Record()
                self._records[key] = record  # most recently failed last
                while record.failures and record.failures[0] <= now - self.lockout_seconds:
                    record.failures.popleft()
                record.failures.append(now)
                if len(record.failures) >= self._limit(key):
                    record.locked_until = now + self.lockout_seconds
                    record.failures.clear()

    def _forget_oldest(self, now: float) -> None:
        for key in list(self._records)[: max(1, MAX_TRACKED // 10)]:
            if self._records[key].locked_until <= now:
                del self._records[key]

    def check(self, principal: str, address: str | None, password: str | None,
              stored_hash: str | None) -> bool:
        """Whether `password` is the principal's (`stored_hash`; None for a principal that
        does not exist, checked against a dummy hash all the same). Raises 20 while the
        principal is locked out, 93 when no password check slot frees in time."""
        if self.locked(principal, address):
            if stored_hash is not None and passwords.remembered(password, stored_hash):
                return True
            raise SeqrError(ResultCode.AUTHENTICATION_FAILED, TOO_MANY)
        if stored_hash is not None and passwords.remembered(password, stored_hash):
            return True
        if not self._slots.acquire(timeout=self.slot_wait):
            raise SeqrError(ResultCode.SYSTEM_BUSY, "too many password checks at once: "
                            "try again")
        try:
            good = passwords.verify_password(password, stored_hash)
        finally:
            self._slots.release()
        if not good:
            self.failed(principal, address)
        return good


#: no throttle, no rationing: domain code and tests that authenticate directly
UNGUARDED = PasswordGuard(max_failures=0, parallel_checks=1_000_000)
