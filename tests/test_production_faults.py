"""Faults a production gateway lives through, each with real processes and real traffic.

(a) `kill -9` of a report worker in the middle of rendering a big report: the job stays
    claimed until its lease runs out, then another worker renders it, and the register gets
    the whole document, stored exactly once.
(b) `kill -9` of the gateway (the gunicorn master and every worker at once) while registers,
    closers and a back office are at work, then a restart on the same database and port:
    every period, job and document made before the kill is still there and answers the
    same, byte for byte; what was in flight is there wholly or not at all; the registers
    carry on, and the day still reconciles.
(c) PostgreSQL only: the connection to the database dropped (a TCP proxy between gateway
    and database closes every connection and refuses new ones) and restored while traffic
    runs. Meanwhile every SOAP request answers HTTP 200 with 94 SERVICE_UNAVAILABLE or 90
    SYSTEM_ERROR (never an HTML page, never a hang), the simulator 503, /health 503; after
    the restore the same requests succeed, and nothing is half-written.

Two more pin defects they found, now fixed: a render that outlasts its lease stays with
the live worker rendering it (the lease is renewed), and a database host that stops
answering (rather than refusing) gives 94 within seconds (a connect timeout).
"""

import os
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from storage.database import Database
from storage.models import ReportDocument, ReportDocumentChunk, ReportJob, TransactionPeriod
from tests.support.audits import (
    details,
    fetch_report,
    half_written,
    jobs_in_flight,
    reconcile,
    resolve_unsure_refunds,
    snapshot,
    summary,
)
from tests.support.databases import POSTGRESQL, Backends, new_database_url
from tests.support.envelopes import shop_context, till_context
from tests.support.processes import ProductionGateway, start_report_worker, stop_process, worker_pid
from tests.support.proxy import TcpProxy
from tests.support.seeding import seed_period
from tests.support.servers import Shop, make_shop
from tests.support.soap_session import (
    DATABASE_AWAY,
    REPORT_NOT_READY,
    SHOP,
    SUCCESS,
    TIMEOUT,
    Soap,
    invoice_xml,
    mark_xml,
    refund_xml,
    register_terminal,
    report_xml,
)
from tests.support.traffic import (
    Closer,
    Crew,
    Done,
    Mark,
    Marks,
    Record,
    Register,
    Reporter,
    Totals,
    pause_until,
)

SEEDED = 100_000  # STD_RECON_003 of this many rows takes a second or more to render


# --- (a) a report worker killed mid-render ---------------------------------------------------


def _job(db: Database, job_id: int) -> ReportJob:
    with db.read() as session:
        job = session.get(ReportJob, job_id)
        assert job is not None
        return job


def _stored(db: Database, job_id: int) -> tuple[int, bytes]:
    """How many documents the job has, and its stored bytes."""
    with db.read() as session:
        documents = session.scalar(select(func.count()).select_from(ReportDocument)
                                   .where(ReportDocument.job_id == job_id))
        content = b"".join(session.scalars(
            select(ReportDocumentChunk.data).where(ReportDocumentChunk.job_id == job_id)
            .order_by(ReportDocumentChunk.seq)))
    return documents, content


