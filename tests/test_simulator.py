"""The buyer simulator against the real server: its HTTP endpoints, its CLI, and its switches.

Every buyer action is checked twice: in the simulator's JSON answer, and as the register
sees it by polling getPaymentStatus over SOAP (raw envelopes, schema-checked by `call`).
Special configurations (no simulator, an admin token, auto-pay, a short reversal window)
get a gateway of their own.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from gateway.config import Settings
from gateway.wire.app import GatewayApp
from storage.database import Database
from tests.support.domain import webshop_terminal
from tests.support.envelopes import (
    PERIOD_RE,
    TILL_PASSWORD,
    context_xml,
    invoice_xml,
    text_of,
    till_context,
)
from tests.support.servers import GatewayServer, InProcess, Shop, free_port, make_shop
from tests.support.wire import call, register_terminal, result

IMMEDIATE = "IMMEDIATE_DEBIT"
DESIRED = "RESERVATION_DESIRED"
REQUIRED = "RESERVATION_REQUIRED"
NO_ACK = "NO_ACKNOWLEDGMENT"
REQUIRE_ACK = "REQUIRE_ACKNOWLEDGMENT"
TIMEOUT = 10


# --- the register's side, over SOAP ----------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One getPaymentStatus answer, as the register reads it."""

    status: str
    version: int
    ers_reference: str | None
    receipt_reference: str | None


