"""Production-like traffic (tests/test_production_*.py): registers in threads taking payments
and refunds, a closer marking periods, a back office fetching reports; what they did goes
into a shared `Record`, every period id into `Marks`.

A *strict* register fails on any answer but SUCCESS; a *tolerant* one (the fault tests)
keeps every attempt's outcome and retries until its sale is through, as a real register
does while the service is away.
"""

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from storage.models import (
    Transaction,
)
from tests.support.envelopes import PERIOD_RE, till_context
from tests.support.servers import Shop
from tests.support.soap_session import (
    CENT,
    DATABASE_AWAY,
    SHOP,
    SUCCESS,
    ZERO,
    Answer,
    BadAnswerError,
    Soap,
    invoice_xml,
    mark_xml,
    refund_xml,
    report_xml,
)


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
            answer = self._soap("sendInvoice", till_context(self.terminal_id)
                                + invoice_xml(amount, cashier))
            reference = answer.text("invoiceReference")
            assert reference and len(reference) == 13, reference
            return reference
        return self._until_through(step)

    def _cancel_one(self) -> None:
        amount, cashier = self._amount(), self.rng.choice(self.cashiers)
        reference = self._send(amount, cashier)
        inner = till_context(self.terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
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
        inner = (till_context(self.terminal_id)
                 + f"<invoiceReference>{reference}</invoiceReference>"
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
        inner = (till_context(self.terminal_id) + f"<ersReference>{payment}</ersReference>"
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
