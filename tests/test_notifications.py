"""notificationUrl calls and the payments' housekeeping, against a tiny local HTTP server.

The payment itself only queues a `Notification` row; `deliver_one` (run by the
`Housekeeper`) makes the call, as SEQR did: an HTTP POST of the form parameter
`invoiceReference` to the URL as given, with a timeout, a few retries, and a stored record
of every attempt. Only a payment notifies. The register's SOAP answers never wait for it.
"""

import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from gateway import passwords, payments
from gateway.auth import Credentials, Principal
from gateway.background import notifications
from gateway.background.housekeeping import Housekeeper
from gateway.config import Settings
from gateway.invoices import Amount, InvoiceData, InvoiceRow
from gateway.payments import PaymentRules
from gateway.service import Gateway
from storage.database import Database
from storage.models import (
    Invoice,
    Notification,
    NotificationAttempt,
    Terminal,
    Transaction,
    utcnow,
)
from tests.support.domain import fresh_db, new_shop, new_terminal
from tests.support.envelopes import context_xml, envelope
from tests.support.servers import GatewayServer
from tests.support.servers import make_shop as conftest_make_shop

TIMEOUT = 0.5  # seconds a notification call may take in these tests
RULES = PaymentRules()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class Endpoint:
    """What the merchant's web server saw, and how it answers: "200", "500" or "hang"."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    default: str = "200"
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/notify") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def arrived(self, request: Seen) -> str:
        with self.lock:
            self.seen.append(request)
            return self.answers.pop(0) if self.answers else self.default

    @property
    def paths(self) -> list[str]:
        with self.lock:
            return [request.path for request in self.seen]

    @property
    def posted(self) -> list[str]:
        """The invoiceReference of every request, each checked to be a form POST of it."""
        with self.lock:
            seen = list(self.seen)
        references = []
        for request in seen:
            assert request.method == "POST", request
            assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
            assert list(request.form) == ["invoiceReference"], request.body
            references += request.form["invoiceReference"]
        return references


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:
        self._arrived()

    def do_GET(self) -> None:
        self._arrived()

    def _arrived(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.endpoint.arrived(
            Seen(self.command, self.path, dict(self.headers), body))
        if answer == "hang":
            self.server.endpoint.release.wait(10)
            return  # then hang up without an answer
        self.send_response(int(answer))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: Endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.endpoint = Endpoint(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server.endpoint
    server.endpoint.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrypt at a low cost: the hashes still verify (they carry their cost), but fast."""
    monkeypatch.setattr(passwords, "_N", 2**4)


@dataclass
class Shop:
    db: Database
    settings: Settings
    till: Principal

    def send(self, url: str | None, payment_mode: str | None = None,
             rules: PaymentRules = RULES) -> str:
        data = InvoiceData(
            payment_mode=payment_mode, acknowledgment_mode="NO_ACKNOWLEDGMENT",
            title="Order 42", client_invoice_id="order-42",
            rows=(InvoiceRow(description="Book", quantity=Decimal(1),
                             total=Amount("SEK", Decimal("199.00"))),),
            total=Amount("SEK", Decimal("199.00")), notification_url=url,
        )
        with self.db.write() as session:
            return payments.send_invoice(session, self.till, data, rules, utcnow()).reference

    def pay(self, reference: str, rules: PaymentRules = RULES) -> None:
        with self.db.write() as session:
            payments.buyer_pay(session, reference, rules, utcnow())

    def deliver(self) -> bool:
        return notifications.deliver_one(self.db, self.settings.notification_timeout,
                                         self.settings.notification_attempts)

    def notifications(self) -> list[Notification]:
        with self.db.read() as session:
            return list(session.scalars(select(Notification).order_by(Notification.id)))

    def attempts(self) -> list[NotificationAttempt]:
        with self.db.read() as session:
            return list(session.scalars(
                select(NotificationAttempt).order_by(NotificationAttempt.id)))

    def make_due(self) -> None:
        """Move the retry time into the past instead of waiting for the backoff."""
        with self.db.write() as session:
            session.execute(update(Notification).values(
                next_attempt_at=utcnow() - timedelta(seconds=1)))


def make_shop(tmp_path: Path, **settings: object) -> Shop:
    """A webshop (notificationUrl is a webshop's tool) with its terminal."""
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till = Principal("TERMINALID", owner.reseller_id,
                     terminal_id=new_terminal(db, owner, "Web shop", Terminal.WEBSHOP))
    options: dict[str, object] = {"notification_timeout": TIMEOUT, "notification_attempts": 3,
                                  **settings}
    return Shop(db, Settings(database_url=db.url, **options), till)  # type: ignore[arg-type]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return make_shop(tmp_path)


