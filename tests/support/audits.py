"""Audits after traffic: `reconcile()` fetches every period's reports and checks each recorded
transaction is in exactly one period per scope, nothing else is in any report, and every
total is the one computed from the `Record`; `half_written` and `snapshot` look at the
database directly.
"""

import base64
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlalchemy import func, select

from storage.database import Database
from storage.models import (
    Invoice,
    PeriodScope,
    ReportDocument,
    ReportDocumentChunk,
    ReportJob,
    Transaction,
    TransactionPeriod,
)
from tests.support.envelopes import PERIOD_RE
from tests.support.servers import Shop
from tests.support.soap_session import (
    REPORT_NOT_READY,
    SHOP,
    SHOP_REPORTS,
    SUCCESS,
    TERMINAL_REPORTS,
    Soap,
    _huge,
    report_xml,
)
from tests.support.traffic import Closer, Done, Marks, Record, Totals
from wsdl import report_schema


@dataclass(frozen=True)
class Detail:
    reference: str
    terminal_id: str
    cashier: str | None
    amount: Decimal


def fetch_report(soap: Soap, shop: Shop, report_id: str, period_id: str,
                 terminal_id: str | None = None, timeout: float = 60.0) -> bytes:
    """executeReport until it is ready (SUCCESS); the document, checked against its XSD."""
    inner = report_xml(shop, report_id, period_id, terminal_id)
    deadline = time.monotonic() + timeout
    answer = soap.call("executeReport", inner)
    while answer.code == REPORT_NOT_READY:
        assert time.monotonic() < deadline, f"{report_id} of {period_id} not ready in time"
        time.sleep(0.1)
        answer = soap.call("executeReport", inner)
    assert answer.code == SUCCESS, (report_id, period_id, answer.code, answer.description)
    assert answer.text("report/title") == f"{report_id}_{period_id}.xml"
    content = base64.b64decode(answer.text("report/content") or "")
    assert content == (answer.text("report/contentString") or "").encode("utf-8")
    root = etree.fromstring(content, _huge())
    report_schema(report_id).assertValid(root)
    assert root.findtext("Meta/TransactionPeriodId") == period_id
    assert root.findtext("Meta/ResellerId") == shop.reseller_id
    if terminal_id is not None and report_id in TERMINAL_REPORTS:
        assert root.findtext("Meta/TerminalId") == terminal_id
    return content


def details(document: bytes) -> list[Detail]:
    root = etree.fromstring(document, _huge())
    return [Detail(row.findtext("ErsReference"), row.findtext("TerminalId"),
                   None if row.findtext("CashierId") == "NULL" else row.findtext("CashierId"),
                   Decimal(row.findtext("SalesAmount")))
            for row in root.iterfind("Row")]


def summary(document: bytes) -> Totals:
    (row,) = etree.fromstring(document).findall("Row")
    return Totals(int(row.findtext("SalesCount")), Decimal(row.findtext("SalesTotal")),
                  int(row.findtext("RefundCount")), Decimal(row.findtext("RefundTotal")))


def fetch_all(base: str, shop: Shop, wanted: list[tuple[str, str, str | None]],
              threads: int = 6) -> dict[tuple[str, str], bytes]:
    """Several reports at once, as several back offices would ask: {(report, period): doc}."""
    local = threading.local()

    def one(item: tuple[str, str, str | None]) -> tuple[tuple[str, str], bytes]:
        if getattr(local, "soap", None) is None:
            local.soap = Soap(base)
        report_id, period_id, terminal_id = item
        return (report_id, period_id), fetch_report(local.soap, shop, report_id, period_id,
                                                    terminal_id)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(one, wanted))


@dataclass
class Reconciliation:
    """What `reconcile` found: every period's documents, and each transaction's periods."""

    periods: dict[str, list[str]]  # scope -> period ids, in order (orphans last)
    documents: dict[tuple[str, str], bytes]
    shop_period_of: dict[str, str]
    terminal_period_of: dict[str, str]
    orphans: dict[str, list[str]]


def closed_periods(db: Database, reseller_id: str) -> dict[str, list[str]]:
    """Every closed period of the shop, per scope ("shop" or a terminal id), in order."""
    with db.read() as session:
        rows = session.execute(
            select(TransactionPeriod.terminal_id, TransactionPeriod.public_id)
            .where(TransactionPeriod.reseller_id == reseller_id,
                   TransactionPeriod.status == TransactionPeriod.CLOSED)
            .order_by(TransactionPeriod.id)
        ).all()
    periods: dict[str, list[str]] = defaultdict(list)
    for terminal_id, public_id in rows:
        periods[terminal_id or SHOP].append(public_id)
    return periods


