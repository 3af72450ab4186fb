"""Production-like traffic for tests/test_production_load.py and tests/test_production_faults.py.

- `Soap`: one client's HTTP session, posting raw envelopes; every answer is checked on the
  wire (HTTP 200, text/xml, the operation's `<return>`, valid against the official WSDL).
- `Register`: a cash register in a thread of its own: invoices, the buyer paying through the
  simulator, the poll that settles the sale, partial refunds (of its own payments and of
  other tills'), now and then a canceled invoice. What it did goes into a shared `Record`.
  A *strict* register fails on any answer but SUCCESS; a *tolerant* one (the fault tests)
  keeps every attempt's outcome and retries until its sale is through, as a real register
  does while the service is away.
- `Closer`: closes shop and terminal periods in a loop; `Marks` keeps every period id, in
  order per scope.
- `reconcile()`: final marks, every period's reports fetched, and every check of the issue:
  each recorded transaction in exactly one period per scope, nothing else in any report,
  every total equal to the one computed from the `Record`.
- Processes: `start_report_worker`, `ProductionGateway` (its own process group, so
  `kill -9` reaches the gunicorn master and every worker), `stop_process`.
- `TcpProxy`: a proxy between the gateway and PostgreSQL that can drop every connection.
- `seed_period`: a big period bulk-inserted into the database; `half_written`: a database
  consistency check run through a direct connection.
"""

import base64
import contextlib
import copy
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from lxml import etree
from sqlalchemy import func, insert, select

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
from storage.money import SCALE
from tests.conftest import NS, PERIOD_RE, SOAP_ENV, SOAP_PATH, GatewayServer, Shop, context_xml
from tests.test_contract_types import official_root, schema_of
from wsdl import report_schema

TIMEOUT = 30.0  # no request may take longer: a guard against hangs, not a measurement
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
TILL_PASSWORD = "till-pw"
SHOP = "shop"  # the scope key of the shop's periods in `Marks`; a terminal's is its id
ZERO = Decimal(0)
CENT = Decimal("0.01")
SUCCESS, REPORT_NOT_READY = 0, 2
SYSTEM_ERROR, SERVICE_UNAVAILABLE = 90, 94
DATABASE_AWAY = {SYSTEM_ERROR, SERVICE_UNAVAILABLE}
SHOP_REPORTS = ("STD_RECON_001", "STD_RECON_003")
TERMINAL_REPORTS = ("STD_RECON_006", "STD_RECON_007")

_local = threading.local()