def test_report_worker_killed_mid_render(tmp_path: Path) -> None:
    gateway = ProductionGateway(tmp_path, "--no-worker")
    first = second = None
    try:
        gateway.start()
        db = gateway.db
        shop = make_shop(db)
        soap = Soap(gateway.base)
        tills = [register_terminal(soap, shop, f"Till {i + 1}") for i in range(3)]
        seeded = seed_period(db, shop.reseller_id, tills, SEEDED)
        period = soap.ok("markTransactionPeriod", shop_context(shop)).text("transactionPeriodId")
        assert period is not None
        inner = report_xml(shop, "STD_RECON_003", period, None)
        assert soap.call("executeReport", inner).code == REPORT_NOT_READY  # queued
        with db.read() as session:
            job_id = session.scalar(
                select(ReportJob.id).join(TransactionPeriod,
                                          TransactionPeriod.id == ReportJob.period_id)
                .where(TransactionPeriod.public_id == period))
        assert job_id is not None

        first = start_report_worker(gateway.db_url, tmp_path / "worker-first.log", 3)
        pause_until(lambda: _job(db, job_id).status == ReportJob.RUNNING, 30,
                    "the first worker claims the job", interval=0.01)
        assert worker_pid(_job(db, job_id).lease_owner) == first.pid
        time.sleep(0.2)  # into the rendering (checked below: no document yet)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        job = _job(db, job_id)
        assert (job.status, job.attempts, worker_pid(job.lease_owner)) == (
            ReportJob.RUNNING, 1, first.pid), "the render ended before the kill: seed more rows"
        assert _stored(db, job_id) == (0, b"")  # nothing half-stored
        assert soap.call("executeReport", inner).code == REPORT_NOT_READY  # ask again later

        second = start_report_worker(gateway.db_url, tmp_path / "worker-second.log", 60)
        document = fetch_report(soap, shop, "STD_RECON_003", period, timeout=120)
        rows = details(document)
        assert len(rows) == SEEDED
        assert Totals.of(row.amount for row in rows) == seeded
        assert len({row.reference for row in rows}) == SEEDED

        job = _job(db, job_id)
        assert (job.status, job.attempts, worker_pid(job.lease_owner)) == (
            ReportJob.DONE, 2, second.pid)
        assert _stored(db, job_id) == (1, document)  # exactly one document, the one served
        assert summary(fetch_report(soap, shop, "STD_RECON_001", period)) == seeded
        assert half_written(db, shop.reseller_id, ledger=False) == []
    finally:
        stop_process(first)
        stop_process(second)
        gateway.stop()


SLOW = 60_000  # rows; rendering them takes several times LEASE
LEASE = 0.25


def test_a_render_longer_than_the_lease_stays_with_its_live_worker(tmp_path: Path) -> None:
    """Two healthy report workers and a render several times longer than their lease (as a
    period of millions of rows against the default 60 s): the job is rendered once, by the
    worker that claimed it, and becomes ready."""
    gateway = ProductionGateway(tmp_path, "--no-worker")
    workers = []
    try:
        gateway.start()
        shop = make_shop(gateway.db)
        soap = Soap(gateway.base)
        tills = [register_terminal(soap, shop, f"Till {i + 1}") for i in range(2)]
        seeded = seed_period(gateway.db, shop.reseller_id, tills, SLOW)
        period = soap.ok("markTransactionPeriod", shop_context(shop)).text("transactionPeriodId")
        assert period is not None
        workers = [start_report_worker(gateway.db_url, tmp_path / f"worker-{i}.log", LEASE)
                   for i in range(2)]
        document = fetch_report(soap, shop, "STD_RECON_003", period, timeout=60)
        assert Totals.of(row.amount for row in details(document)) == seeded
        with gateway.db.read() as session:
            (job,) = session.scalars(select(ReportJob)).all()
        assert (job.status, job.attempts) == (ReportJob.DONE, 1)  # never taken from its worker
        assert _stored(gateway.db, job.id) == (1, document)
    finally:
        for worker in workers:
            stop_process(worker)
        gateway.stop()


# --- traffic that survives faults ---------------------------------------------------------------


