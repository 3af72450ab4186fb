"""The report job queue: enqueue once, claim under a lease, complete or fail.

Claiming is `storage.leases.claim_next`: a conditional UPDATE that succeeds for one worker
only, whatever the backend. A worker that dies leaves its lease to expire; the job is then
claimed again. Completion is accepted only from the current lease holder, and the document
table allows one document per job, so at most one rendering is ever stored.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.database import Database, stream_rows
from storage.leases import claim_next as claim_lease
from storage.models import ReportDocument, ReportDocumentChunk, ReportJob, utcnow

CHUNK_BYTES = 1024 * 1024
#: `last_error` is "<kind>: <message>", the kind an exception class name or this
WORKER_LOST = "WorkerLost"


def error_kind(last_error: str | None) -> str:
    """The kind of a stored failure ("OverflowError", "WorkerLost"), for /metrics."""
    kind = (last_error or "").split(":", 1)[0].strip()
    return kind if kind.isidentifier() else "unknown"


@dataclass(frozen=True)
class Claim:
    job_id: int
    owner: str
    attempt: int


def job_key(report_id: str, period_id: int, terminal_id: str | None) -> str:
    return f"{report_id}:{period_id}:{terminal_id or '-'}"


def find_job(session: Session, key: str) -> ReportJob | None:
    return session.scalar(select(ReportJob).where(ReportJob.job_key == key))


def enqueue(
    session: Session,
    report_id: str,
    period_id: int,
    terminal_id: str | None,
    not_before: datetime,
) -> ReportJob:
    """The job for this request: the existing one, or a new PENDING one."""
    key = job_key(report_id, period_id, terminal_id)
    existing = find_job(session, key)
    if existing is not None:
        return existing
    job = ReportJob(
        job_key=key,
        report_id=report_id,
        period_id=period_id,
        terminal_id=terminal_id,
        status=ReportJob.PENDING,
        not_before=not_before,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:  # another request queued it first
        found = find_job(session, key)
        assert found is not None
        return found
    return job


def _claimable(now: datetime, due: datetime):  # type: ignore[no-untyped-def]
    return or_(
        and_(ReportJob.status == ReportJob.PENDING, ReportJob.not_before <= due),
        and_(ReportJob.status == ReportJob.RUNNING, ReportJob.lease_expires_at < now),
    )


def claim_next(db: Database, owner: str, lease_seconds: float, max_attempts: int,
               due: Callable[[], datetime] = utcnow) -> Claim | None:
    """Take the oldest claimable job, or None. Jobs whose workers died too often fail.

    A pending job is due when its `not_before` has come by `due()` (the emulator's clock);
    leases are real time, so that moving the clock never takes a job from a live worker."""

    def claimable(now: datetime):  # type: ignore[no-untyped-def]
        return _claimable(now, due())

    def take(session: Session, job: Row[Any], now: datetime) -> dict[str, Any] | None:
        if job.status == ReportJob.RUNNING and job.attempts >= max_attempts:
            session.execute(
                update(ReportJob)
                .where(ReportJob.id == job.id, claimable(now))
                .values(status=ReportJob.FAILED, finished_at=now,
                        last_error=f"{WORKER_LOST}: the worker rendering it stopped "
                        f"{job.attempts} times")
            )
            return None
        return {"status": ReportJob.RUNNING, "lease_owner": owner,
                "lease_expires_at": now + timedelta(seconds=lease_seconds),
                "attempts": ReportJob.attempts + 1}

    job = claim_lease(db, ReportJob, claimable, take,
                      columns=(ReportJob.status, ReportJob.attempts), order_by=(ReportJob.id,))
    return None if job is None else Claim(job.id, owner, job.attempts + 1)


def waiting_jobs(session: Session) -> tuple[int, float]:
    """How many jobs wait (pending or being rendered), and the oldest one's age in seconds."""
    count, since = session.execute(
        select(func.count(), func.min(ReportJob.created_at))
        .where(ReportJob.status.in_((ReportJob.PENDING, ReportJob.RUNNING)))
    ).one()
    return count, (utcnow() - since).total_seconds() if since is not None else 0.0


def renew(db: Database, claim: Claim, lease_seconds: float) -> bool:
    """Extend the lease of a job still being rendered; False when it was lost meanwhile."""
    with db.write() as session:
        renewed = session.execute(
            update(ReportJob).where(_owned(claim))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
    return renewed.rowcount == 1


def _owned(claim: Claim):  # type: ignore[no-untyped-def]
    return and_(
        ReportJob.id == claim.job_id,
        ReportJob.status == ReportJob.RUNNING,
        ReportJob.lease_owner == claim.owner,
    )


def complete(
    db: Database, claim: Claim, title: str, mime_type: str, content: IO[bytes],
    generated_at: datetime, render_seconds: float | None = None,
) -> bool:
    """Store the document read from `content` if the claim still holds, a chunk at a time;
    False if the lease was lost meanwhile."""
    with db.write() as session:
        done = session.execute(
            update(ReportJob)
            .where(_owned(claim))
            .values(status=ReportJob.DONE, finished_at=utcnow(), last_error=None,
                    render_seconds=render_seconds)
        )
        if done.rowcount != 1:
            return False
        document = ReportDocument(
            job_id=claim.job_id, title=title, mime_type=mime_type, size=0,
            generated_at=generated_at,
        )
        session.add(document)
        session.flush()
        seq = 0
        while chunk := content.read(CHUNK_BYTES):
            session.execute(
                insert(ReportDocumentChunk), {"job_id": claim.job_id, "seq": seq, "data": chunk}
            )
            document.size += len(chunk)
            seq += 1
    return True


def fail(db: Database, claim: Claim, error: str, max_attempts: int, retry_after: float,
         due: Callable[[], datetime] = utcnow) -> bool:
    """Record a failed attempt: back to PENDING `retry_after` seconds later by `due()`, or
    FAILED for good. `error` ("<ExceptionClass>: <message>") stays in the database and never
    goes on the wire.

    Returns True when the job has failed for good.
    """
    now = due()
    final = claim.attempt >= max_attempts
    values: dict[str, object] = {"last_error": error[:2000], "lease_owner": None}
    if final:
        values.update(status=ReportJob.FAILED, finished_at=now)
    else:
        values.update(
            status=ReportJob.PENDING, not_before=now + timedelta(seconds=retry_after)
        )
    with db.write() as session:
        session.execute(update(ReportJob).where(_owned(claim)).values(**values))
    return final


def document_of(session: Session, job_id: int) -> ReportDocument | None:
    return session.get(ReportDocument, job_id)


def document_chunks(session: Session, job_id: int) -> Iterator[bytes]:
    """The stored document's bytes, in order, a chunk at a time (one per round trip, in
    PostgreSQL's binary format: a quarter of the time of hex text)."""
    stmt = (
        select(ReportDocumentChunk.data)
        .where(ReportDocumentChunk.job_id == job_id)
        .order_by(ReportDocumentChunk.seq)
    )
    for rows in stream_rows(session, stmt, 1, binary=True):
        yield bytes(rows[0][0])