def reconcile(base: str, shop: Shop, terminals: list[str], record: Record, marks: Marks,
              db: Database) -> Reconciliation:
    """Close every scope once more, fetch 001+003 of every shop period and 006+007 of every
    terminal period, and check them all against the record:

    - every recorded sale and refund is in exactly one shop period and in exactly one period
      of its own terminal, with its terminal, cashier and amount;
    - no report lists a transaction the test did not make;
    - each period's 001/006 totals are those of the record's transactions in that period,
      and the shop periods together hold the record's grand totals.

    Periods closed by a mark whose answer was lost (the fault tests) are found through the
    database; there may be no more of them than such marks ("orphans").
    """
    closer = Closer(base, shop, [], marks, threading.Event(), pause=0)
    for scope in [SHOP, *terminals]:
        closer.mark(scope)
    closer.soap.close()

    known = {scope: [m.period_id for m in marks.by_scope[scope]] for scope in [SHOP, *terminals]}
    in_database = closed_periods(db, shop.reseller_id)
    orphans: dict[str, list[str]] = {}
    periods: dict[str, list[str]] = {}
    for scope in [SHOP, *terminals]:
        missing = set(known[scope]) - set(in_database[scope])
        assert not missing, f"periods {missing} of {scope} are gone from the database"
        orphans[scope] = [p for p in in_database[scope] if p not in set(known[scope])]
        assert len(orphans[scope]) <= marks.unsure[scope], (
            f"{scope}: periods nobody closed: {orphans[scope]}")
        periods[scope] = known[scope] + orphans[scope]

    wanted = [(report, period, None) for period in periods[SHOP] for report in SHOP_REPORTS]
    wanted += [(report, period, terminal) for terminal in terminals
               for period in periods[terminal] for report in TERMINAL_REPORTS]
    documents = fetch_all(base, shop, wanted)

    done = record.by_reference()
    shop_period_of: dict[str, list[str]] = defaultdict(list)
    terminal_period_of: dict[str, list[str]] = defaultdict(list)
    for scope, scope_periods in periods.items():
        for period in scope_periods:
            report = "STD_RECON_003" if scope == SHOP else "STD_RECON_007"
            rows = details(documents[report, period])
            for row in rows:
                assert row.reference in done, (
                    f"{report} of {period} lists {row.reference}, which the test never made")
                made = done[row.reference]
                assert (row.terminal_id, row.cashier, row.amount) == (
                    made.terminal_id, made.cashier, made.amount), (row, made)
                if scope == SHOP:
                    shop_period_of[row.reference].append(period)
                else:
                    assert row.terminal_id == scope, (row, scope)
                    terminal_period_of[row.reference].append(period)
            references = [row.reference for row in rows]
            summary_id = "STD_RECON_001" if scope == SHOP else "STD_RECON_006"
            assert summary(documents[summary_id, period]) == record.totals(references), (
                f"{summary_id} of {period} disagrees with what the registers did there")

    for reference in done:
        assert len(shop_period_of[reference]) == 1, (
            f"{reference} is in shop periods {shop_period_of[reference]}")
        assert len(terminal_period_of[reference]) == 1, (
            f"{reference} is in terminal periods {terminal_period_of[reference]}")
    grand = Totals()
    for period in periods[SHOP]:
        grand += summary(documents["STD_RECON_001", period])
    assert grand == record.totals(), "the shop periods together disagree with the record"
    return Reconciliation(periods, documents, {r: p[0] for r, p in shop_period_of.items()},
                          {r: p[0] for r, p in terminal_period_of.items()}, orphans)


def check_happened_before(record: Record, marks: Marks, rec: Reconciliation) -> None:
    """A mark cuts time in two: a transaction confirmed before a mark was asked for is in
    that period or an earlier one; a transaction asked for after a mark was answered is in a
    later one. (Needs every mark's answer: the load test, not the fault tests.)"""
    for scope, scope_marks in marks.by_scope.items():
        order = {m.period_id: i for i, m in enumerate(scope_marks)}
        for done in record.by_reference().values():
            if scope == SHOP:
                index = order[rec.shop_period_of[done.reference]]
            elif scope == done.terminal_id:
                index = order[rec.terminal_period_of[done.reference]]
            else:
                continue
            for i, mark in enumerate(scope_marks):
                if done.finished < mark.started:
                    assert index <= i, (done, mark, index, i)
                if done.started > mark.finished:
                    assert index > i, (done, mark, index, i)


