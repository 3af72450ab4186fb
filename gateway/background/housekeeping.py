"""The payment side's clock: the 20-second rule, auto-pay, and notificationUrl calls.

Runs as a thread beside the report worker (in `serve` and in `worker` processes). Each
step first looks in a read transaction, so an idle loop never queues for a write lock.
"""

import logging

from sqlalchemy import select
from sqlalchemy.sql import ColumnElement

from gateway import payments
from gateway.background import notifications
from gateway.background.loop import BackgroundLoop
from gateway.clock import Clock
from gateway.config import Settings
from storage.database import Database
from storage.models import Invoice

log = logging.getLogger(__name__)


class Housekeeper(BackgroundLoop):
    def __init__(self, db: Database, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__("housekeeping", settings.worker_poll_seconds)
        self.db = db
        self.settings = settings
        self.rules = settings.payment_rules
        self.clock = clock or Clock(db)

    def _any(self, condition: ColumnElement[bool] | None) -> bool:
        if condition is None:
            return False
        with self.db.read() as session:
            return session.scalar(select(Invoice.reference).where(condition).limit(1)) is not None

    def run_once(self) -> bool:
        """One round; True when it changed or delivered something."""
        now = self.clock.now()
        busy = False
        if self._any(payments.reversal_due(self.rules, now)):
            with self.db.write() as session:
                reversed_count = payments.reverse_unpolled(session, self.rules, self.clock.now())
            if reversed_count:
                log.info("reversed %d payment(s) the register never polled", reversed_count)
                busy = True
        if self._any(Invoice.auto_pay_due(now)):
            with self.db.write() as session:
                busy = payments.auto_pay_due(session, self.rules, self.clock.now()) > 0 or busy
        s = self.settings
        return notifications.deliver_one(self.db, s.notification_timeout,
                                         s.notification_attempts, self.clock.now) or busy
