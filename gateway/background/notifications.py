"""Calling an invoice's notificationUrl when it is PAID: an outbox with retries.

As SEQR did ("the SEQR backend posts an invoiceReference to the URL", the webshop plugin's
README), the call is an HTTP POST of the form parameter `invoiceReference` to the URL as
the invoice gave it, its own query string kept (plugins register URLs such as
`.../notify?order=77`); the receiver then asks getPaymentStatus. Only a payment notifies: a
canceled, failed or reversed invoice never does.

A payment adds a `Notification` row in its own transaction; a background loop claims due
rows (`storage.leases.claim_next`, so one process delivers each attempt), makes the call
with a short timeout, and logs and stores every attempt. No SOAP answer waits for it.
"""

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from storage.database import Database
from storage.leases import claim_next
from storage.models import Notification, NotificationAttempt, utcnow

log = logging.getLogger(__name__)

_CLAIM_SECONDS = 60.0  # while one process calls a URL, the others leave that row alone
METHOD = "POST"


#: the form parameter naming the paid invoice
PARAMETER = "invoiceReference"


@dataclass(frozen=True)
class Due:
    notification_id: int
    url: str
    attempt: int
    invoice_reference: str


@dataclass(frozen=True)
class Outcome:
    http_status: int | None
    text: str
    duration_ms: int
    method: str = METHOD
    body: str | None = None

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def _due(now: datetime) -> ColumnElement[bool]:
    return (Notification.status == Notification.PENDING) & (Notification.next_attempt_at <= now)


def _take(session: Session, row: Row[Any], now: datetime) -> dict[str, Any]:
    return {"attempts": row.attempts + 1,
            "next_attempt_at": now + timedelta(seconds=_CLAIM_SECONDS)}


def claim_due(db: Database, clock: Callable[[], datetime] = utcnow) -> Due | None:
    """The oldest attempt due by `clock()` (the emulator's clock), claimed for this process."""
    found = claim_next(db, Notification, _due, _take,
                       columns=(Notification.url, Notification.attempts,
                                Notification.invoice_reference),
                       order_by=(Notification.next_attempt_at,), clock=clock)
    if found is None:
        return None
    return Due(found.id, found.url, found.attempts + 1, found.invoice_reference)


def call(url: str, invoice_reference: str, timeout: float) -> Outcome:
    """POST `invoiceReference=<reference>` (a form) to `url`, exactly as given."""
    started = time.monotonic()
    form = urllib.parse.urlencode({PARAMETER: invoice_reference}).encode()
    request = urllib.request.Request(
        url, data=form, method=METHOD,
        headers={"User-Agent": "seqr-emulator-notifier",
                 "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        status, text = error.code, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        status, text = None, f"{type(error).__name__}: {getattr(error, 'reason', error)}"
    return Outcome(status, text, int((time.monotonic() - started) * 1000), METHOD,
                   form.decode())


def record(db: Database, due: Due, outcome: Outcome, max_attempts: int,
           clock: Callable[[], datetime] = utcnow) -> None:
    now = clock()
    with db.write() as session:
        session.add(NotificationAttempt(
            notification_id=due.notification_id, attempted_at=now,
            http_status=outcome.http_status, outcome=outcome.text,
            duration_ms=outcome.duration_ms, method=outcome.method, body=outcome.body,
        ))
        values: dict[str, object]
        if outcome.delivered:
            values = {"status": Notification.DELIVERED, "finished_at": now}
        elif due.attempt >= max_attempts:
            values = {"status": Notification.FAILED, "finished_at": now}
        else:
            values = {"next_attempt_at": now + timedelta(seconds=2 ** (due.attempt - 1))}
        session.execute(
            update(Notification).where(Notification.id == due.notification_id).values(**values)
        )
    level = logging.INFO if outcome.delivered else logging.WARNING
    log.log(level, "notification %s attempt %s to %s: %s (%d ms)", due.notification_id,
            due.attempt, due.url, outcome.text, outcome.duration_ms)


def deliver_one(db: Database, timeout: float, max_attempts: int,
                clock: Callable[[], datetime] = utcnow) -> bool:
    """Make one due attempt; False when none was due. Retries wait on `clock`, the emulator's
    clock: with it frozen, a failed call is tried again when it is advanced."""
    due = claim_due(db, clock)
    if due is None:
        return False
    record(db, due, call(due.url, due.invoice_reference, timeout), max_attempts, clock)
    return True
