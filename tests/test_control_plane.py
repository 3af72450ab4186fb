"""The tester's control plane (/admin/) against two real gateway processes on one database.

Every call alternates between the two `seqr-gateway serve` processes (A and B): the
journal, the fault rules' counters and the clock must hold across them. On PostgreSQL
(SEQR_TEST_DATABASE_URL) this is the production shape: two gateways, one database.
"""

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate
from sqlalchemy import select

import client
from client.admin import Admin, AdminError
from storage.models import ReportJob
from tests.support.envelopes import context_xml, envelope
from tests.support.servers import GatewayServer

CODE = re.compile(rb"<resultCode>(-?\d+)</resultCode>")
STATUS = re.compile(rb"<status>([A-Z_]+)</status>")
REFERENCE = re.compile(rb"<invoiceReference>(\d{13})</invoiceReference>")
PAYMENT_DATE = re.compile(rb"<paymentDate>([^<]+)</paymentDate>")
PERIOD = re.compile(rb"<transactionPeriodId>(\d{25})</transactionPeriodId>")


@dataclass
class Pair:
    a: GatewayServer
    b: GatewayServer

    def __iter__(self) -> Iterator[GatewayServer]:
        return iter((self.a, self.b))


@pytest.fixture(scope="module")
def pair(database_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("control")
    a = GatewayServer(workdir, "--no-worker")
    b = GatewayServer(workdir, db_url=a.db_url)  # the second process renders the reports
    for server in (a, b):
        server.start()
    yield Pair(a, b)
    for server in (a, b):
        server.stop()


@dataclass
class World:
    pair: Pair
    admin: Admin  # through A
    admin_b: Admin  # through B
    shop: str
    password: str
    terminal: str
    terminal_password: str
    seqr_id: str

    def soap(self, server: GatewayServer, operation: str, inner: str) -> requests.Response:
        return server.post(envelope(operation, inner))

    def till(self) -> str:
        return context_xml(self.terminal, "TERMINALID", self.terminal_password, None)

    def owner(self) -> str:
        return context_xml(self.shop, "RESELLERUSER", self.password, "9900")

    def send(self, server: GatewayServer, amount: str = "25.00") -> str:
        answer = self.soap(server, "sendInvoice", self.till() + invoice(amount))
        assert code(answer) == 0, answer.text
        return REFERENCE.search(answer.content).group(1).decode()  # type: ignore[union-attr]

    def poll(self, server: GatewayServer, reference: str) -> requests.Response:
        return self.soap(server, "getPaymentStatus", self.till()
                         + f"<invoiceReference>{reference}</invoiceReference>"
                         "<invoiceVersion>0</invoiceVersion>")


def invoice(amount: str) -> str:
    return (
        "<invoice><paymentMode>IMMEDIATE_DEBIT</paymentMode>"
        "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode><title>Coffee</title>"
        "<invoiceRows><invoiceRow><itemDescription>Coffee</itemDescription>"
        f"<itemQuantity>1</itemQuantity><itemTotalAmount><currency>SEK</currency>"
        f"<value>{amount}</value></itemTotalAmount></invoiceRow></invoiceRows>"
        f"<totalAmount><currency>SEK</currency><value>{amount}</value></totalAmount>"
        "<cashierId>anna</cashierId></invoice>"
    )


def code(answer: requests.Response) -> int | None:
    found = CODE.search(answer.content)
    return int(found.group(1)) if found else None


def fixture_of(shop: str, terminal: str, seqr_id: str, **extra: Any) -> dict[str, Any]:
    till = {"terminalId": terminal, "password": "till-secret", "name": "Till 1",
            "seqrId": seqr_id, "kind": "cash-register", **extra}
    return {"shops": [{"id": shop, "name": "Control shop",
                       "users": [{"id": "9900", "password": "shop-secret"}],
                       "terminals": [till]}]}


@pytest.fixture
def world(pair: Pair) -> World:
    """A fresh world for each test: everything reset, one shop with one till seeded."""
    admin, admin_b = Admin(pair.a.base), Admin(pair.b.base)
    tag = uuid.uuid4().hex
    shop, terminal, seqr_id = f"shop-{tag[:8]}", tag, f"S{tag[:10].upper()}"
    admin.reset()
    seeded = admin_b.seed(fixture_of(shop, terminal, seqr_id))
    assert seeded["terminals"] == [terminal]
    return World(pair, admin, admin_b, shop, "shop-secret", terminal, "till-secret", seqr_id)


# --- the request journal --------------------------------------------------------------------


def test_a_registers_sale_is_in_the_journal_whichever_process_answered(world: World) -> None:
    a, b = world.pair
    sold = requests.post(a.endpoint, data=envelope("sendInvoice", world.till() + invoice("25.00")),
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": '"urn:sendInvoice"'}, timeout=30)
    assert code(sold) == 0
    reference = REFERENCE.search(sold.content).group(1).decode()  # type: ignore[union-attr]
    world.admin.pay(reference)
    polled = world.poll(b, reference)
    assert code(polled) == 0 and b"<status>PAID</status>" in polled.content

    entries = world.admin_b.journal(terminal=world.terminal)
    assert [e["operation"] for e in entries] == ["sendInvoice", "getPaymentStatus"]
    sale, poll = entries
    assert sale["principal"] == {"type": "TERMINALID", "id": world.terminal, "userId": None}
    assert (sale["terminalId"], sale["httpStatus"], sale["resultCode"]) == (
        world.terminal, 200, 0)
    assert sale["path"] == "/extclientproxy/service/v2"
    # the register's SOAPAction is a deviation from the WSDL (its binding's is empty)
    assert [d["kind"] for d in sale["deviations"]] == ["soap-action"]
    assert "urn:sendInvoice" in sale["deviations"][0]["detail"]
    assert poll["deviations"] == [] and sale["injected"] is None and sale["latencyMs"] > 0
    assert "<password>***</password>" in sale["request"]
    assert world.terminal_password not in sale["request"]
    assert f"<invoiceReference>{reference}</invoiceReference>" in sale["response"]
    assert "<status>PAID</status>" in poll["response"]
    assert datetime.fromisoformat(sale["at"]) <= datetime.fromisoformat(poll["at"])

    assert world.admin.count(operation="getPaymentStatus", terminal=world.terminal) == 1
    assert world.admin.count(principal=world.terminal, result_code=0) == 2
    assert world.admin.count(operation="refundPayment") == 0
    # one INFO line per call, in the log of the process that answered it
    line = re.compile(rf"gateway.calls: sendInvoice TERMINALID {world.terminal} 0 [\d.]+ ms")
    assert line.search(a.log_path.read_text())
    assert world.admin.clear_journal() == 2 and world.admin_b.journal() == []


def test_faulted_requests_and_password_changes_are_journaled_masked(world: World) -> None:
    a, _b = world.pair
    refused = world.soap(a, "getPaymentStatus", world.till()
                         + "<invoiceReference>1</invoiceReference>"
                         "<invoiceVersion>abc</invoiceVersion>")  # not an int: a Client fault
    assert refused.status_code == 500
    changed = world.soap(a, "changePrincipalPassword", world.owner()
                         + f"<principalId><id>{world.shop}</id><type>RESELLERUSER</type>"
                         "<userId>9900</userId></principalId><newPassword>n3w-secret</newPassword>")
    assert code(changed) == 0
    fault, change = world.admin.journal()
    assert (fault["operation"], fault["httpStatus"], fault["resultCode"]) == (
        "getPaymentStatus", 500, None)
    assert fault["fault"].startswith("Client")
    assert "n3w-secret" not in change["request"] and "shop-secret" not in change["request"]
    assert change["request"].count("***") == 2
    assert world.admin.count(operation="changePrincipalPassword", result_code=0) == 1


# --- fault injection ------------------------------------------------------------------------


def test_the_third_status_poll_answers_94_exactly_once(world: World) -> None:
    a, b = world.pair
    reference = world.send(a)
    rule = world.admin.faults.add(operation="getPaymentStatus", terminal=world.terminal,
                                  nth=3, effect="result_code", result_code=94)
    codes = [code(world.poll((a, b)[i % 2], reference)) for i in range(6)]
    assert codes == [0, 0, 94, 0, 0, 0]

    [listed] = world.admin.faults.list()
    assert (listed["id"], listed["matched"], listed["fired"]) == (rule["id"], 6, 1)
    injected = world.admin.journal(operation="getPaymentStatus", injected=True)
    assert [e["resultCode"] for e in injected] == [94]
    assert injected[0]["injected"] == f"rule {rule['id']}: result_code 94"
    assert "<resultDescription>SERVICE_UNAVAILABLE</resultDescription>" in (
        injected[0]["response"])
    assert world.admin.count(operation="getPaymentStatus") == 6


def test_every_other_call_and_the_next_k(world: World) -> None:
    a, b = world.pair
    world.admin.faults.add(operation="benchmarkingNop", every=2, effect="result_code",
                           result_code=93)
    world.admin.faults.add(operation="sendInvoice", times=2, effect="result_code",
                           result_code=90)
    nops = [code(world.soap((a, b)[i % 2], "benchmarkingNop", "")) for i in range(4)]
    sends = [code(world.soap((b, a)[i % 2], "sendInvoice", world.till() + invoice("1.00")))
             for i in range(3)]
    assert (nops, sends) == ([0, 93, 0, 93], [90, 90, 0])
    assert world.admin.faults.clear() == 2 and world.admin.faults.list() == []


def test_a_rule_ends_when_it_expires(world: World) -> None:
    a, b = world.pair
    world.admin.faults.add(operation="benchmarkingNop", effect="result_code", result_code=93,
                           expires_in=1)
    assert code(world.soap(a, "benchmarkingNop", "")) == 93
    time.sleep(1.1)
    assert code(world.soap(b, "benchmarkingNop", "")) == 0
    [rule] = world.admin.faults.list()
    assert (rule["matched"], rule["fired"]) == (1, 1)  # expired: the call did not count


def test_a_two_second_delay_is_measured(world: World) -> None:
    a, _b = world.pair
    world.admin.faults.add(operation="benchmarkingNop", times=1, effect="delay", delay_ms=2000)
    started = time.monotonic()
    assert code(world.soap(a, "benchmarkingNop", "")) == 0
    delayed = time.monotonic() - started
    started = time.monotonic()
    assert code(world.soap(a, "benchmarkingNop", "")) == 0
    assert delayed >= 2.0 and time.monotonic() - started < 1.0
    [entry, _] = world.admin.journal(operation="benchmarkingNop")
    assert entry["latencyMs"] >= 2000 and entry["injected"].endswith("delay 2000 ms")


def test_a_dropped_connection_is_a_transport_error_for_zeep(world: World) -> None:
    a, b = world.pair
    reference = world.send(a)
    world.admin.faults.add(operation="getPaymentStatus", times=1, effect="drop")
    till = {"clientRequestTimeout": 0, "password": world.terminal_password,
            "initiatorPrincipalId": {"id": world.terminal, "type": "TERMINALID"}}
    soap = client.zeep_service(b.endpoint)
    with pytest.raises(requests.exceptions.ConnectionError):
        soap.getPaymentStatus(till, reference, 0)
    assert soap.getPaymentStatus(till, reference, 0).status == "ISSUED"  # next one answers
    dropped, answered = world.admin.journal(operation="getPaymentStatus")
    assert (dropped["httpStatus"], dropped["fault"], dropped["response"]) == (
        0, "connection dropped", "")
    assert answered["resultCode"] == 0


def test_an_http_error_with_a_soap_fault(world: World) -> None:
    a, _b = world.pair
    world.admin.faults.add(principal=world.terminal, times=1, effect="http_error",
                           http_status=503)
    answer = world.soap(a, "sendInvoice", world.till() + invoice("2.00"))
    assert answer.status_code == 503
    assert b"<faultcode>soap:Server</faultcode>" in answer.content
    assert world.admin.invoices(shop=world.shop) == []  # nothing was done
    [entry] = world.admin.journal(injected=True)
    assert (entry["httpStatus"], entry["resultCode"]) == (503, None)


def test_a_report_stays_not_ready_for_three_polls(world: World) -> None:
    a, b = world.pair
    marked = world.soap(a, "markTransactionPeriod", world.owner())
    period = PERIOD.search(marked.content).group(1).decode()  # type: ignore[union-attr]
    world.admin.faults.add(operation="executeReport", effect="report_not_ready", polls=3)
    ask = world.owner() + (
        "<reportId>Reconciliation/STD_RECON_001.xml</reportId><language>en</language>"
        "<parameters><parameter><entry><key>transactionPeriodId</key>"
        f"<value>{period}</value></entry></parameter></parameters>")
    codes = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        codes.append(code(world.soap((a, b)[len(codes) % 2], "executeReport", ask)))
        if codes[-1] != 2:
            break
        time.sleep(0.3 if len(codes) >= 3 else 0.6)  # the render is done by the third poll
    assert codes[:3] == [2, 2, 2] and codes[-1] == 0
    assert world.admin.count(operation="executeReport", injected=True) == 3


def test_a_failing_render_answers_90_after_its_last_attempt(world: World) -> None:
    a, b = world.pair
    marked = world.soap(a, "markTransactionPeriod", world.owner())
    period = PERIOD.search(marked.content).group(1).decode()  # type: ignore[union-attr]
    rule = world.admin.faults.add(effect="render_fails", times=3)
    ask = world.owner() + (
        "<reportId>Reconciliation/STD_RECON_001.xml</reportId><language>en</language>"
        "<parameters><parameter><entry><key>transactionPeriodId</key>"
        f"<value>{period}</value></entry></parameter></parameters>")
    assert code(world.soap(a, "executeReport", ask)) == 2
    deadline = time.monotonic() + 20
    while (answer := world.soap(b, "executeReport", ask)) and code(answer) == 2:
        assert time.monotonic() < deadline, "the render never failed for good"
        time.sleep(0.3)
    assert code(answer) == 90 and b"report rendering failed" in answer.content
    [listed] = world.admin.faults.list()
    assert (listed["id"], listed["fired"]) == (rule["id"], 3)
    with a.db.read() as session:  # why, for the operator: in the database, not on the wire
        [why] = session.scalars(select(ReportJob.last_error)).all()
    assert f"render failed on purpose (rule {rule['id']}: render_fails)" in why


# --- the clock ------------------------------------------------------------------------------


def test_advancing_the_clock_20_s_reverses_an_unpolled_payment(world: World) -> None:
    a, _b = world.pair
    reference = world.send(a)
    world.admin.pay(reference)
    moved = world.admin_b.clock.advance(20)
    assert moved["virtual"] and moved["offsetSeconds"] == 20
    polled = world.poll(a, reference)
    assert b"<status>CANCELED</status>" in polled.content
    assert world.admin.invoices(shop=world.shop)[0]["reversedAt"] is not None


def test_a_frozen_clock_stamps_payments_and_periods(world: World) -> None:
    a, b = world.pair
    world.admin.clock.freeze()
    frozen = world.admin_b.clock.set("2030-01-02T03:04:05Z")
    assert frozen["frozen"] and frozen["now"] == "2030-01-02T03:04:05+00:00"
    reference = world.send(b)
    assert reference == "1893553445000"  # epoch milliseconds of the frozen time
    world.admin.pay(reference)
    polled = world.poll(a, reference)
    assert PAYMENT_DATE.search(polled.content).group(1).startswith(  # type: ignore[union-attr]
        b"2030-01-02T03:04:05")
    period = PERIOD.search(world.soap(b, "markTransactionPeriod", world.owner()).content)
    assert period is not None and period.group(1).startswith(b"20300102030405000")
    world.admin.clock.advance(3600)
    assert world.admin.clock.get()["now"].startswith("2030-01-02T04:04:05")
    resumed = world.admin_b.clock.resume()
    assert not resumed["frozen"] and resumed["virtual"]
    assert world.admin.clock.reset()["virtual"] is False


# --- reset, seed, state ---------------------------------------------------------------------


def test_reset_then_seed_gives_the_fixtures_exact_ids(world: World) -> None:
    a, b = world.pair
    world.admin.faults.add(operation="benchmarkingNop", effect="result_code", result_code=93)
    world.admin.clock.advance(100)
    world.admin.reset()
    assert world.admin_b.state() | {"clock": None} == {
        "shops": [], "openInvoices": 0, "journalEntries": 0, "faultRules": 0, "clock": None}
    assert world.admin.clock.get()["virtual"] is False
    assert code(world.soap(b, "benchmarkingNop", "")) == 0  # the rule went too

    terminal = "0123456789abcdef0123456789abcdef"
    fixture = fixture_of("fixture-shop", terminal, "FIXTURE1", invoices=[
        {"reference": "1700000000001", "amount": "12.50", "cashierId": "bo",
         "status": "PAID"},
        {"reference": "1700000000002", "amount": "3.00"}])
    seeded = world.admin_b.seed(fixture)
    assert seeded["shops"] == ["fixture-shop"] and seeded["terminals"] == [terminal]
    assert [i["invoiceReference"] for i in seeded["invoices"]] == [
        "1700000000001", "1700000000002"]
    [shop] = world.admin.state()["shops"]
    assert (shop["id"], shop["users"], shop["openInvoices"]) == ("fixture-shop", ["9900"], 1)
    assert shop["terminals"][0] | {"name": None} == {
        "terminalId": terminal, "name": None, "externalTerminalId": None,
        "seqrId": "FIXTURE1", "kind": "cash-register", "status": "ACTIVE", "openInvoices": 1}
    # the seeded till authenticates with its password and sees its payment
    world.terminal, world.terminal_password = terminal, "till-secret"
    polled = world.poll(a, "1700000000001")
    assert b"<status>PAID</status>" in polled.content
    assert seeded["invoices"][0]["paymentReference"].encode() in polled.content
    assert [i["status"] for i in world.admin.invoices(terminal=terminal)] == ["PAID", "ISSUED"]
    assert world.admin.invoices(status="ISSUED", shop="fixture-shop")[0][
        "invoiceReference"] == "1700000000002"
    with pytest.raises(AdminError) as taken:  # the same ids again: refused, nothing written
        world.admin.seed(fixture)
    assert taken.value.status == 400 and "exists already" in taken.value.message
    assert len(world.admin.state()["shops"]) == 1
    world.admin.reset(shop="fixture-shop")
    assert world.admin.state()["shops"] == []


def test_a_fixture_that_breaks_the_schema_is_refused_naming_the_field(world: World) -> None:
    with pytest.raises(AdminError) as refused:
        world.admin.seed({"shops": [{"id": "x", "users": [], "terminals": [
            {"terminalId": "not-hex", "password": "pw"}]}]})
    assert refused.value.status == 400
    assert "shops/0/users" in refused.value.message
    assert "shops/0/terminals/0/terminalId" in refused.value.message


# --- the outgoing calls, the API itself -----------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def test_notification_calls_are_listed(world: World) -> None:
    a, _b = world.pair
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/notify?order=7"
    try:
        answer = world.soap(a, "sendInvoice", world.till() + invoice("9.00").replace(
            "</invoice>", f"<notificationUrl>{url}</notificationUrl></invoice>"))
        reference = REFERENCE.search(answer.content).group(1).decode()  # type: ignore[union-attr]
        world.admin.pay(reference)
        deadline = time.monotonic() + 10
        while not (calls := world.admin.notifications()) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.shutdown()
    [made] = calls
    assert (made["url"], made["status"], made["error"], made["invoiceReference"]) == (
        url, 204, None, reference)
    assert made["method"] in ("GET", "POST") and made["at"]


def test_openapi_document_is_valid_and_the_token_guards_the_api(tmp_path: Path) -> None:
    server = GatewayServer(tmp_path, env={"SEQR_ADMIN_TOKEN": "t0ken"}).start()
    try:
        assert requests.get(server.base + "/admin/state", timeout=10).status_code == 401
        document = requests.get(server.base + "/admin/openapi.json", timeout=10,
                                headers={"Authorization": "Bearer t0ken"}).json()
        validate(document)
        assert {"/admin/requests", "/admin/faults", "/admin/clock", "/admin/seed",
                "/admin/reset", "/admin/state", "/admin/invoices",
                "/admin/notifications", "/admin/requests/count"} <= set(document["paths"])
        admin = Admin(server.base, token="t0ken")
        assert admin.state()["shops"] == []
        with pytest.raises(AdminError) as bad:
            admin.faults.add(effect="result_code")
        assert bad.value.status == 400 and "resultCode" in bad.value.message
    finally:
        server.stop()


def test_the_journal_can_be_switched_off_and_the_admin_api_too(tmp_path: Path) -> None:
    server = GatewayServer(tmp_path, "--journal-size", "0", "--no-admin").start()
    try:
        assert code(server.post(envelope("benchmarkingNop", ""))) == 0
        assert requests.get(server.base + "/admin/state", timeout=10).status_code == 404
        from gateway.control import journal

        with journal.database(server.db).read() as session:
            assert journal.count(session, journal.Filters()) == 0
    finally:
        server.stop()


# --- the same from the command line ---------------------------------------------------------


def gateway_cli(db_url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway.cli.main", *args,
                           "--database-url", db_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_admin_commands_act_on_a_running_gateway(world: World, tmp_path: Path) -> None:
    a, b = world.pair
    fixture = tmp_path / "world.yaml"
    fixture.write_text(
        "shops:\n  - id: cli-shop\n    users: [{id: '9900', password: cli-pw}]\n"
        "    terminals:\n      - {terminalId: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"
        " password: till-pw}\n")
    assert '"cli-shop"' in gateway_cli(a.db_url, "seed", str(fixture))
    gateway_cli(a.db_url, "faults", "add", "--operation", "benchmarkingNop", "--nth", "1",
                "--effect", "result_code", "--result-code", "94")
    assert code(world.soap(b, "benchmarkingNop", "")) == 94
    assert world.admin.count(operation="benchmarkingNop", result_code=94) == 1
    assert '"frozen": true' in gateway_cli(a.db_url, "clock", "freeze")
    assert world.admin.clock.get()["frozen"] is True
    assert "cli-shop" in [shop["id"] for shop in world.admin.state()["shops"]]
    gateway_cli(a.db_url, "reset")
    assert world.admin.state()["shops"] == [] and not world.admin.clock.get()["frozen"]
