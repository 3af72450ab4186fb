"""The report job queue and worker: not-ready phase, leases, retries, final failure."""

import io
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.auth import Credentials
from gateway.background.worker import ReportWorker
from gateway.config import Settings
from gateway.errors import SeqrError
from gateway.parameters import Parameters
from gateway.reports.requests import RENDER_FAILED
from gateway.service import Gateway
from storage import jobs
from storage.models import ReportDocument, ReportJob
from tests.support.domain import Journal, fresh_db, new_shop, new_terminal
from wsdl.resultcodes import ResultCode

OWNER = Credentials("RESELLERUSER", "shop-1", "9900", "secret-pw")


def _setup(tmp_path: Path, **settings):
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = new_terminal(db, owner)
    Journal().add(db, till, "SALE", "12.34", "anna")
    config = Settings(database_url=db.url, report_delay=0, job_retry_seconds=0, **settings)
    gateway = Gateway(db, config)
    period = gateway.mark_transaction_period(OWNER, Parameters())
    return db, config, gateway, period


@dataclass(frozen=True)
class Answer:
    title: str
    content: bytes


def _ask(gateway: Gateway, period: str, report: str = "STD_RECON_003") -> Answer:
    """A ready report's title and document, read whole."""
    document = gateway.execute_report(
        OWNER, report, Parameters.of({"transactionPeriodId": period}))
    return Answer(document.title, gateway.report_content(document))


def _last_error(db) -> str:
    with db.read() as session:
        return session.scalars(select(ReportJob.last_error)).one()


def _code(call) -> ResultCode:
    with pytest.raises(SeqrError) as raised:
        call()
    return raised.value.code


def test_not_ready_until_a_worker_renders_then_always_the_same_document(tmp_path: Path) -> None:
    db, config, gateway, period = _setup(tmp_path)
    assert _code(lambda: _ask(gateway, period)) == ResultCode.REPORT_NOT_READY
    assert _code(lambda: _ask(gateway, period)) == ResultCode.REPORT_NOT_READY
    assert ReportWorker(db, config).run_once()
    first = _ask(gateway, period)
    assert first.title == f"STD_RECON_003_{period}.xml"
    assert b"<SalesAmount>12.34000</SalesAmount>" in first.content
    time.sleep(0.01)
    assert _ask(gateway, period) == first  # same bytes, same GeneratedAt
    assert not ReportWorker(db, config).run_once()  # nothing rendered twice
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ReportJob)) == 1
        assert session.scalar(select(func.count()).select_from(ReportDocument)) == 1


def test_report_delay_is_the_least_time_before_ready(tmp_path: Path) -> None:
    db, config, _, period = _setup(tmp_path)
    slow = Gateway(db, Settings(database_url=db.url, report_delay=0.5))
    assert _code(lambda: _ask(slow, period)) == ResultCode.REPORT_NOT_READY
    worker = ReportWorker(db, config)
    assert not worker.run_once()  # not claimable yet
    time.sleep(0.6)
    assert worker.run_once()
    assert _ask(slow, period).content


def test_a_dead_workers_job_is_claimed_again_after_its_lease(tmp_path: Path) -> None:
    db, config, gateway, period = _setup(tmp_path)
    _code(lambda: _ask(gateway, period))
    dead = jobs.claim_next(db, "dead-worker", lease_seconds=0.3, max_attempts=3)
    assert dead is not None
    alive = ReportWorker(db, config, name="alive")
    assert not alive.run_once()  # leased to the dead worker
    assert _code(lambda: _ask(gateway, period)) == ResultCode.REPORT_NOT_READY
    time.sleep(0.4)
    assert alive.run_once()
    document = _ask(gateway, period)
    # the dead worker coming back late cannot store a second rendering
    late = io.BytesIO(b"<late/>")
    assert not jobs.complete(db, dead, "late", "text/html", late, document_time(db))
    assert _ask(gateway, period) == document


def document_time(db):
    with db.read() as session:
        return session.scalars(select(ReportDocument.generated_at)).one()


def test_a_job_whose_workers_keep_dying_fails_with_a_reason(tmp_path: Path) -> None:
    db, config, gateway, period = _setup(tmp_path, job_max_attempts=2)
    _code(lambda: _ask(gateway, period))
    for _ in range(2):
        assert jobs.claim_next(db, "dying", lease_seconds=0.05, max_attempts=2) is not None
        time.sleep(0.1)
    assert not ReportWorker(db, config).run_once()
    with pytest.raises(SeqrError) as raised:
        _ask(gateway, period)
    assert raised.value.code == ResultCode.SYSTEM_ERROR
    assert raised.value.detail == RENDER_FAILED  # the reason is the operator's, not the wire's
    assert "WorkerLost: the worker rendering it stopped 2 times" in _last_error(db)


def test_a_failing_render_is_retried_then_answers_system_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, config, gateway, period = _setup(tmp_path, job_max_attempts=3)
    _code(lambda: _ask(gateway, period))
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise OSError("disk on fire")

    monkeypatch.setattr("gateway.background.worker.render", broken)
    worker = ReportWorker(db, config)
    for _ in range(3):
        assert worker.run_once()
    assert not worker.run_once()
    assert len(calls) == 3
    with pytest.raises(SeqrError) as raised:
        _ask(gateway, period)
    assert raised.value.code == ResultCode.SYSTEM_ERROR
    assert raised.value.detail == RENDER_FAILED and "disk" not in raised.value.description
    assert _last_error(db) == "OSError: disk on fire"


def test_a_render_that_fails_once_still_becomes_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, config, gateway, period = _setup(tmp_path)
    _code(lambda: _ask(gateway, period))
    from gateway.background import worker as worker_module

    real = worker_module.render
    failures = iter([True])

    def flaky(*args, **kwargs):
        if next(failures, False):
            raise RuntimeError("transient")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "render", flaky)
    worker = ReportWorker(db, config)
    assert worker.run_once()
    assert _code(lambda: _ask(gateway, period)) == ResultCode.REPORT_NOT_READY
    assert worker.run_once()
    assert b"12.34000" in _ask(gateway, period).content


def test_each_report_and_terminal_is_its_own_job(tmp_path: Path) -> None:
    db, config, gateway, period = _setup(tmp_path)
    for report in ("STD_RECON_001", "STD_RECON_002", "STD_RECON_003", "STD_RECON_004"):
        _code(lambda report=report: _ask(gateway, period, report))
    worker = ReportWorker(db, config)
    while worker.run_once():
        pass
    titles = {_ask(gateway, period, r).title for r in ("STD_RECON_001", "STD_RECON_004")}
    assert titles == {f"STD_RECON_001_{period}.xml", f"STD_RECON_004_{period}.xml"}


def test_a_document_stored_in_many_chunks_reads_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, config, gateway, period = _setup(tmp_path)
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 64)
    _code(lambda: _ask(gateway, period))
    assert ReportWorker(db, config).run_once()
    document = _ask(gateway, period)
    with db.read() as session:
        stored = session.scalars(select(ReportDocument)).one()
        chunks = list(jobs.document_chunks(session, stored.job_id))
    assert stored.size == len(document.content) > 64
    assert len(chunks) == -(-stored.size // 64) and b"".join(chunks) == document.content
    assert document.content.endswith(b"</TransactionDetails>\n")