def _huge() -> etree.XMLParser:
    """A parser for big documents (a report is one long text node), one per thread."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(huge_tree=True)
    return parser


def _schema() -> etree.XMLSchema:
    """The official schema, compiled once per thread (a schema keeps its last error log)."""
    schema = getattr(_local, "schema", None)
    if schema is None:
        schema = _local.schema = etree.XMLSchema(copy.deepcopy(schema_of(official_root())))
    return schema


# --- SOAP on the wire ------------------------------------------------------------------------


class BadAnswerError(AssertionError):
    """Not a SOAP answer of the operation (an HTML error page, a fault, a wrong shape)."""


@dataclass
class Answer:
    code: int
    description: str
    ret: Any

    def text(self, path: str) -> str | None:
        found = self.ret.find(path)
        return None if found is None else found.text


def checked(response: requests.Response, operation: str) -> Answer:
    """The answer of `operation` as the official WSDL has it, or BadAnswerError."""
    if response.status_code != 200:
        raise BadAnswerError(f"{operation}: HTTP {response.status_code}: {response.text[:300]}")
    if not response.headers.get("Content-Type", "").startswith("text/xml"):
        raise BadAnswerError(f"{operation}: Content-Type {response.headers.get('Content-Type')}")
    try:
        root = etree.fromstring(response.content, _huge())  # a big report is one long text
    except etree.XMLSyntaxError as error:
        raise BadAnswerError(f"{operation}: not XML: {error}") from None
    body = root.find(f"{{{SOAP_ENV}}}Body")
    payloads = [] if body is None else [c for c in body if isinstance(c.tag, str)]
    if len(payloads) != 1 or payloads[0].tag != f"{{{NS}}}{operation}Response":
        raise BadAnswerError(f"{operation}: {response.text[:300]}")
    schema = _schema()
    if not schema.validate(payloads[0]):
        raise BadAnswerError(f"{operation}: not valid against the WSDL: {schema.error_log}")
    ret = payloads[0].find("return")
    code = int(ret.findtext("resultCode"))
    return Answer(code, ret.findtext("resultDescription") or "", ret)


class Soap:
    """One client's HTTP session to a gateway."""

    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base = base
        self.timeout = timeout
        self.http = requests.Session()

    def call(self, operation: str, inner: str) -> Answer:
        body = (
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:ext="{NS}">'
            f"<soapenv:Body><ext:{operation}>{inner}</ext:{operation}></soapenv:Body>"
            "</soapenv:Envelope>"
        )
        response = self.http.post(self.base + SOAP_PATH, data=body.encode(),
                                  headers=SOAP_HEADERS, timeout=self.timeout)
        return checked(response, operation)

    def ok(self, operation: str, inner: str) -> Answer:
        answer = self.call(operation, inner)
        assert answer.code == SUCCESS, (operation, answer.code, answer.description)
        return answer

    def buyer(self, reference: str, action: str = "pay") -> requests.Response:
        return self.http.post(f"{self.base}/simulator/invoices/{reference}/{action}",
                              timeout=TIMEOUT)

    def close(self) -> None:
        self.http.close()


def shop_ctx(shop: Shop) -> str:
    return context_xml(shop.reseller_id, password=shop.password)


def till_ctx(terminal_id: str) -> str:
    return context_xml(terminal_id, "TERMINALID", password=TILL_PASSWORD, user_id=None)


def params_xml(**entries: str | None) -> str:
    inner = "".join(f"<entry><key>{k}</key><value>{v}</value></entry>"
                    for k, v in entries.items() if v is not None)
    return f"<parameters><parameter>{inner}</parameter></parameters>" if inner else ""


def _amount_xml(amount: Decimal) -> str:
    return f"<currency>SEK</currency><value>{amount}</value>"


def invoice_xml(amount: Decimal, cashier: str | None) -> str:
    cashier_xml = f"<cashierId>{cashier}</cashierId>" if cashier else ""
    return (
        "<invoice><paymentMode>IMMEDIATE_DEBIT</paymentMode>"
        "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode><title>Sale</title>"
        "<invoiceRows><invoiceRow><itemDescription>Goods</itemDescription>"
        f"<itemQuantity>1</itemQuantity><itemTotalAmount>{_amount_xml(amount)}"
        f"</itemTotalAmount></invoiceRow></invoiceRows>"
        f"<totalAmount>{_amount_xml(amount)}</totalAmount>{cashier_xml}</invoice>"
    )


def refund_xml(amount: Decimal, cashier: str | None) -> str:
    cashier_xml = f"<cashierId>{cashier}</cashierId>" if cashier else ""
    return f"<invoice><totalAmount>{_amount_xml(amount)}</totalAmount>{cashier_xml}</invoice>"


def register_terminal(soap: Soap, shop: Shop, label: str) -> str:
    answer = soap.ok("registerTerminal", shop_ctx(shop)
                     + f"<externalTerminalId>{label}</externalTerminalId>"
                     f"<password>{TILL_PASSWORD}</password><name>{label}</name>")
    terminal_id = answer.text("terminalId")
    assert terminal_id is not None and len(terminal_id) == 32
    return terminal_id


def mark_xml(shop: Shop, scope: str, as_till: bool = False) -> str:
    """markTransactionPeriod's children for a scope: the shop, or a terminal (TERMINALID),
    asked by the shop's user or by the till itself."""
    if scope == SHOP:
        return shop_ctx(shop)
    ctx = till_ctx(scope) if as_till else shop_ctx(shop)
    return ctx + params_xml(TERMINALID=scope)