def half_written(db: Database, reseller_id: str, *, ledger: bool = True) -> list[str]:
    """Everything in the shop's data that a torn write could leave behind; [] when whole.
    `ledger=False` leaves out the sales-have-invoices checks (for seeded transactions)."""
    problems: list[str] = []
    with db.read() as session:
        invoices = session.scalars(
            select(Invoice).where(Invoice.reseller_id == reseller_id)).all()
        txns = session.scalars(
            select(Transaction).where(Transaction.reseller_id == reseller_id)).all()
        scopes = session.scalars(
            select(PeriodScope).where(PeriodScope.reseller_id == reseller_id)).all()
        periods = {p.id: p for p in session.scalars(
            select(TransactionPeriod).where(TransactionPeriod.reseller_id == reseller_id))}
        job_rows = session.scalars(
            select(ReportJob).where(ReportJob.period_id.in_(list(periods)))).all()
        job_ids = [j.id for j in job_rows]
        documents = {d.job_id: d for d in session.scalars(
            select(ReportDocument).where(ReportDocument.job_id.in_(job_ids)))}
        chunks: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for job_id, seq, size in session.execute(
                select(ReportDocumentChunk.job_id, ReportDocumentChunk.seq,
                       func.length(ReportDocumentChunk.data))
                .where(ReportDocumentChunk.job_id.in_(job_ids))):
            chunks[job_id].append((seq, size))

    # invoices and their sales: a settled payment has exactly one SALE, nothing else has one
    sales: dict[str | None, list[Transaction]] = defaultdict(list)
    refunds: dict[str | None, list[Transaction]] = defaultdict(list)
    for txn in txns:
        (sales if txn.kind == Transaction.SALE else refunds)[
            txn.invoice_reference if txn.kind == Transaction.SALE else txn.refunded_reference
        ].append(txn)
    by_payment = {}
    for invoice in invoices:
        its_sales = sales.pop(invoice.reference, [])
        settled = invoice.status == Invoice.PAID and invoice.settled_at is not None
        if invoice.status == Invoice.PAID and (
                invoice.payment_reference is None or invoice.paid_at is None):
            problems.append(f"invoice {invoice.reference} PAID without a payment")
        if settled:
            by_payment[invoice.payment_reference] = invoice
            if len(its_sales) != 1:
                problems.append(f"settled invoice {invoice.reference} has {len(its_sales)} SALEs")
                continue
            sale = its_sales[0]
            if (sale.ers_reference, sale.amount, sale.terminal_id, sale.cashier_id) != (
                    invoice.payment_reference, invoice.total_amount, invoice.terminal_id,
                    invoice.cashier_id):
                problems.append(f"the SALE of invoice {invoice.reference} is not its payment")
        elif its_sales:
            problems.append(f"invoice {invoice.reference} ({invoice.status}, settled "
                            f"{invoice.settled_at}) has {len(its_sales)} SALEs")
    for reference, orphan_sales in sales.items() if ledger else ():
        problems.append(f"{len(orphan_sales)} SALEs of no invoice ({reference})")
    for payment, its_refunds in refunds.items() if ledger else ():
        invoice = by_payment.get(payment)
        if invoice is None:
            problems.append(f"refunds of {payment}, which is no settled payment")
        elif -sum(r.amount for r in its_refunds) > invoice.total_amount:
            problems.append(f"refunds of {payment} exceed the payment")

    # periods: one open per scope, the one the scope points at; closed ones have an id
    open_by_scope: dict[str, list[int]] = defaultdict(list)
    for period in periods.values():
        if period.status == TransactionPeriod.OPEN:
            open_by_scope[period.scope_key].append(period.id)
            if period.public_id is not None or period.closed_at is not None:
                problems.append(f"open period {period.id} has an id or a closing time")
        elif period.status != TransactionPeriod.CLOSED or period.closed_at is None or not (
                PERIOD_RE.match(period.public_id or "")):
            problems.append(f"period {period.id}: {period.status} {period.public_id}")
    for scope in scopes:
        if open_by_scope.get(scope.key) != [scope.open_period_id]:
            problems.append(f"scope {scope.key} points at {scope.open_period_id}, open are "
                            f"{open_by_scope.get(scope.key)}")
    for txn in txns:
        shop_period = periods.get(txn.shop_period_id)
        till_period = periods.get(txn.terminal_period_id)
        if shop_period is None or shop_period.scope_key != PeriodScope.shop_key(reseller_id):
            problems.append(f"{txn.ers_reference} is in no period of its shop")
        if till_period is None or (
                till_period.scope_key != PeriodScope.terminal_key(txn.terminal_id)):
            problems.append(f"{txn.ers_reference} is in no period of its terminal")

    # report jobs: a DONE job has one whole document, no other job has one
    for job in job_rows:
        document = documents.pop(job.id, None)
        if job.status == ReportJob.DONE:
            period = periods[job.period_id]
            seqs = sorted(chunks.get(job.id, []))
            if document is None:
                problems.append(f"job {job.id} DONE without a document")
            elif [s for s, _ in seqs] != list(range(len(seqs))) or (
                    sum(size for _, size in seqs) != document.size):
                problems.append(f"document of job {job.id} is torn: {seqs}, {document.size}")
            elif document.title != f"{job.report_id}_{period.public_id}.xml":
                problems.append(f"document of job {job.id} is titled {document.title}")
        elif document is not None or chunks.get(job.id):
            problems.append(f"job {job.id} is {job.status} but has a document")
        if job.status == ReportJob.RUNNING and (
                job.lease_owner is None or job.lease_expires_at is None):
            problems.append(f"job {job.id} RUNNING without a lease")
        if job.status == ReportJob.PENDING and job.lease_owner is not None:
            problems.append(f"job {job.id} PENDING but owned by {job.lease_owner}")
    for job_id in documents:
        problems.append(f"a document of no job of the shop ({job_id})")
    return problems