class Traffic:
    """Tolerant registers, a shop closer, a terminal closer and a back office, on a gateway
    whose address stays the same across the fault."""

    def __init__(self, base: str, shop: Shop, tills: list[str]) -> None:
        self.base, self.shop, self.tills = base, shop, tills
        self.record, self.marks, self.stop = Record(), Marks(), threading.Event()
        self.abort = threading.Event()
        self.crew = Crew()
        self.reporter = Reporter(base, shop, self.marks, self.stop, self.record)

    def start(self) -> "Traffic":
        for index, till in enumerate(self.tills):
            self.crew.start(f"register {index + 1}", Register(
                self.base, till, index, self.record, stop=self.stop, strict=False, seed=2,
                pause=0.05, abort=self.abort).run)
        for name, scopes, pause in (("shop closer", [SHOP], 0.5),
                                    ("terminal closer", self.tills, 0.25)):
            self.crew.start(name, Closer(self.base, self.shop, scopes, self.marks, self.stop,
                                         pause=pause, strict=False, record=self.record).run)
        self.crew.start("back office", self.reporter.run)
        return self

    def busy(self, sales: int, shop_periods: int, documents: int) -> bool:
        return (sum(d.kind == "SALE" for d in self.record.done) >= sales
                and self.marks.count(SHOP) >= shop_periods
                and len(self.reporter.documents) >= documents)

    def sales_since(self, moment: float) -> int:
        return sum(d.kind == "SALE" and d.started > moment for d in self.record.done)

    def finish(self) -> None:
        self.stop.set()
        self.crew.join(120)

    def halt(self) -> None:
        """After a failure: stop at once, retry nothing."""
        self.abort.set()
        self.stop.set()


# --- (b) the gateway killed and restarted ----------------------------------------------------


def test_gateway_killed_mid_traffic_and_restarted(tmp_path: Path) -> None:
    gateway = ProductionGateway(tmp_path, "--workers", "2", "--job-lease", "2")
    traffic = None
    try:
        gateway.start()
        pause_until(lambda: len(gateway.processes()) == 3, 30,
                    "gunicorn's master and its 2 workers")
        shop = make_shop(gateway.db)
        admin = Soap(gateway.base)
        tills = [register_terminal(admin, shop, f"Till {i + 1}") for i in range(4)]
        traffic = Traffic(gateway.base, shop, tills).start()
        pause_until(lambda: traffic.busy(12, 3, 4), 60, "traffic before the kill")

        gateway.kill9()
        killed = time.monotonic()
        before = snapshot(gateway.db, shop.reseller_id)  # all that was committed
        seen_before = traffic.reporter.before(killed)
        gateway.start()
        restarted = time.monotonic()
        pause_until(lambda: traffic.sales_since(restarted) >= 8, 60,
                    "the registers carry on after the restart")
        traffic.finish()
        refused = [a for a in traffic.record.attempts
                   if a.outcome == "connection-error" and killed - 1 < a.started]
        assert refused, "the registers never ran into the dead gateway"

        record, marks = traffic.record, traffic.marks
        resolve_unsure_refunds(gateway.db, record)
        rec = reconcile(gateway.base, shop, tills, record, marks, gateway.db)
        # the back office's documents from before the kill answer the same, byte for byte
        assert seen_before
        for key, document in seen_before.items():
            assert rec.documents[key] == document, key
        pause_until(lambda: not jobs_in_flight(gateway.db, shop.reseller_id), 30,
                    "every report job done")
        after = snapshot(gateway.db, shop.reseller_id)
        # every period, transaction, job and document of before the kill is still there
        for period_id, (scope, status, public_id) in before["periods"].items():
            now = after["periods"][period_id]
            if status == TransactionPeriod.CLOSED:
                assert now == (scope, status, public_id), period_id
            else:  # open at the kill: closed since (the final marks), under the same scope
                assert now[:2] == (scope, TransactionPeriod.CLOSED), period_id
        for reference, stored in before["transactions"].items():
            assert after["transactions"][reference] == stored, reference
        for reference, (status, version, payment, settled) in before["invoices"].items():
            if settled:
                assert after["invoices"][reference] == (status, version, payment, settled)
        for job_id, (key, _) in before["jobs"].items():
            assert after["jobs"][job_id] == (key, ReportJob.DONE), job_id
        for job_id, digest in before["documents"].items():
            assert after["documents"][job_id] == digest, job_id
        assert half_written(gateway.db, shop.reseller_id) == []
        print(f"{len(refused)} requests met the dead gateway; "
              f"killed with {len(before['transactions'])} transactions, "
              f"{len(before['jobs'])} jobs, {len(before['documents'])} documents; "
              f"{len(record.done)} transactions in the end, orphan periods {rec.orphans}")
    finally:
        if traffic is not None:
            traffic.halt()
        gateway.stop()


# --- (c) the database connection dropped and restored ----------------------------------------