@dataclass
class Till:
    server: GatewayServer
    terminal_id: str

    @classmethod
    def register(cls, server: GatewayServer, shop: Shop) -> "Till":
        """A cash register: one live invoice (a new one cancels the unpaid one)."""
        return cls(server, register_terminal(server, shop))

    @classmethod
    def webshop(cls, server: GatewayServer, shop: Shop) -> "Till":
        """A webshop's terminal (made by the operator, as `add-terminal --webshop` does):
        many invoices open at once, with the password register_terminal's tills have."""
        return cls(server, webshop_terminal(server.db, shop.reseller_id, TILL_PASSWORD))

    def _ref(self, reference: str) -> str:
        return till_context(self.terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"

    def send(self, amount: str = "10.00", mode: str = IMMEDIATE, ack: str = NO_ACK) -> str:
        invoice = invoice_xml(amount=amount, mode=mode).replace(NO_ACK, ack)
        ret = call(self.server, "sendInvoice", till_context(self.terminal_id) + invoice)
        assert result(ret) == (0, "SUCCESS")
        reference = text_of(ret, "invoiceReference") or ""
        assert len(reference) == 13 and reference.isdigit()
        return reference

    def poll(self, reference: str, version: int = 0) -> Seen:
        ret = call(self.server, "getPaymentStatus",
                   self._ref(reference) + f"<invoiceVersion>{version}</invoiceVersion>")
        assert result(ret) == (0, "SUCCESS")
        return Seen(text_of(ret, "status") or "", int(text_of(ret, "version") or "-1"),
                    text_of(ret, "ersReference"), text_of(ret, "receipt/paymentReference"))

    def operation(self, operation: str, reference: str, extra: str = "") -> int:
        return result(call(self.server, operation, self._ref(reference) + extra))[0]

    def assign_seqr_id(self, seqr_id: str) -> None:
        inner = till_context(self.terminal_id) + f"<seqrId>{seqr_id}</seqrId>"
        assert result(call(self.server, "assignSeqrId", inner)) == (0, "SUCCESS")

    def wait_for(self, reference: str, *statuses: str, timeout: float = 6.0) -> Seen:
        """Poll about ten times a second, as an impatient register, until a wanted status."""
        deadline = time.monotonic() + timeout
        seen = self.poll(reference)
        while seen.status not in statuses and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = self.poll(reference)
        assert seen.status in statuses, (reference, seen)
        return seen

    def terminal_report(self, shop: Shop) -> list[dict[str, str]]:
        """Close this till's period and fetch its STD_RECON_007 rows."""
        shop_ctx = context_xml(shop.reseller_id, password=shop.password)
        till_param = (f"<entry><key>TERMINALID</key><value>{self.terminal_id}</value></entry>")
        mark = call(self.server, "markTransactionPeriod",
                    shop_ctx + f"<parameters><parameter>{till_param}</parameter></parameters>")
        assert result(mark) == (0, "SUCCESS")
        period = text_of(mark, "transactionPeriodId") or ""
        assert PERIOD_RE.match(period)
        inner = (shop_ctx + "<reportId>Reconciliation/STD_RECON_007.xml</reportId>"
                 "<language>en</language><parameters><parameter><entry>"
                 f"<key>transactionPeriodId</key><value>{period}</value></entry>{till_param}"
                 "</parameter></parameters>")
        deadline = time.monotonic() + 20
        while True:
            ret = call(self.server, "executeReport", inner)
            code = result(ret)[0]
            if code != 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert code == 0, result(ret)
        root = etree.fromstring((text_of(ret, "report/contentString") or "").encode())
        return [{field.tag: field.text or "" for field in row} for row in root.findall("Row")]


# --- the buyer's side, over HTTP -------------------------------------------------------------


def buyer(server: GatewayServer, reference: str, action: str,
          headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{server.base}/simulator/invoices/{reference}/{action}",
                         headers=headers, timeout=TIMEOUT)


def ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def conflict(response: requests.Response, status: str | None) -> dict[str, Any]:
    """A 409 answer: JSON {"error": <readable text>, "status": <the invoice's status>}."""
    assert response.status_code == 409, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "status"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["status"] == status, body
    return body


def not_found(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 404, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return body


def described(body: dict[str, Any], till: Till, reference: str, status: str,
              version: int) -> None:
    assert body["invoiceReference"] == reference
    assert body["terminalId"] == till.terminal_id
    assert (body["status"], body["version"]) == (status, version), body
    if status == "PAID":
        assert PERIOD_RE.match(body["paymentReference"] or ""), body
    else:
        assert body["paymentReference"] is None, body


@contextmanager
def own_server(tmp_path: Path, *flags: str, env: dict[str, str] | None = None
               ) -> Iterator[GatewayServer]:
    gateway = GatewayServer(tmp_path, *flags, env=env)
    try:
        yield gateway.start()
    finally:
        gateway.stop()


def own_shop(gateway: GatewayServer) -> Shop:
    return make_shop(gateway.db)


# --- each action: its answer and what the register sees --------------------------------------


def test_scan_then_pay(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    reference = till.send()
    assert till.poll(reference) == Seen("ISSUED", 1, None, None)

    scanned = ok(buyer(server, reference, "scan"))
    described(scanned, till, reference, "ISSUED", 1)  # seen on the phone: nothing changes
    assert scanned["totalAmount"] == {"currency": "SEK", "value": scanned["totalAmount"]["value"]}
    assert Decimal(scanned["totalAmount"]["value"]) == Decimal("10.00")
    assert till.poll(reference) == Seen("ISSUED", 1, None, None)

    paid = ok(buyer(server, reference, "pay"))
    described(paid, till, reference, "PAID", 2)
    payment = paid["paymentReference"]
    assert till.poll(reference) == Seen("PAID", 2, payment, payment)
    assert till.poll(reference, version=2) == Seen("PAID", 2, payment, payment)  # no change

    shown = ok(requests.get(f"{server.base}/simulator/invoices/{reference}", timeout=TIMEOUT))
    assert shown == paid


def test_scan_with_required_acknowledgment(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    reference = till.send(ack=REQUIRE_ACK)
    conflict(buyer(server, reference, "pay"), "ISSUED")  # not scanned and acknowledged yet

    described(ok(buyer(server, reference, "scan")), till, reference,
              "PENDING_ISSUER_ACKNOWLEDGE", 2)
    assert till.poll(reference) == Seen("PENDING_ISSUER_ACKNOWLEDGE", 2, None, None)
    conflict(buyer(server, reference, "scan"), "PENDING_ISSUER_ACKNOWLEDGE")
    conflict(buyer(server, reference, "pay"), "PENDING_ISSUER_ACKNOWLEDGE")
    assert till.operation("cancelInvoice", reference) == 51  # being paid
    assert till.poll(reference).version == 2  # the refusals changed nothing

    # the register acknowledges by updating the invoice; now the buyer can pay
    assert till.operation("updateInvoice", reference, invoice_xml(amount="12.00")) == 0
    assert till.poll(reference) == Seen("ISSUED", 3, None, None)
    paid = ok(buyer(server, reference, "pay"))
    described(paid, till, reference, "PAID", 4)
    assert Decimal(paid["totalAmount"]["value"]) == Decimal("12.00")
    assert till.poll(reference) == Seen("PAID", 4, paid["paymentReference"],
                                        paid["paymentReference"])


def test_fail(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    reference = till.send()
    described(ok(buyer(server, reference, "fail")), till, reference, "FAILED", 2)
    assert till.poll(reference) == Seen("FAILED", 2, None, None)
    conflict(buyer(server, reference, "fail"), "FAILED")
    conflict(buyer(server, reference, "pay"), "FAILED")
    assert till.poll(reference).version == 2

    pending = till.send(ack=REQUIRE_ACK)  # a payment may fail while being acknowledged too
    ok(buyer(server, pending, "scan"))
    described(ok(buyer(server, pending, "fail")), till, pending, "FAILED", 3)
    assert till.poll(pending) == Seen("FAILED", 3, None, None)


def test_reserve_then_commit(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    required = till.send(mode=REQUIRED)
    described(ok(buyer(server, required, "reserve")), till, required, "RESERVED", 2)
    assert till.poll(required) == Seen("RESERVED", 2, None, None)
    conflict(buyer(server, required, "reserve"), "RESERVED")
    conflict(buyer(server, required, "pay"), "RESERVED")
    assert till.operation("commitReservation", required) == 0
    seen = till.poll(required)
    assert (seen.status, seen.version) == ("PAID", 3)
    assert PERIOD_RE.match(seen.ers_reference or "")
    assert seen.receipt_reference == seen.ers_reference
    shown = ok(requests.get(f"{server.base}/simulator/invoices/{required}", timeout=TIMEOUT))
    described(shown, till, required, "PAID", 3)
    assert shown["paymentReference"] == seen.ers_reference

    desired = till.send(mode=DESIRED)  # a reservation is allowed, not demanded
    described(ok(buyer(server, desired, "reserve")), till, desired, "RESERVED", 2)
    assert till.poll(desired).status == "RESERVED"
    immediate = till.send(mode=DESIRED)
    described(ok(buyer(server, immediate, "pay")), till, immediate, "PAID", 2)


def test_impossible_transitions_are_409(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)

    paid = till.send()
    payment = ok(buyer(server, paid, "pay"))["paymentReference"]
    twice = conflict(buyer(server, paid, "pay"), "PAID")
    assert paid in twice["error"]
    conflict(buyer(server, paid, "fail"), "PAID")
    conflict(buyer(server, paid, "scan"), "PAID")
    conflict(buyer(server, paid, "reserve"), "PAID")
    assert till.poll(paid) == Seen("PAID", 2, payment, payment)  # still the first payment

    immediate = till.send(mode=IMMEDIATE)
    body = conflict(buyer(server, immediate, "reserve"), "ISSUED")
    assert "IMMEDIATE_DEBIT" in body["error"]
    assert till.poll(immediate) == Seen("ISSUED", 1, None, None)

    required = till.send(mode=REQUIRED)
    body = conflict(buyer(server, required, "pay"), "ISSUED")
    assert "RESERVATION_REQUIRED" in body["error"]
    assert till.poll(required) == Seen("ISSUED", 1, None, None)

    canceled = till.send()
    assert till.operation("cancelInvoice", canceled) == 0
    for action in ("scan", "pay", "fail", "reserve"):
        conflict(buyer(server, canceled, action), "CANCELED")
    assert till.poll(canceled) == Seen("CANCELED", 2, None, None)


def test_unknown_invoice_and_seqr_id_are_404(server: GatewayServer) -> None:
    for action in ("scan", "pay", "fail", "reserve"):
        assert "1234567890123" in not_found(buyer(server, "1234567890123", action))["error"]
    not_found(requests.get(f"{server.base}/simulator/invoices/1234567890123", timeout=TIMEOUT))
    sticker = "NOSUCH" + uuid.uuid4().hex[:8]
    assert sticker in not_found(requests.post(
        f"{server.base}/simulator/seqr-ids/{sticker}/pay", timeout=TIMEOUT))["error"]


def test_pay_by_seqr_id(server: GatewayServer, shop: Shop) -> None:
    till, neighbour = Till.register(server, shop), Till.register(server, shop)
    sticker = "ST" + uuid.uuid4().hex[:10].upper()
    till.assign_seqr_id(sticker)
    url = f"{server.base}/simulator/seqr-ids/{sticker}/pay"
    conflict(requests.post(url, timeout=TIMEOUT), None)  # nothing open yet
    older, newer = till.send(amount="5.00"), till.send(amount="7.00")  # newer replaces older
    elsewhere = neighbour.send()  # another till's invoice, even newer

    first = ok(requests.post(url, timeout=TIMEOUT))
    described(first, till, newer, "PAID", 2)  # the open invoice of this till
    assert till.poll(newer).ers_reference == first["paymentReference"]
    assert till.poll(older) == Seen("CANCELED", 2, None, None)

    conflict(requests.post(url, timeout=TIMEOUT), None)  # none open: nothing to pay
    canceled = till.send()
    assert till.operation("cancelInvoice", canceled) == 0
    conflict(requests.post(url, timeout=TIMEOUT), None)  # a canceled invoice is not open
    assert neighbour.poll(elsewhere) == Seen("ISSUED", 1, None, None)

    assert requests.get(url, timeout=TIMEOUT).status_code == 405


def test_wrong_methods_and_paths(server: GatewayServer, shop: Shop) -> None:
    reference = Till.register(server, shop).send()
    invoice_url = f"{server.base}/simulator/invoices/{reference}"

    wrong = requests.get(invoice_url + "/pay", timeout=TIMEOUT)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert wrong.headers["Content-Type"] == "application/json" and "error" in wrong.json()
    for method in ("PUT", "DELETE"):
        assert requests.request(method, invoice_url + "/pay", timeout=TIMEOUT).status_code == 405
    read_only = requests.post(invoice_url, timeout=TIMEOUT)
    assert read_only.status_code == 405 and read_only.headers["Allow"] == "GET"
    assert ok(requests.get(invoice_url, timeout=TIMEOUT))["status"] == "ISSUED"  # untouched

    for path in ("/simulator/", "/simulator/nothing", f"/simulator/invoices/{reference}/refund",
                 f"/simulator/invoices/{reference}/pay/again", "/simulator/seqr-ids/ABC/scan",
                 "/simulator/invoices/not-a-number/pay"):
        not_found(requests.post(server.base + path, timeout=TIMEOUT))
    assert ok(requests.get(invoice_url, timeout=TIMEOUT))["version"] == 1


# --- switches: --no-simulator, SEQR_ADMIN_TOKEN ------------------------------------------------


@pytest.mark.once
def test_no_simulator(tmp_path: Path) -> None:
    with own_server(tmp_path, "--no-simulator") as gateway:
        till = Till.register(gateway, own_shop(gateway))
        reference = till.send()
        for action in ("scan", "pay"):
            assert buyer(gateway, reference, action).status_code == 404
        assert requests.get(f"{gateway.base}/simulator/invoices/{reference}",
                            timeout=TIMEOUT).status_code == 404
        assert requests.post(f"{gateway.base}/simulator/seqr-ids/ABC/pay",
                             timeout=TIMEOUT).status_code == 404
        cli = simulate_cli(gateway, "pay", reference)
        assert cli.returncode == 1 and "404" in cli.stderr
        assert till.poll(reference) == Seen("ISSUED", 1, None, None)  # SOAP works as ever
        assert till.operation("cancelInvoice", reference) == 0


@pytest.mark.once
def test_admin_token(tmp_path: Path) -> None:
    token = "tok-" + uuid.uuid4().hex
    with own_server(tmp_path, env={"SEQR_ADMIN_TOKEN": token}) as gateway:
        till = Till.register(gateway, own_shop(gateway))  # SOAP needs no token
        reference = till.send()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token},
                        {"Authorization": f"Basic {token}"}):
            denied = buyer(gateway, reference, "pay", headers)
            assert denied.status_code == 401, headers
            assert denied.json() == {"error": "bearer token required"}
            assert denied.headers["WWW-Authenticate"].startswith("Bearer")
        assert requests.get(f"{gateway.base}/simulator/invoices/{reference}",
                            timeout=TIMEOUT).status_code == 401
        assert requests.post(f"{gateway.base}/simulator/nothing", timeout=TIMEOUT
                             ).status_code == 401  # nothing is revealed without the token
        assert till.poll(reference) == Seen("ISSUED", 1, None, None)

        right = {"Authorization": f"Bearer {token}"}
        described(ok(buyer(gateway, reference, "scan", right)), till, reference, "ISSUED", 1)
        shown = requests.get(f"{gateway.base}/simulator/invoices/{reference}", headers=right,
                             timeout=TIMEOUT)
        assert ok(shown)["status"] == "ISSUED"
        lower = {"Authorization": f"bearer {token}"}  # the scheme is case-insensitive
        assert ok(requests.get(f"{gateway.base}/simulator/invoices/{reference}", headers=lower,
                               timeout=TIMEOUT))["version"] == 1

        without = simulate_cli(gateway, "pay", reference)
        assert without.returncode == 1 and "401" in without.stderr
        wrong = simulate_cli(gateway, "pay", reference, token="wrong")
        assert wrong.returncode == 1 and "401" in wrong.stderr
        paid = simulate_cli(gateway, "pay", reference, token=token)
        assert paid.returncode == 0, paid.stderr
        assert json.loads(paid.stdout)["status"] == "PAID"
        assert till.poll(reference).status == "PAID"


def test_database_down_is_a_json_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'gone.sqlite3'}"
    gateway = InProcess(GatewayApp(Database(url), Settings(database_url=url)))
    for method, path in (("POST", "/simulator/invoices/1234567890123/pay"),
                         ("GET", "/simulator/invoices/1234567890123"),
                         ("POST", "/simulator/seqr-ids/ABC/pay")):
        status, body = gateway.request(method, path)
        assert status == 503, (path, body)
        assert "database" in json.loads(body)["error"]


# --- the clock: --auto-pay-after, --unpolled-reversal-seconds ----------------------------------


def test_auto_pay_after(tmp_path: Path) -> None:
    with own_server(tmp_path, "--auto-pay-after", "0.5") as gateway:
        shop = own_shop(gateway)
        till = Till.webshop(gateway, shop)  # many open at once
        immediate, desired = till.send(mode=IMMEDIATE), till.send(mode=DESIRED)
        required, acknowledged = till.send(mode=REQUIRED), till.send(ack=REQUIRE_ACK)
        canceled = till.send()
        assert till.operation("cancelInvoice", canceled) == 0  # before its time came

        paid = till.wait_for(immediate, "PAID")
        assert paid.version == 2 and PERIOD_RE.match(paid.ers_reference or "")
        assert till.wait_for(desired, "PAID").version == 2
        assert till.wait_for(required, "RESERVED") == Seen("RESERVED", 2, None, None)
        # an invoice that needs acknowledging is scanned, then waits for the register
        assert till.wait_for(acknowledged, "PENDING_ISSUER_ACKNOWLEDGE").version == 2
        assert till.operation("updateInvoice", acknowledged, invoice_xml()) == 0
        assert till.wait_for(acknowledged, "PAID").version == 4

        assert till.operation("commitReservation", required) == 0
        assert till.poll(required).status == "PAID"
        assert till.poll(canceled) == Seen("CANCELED", 2, None, None)
        later = till.send()  # the rule applies to every new invoice
        assert till.wait_for(later, "PAID").version == 2
        sales = [row["ErsReference"] for row in till.terminal_report(shop)]
        assert sorted(sales) == sorted(
            till.poll(ref).ers_reference for ref in (immediate, desired, required,
                                                     acknowledged, later))


def test_unpolled_payment_is_reversed(tmp_path: Path) -> None:
    with own_server(tmp_path, "--unpolled-reversal-seconds", "1") as gateway:
        shop = own_shop(gateway)
        till = Till.webshop(gateway, shop)  # many open at once
        forgotten, watched = till.send(), till.send()
        assert till.poll(forgotten) == Seen("ISSUED", 1, None, None)
        ok(buyer(gateway, forgotten, "pay"))
        payment = ok(buyer(gateway, watched, "pay"))["paymentReference"]
        assert till.poll(watched) == Seen("PAID", 2, payment, payment)  # polled in time

        time.sleep(1.6)
        assert till.poll(forgotten) == Seen("CANCELED", 3, None, None)  # paid, then reversed
        assert till.poll(watched) == Seen("PAID", 2, payment, payment)  # stays paid
        shown = ok(requests.get(f"{gateway.base}/simulator/invoices/{forgotten}",
                                timeout=TIMEOUT))
        assert (shown["status"], shown["version"]) == ("CANCELED", 3)
        conflict(buyer(gateway, forgotten, "pay"), "CANCELED")
        assert [row["ErsReference"] for row in till.terminal_report(shop)] == [payment]


def test_a_refusal_keeps_the_reversal_it_applied(tmp_path: Path) -> None:
    """Without housekeeping in the gateway (--no-worker), the 20-second rule is applied by
    whoever touches the invoice next. A buyer action that is then refused still leaves the
    reversal in place: the 409's status is the invoice's stored state, not a rolled-back one."""
    with own_server(tmp_path, "--no-worker", "--unpolled-reversal-seconds", "1") as gateway:
        till = Till.register(gateway, own_shop(gateway))
        reference = till.send()
        ok(buyer(gateway, reference, "pay"))
        time.sleep(1.3)
        conflict(buyer(gateway, reference, "scan"), "CANCELED")
        shown = ok(requests.get(f"{gateway.base}/simulator/invoices/{reference}",
                                timeout=TIMEOUT))
        assert (shown["status"], shown["version"]) == ("CANCELED", 3)
        conflict(buyer(gateway, reference, "pay"), "CANCELED")
        assert till.poll(reference) == Seen("CANCELED", 3, None, None)  # reversed once


# --- the CLI: seqr-gateway simulate ----------------------------------------------------------


def simulate_cli(gateway: GatewayServer | str, *args: str,
                 token: str | None = None) -> subprocess.CompletedProcess[str]:
    url = gateway if isinstance(gateway, str) else gateway.base
    env = {k: v for k, v in os.environ.items() if k != "SEQR_ADMIN_TOKEN"}
    if token is not None:
        env["SEQR_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "simulate", *args, "--gateway-url", url],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


@pytest.mark.once
def test_cli_actions(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    reference = till.send(ack=REQUIRE_ACK)
    scanned = simulate_cli(server, "scan", reference)
    assert scanned.returncode == 0, scanned.stderr
    described(json.loads(scanned.stdout), till, reference, "PENDING_ISSUER_ACKNOWLEDGE", 2)
    assert till.poll(reference).status == "PENDING_ISSUER_ACKNOWLEDGE"

    failed = simulate_cli(server, "fail", reference)
    assert failed.returncode == 0, failed.stderr
    assert json.loads(failed.stdout)["status"] == "FAILED"
    assert till.poll(reference) == Seen("FAILED", 3, None, None)

    refused = simulate_cli(server, "pay", reference)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "409" in refused.stderr and "FAILED" in refused.stderr
    assert "Traceback" not in refused.stderr

    required = till.send(mode=REQUIRED)
    reserved = simulate_cli(server, "reserve", required)
    assert reserved.returncode == 0, reserved.stderr
    described(json.loads(reserved.stdout), till, required, "RESERVED", 2)
    assert till.poll(required).status == "RESERVED"

    plain = till.send()
    paid = simulate_cli(server, "pay", plain)
    assert paid.returncode == 0, paid.stderr
    body = json.loads(paid.stdout)
    described(body, till, plain, "PAID", 2)
    assert till.poll(plain).ers_reference == body["paymentReference"]

    unknown = simulate_cli(server, "pay", "1234567890123")
    assert unknown.returncode == 1 and "404" in unknown.stderr


@pytest.mark.once
def test_cli_pay_by_seqr_id(server: GatewayServer, shop: Shop) -> None:
    till = Till.register(server, shop)
    sticker = "CLI" + uuid.uuid4().hex[:10].upper()
    till.assign_seqr_id(sticker)
    reference = till.send()
    paid = simulate_cli(server, "pay", "--seqr-id", sticker)
    assert paid.returncode == 0, paid.stderr
    described(json.loads(paid.stdout), till, reference, "PAID", 2)
    assert till.poll(reference).status == "PAID"

    nothing_open = simulate_cli(server, "pay", "--seqr-id", sticker)
    assert nothing_open.returncode == 1
    assert nothing_open.stderr == (
        f"refused (409): terminal with SEQR ID {sticker} has no open invoice\n"
        "what to do: the till has no invoice open: send one first, or give it time with "
        "--wait SECONDS (waited 0 s)\n")
    neither = simulate_cli(server, "pay")
    assert neither.returncode == 2 and "INVOICE_REF" in neither.stderr
    other = till.send()
    both = simulate_cli(server, "pay", other, "--seqr-id", sticker)  # ambiguous: refused
    assert both.returncode == 2 and "not both" in both.stderr
    assert till.poll(other) == Seen("ISSUED", 1, None, None)


@pytest.mark.once
def test_cli_every_action_by_seqr_id(server: GatewayServer, shop: Shop) -> None:
    """scan, fail and reserve reach the till's newest open invoice through its sticker too."""
    till = Till.register(server, shop)
    sticker = "ACT" + uuid.uuid4().hex[:10].upper()
    till.assign_seqr_id(sticker)
    acknowledged = till.send(ack="REQUIRE_ACKNOWLEDGMENT")
    scanned = simulate_cli(server, "scan", "--seqr-id", sticker)
    assert scanned.returncode == 0, scanned.stderr
    described(json.loads(scanned.stdout), till, acknowledged, "PENDING_ISSUER_ACKNOWLEDGE", 2)
    failed = simulate_cli(server, "fail", "--seqr-id", sticker)  # waiting for the register
    assert failed.returncode == 0, failed.stderr
    described(json.loads(failed.stdout), till, acknowledged, "FAILED", 3)

    required = till.send(mode=REQUIRED)
    reserved = simulate_cli(server, "reserve", "--seqr-id", sticker)
    assert reserved.returncode == 0, reserved.stderr
    described(json.loads(reserved.stdout), till, required, "RESERVED", 2)
    assert till.poll(required).status == "RESERVED"


@pytest.mark.once
def test_cli_by_seqr_id_waits_for_the_till_to_send(server: GatewayServer, shop: Shop) -> None:
    """A buyer at the counter before the cashier: --wait gives the till time to send."""
    till = Till.register(server, shop)
    sticker = "WAIT" + uuid.uuid4().hex[:10].upper()
    till.assign_seqr_id(sticker)
    url = server.base
    buyer = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "simulate", "pay", "--seqr-id", sticker,
         "--wait", "30", "--gateway-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        asked = f"/simulator/seqr-ids/{sticker}/pay"  # the buyer is waiting: it has asked
        deadline = time.monotonic() + 30
        while asked not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert buyer.poll() is None, buyer.communicate()
        reference = till.send()
        out, err = buyer.communicate(timeout=30)
    finally:
        if buyer.poll() is None:
            buyer.kill()
    assert buyer.returncode == 0, err
    described(json.loads(out), till, reference, "PAID", 2)


@pytest.mark.once
def test_cli_gateway_url_with_the_soap_path_says_so(server: GatewayServer) -> None:
    answer = simulate_cli(server.endpoint, "pay", "1234567890123")
    assert answer.returncode == 1
    assert answer.stderr.splitlines()[-1] == (
        "what to do: --gateway-url is the gateway's address without a path (not the SOAP "
        "endpoint): drop '/extclientproxy/service/v2', e.g. http://127.0.0.1:8080")
    schemeless = simulate_cli(server.base.removeprefix("http://"), "pay", "1234567890123")
    assert schemeless.returncode == 2 and "is not an http(s) URL" in schemeless.stderr


@contextmanager
def not_a_gateway(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """Something else answering every POST at a URL (yielded) with this status and body."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as other:
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{other.server_address[1]}"
        finally:
            other.shutdown()


@pytest.mark.once
def test_cli_unexpected_answers() -> None:
    """No traceback whatever answers: a readable message, and exit 2 unless refused (4xx)."""
    cases = [
        (200, "text/html", b"<html>hello</html>", 2, "not JSON"),
        (503, "application/json", b'{"error": "database away"}', 2, "503): database away"),
        (409, "application/json", b'["odd"]', 1, "refused (409)"),
    ]
    for status, content_type, body, code, message in cases:
        with not_a_gateway(status, content_type, body) as url:
            answer = simulate_cli(url, "pay", "1234567890123")
        assert answer.returncode == code, (status, answer)
        assert message in answer.stderr and "Traceback" not in answer.stderr, answer


@pytest.mark.once
def test_cli_unreachable_gateway() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    answer = simulate_cli(nowhere, "pay", "1234567890123")
    assert answer.returncode == 2
    assert "cannot reach" in answer.stderr and nowhere in answer.stderr
    assert "Traceback" not in answer.stderr