def test_a_payment_calls_its_notification_url(shop: Shop, endpoint: Endpoint,
                                              caplog: pytest.LogCaptureFixture) -> None:
    url = endpoint.url("/seqr/notify?order=42&token=a%20b&invoice=x")
    reference = shop.send(url)
    shop.pay(reference)
    assert endpoint.seen == []  # the payment only queued it
    [queued] = shop.notifications()
    assert (queued.invoice_reference, queued.url, queued.status, queued.attempts) == (
        reference, url, Notification.PENDING, 0)

    with caplog.at_level(logging.INFO, logger="gateway.background.notifications"):
        assert shop.deliver() is True
    assert endpoint.paths == ["/seqr/notify?order=42&token=a%20b&invoice=x"]  # as given
    assert endpoint.posted == [reference]  # a form POST of invoiceReference
    assert endpoint.seen[0].headers["User-Agent"] == "seqr-emulator-notifier"
    [done] = shop.notifications()
    assert (done.status, done.attempts) == (Notification.DELIVERED, 1)
    assert done.finished_at is not None
    [attempt] = shop.attempts()
    assert (attempt.notification_id, attempt.http_status, attempt.outcome) == (
        done.id, 200, "HTTP 200")
    assert 0 <= attempt.duration_ms < TIMEOUT * 1000
    assert any(url in record.getMessage() and "HTTP 200" in record.getMessage()
               for record in caplog.records)

    assert shop.deliver() is False  # nothing more to do
    assert len(endpoint.seen) == 1