def _probes(shop: Shop, till: str, invoice: str, payment: str, period: str
            ) -> dict[str, tuple[str, str]]:
    """One request of each kind that needs the database: operation and its children."""
    till_inner = till_context(till) + f"<invoiceReference>{invoice}</invoiceReference>"
    return {
        "registerTerminal": ("registerTerminal", shop_context(shop)
                             + "<externalTerminalId>Spare</externalTerminalId>"
                             "<password>till-pw</password><name>Spare</name>"),
        "sendInvoice": ("sendInvoice", till_context(till) + invoice_xml(Decimal("12.00"), "probe")),
        "getPaymentStatus": ("getPaymentStatus",
                             till_inner + "<invoiceVersion>0</invoiceVersion>"),
        "refundPayment": ("refundPayment", till_context(till) + f"<ersReference>{payment}"
                          "</ersReference>" + refund_xml(PROBE_REFUND, "probe")),
        "markTransactionPeriod": ("markTransactionPeriod", mark_xml(shop, till)),
        "executeReport": ("executeReport", report_xml(shop, "STD_RECON_001", period, None)),
        "requestPrincipalInformation": ("requestPrincipalInformation", shop_context(shop)),
    }


PROBE_REFUND = Decimal("1.00")


def test_database_connection_dropped_and_restored(tmp_path: Path,
                                                  database_backend: str) -> None:
    if database_backend != POSTGRESQL:
        pytest.skip("needs a database server to cut the gateway off from (PostgreSQL)")
    direct_url = new_database_url(tmp_path, "proxied")
    direct = Database(direct_url)  # the test's own way in, around the proxy
    direct.migrate()
    server = make_url(Backends.postgres_url())
    proxy = TcpProxy((server.host or "127.0.0.1", server.port or 5432))
    proxied_url = make_url(direct_url).set(host="127.0.0.1", port=proxy.port)
    gateway = ProductionGateway(tmp_path, "--workers", "2", "--job-lease", "2",
                                db_url=proxied_url.render_as_string(hide_password=False))
    traffic = None
    try:
        gateway.start()
        shop = make_shop(direct)
        soap = Soap(gateway.base)
        tills = [register_terminal(soap, shop, f"Till {i + 1}") for i in range(3)]
        spare = register_terminal(soap, shop, "Till 4")  # the probes' till
        traffic = Traffic(gateway.base, shop, tills)
        record, marks = traffic.record, traffic.marks
        invoice = soap.ok("sendInvoice", till_context(spare) + invoice_xml(Decimal("50.00"), None)
                          ).text("invoiceReference")
        assert invoice and soap.buyer(invoice).status_code == 200
        payment = soap.ok("getPaymentStatus", till_context(spare) + f"<invoiceReference>{invoice}"
                          "</invoiceReference><invoiceVersion>0</invoiceVersion>"
                          ).text("ersReference")
        assert payment
        record.add(Done(payment, "SALE", spare, None, Decimal("50.00"), 0, 0),
                   refundable=False)  # the probes refund it, the registers must not
        period = soap.ok("markTransactionPeriod", shop_context(shop)).text("transactionPeriodId")
        assert period
        marks.add(Mark(SHOP, period, 0, 0))
        fetch_report(soap, shop, "STD_RECON_001", period)  # ready before the outage
        probes = _probes(shop, spare, invoice, payment, period)

        traffic.start()
        pause_until(lambda: traffic.busy(6, 3, 2), 60, "traffic before the drop")

        dropping = time.monotonic()
        proxy.drop()
        dropped = time.monotonic()
        health = requests.get(gateway.base + "/health", timeout=TIMEOUT)
        assert health.status_code == 503, health.text
        for name, (operation, inner) in probes.items():
            answer = soap.call(operation, inner)  # HTTP 200 and a SOAP answer, or it raises
            assert answer.code in DATABASE_AWAY, (name, answer.code, answer.description)
        marks.unsure[spare] += 1  # the probe's mark; it cannot have closed anything, though
        assert soap.call("benchmarkingNop", "").code == SUCCESS  # needs no database
        buyer = soap.buyer(invoice)
        assert buyer.status_code == 503 and "error" in buyer.json(), buyer.text
        time.sleep(2.0)  # the registers, closers and back office run into it meanwhile
        restoring = time.monotonic()
        proxy.restore()
        restored = time.monotonic()

        assert requests.get(gateway.base + "/health", timeout=TIMEOUT).status_code == 200
        for name, (operation, inner) in probes.items():
            answer = soap.call(operation, inner)
            assert answer.code == SUCCESS, (name, answer.code, answer.description)
            if name == "refundPayment":
                record.add(Done(answer.text("ersReference") or "", "REFUND", spare, "probe",
                                -PROBE_REFUND, 0, 0))
            elif name == "markTransactionPeriod":
                marks.add(Mark(spare, answer.text("transactionPeriodId") or "", 0, 0))
        pause_until(lambda: traffic.sales_since(restored) >= 6, 60,
                    "the registers carry on after the restore")
        traffic.finish()

        attempts = record.attempts
        before = {a.outcome for a in attempts if a.finished < dropping}
        assert before <= {"0", str(REPORT_NOT_READY), "http-200"}, before
        during = [a for a in attempts if a.started > dropped and a.finished < restoring]
        assert len(during) >= 10, during  # the traffic did run into the outage
        for outcome in {a.outcome for a in during}:
            assert outcome in {str(code) for code in DATABASE_AWAY} | {"http-503"}, outcome
        after = [a for a in attempts if a.started > restored]
        assert after, "no traffic after the restore"
        assert not [a for a in after if a.outcome in {"90", "94", "http-503"}]
        assert not [a for a in attempts  # never an HTML page, a hang, a connection reset
                    if a.outcome in ("timeout", "connection-error")
                    or a.outcome.startswith(("bad-answer", "broken-answer"))]
        assert proxy.refused > 0  # the gateway did try to reconnect during the outage

        resolve_unsure_refunds(direct, record)
        rec = reconcile(gateway.base, shop, [*tills, spare], record, marks, direct)
        pause_until(lambda: not jobs_in_flight(direct, shop.reseller_id), 30,
                    "every report job done")
        assert half_written(direct, shop.reseller_id) == []
        print(f"{len(during)} requests during the outage, {len(after)} after; "
              f"{len(record.done)} transactions, orphan periods {rec.orphans}")
    finally:
        if traffic is not None:
            traffic.halt()
        gateway.stop()
        proxy.close()
        direct.dispose()


