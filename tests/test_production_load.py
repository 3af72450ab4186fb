"""A shop's busy day on PostgreSQL: registers, period closes and report workers all at once.

The gateway runs 4 gunicorn workers and renders no reports itself (`--no-worker`); two
`seqr-gateway worker` processes render them. 8 registers (a thread and an HTTP session
each) take payments (the buyer pays through the simulator, the register polls at once so the
sale settles), refund some of their own and of other tills' payments in part, and cancel an
invoice now and then. Meanwhile one closer closes the shop's period over and over, and
another closes the terminals' periods in turn (now as the shop's user, now as the till).

Afterwards every scope is closed once more, STD_RECON_001 and 003 of every shop period and
STD_RECON_006 and 007 of every terminal period are fetched, and checked against the test's
own record (tests/production.py `reconcile`): every sale and refund in exactly one period
per scope, nothing in any report that the test did not do, every total equal to the one
computed from the record. A mark also cuts time in two: what was confirmed before a mark was
asked for is not in a later period, what was asked for after a mark answered is not in it
or an earlier one.
"""

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import ReportJob
from tests.support.audits import check_happened_before, half_written, reconcile
from tests.support.databases import POSTGRESQL
from tests.support.processes import ProductionGateway, start_report_worker, stop_process, worker_pid
from tests.support.servers import make_shop
from tests.support.soap_session import SHOP, Soap, register_terminal
from tests.support.traffic import Closer, Crew, Marks, Record, Register

REGISTERS = 8
SALES_EACH = 15


def test_registers_take_payments_while_periods_close(tmp_path: Path,
                                                     database_backend: str) -> None:
    if database_backend != POSTGRESQL:
        pytest.skip("a load test of concurrent writers is for PostgreSQL (the issue asks for "
                    "it there); SQLite serialises every write, and the races run on it in "
                    "tests/test_payment_races.py")
    gateway = ProductionGateway(tmp_path, "--workers", "4", "--no-worker")
    workers = []
    try:
        gateway.start()
        workers = [start_report_worker(gateway.db_url, tmp_path / f"report-worker-{i}.log", 2)
                   for i in range(2)]
        shop = make_shop(gateway.db)
        admin = Soap(gateway.base)
        tills = [register_terminal(admin, shop, f"Store 1/Till {i + 1}")
                 for i in range(REGISTERS)]
        record, marks, stop = Record(), Marks(), threading.Event()

        closers = Crew()
        closers.start("shop closer", Closer(gateway.base, shop, [SHOP], marks, stop,
                                            pause=0.3).run)
        closers.start("terminal closer", Closer(gateway.base, shop, tills, marks, stop,
                                                pause=0.05).run)
        registers = Crew()
        started = time.monotonic()
        for index, till in enumerate(tills):
            registers.start(f"register {index + 1}", Register(
                gateway.base, till, index, record, sales=SALES_EACH, seed=1).run)
        try:
            registers.join(120)
        finally:
            stop.set()
            closers.join(60)
        finished = time.monotonic()

        sales = [d for d in record.done if d.kind == "SALE"]
        refunds = [d for d in record.done if d.kind == "REFUND"]
        assert len(sales) == REGISTERS * SALES_EACH and refunds
        assert record.canceled  # canceled invoices never count anywhere
        during = [m for m in marks.all() if started < m.started and m.finished < finished]
        assert len([m for m in during if m.scope == SHOP]) >= 3, "the shop closer barely ran"
        assert len([m for m in during if m.scope != SHOP]) >= REGISTERS, (
            "the terminal closer barely ran")

        rec = reconcile(gateway.base, shop, tills, record, marks, gateway.db)
        check_happened_before(record, marks, rec)
        # the closes really cut through the traffic: the sales are spread over many periods
        assert len(set(rec.shop_period_of.values())) >= 3, rec.shop_period_of
        assert len(set(rec.terminal_period_of.values())) >= REGISTERS
        assert half_written(gateway.db, shop.reseller_id) == []

        with gateway.db.read() as session:  # the report worker processes rendered them all
            owners = set(session.scalars(select(ReportJob.lease_owner)))
        assert {worker_pid(owner) for owner in owners} <= {w.pid for w in workers}, owners
        print(f"{len(sales)} sales, {len(refunds)} refunds, {len(record.canceled)} canceled; "
              f"{marks.count(SHOP)} shop periods, {marks.count() - marks.count(SHOP)} terminal "
              f"periods, {len(rec.documents)} reports; traffic {finished - started:.1f} s")
    finally:
        for worker in workers:
            stop_process(worker)
        gateway.stop()