def report_xml(shop: Shop, report_id: str, period_id: str, terminal_id: str | None) -> str:
    return (shop_ctx(shop) + f"<reportId>{report_id}</reportId><language>en</language>"
            + params_xml(transactionPeriodId=period_id, TERMINALID=terminal_id))


# --- what the test did -------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """A sale or refund the gateway confirmed: what every report must agree with."""

    reference: str
    kind: str  # Transaction.SALE or Transaction.REFUND
    terminal_id: str
    cashier: str | None
    amount: Decimal  # signed: refunds negative, as the detail reports print them
    started: float  # time.monotonic() before the request that made it, and after its answer
    finished: float


@dataclass(frozen=True)
class Totals:
    sales: int = 0
    sales_total: Decimal = ZERO
    refunds: int = 0
    refunds_total: Decimal = ZERO

    @staticmethod
    def of(amounts: Iterable[Decimal]) -> "Totals":
        amounts = list(amounts)
        sales = [a for a in amounts if a > 0]
        refunds = [a for a in amounts if a < 0]
        return Totals(len(sales), sum(sales, ZERO), len(refunds), sum(refunds, ZERO))

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(self.sales + other.sales, self.sales_total + other.sales_total,
                      self.refunds + other.refunds, self.refunds_total + other.refunds_total)


@dataclass(frozen=True)
class Attempt:
    """One request of a tolerant register or closer, and how it ended."""

    operation: str
    started: float
    finished: float
    outcome: str  # "0", "94", ..., "http-503", "connection-error", "timeout",
    #              "bad-answer: ..." (not SOAP), "broken-answer: ..." (cut off half-way)


@dataclass(frozen=True)
class UnsureRefund:
    """A refund whose answer never came or said the database was away: made or not?"""

    payment: str
    amount: Decimal
    terminal_id: str
    cashier: str | None


class Record:
    """Everything the registers did, shared by their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: list[Done] = []
        self.canceled: list[str] = []  # invoice references canceled before payment
        self.refundable: list[tuple[str, Decimal]] = []  # payments nobody has refunded yet
        self.unsure_refunds: list[UnsureRefund] = []
        self.attempts: list[Attempt] = []

    def add(self, done: Done, refundable: bool = True) -> None:
        with self.lock:
            self.done.append(done)
            if done.kind == Transaction.SALE and refundable:
                self.refundable.append((done.reference, done.amount))

    def take_refundable(self, rng: random.Random) -> tuple[str, Decimal] | None:
        """A payment of any till to refund, taken so that nobody else refunds it."""
        with self.lock:
            if not self.refundable:
                return None
            return self.refundable.pop(rng.randrange(len(self.refundable)))

    def attempt(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def by_reference(self) -> dict[str, Done]:
        with self.lock:
            done = list(self.done)
        references = {d.reference: d for d in done}
        assert len(references) == len(done), "the gateway gave one reference twice"
        return references

    def totals(self, references: Iterable[str] | None = None) -> Totals:
        by_reference = self.by_reference()
        chosen = by_reference.values() if references is None else (
            by_reference[r] for r in references)
        return Totals.of(d.amount for d in chosen)


@dataclass(frozen=True)
class Mark:
    scope: str
    period_id: str
    started: float
    finished: float


class Marks:
    """The periods the closers got back, in order per scope, and the marks left unsure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_scope: dict[str, list[Mark]] = defaultdict(list)
        self.unsure: Counter[str] = Counter()

    def add(self, mark: Mark) -> None:
        with self.lock:
            self.by_scope[mark.scope].append(mark)

    def count(self, scope: str | None = None) -> int:
        with self.lock:
            if scope is not None:
                return len(self.by_scope[scope])
            return sum(len(marks) for marks in self.by_scope.values())

    def all(self) -> list[Mark]:
        with self.lock:
            return [m for marks in self.by_scope.values() for m in marks]


# --- tolerant requests ---------------------------------------------------------------------------