def jobs_in_flight(db: Database, reseller_id: str) -> list[tuple[int, str]]:
    """The shop's report jobs not yet DONE: (id, status)."""
    with db.read() as session:
        rows = session.execute(
            select(ReportJob.id, ReportJob.status)
            .join(TransactionPeriod, TransactionPeriod.id == ReportJob.period_id)
            .where(TransactionPeriod.reseller_id == reseller_id,
                   ReportJob.status != ReportJob.DONE))
        return [(job_id, status) for job_id, status in rows]


def resolve_unsure_refunds(db: Database, record: Record) -> None:
    """A refund whose answer was lost is in the ledger wholly or not at all: add the ones
    that were made to the record (each payment is refunded at most once here)."""
    for unsure in record.unsure_refunds:
        with db.read() as session:
            made = session.scalars(select(Transaction).where(
                Transaction.refunded_reference == unsure.payment,
                Transaction.kind == Transaction.REFUND)).all()
        assert len(made) <= 1, made
        for refund in made:
            assert (refund.amount, refund.terminal_id, refund.cashier_id) == (
                -unsure.amount, unsure.terminal_id, unsure.cashier), refund
            record.add(Done(refund.ers_reference, Transaction.REFUND, unsure.terminal_id,
                            unsure.cashier, -unsure.amount, 0.0, 0.0))
    record.unsure_refunds.clear()


def snapshot(db: Database, reseller_id: str) -> dict[str, dict[Any, Any]]:
    """The shop's periods, transactions, invoices, report jobs and documents, as stored."""
    import hashlib

    with db.read() as session:
        periods = {p.id: (p.scope_key, p.status, p.public_id) for p in session.scalars(
            select(TransactionPeriod).where(TransactionPeriod.reseller_id == reseller_id))}
        transactions = {t.ers_reference: (t.kind, t.amount, t.terminal_id, t.shop_period_id,
                                          t.terminal_period_id)
                        for t in session.scalars(select(Transaction).where(
                            Transaction.reseller_id == reseller_id))}
        invoices = {i.reference: (i.status, i.version, i.payment_reference,
                                  i.settled_at is not None)
                    for i in session.scalars(select(Invoice).where(
                        Invoice.reseller_id == reseller_id))}
        job_rows = session.scalars(select(ReportJob).where(
            ReportJob.period_id.in_(list(periods)))).all()
        jobs = {j.id: (j.job_key, j.status) for j in job_rows}
        documents = {}
        for job in job_rows:
            if session.get(ReportDocument, job.id) is not None:
                digest = hashlib.sha256()
                for chunk in session.scalars(select(ReportDocumentChunk.data).where(
                        ReportDocumentChunk.job_id == job.id).order_by(ReportDocumentChunk.seq)):
                    digest.update(chunk)
                documents[job.id] = digest.hexdigest()
    return {"periods": periods, "transactions": transactions, "invoices": invoices,
            "jobs": jobs, "documents": documents}
