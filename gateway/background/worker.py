"""The report worker: claims pending jobs, renders their documents, stores them.

It runs as a thread inside `seqr-gateway serve` (embedded mode) or as a process of its own
(`seqr-gateway worker`). Any number of workers may share one database.
"""

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO

from gateway.background.housekeeping import Housekeeper
from gateway.background.loop import BackgroundLoop
from gateway.clock import Clock
from gateway.config import Settings
from gateway.control import faults
from gateway.reports.render import ReportScope, render
from storage import jobs
from storage.database import Database
from storage.models import ReportJob, TransactionPeriod
from wsdl.catalog import MIME_TYPE, REPORTS

log = logging.getLogger(__name__)

_SPOOL_IN_MEMORY = 8 * 1024 * 1024


class ReportWorker(BackgroundLoop):
    def __init__(self, db: Database, settings: Settings, name: str | None = None,
                 clock: Clock | None = None) -> None:
        # the name is also the lease owner of the jobs it claims: unique across hosts
        super().__init__(
            name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            settings.worker_poll_seconds,
        )
        self.db = db
        self.settings = settings
        self.clock = clock or Clock(db)
        self.faults = faults.Faults(db)

    def run_once(self) -> bool:
        """Claim and process one job; False when there was nothing to do."""
        s = self.settings
        claim = jobs.claim_next(self.db, self.name, s.job_lease_seconds, s.job_max_attempts,
                                self.clock.now)
        if claim is None:
            return False
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as out, \
                self._holding(claim):
            started = time.perf_counter()
            try:
                title, generated_at = self._render(claim.job_id, out)
            except Exception as exc:  # a failing render must not kill the worker
                log.exception("report job %s attempt %s failed", claim.job_id, claim.attempt)
                final = jobs.fail(
                    self.db, claim, f"{type(exc).__name__}: {exc}", s.job_max_attempts,
                    retry_after=min(60.0, s.job_retry_seconds * 2 ** (claim.attempt - 1)),
                    due=self.clock.now,
                )
                if final:
                    log.error("report job %s failed for good", claim.job_id)
                return True
            size = out.tell()
            out.seek(0)
            seconds = time.perf_counter() - started
            if jobs.complete(self.db, claim, title, MIME_TYPE, out, generated_at, seconds):
                log.info("report job %s ready: %s (%d bytes)", claim.job_id, title, size)
            else:
                log.warning("report job %s: lease lost, rendering discarded", claim.job_id)
        return True

    @contextmanager
    def _holding(self, claim: jobs.Claim) -> Iterator[None]:
        """Renew the claim's lease every third of it while the job is being rendered, so a
        render longer than the lease stays with its live worker."""
        lease = self.settings.job_lease_seconds
        done = threading.Event()

        def renew() -> None:
            while not done.wait(lease / 3):
                try:
                    if not jobs.renew(self.db, claim, lease):
                        log.warning("report job %s: lease lost while rendering", claim.job_id)
                        return
                except Exception:  # the next attempt may succeed; expiry is the backstop
                    log.exception("report job %s: renewing the lease failed", claim.job_id)

        keeper = threading.Thread(target=renew, name=f"lease {claim.job_id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _render(self, job_id: int, out: IO[bytes]) -> tuple[str, datetime]:
        """Write the job's document into `out`; its title and generation time."""
        with self.db.read() as session:
            job = session.get(ReportJob, job_id)
            assert job is not None
            period = session.get(TransactionPeriod, job.period_id)
            assert period is not None and period.public_id is not None
            spec = REPORTS[job.report_id]
            hit = self.faults.hit_render(job.report_id, job.terminal_id)
            if hit is not None:
                raise faults.InjectedFailureError(f"render failed on purpose ({hit.label})")
            generated_at = self.clock.now()
            render(session, ReportScope(spec, period, job.terminal_id), generated_at, out)
            return spec.title(period.public_id), generated_at


def start_background_threads(settings: Settings) -> tuple[ReportWorker, Housekeeper]:
    """The report worker and the payments' housekeeping, as daemon threads of this process."""
    db = Database(settings.database_url)
    clock = Clock(db)
    worker = ReportWorker(db, settings, clock=clock)
    housekeeper = Housekeeper(db, settings, clock=clock)
    worker.start_thread()
    housekeeper.start_thread()
    return worker, housekeeper