class RequestFailedError(Exception):
    """A request that did not succeed; a tolerant caller retries or gives up."""


def attempt(record: Record, operation: str, call: Callable[[], Any],
            outcome_of: Callable[[Any], str]) -> Any:
    """Run one request, log how it ended in `record.attempts`; its result, or RequestFailedError."""
    started = time.monotonic()
    try:
        result = call()
    except requests.Timeout:
        outcome = "timeout"
        result = error = RequestFailedError(outcome)
    except requests.ConnectionError as exc:
        outcome = "connection-error"
        result = error = RequestFailedError(f"{outcome}: {exc}")
    except requests.RequestException as exc:  # e.g. an answer cut off half-way
        outcome = f"broken-answer: {type(exc).__name__}"
        result = error = RequestFailedError(f"{outcome}: {exc}")
    except BadAnswerError as exc:
        outcome = f"bad-answer: {exc}"
        result = error = RequestFailedError(outcome)
    else:
        outcome, error = outcome_of(result), None
    record.attempt(Attempt(operation, started, time.monotonic(), outcome))
    if error is not None:
        raise error
    return result


# --- the registers -------------------------------------------------------------------------------


class Register:
    """One till: `sales` payments (or until `stop`), a refund now and then, a cancel now and
    then. Strict: anything but SUCCESS fails the test. Tolerant: a failed request is retried
    (after `retry_pause`) until it goes through, for at most `give_up_after` seconds."""

    def __init__(self, base: str, terminal_id: str, index: int, record: Record, *,
                 sales: int | None = None, stop: threading.Event | None = None,
                 strict: bool = True, seed: int = 0, refund_share: float = 0.35,
                 cancel_share: float = 0.1, pause: float = 0.0, retry_pause: float = 0.1,
                 give_up_after: float = 90.0, abort: threading.Event | None = None) -> None:
        self.soap = Soap(base)
        self.terminal_id = terminal_id
        self.index = index
        self.record = record
        self.sales = sales
        self.stop = stop or threading.Event()
        self.strict = strict
        self.rng = random.Random(seed * 1000 + index)
        self.refund_share = refund_share
        self.cancel_share = cancel_share
        self.pause = pause
        self.retry_pause = retry_pause
        self.give_up_after = give_up_after
        self.abort = abort or threading.Event()  # the test failed: no more retries
        self.cashiers = [f"cashier-{index}", f"cashier-{(index + 1) % 8}", None]
        self.sold = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set() and (self.sales is None or self.sold < self.sales):
                if self.rng.random() < self.cancel_share:
                    self._cancel_one()
                self._sell_one()
                if self.rng.random() < self.refund_share:
                    self._refund_one()
                if self.pause:
                    self.stop.wait(self.pause)
        finally:
            self.soap.close()

    # each step is one request: on failure a strict register fails the test, a tolerant one
    # raises RequestFailedError to its retry loop

    def _soap(self, operation: str, inner: str, accept: Iterable[int] = (SUCCESS,)) -> Answer:
        if self.strict:
            answer = self.soap.call(operation, inner)
            assert answer.code in accept, (operation, answer.code, answer.description)
            return answer
        answer = attempt(self.record, operation, lambda: self.soap.call(operation, inner),
                         lambda a: str(a.code))
        if answer.code not in accept:
            raise RequestFailedError(f"{operation}: {answer.code} {answer.description}")
        return answer

    def _until_through(self, step: Callable[[bool], Any]) -> Any:
        """Retry `step` until it succeeds; it is told whether an earlier try failed."""
        deadline = time.monotonic() + self.give_up_after
        failed_before = False
        while True:
            try:
                return step(failed_before)
            except RequestFailedError:
                if self.strict or self.abort.is_set() or time.monotonic() > deadline:
                    raise
                failed_before = True
                time.sleep(self.retry_pause)

    def _send(self, amount: Decimal, cashier: str | None) -> str:
        def step(_: bool) -> str:
            answer = self._soap("sendInvoice", till_ctx(self.terminal_id)
                                + invoice_xml(amount, cashier))
            reference = answer.text("invoiceReference")
            assert reference and len(reference) == 13, reference
            return reference
        return self._until_through(step)

    def _cancel_one(self) -> None:
        amount, cashier = self._amount(), self.rng.choice(self.cashiers)
        reference = self._send(amount, cashier)
        inner = till_ctx(self.terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
        # 95 INVOICE_ALREADY_CANCELED after a try that failed: that try did cancel it
        self._until_through(lambda failed_before: self._soap(
            "cancelInvoice", inner, (SUCCESS, 95) if failed_before else (SUCCESS,)))
        with self.record.lock:
            self.record.canceled.append(reference)

    def _pay(self, reference: str) -> None:
        def step(failed_before: bool) -> None:
            if self.strict:
                paid = self.soap.buyer(reference)
                assert paid.status_code == 200, paid.text
                return
            paid = attempt(self.record, "simulator pay", lambda: self.soap.buyer(reference),
                           lambda r: f"http-{r.status_code}")
            if paid.status_code == 200:
                return
            if (paid.status_code == 409 and failed_before
                    and paid.json().get("status") == "PAID"):
                return  # the try that seemed to fail had paid it
            raise RequestFailedError(f"pay {reference}: {paid.status_code} {paid.text[:200]}")
        self._until_through(step)

    def _sell_one(self) -> None:
        amount, cashier = self._amount(), self.rng.choice(self.cashiers)
        reference = self._send(amount, cashier)
        self._pay(reference)
        inner = (till_ctx(self.terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
                 "<invoiceVersion>0</invoiceVersion>")
        started = time.monotonic()  # the poll that sees PAID settles the sale
        answer = self._until_through(lambda _: self._soap("getPaymentStatus", inner))
        assert answer.text("status") == "PAID", (reference, answer.text("status"))
        payment = answer.text("ersReference")
        assert payment and PERIOD_RE.match(payment), payment
        self.record.add(Done(payment, Transaction.SALE, self.terminal_id, cashier, amount,
                             started, time.monotonic()))
        self.sold += 1

    def _refund_one(self) -> None:
        taken = self.record.take_refundable(self.rng)
        if taken is None:
            return
        payment, paid = taken
        amount = max(CENT, (paid * Decimal(self.rng.choice([10, 25, 50, 100])) / 100)
                     .quantize(CENT))
        cashier = self.rng.choice(self.cashiers)
        inner = (till_ctx(self.terminal_id) + f"<ersReference>{payment}</ersReference>"
                 + refund_xml(amount, cashier))
        started = time.monotonic()
        try:
            answer = self._soap("refundPayment", inner)
        except RequestFailedError:  # made or not? The register cannot tell; the test looks later
            with self.record.lock:
                self.record.unsure_refunds.append(
                    UnsureRefund(payment, amount, self.terminal_id, cashier))
            return
        reference = answer.text("ersReference")
        assert reference and PERIOD_RE.match(reference) and reference != payment, reference
        self.record.add(Done(reference, Transaction.REFUND, self.terminal_id, cashier, -amount,
                             started, time.monotonic()))

    def _amount(self) -> Decimal:
        return Decimal(self.rng.randint(100, 99_999)) / 100


class Closer:
    """Closes the periods of `scopes` in turn, `pause` seconds apart, until `stop`. Terminal
    periods are closed now by the shop's user, now by the till itself."""

    def __init__(self, base: str, shop: Shop, scopes: list[str], marks: Marks,
                 stop: threading.Event, *, pause: float, strict: bool = True,
                 record: Record | None = None) -> None:
        self.soap = Soap(base)
        self.shop = shop
        self.scopes = scopes
        self.marks = marks
        self.stop = stop
        self.pause = pause
        self.strict = strict
        self.record = record or Record()

    def run(self) -> None:
        turn = 0
        try:
            while not self.stop.is_set():
                scope = self.scopes[turn % len(self.scopes)]
                self.mark(scope, as_till=(turn // len(self.scopes)) % 2 == 1)
                turn += 1
                self.stop.wait(self.pause)
        finally:
            self.soap.close()

    def mark(self, scope: str, as_till: bool = False) -> Mark | None:
        inner = mark_xml(self.shop, scope, as_till)
        started = time.monotonic()
        if self.strict:
            answer = self.soap.ok("markTransactionPeriod", inner)
        else:
            try:
                answer = attempt(self.record, "markTransactionPeriod",
                                 lambda: self.soap.call("markTransactionPeriod", inner),
                                 lambda a: str(a.code))
            except RequestFailedError:
                answer = None
            if answer is None or answer.code != SUCCESS:
                if answer is None or answer.code in DATABASE_AWAY:
                    with self.marks.lock:  # it may have closed a period all the same
                        self.marks.unsure[scope] += 1
                return None
        period = answer.text("transactionPeriodId")
        assert period and PERIOD_RE.match(period), period
        mark = Mark(scope, period, started, time.monotonic())
        self.marks.add(mark)
        return mark


class Crew:
    """Threads whose exceptions fail the test (re-raised by `join`)."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, name: str, target: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # noqa: BLE001 - re-raised by join()
                self.errors.append(error)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [t.name for t in self.threads if t.is_alive()]
        if self.errors:
            raise self.errors[0]
        assert not hung, f"threads still running after {timeout} s: {hung}"


# --- the reports ---------------------------------------------------------------------------------


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


# --- processes -----------------------------------------------------------------------------------


def start_report_worker(db_url: str, log_path: Path, lease: float, *extra: str
                        ) -> subprocess.Popen[bytes]:
    """`seqr-gateway worker` as a process of its own."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "worker", "--database-url", db_url,
             "--report-delay", "0", "--job-lease", str(lease), *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it does not go within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_pid(lease_owner: str | None) -> int | None:
    """The process id in a worker name (`host:pid:random`)."""
    if not lease_owner:
        return None
    return int(lease_owner.rsplit(":", 2)[1])


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ProductionGateway(GatewayServer):
    """tests.conftest.GatewayServer in a process group of its own: `kill9()` is `kill -9`
    of the gunicorn master and every worker at once, as a crash would be, and `start()`
    again serves on the same port, as the registers know it. `start()` is also patient
    with a busy machine (or busy workers): a slow /health is not a failed start."""

    def start(self) -> "ProductionGateway":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()}")
            try:  # the registers may keep its workers busy: wait a little longer
                if requests.get(self.base + "/health", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log_path.read_text()}")

    def processes(self) -> list[int]:
        return [] if self.process is None else _group_members(self.process.pid)

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
        deadline = time.monotonic() + 15
        while self.processes():
            assert time.monotonic() < deadline, f"still alive after kill -9: {self.processes()}"
            time.sleep(0.05)

    def stop(self) -> None:
        super().stop()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # any worker left behind
                os.killpg(self.process.pid, signal.SIGKILL)


# --- a proxy in front of PostgreSQL --------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:<port> -> the database server, a thread per direction of each connection.

    `drop()` closes every proxied connection and, until `restore()`, accepts and at once
    closes new ones: to the gateway the server has gone away. `silence()` closes them too
    but then holds new ones open without a byte, as a database host that stopped answering
    (a partition, a stuck server) looks to a client."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.silent = False
        self.held: list[socket.socket] = []
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.refused = 0
        self.proxied = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                self.refused += 1
                if self.silent:
                    self.held.append(client)
                else:
                    client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
                self.proxied += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
        sock.close()

    def drop(self) -> None:
        self.up.clear()
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            self._close(sock)

    def silence(self) -> None:
        self.silent = True
        self.drop()

    def restore(self) -> None:
        self.silent = False
        self.up.set()
        held, self.held = self.held, []
        for sock in held:
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.drop()
        self.restore()  # lets the held connections go
        self.listener.close()


# --- a big period, straight into the database ----------------------------------------------------


TRANSACTION_COLUMNS = ("ers_reference", "kind", "reseller_id", "terminal_id", "cashier_id",
                       "amount", "currency", "committed_at", "shop_period_id",
                       "terminal_period_id", "invoice_reference", "refunded_reference")


def seed_period(db: Database, reseller_id: str, terminal_ids: list[str], count: int,
                seed: int = 4711) -> Totals:
    """`count` sales and refunds in the open shop period (and the terminals' open periods),
    bulk-inserted as benchmarks/bench_period.py does (COPY on PostgreSQL); their totals."""
    from gateway.references import ers_reference

    rng = random.Random(seed)
    with db.read() as session:
        shop_period = session.get(PeriodScope, PeriodScope.shop_key(reseller_id)).open_period_id
        till_period = {t: session.get(PeriodScope, PeriodScope.terminal_key(t)).open_period_id
                       for t in terminal_ids}
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cashiers = [f"cashier-{k}" for k in range(10)]
    amounts = []
    rows = []
    for i in range(count):
        terminal_id = terminal_ids[i % len(terminal_ids)]
        amount = Decimal(rng.randint(1, 500_000)) / 100
        refund = i % 20 == 19
        signed = -amount if refund else amount
        amounts.append(signed)
        rows.append((
            ers_reference(at, 60_000_000 + i),  # apart from the gateway's own sequence
            Transaction.REFUND if refund else Transaction.SALE, reseller_id, terminal_id,
            None if i % 10 == 3 else rng.choice(cashiers), signed, "SEK",
            at.replace(tzinfo=None), shop_period, till_period[terminal_id],
            None if refund else f"{i:013d}", None,
        ))
    with db.write() as session:
        connection = session.connection()
        if db.is_sqlite:
            connection.execute(insert(Transaction), [
                dict(zip(TRANSACTION_COLUMNS, row, strict=True)) | {"committed_at": at}
                for row in rows])
        else:
            raw = connection.connection.driver_connection
            columns = ", ".join(TRANSACTION_COLUMNS)
            with raw.cursor() as cursor, cursor.copy(
                    f"COPY transactions ({columns}) FROM STDIN") as copy_in:
                for row in rows:
                    scaled = int(row[5].scaleb(SCALE))  # storage.money: 10**-5 units
                    copy_in.write_row((*row[:5], scaled, *row[6:]))
    return Totals.of(amounts)


# --- nothing half-written ------------------------------------------------------------------------


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


def pause_until(condition: Callable[[], bool], timeout: float, what: str,
                interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(interval)


class Reporter:
    """A back office fetching the detail report of every period as soon as it is closed
    (003 for the shop's, 007 for a terminal's), retrying whatever fails; `documents` holds
    each with the time it arrived."""

    def __init__(self, base: str, shop: Shop, marks: Marks, stop: threading.Event,
                 record: Record) -> None:
        self.soap = Soap(base)
        self.shop = shop
        self.marks = marks
        self.stop = stop
        self.record = record
        self.documents: dict[tuple[str, str], tuple[bytes, float]] = {}

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for mark in self.marks.all():
                    report = "STD_RECON_003" if mark.scope == SHOP else "STD_RECON_007"
                    if (report, mark.period_id) not in self.documents:
                        self._try(report, mark)
                self.stop.wait(0.1)
        finally:
            self.soap.close()

    def _try(self, report: str, mark: Mark) -> None:
        terminal_id = None if mark.scope == SHOP else mark.scope
        inner = report_xml(self.shop, report, mark.period_id, terminal_id)
        try:
            answer = attempt(self.record, "executeReport",
                             lambda: self.soap.call("executeReport", inner),
                             lambda a: str(a.code))
        except RequestFailedError:
            return
        if answer.code == SUCCESS:
            content = (answer.text("report/contentString") or "").encode("utf-8")
            self.documents[report, mark.period_id] = (content, time.monotonic())

    def before(self, moment: float) -> dict[tuple[str, str], bytes]:
        return {key: doc for key, (doc, at) in list(self.documents.items()) if at < moment}


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