SILENCE_BOUND = 20.0  # seconds a request may wait for a database that does not answer


def test_a_database_that_stops_answering_is_a_bounded_94(tmp_path: Path,
                                                         database_backend: str) -> None:
    """The database host goes silent: established connections are cut, new ones are
    accepted but never answered. A request must still get its 94 within a bound."""
    if database_backend != POSTGRESQL:
        pytest.skip("needs a database server to cut the gateway off from (PostgreSQL)")
    direct_url = new_database_url(tmp_path, "silent")
    Database(direct_url).migrate()
    server = make_url(Backends.postgres_url())
    proxy = TcpProxy((server.host or "127.0.0.1", server.port or 5432))
    proxied_url = make_url(direct_url).set(host="127.0.0.1", port=proxy.port)
    gateway = ProductionGateway(tmp_path, "--workers", "2", "--no-worker",
                                db_url=proxied_url.render_as_string(hide_password=False))
    try:
        gateway.start()
        shop = make_shop(gateway.db)
        soap = Soap(gateway.base, timeout=SILENCE_BOUND)
        soap.ok("markTransactionPeriod", shop_context(shop))
        proxy.silence()
        answer = soap.call("markTransactionPeriod", shop_context(shop))
        assert answer.code in DATABASE_AWAY, (answer.code, answer.description)
        proxy.restore()
        soap.ok("markTransactionPeriod", shop_context(shop))
    finally:
        if gateway.processes():  # a worker may still wait on the silent database
            gateway.kill9()
        gateway.stop()
        proxy.close()