def test_a_failing_endpoint_is_retried_with_backoff_then_given_up(
        shop: Shop, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.default = "500"
    shop.pay(shop.send(endpoint.url()))

    with caplog.at_level(logging.WARNING, logger="gateway.background.notifications"):
        assert shop.deliver() is True
    [row] = shop.notifications()
    [first] = shop.attempts()
    assert (row.status, row.attempts, first.http_status, first.outcome) == (
        Notification.PENDING, 1, 500, "HTTP 500")
    assert row.next_attempt_at == first.attempted_at + timedelta(seconds=1)
    assert any("HTTP 500" in record.getMessage() for record in caplog.records)
    assert shop.deliver() is False  # not due yet: no request
    assert len(endpoint.seen) == 1

    shop.make_due()
    assert shop.deliver() is True
    [row] = shop.notifications()
    second = shop.attempts()[1]
    assert (row.status, row.attempts) == (Notification.PENDING, 2)
    assert row.next_attempt_at == second.attempted_at + timedelta(seconds=2)  # doubled

    shop.make_due()
    assert shop.deliver() is True
    [row] = shop.notifications()
    assert (row.status, row.attempts) == (Notification.FAILED, 3)
    assert row.finished_at is not None
    assert [a.http_status for a in shop.attempts()] == [500, 500, 500]

    shop.make_due()  # a failed notification is never tried again
    assert shop.deliver() is False
    assert len(endpoint.seen) == 3


def test_a_retry_that_succeeds(shop: Shop, endpoint: Endpoint) -> None:
    endpoint.answers = ["500"]
    shop.pay(shop.send(endpoint.url()))
    shop.deliver()
    shop.make_due()
    shop.deliver()
    [row] = shop.notifications()
    assert (row.status, row.attempts) == (Notification.DELIVERED, 2)
    assert [a.http_status for a in shop.attempts()] == [500, 200]


def test_a_hanging_endpoint_times_out(shop: Shop, endpoint: Endpoint) -> None:
    endpoint.default = "hang"
    shop.pay(shop.send(endpoint.url()))
    started = time.monotonic()
    assert shop.deliver() is True
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + 1.0
    assert len(endpoint.seen) == 1
    [attempt] = shop.attempts()
    assert attempt.http_status is None
    assert "timed out" in attempt.outcome.lower()
    assert TIMEOUT * 800 <= attempt.duration_ms < (TIMEOUT + 1.0) * 1000
    [row] = shop.notifications()
    assert (row.status, row.attempts) == (Notification.PENDING, 1)


def test_an_unreachable_endpoint_is_recorded(shop: Shop) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    shop.pay(shop.send(f"http://127.0.0.1:{port}/notify"))
    for _ in range(3):
        shop.make_due()
        assert shop.deliver() is True
    attempts = shop.attempts()
    assert [a.http_status for a in attempts] == [None, None, None]
    assert all("refused" in a.outcome.lower() for a in attempts), attempts[0].outcome
    [row] = shop.notifications()
    assert (row.status, row.attempts) == (Notification.FAILED, 3)


@pytest.mark.parametrize("url", [None, "", "  "])
def test_no_notification_without_a_url(shop: Shop, endpoint: Endpoint, url: str | None) -> None:
    shop.pay(shop.send(url))
    assert shop.notifications() == []
    assert shop.deliver() is False
    assert endpoint.seen == []


def test_a_claimed_notification_is_left_to_its_claimer(shop: Shop, endpoint: Endpoint) -> None:
    shop.pay(shop.send(endpoint.url()))
    due = notifications.claim_due(shop.db)
    assert due is not None and due.attempt == 1
    assert notifications.claim_due(shop.db) is None  # another process finds nothing due
    assert shop.deliver() is False
    assert endpoint.seen == []


def test_no_soap_answer_waits_for_the_notification(tmp_path: Path, endpoint: Endpoint) -> None:
    """The register's operations (and the buyer's) only queue; the endpoint even hangs."""
    shop = make_shop(tmp_path, notification_timeout=3.0)
    endpoint.default = "hang"
    gateway = Gateway(shop.db, shop.settings)
    creds = Credentials("TERMINALID", shop.till.terminal_id, password="till-pw")

    def invoice(mode: str | None = None) -> InvoiceData:
        return InvoiceData(payment_mode=mode, acknowledgment_mode="NO_ACKNOWLEDGMENT",
                           total=Amount("SEK", Decimal("10.00")),
                           notification_url=endpoint.url())

    started = time.monotonic()
    paid = gateway.send_invoice(creds, invoice()).reference
    shop.pay(paid)
    status = gateway.get_payment_status(creds, paid)  # settles the payment
    assert status.status == Invoice.PAID
    gateway.submit_payment_receipt(creds, status.payment_reference, "text/plain", b"r", None)
    gateway.refund_payment(creds, status.payment_reference,
                           InvoiceData(total=Amount("SEK", Decimal("1.00"))))
    reserved = gateway.send_invoice(creds, invoice("RESERVATION_REQUIRED")).reference
    with shop.db.write() as session:
        payments.buyer_reserve(session, reserved, RULES, utcnow())
    gateway.commit_reservation(creds, reserved)
    assert gateway.get_payment_status(creds, reserved).status == Invoice.PAID
    # had any of them called the URL, it would have waited for the 3 s timeout
    assert time.monotonic() - started < 3.0
    time.sleep(0.1)
    assert endpoint.seen == []
    assert [n.status for n in shop.notifications()] == [Notification.PENDING] * 2

    endpoint.default = "200"
    assert shop.deliver() is True  # only now does a request go out
    assert endpoint.paths == ["/notify"]


# --- the Housekeeper ------------------------------------------------------------------------


def test_the_housekeeper_delivers_notifications(shop: Shop, endpoint: Endpoint) -> None:
    housekeeper = Housekeeper(shop.db, shop.settings)
    assert housekeeper.run_once() is False
    first, second = shop.send(endpoint.url("/a")), shop.send(endpoint.url("/b"))
    shop.pay(first)
    shop.pay(second)
    assert housekeeper.run_once() is True
    assert housekeeper.run_once() is True
    assert housekeeper.run_once() is False
    assert sorted(endpoint.paths) == ["/a", "/b"]
    assert [n.status for n in shop.notifications()] == [Notification.DELIVERED] * 2


def test_the_housekeeper_thread_delivers_and_stops(shop: Shop, endpoint: Endpoint) -> None:
    housekeeper = Housekeeper(shop.db, shop.settings)
    thread = housekeeper.start_thread()
    try:
        shop.pay(shop.send(endpoint.url()))
        deadline = time.monotonic() + 5
        while not endpoint.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert endpoint.paths == ["/notify"]
    finally:
        housekeeper.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_the_housekeeper_reverses_unpolled_payments(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, unpolled_reversal_seconds=1.0)
    rules = shop.settings.payment_rules
    housekeeper = Housekeeper(shop.db, shop.settings)
    unpolled, polled = shop.send(None, rules=rules), shop.send(None, rules=rules)
    shop.pay(unpolled, rules)
    shop.pay(polled, rules)
    with shop.db.write() as session:
        payments.get_payment_status(session, shop.till, polled, rules, utcnow())
    assert housekeeper.run_once() is False  # not yet due
    with shop.db.write() as session:  # rather than waiting a second: paid 1.1 s ago
        session.execute(update(Invoice).values(paid_at=utcnow() - timedelta(seconds=1.1)))
    assert housekeeper.run_once() is True
    assert housekeeper.run_once() is False
    with shop.db.read() as session:
        first = session.get(Invoice, unpolled)
        second = session.get(Invoice, polled)
        assert first is not None and second is not None
        assert (first.status, first.version) == (Invoice.CANCELED, 3)
        assert first.reversed_at is not None
        assert (second.status, second.version) == (Invoice.PAID, 2)
        sales = list(session.scalars(select(Transaction.invoice_reference)))
    assert sales == [polled]


def test_the_housekeeper_leaves_payments_alone_with_the_rule_off(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, unpolled_reversal_seconds=0)
    rules = shop.settings.payment_rules
    reference = shop.send(None, rules=rules)
    with shop.db.write() as session:  # paid long ago
        payments.buyer_pay(session, reference, rules, utcnow() - timedelta(hours=1))
    assert Housekeeper(shop.db, shop.settings).run_once() is False
    with shop.db.read() as session:
        row = session.get(Invoice, reference)
        assert row is not None and row.status == Invoice.PAID
        assert session.scalar(select(Transaction.invoice_reference)) == reference


def test_the_housekeeper_auto_pays(tmp_path: Path, endpoint: Endpoint) -> None:
    shop = make_shop(tmp_path, auto_pay_after=0.0)
    rules = shop.settings.payment_rules
    housekeeper = Housekeeper(shop.db, shop.settings)
    paid = shop.send(endpoint.url(), rules=rules)
    reserved = shop.send(None, "RESERVATION_REQUIRED", rules=rules)
    assert housekeeper.run_once() is True  # pays, reserves, and delivers the notification
    with shop.db.read() as session:
        assert session.get(Invoice, paid).status == Invoice.PAID  # type: ignore[union-attr]
        assert session.get(Invoice, reserved).status == (  # type: ignore[union-attr]
            Invoice.RESERVED)
    assert endpoint.paths == ["/notify"]
    assert housekeeper.run_once() is False


# --- end to end: a webshop on the real server ----------------------------------------------


def _soap(server: GatewayServer, operation: str, inner: str) -> str:
    response = server.post(envelope(operation, inner))
    assert response.status_code == 200, response.text
    assert "<resultCode>0</resultCode>" in response.text, response.text
    return response.text


def test_the_server_posts_once_per_paid_invoice_and_never_otherwise(
        server: GatewayServer, endpoint: Endpoint) -> None:
    """A webshop terminal made with `seqr-gateway add-terminal --webshop`; five invoices with
    a notificationUrl: paid, reserved then committed, canceled, failed, left open. The
    merchant's server sees one POST of invoiceReference for each of the two payments, at
    the URL given, query string and all; nothing for the others."""
    import subprocess
    import sys

    shop = conftest_make_shop(server.db)
    made = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "add-terminal", "--database-url",
         server.db_url, "--reseller-id", shop.reseller_id, "--password", "web-pw",
         "--name", "Web shop", "--webshop"], capture_output=True, text=True, check=True)
    terminal_id = made.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", terminal_id), made.stdout
    till = context_xml(terminal_id, "TERMINALID", password="web-pw", user_id=None)

    def send(order: int, mode: str = "IMMEDIATE_DEBIT") -> str:
        url = endpoint.url(f"/seqr/notify?order={order}&amp;notification=true")
        text = _soap(server, "sendInvoice", till + (
            f"<invoice><paymentMode>{mode}</paymentMode>"
            "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode>"
            "<totalAmount><currency>SEK</currency><value>99.00</value></totalAmount>"
            f"<notificationUrl>{url}</notificationUrl></invoice>"))
        found = re.search(r"<invoiceReference>(\d{13})</invoiceReference>", text)
        assert found is not None, text
        return found.group(1)

    def buyer(reference: str, action: str) -> None:
        answer = requests.post(f"{server.base}/simulator/invoices/{reference}/{action}",
                               timeout=10)
        assert answer.status_code == 200, answer.text

    paid, committed, canceled, failed, open_ = (
        send(1), send(2, "RESERVATION_REQUIRED"), send(3), send(4), send(5))
    buyer(paid, "pay")
    buyer(committed, "reserve")
    reference = "<invoiceReference>{}</invoiceReference>"
    _soap(server, "commitReservation", till + reference.format(committed))
    _soap(server, "cancelInvoice", till + reference.format(canceled))
    buyer(failed, "fail")
    for ref in (paid, committed, canceled, failed, open_):
        _soap(server, "getPaymentStatus", till + reference.format(ref)
              + "<invoiceVersion>0</invoiceVersion>")

    deadline = time.monotonic() + 15
    while len(endpoint.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # time enough for a wrong third call to arrive
    assert sorted(endpoint.posted) == sorted([paid, committed])
    assert sorted(endpoint.paths) == ["/seqr/notify?order=1&notification=true",
                                      "/seqr/notify?order=2&notification=true"]
