"""The web console without a browser: its guard, its switch, its downloads, its live parts.

The WSGI app is called in-process (fast) for what a browser adds nothing to: that every page
and action is guarded by the admin token, that the console goes with the simulator, that a
report's downloads are the document SEQR sends and its rows, and that a live part answers
204 while unchanged. What a person sees and clicks is in test_console_browser.py.
"""

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from lxml import etree

from gateway import clock, payments, periods, shops, terminals
from gateway.auth import Principal
from gateway.config import Settings
from gateway.control import faults, journal
from gateway.invoices import Amount, InvoiceData, InvoiceRow
from gateway.parameters import TRANSACTION_PERIOD_ID, Parameters
from gateway.payments import PaymentRules
from gateway.reports import requests as report_requests
from gateway.wire.app import create_app
from gateway.wire.console import qr_svg
from storage import jobs
from storage.models import PeriodScope, utcnow
from tests.support.databases import new_database_url
from tests.support.servers import InProcess
from wsdl import report_schema

TOKEN = "s3cret-admin-token"
RULES = PaymentRules()


def console(tmp_path: Path, **settings: Any) -> InProcess:
    values = {"database_url": new_database_url(tmp_path, "console"), "report_delay": 0,
              **settings}
    return InProcess(create_app(Settings(**values), create_schema=True))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """A shop with a till that sold 25.00 and refunded 5.00, and the shop period closed."""
    app = console(tmp_path, admin_token=TOKEN)
    db = app.db
    with db.write() as session:
        shops.add_reseller(session, "shop-1", "9900", "pw-1", "Shop One")
        owner = Principal("RESELLERUSER", "shop-1", user_id="9900")
        till_id = terminals.register_terminal(session, owner, "Till 1", "till-pw", "Till 1")
        till = Principal("TERMINALID", "shop-1", terminal_id=till_id)
        terminals.assign_seqr_id(session, till, "TILL1")
        amount = Amount("SEK", Decimal("25.00"))
        sent = payments.send_invoice(session, till, InvoiceData(
            total=amount, cashier_id="anna", acknowledgment_mode="NO_ACKNOWLEDGMENT",
            rows=(InvoiceRow(description="Coffee", total=amount),)), RULES, utcnow())
        payments.buyer_pay(session, sent.reference, RULES, utcnow())
        paid = payments.get_payment_status(session, till, sent.reference, RULES, utcnow())
        payments.refund_payment(session, till, paid.payment_reference,
                                InvoiceData(total=Amount("SEK", Decimal("5.00"))), RULES,
                                utcnow())
        open_invoice = payments.send_invoice(session, till, InvoiceData(
            total=amount, acknowledgment_mode="NO_ACKNOWLEDGMENT"), RULES, utcnow()).reference
        period = periods.close_open_period(session, PeriodScope.shop_key("shop-1"))
    writer = journal.Writer(journal.database(db), keep=100)
    writer.write(journal.Exchange(
        at=utcnow(), path="/extclientproxy/service/v2", operation="sendInvoice",
        principal_type="TERMINALID", principal_id=till_id, terminal_id=till_id, result_code=0,
        request=DEVIANT_REQUEST.replace(b"TILL", till_id.encode()), response=b"<ok/>",
        deviations=[{"kind": "unknown-element", "detail": "sendInvoice/invoice/colour"},
                    {"kind": "acknowledgment-mode-omitted-on-v2",
                     "detail": "sendInvoice/invoice/acknowledgmentMode: omitted on v2"}]))
    writer.flush()
    with writer.db.read() as session:
        call = journal.entries(session, journal.Filters(), 1)[0].id
    with db.write() as session:  # a rule, so that its delete action has something to delete
        faults.add(session, {"effect": "delay", "delayMs": 1, "operation": "benchmarkingNop"})
    return {"app": app, "till": till, "till_id": till_id, "sale": paid.payment_reference,
            "period": period.transaction_period_id, "invoice": sent.reference,
            "open_invoice": open_invoice, "call": call}


DEVIANT_REQUEST = (
    b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/'
    b'soap/envelope/"><s:Body><e:sendInvoice xmlns:e="http://external.interfaces.ers.seamless'
    b'.com/"><context><initiatorPrincipalId><id>TILL</id><type>TERMINALID</type>'
    b"</initiatorPrincipalId><password>till-secret-pw</password></context><invoice>"
    b"<paymentMode>IMMEDIATE_DEBIT</paymentMode><colour>red</colour><totalAmount><currency>SEK"
    b"</currency><value>25.00</value></totalAmount></invoice></e:sendInvoice></s:Body>"
    b"</s:Envelope>"
)


def call(app: InProcess, method: str, path: str, query: str = "", body: bytes = b"",
         **headers: str) -> tuple[int, dict[str, str], bytes]:
    """The app's answer: status, headers and body."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE="application/x-www-form-urlencoded",
                   CONTENT_LENGTH=str(len(body)), **headers)
    environ["wsgi.input"] = io.BytesIO(body)
    seen: list[Any] = []
    out = b"".join(app.app(environ, lambda s, h, e=None: seen.extend([s, h])))
    return int(seen[0].split()[0]), dict(seen[1]), out


def get(app: InProcess, path: str, query: str = "", **headers: str) -> tuple[int, bytes]:
    status, _, body = call(app, "GET", path, query, **headers)
    return status, body


def bearer() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def pages(world: dict[str, Any]) -> list[tuple[str, str]]:
    """Every page of the console: (path, query)."""
    period = world["period"]
    return [("/", ""), ("/terminals", ""), ("/phone", ""), ("/phone", "fragment=1"),
            ("/periods", ""), ("/periods", "fragment=1"), ("/terminals", "fragment=1"),
            (f"/periods/{period}", ""), (f"/periods/{period}/STD_RECON_003", ""),
            (f"/periods/{period}/STD_RECON_003.xml", ""),
            (f"/periods/{period}/STD_RECON_003.csv", ""),
            (f"/periods/{period}/STD_RECON_003.json", ""),
            (f"/periods/{period}/STD_RECON_007", f"terminal={world['till_id']}"),
            ("/journal", ""), ("/journal", "fragment=1&operation=sendInvoice"),
            (f"/journal/{world['call']}", ""), ("/control", ""), ("/control", "fragment=1"),
            ("/", "fragment=1")]


def actions(world: dict[str, Any]) -> list[str]:
    reference = world["open_invoice"]
    return [f"/phone/invoices/{reference}/{action}" for action in payments.BUYER_ACTIONS] + [
        "/terminals/TILL1/pay", "/control/faults", "/control/faults/clear",
        "/control/faults/1/delete", "/control/clock"]


def test_the_token_guards_every_page_and_action(world: dict[str, Any]) -> None:
    app = world["app"]
    for path, query in pages(world):
        status, headers, body = call(app, "GET", path, query)
        if "fragment" in query:  # the page's script: it goes to the login form itself
            assert status == 401, (path, query, status)
        else:
            assert status == 303 and headers["Location"].startswith("/login?next="), path
        assert b"anna" not in body and world["open_invoice"].encode() not in body
    for path in actions(world):
        status, body = app.request("POST", path, body=b"back=%2Fphone")
        assert status == 401, path
        assert json.loads(body) == {"error": "log in with the admin token"}
    # nothing happened to the invoice the actions named, nor to the rules or the clock
    with app.db.read() as session:
        assert len(faults.listed(session)) == 1
        assert clock.read_state(session).is_real
        assert payments.get_payment_status(session, world["till"], world["open_invoice"],
                                           RULES, utcnow()).status == "ISSUED"
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-the-token"}
    assert get(app, "/", **wrong)[0] == 303
    assert get(app, "/", HTTP_COOKIE="seqr_console=forged")[0] == 303
    for path, query in pages(world):
        assert get(app, path, query, **bearer())[0] in (200, 204), (path, query)
    status, _, body = call(app, "POST", actions(world)[1], **bearer(),
                           HTTP_ACCEPT="application/json")
    assert status == 200 and json.loads(body)["status"] == "PAID"  # Pay, with the token


def test_login_sets_a_cookie_that_opens_every_page(world: dict[str, Any]) -> None:
    app = world["app"]
    status, headers, _ = call(app, "GET", "/phone")
    assert status == 303 and headers["Location"] == "/login?next=%2Fphone"
    status, headers, body = call(app, "POST", "/login", body=b"token=wrong&next=%2Fphone")
    assert status == 401 and b"not the admin token" in body and "Set-Cookie" not in headers
    status, headers, _ = call(app, "POST", "/login", body=f"token={TOKEN}&next=%2Fphone".encode())
    assert status == 303 and headers["Location"] == "/phone"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = cookie.split(";")[0]
    for path, query in pages(world):
        assert get(app, path, query, HTTP_COOKIE=value)[0] in (200, 204), (path, query)
    # a login never sends the browser to another site
    status, headers, _ = call(app, "POST", "/login",
                              body=f"token={TOKEN}&next=//evil.example/".encode())
    assert headers["Location"] == "/"
    status, headers, _ = call(app, "POST", "/logout", HTTP_COOKIE=value)
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]


def test_without_a_token_the_console_is_open(tmp_path: Path) -> None:
    app = console(tmp_path)
    status, body = get(app, "/")
    assert status == 200 and b"/extclientproxy/service/v2?wsdl" in body
    assert get(app, "/login")[0] == 303  # nothing to log in to


def test_terminals_page_shows_kind_seqr_id_and_sticker(world: dict[str, Any]) -> None:
    page = get(world["app"], "/terminals", **bearer())[1].decode()
    card = page[page.index(f'id="terminal-{world["till_id"]}"'):]
    assert "cash register" in card and "TILL1" in card
    assert 'aria-label="QR code: HTTP://SEQR.SE/QTILL1"' in card
    assert world["open_invoice"] in card  # its open invoice, which the sticker pays


def test_the_console_goes_with_the_simulator(tmp_path: Path) -> None:
    app = console(tmp_path, simulator=False)
    for path in ("/", "/phone", "/terminals", "/periods", "/login", "/static/console.js"):
        status, body = get(app, path)
        assert (status, body) == (404, b"no such endpoint\n"), path
    status, _ = app.request("POST", "/phone/invoices/1234567890123/pay")
    assert status == 404


def test_overview_shows_the_demo_shop_while_its_password_is_the_demo_one(tmp_path: Path
                                                                          ) -> None:
    app = console(tmp_path, demo_password="the-demo-pw")
    assert b"the-demo-pw" not in get(app, "/")[1]  # no demo shop yet
    with app.db.write() as session:
        assert shops.seed_demo(session, "the-demo-pw")
    fresh = InProcess(create_app(app.app.settings, app.db))  # the check is once per process
    body = get(fresh, "/")[1].decode()
    assert "the-demo-pw" in body and shops.DEMO_RESELLER_ID in body
    assert "reachable" in body
    with app.db.write() as session:
        shops.add_reseller(session, shops.DEMO_RESELLER_ID, shops.DEMO_USER_ID, "changed")
    fresh = InProcess(create_app(app.app.settings, app.db))
    assert b"the-demo-pw" not in get(fresh, "/")[1]


def test_report_downloads_are_the_document_and_its_rows(world: dict[str, Any]) -> None:
    app, period = world["app"], world["period"]
    base = f"/periods/{period}/STD_RECON_003"
    status, xml = get(app, base + ".xml", **bearer())
    assert status == 200
    root = etree.fromstring(xml)
    report_schema("STD_RECON_003").assertValid(root)
    amounts = [row.findtext("SalesAmount") for row in root.iterfind("Row")]
    assert amounts == ["25.00000", "-5.00000"]

    rows = list(csv.reader(io.StringIO(get(app, base + ".csv", **bearer())[1].decode())))
    assert rows[0] == ["TerminalId", "CashierId", "SalesAmount", "ErsReference"]
    assert rows[1] == [world["till_id"], "anna", "25.00000", world["sale"]]
    assert rows[2][1:3] == ["NULL", "-5.00000"]

    document = json.loads(get(app, base + ".json", **bearer())[1])
    assert document["transactionPeriodId"] == period
    assert document["rows"][1]["cashierId"] is None
    assert document["totals"] == {"salesCount": 1, "salesTotal": "25.00000",
                                  "refundCount": 1, "refundTotal": "-5.00000",
                                  "netTotal": "20.00000"}

    page = get(app, base, **bearer())[1].decode()
    assert world["sale"] in page and "20.00000" in page
    assert "No register has fetched this report yet" in page

    # once the register has fetched it, the console serves the stored document, byte for byte
    with app.db.write() as session:
        owner = Principal("RESELLERUSER", "shop-1", user_id="9900")
        scope = report_requests.resolve(session, owner, "STD_RECON_003",
                                        Parameters.of({TRANSACTION_PERIOD_ID: period}))
        report_requests.queue(session, scope, 0, utcnow())
    from gateway.background.worker import ReportWorker

    assert ReportWorker(app.db, app.app.settings).run_once()
    with app.db.read() as session:
        job = report_requests.find(session, scope)
        assert job is not None
        stored = b"".join(jobs.document_chunks(session, job.id))
    assert get(app, base + ".xml", **bearer())[1] == stored
    assert "No register has fetched" not in get(app, base, **bearer())[1].decode()


def test_summary_and_terminal_reports(world: dict[str, Any]) -> None:
    app, period, till = world["app"], world["period"], world["till_id"]
    summary = json.loads(get(app, f"/periods/{period}/STD_RECON_002.json", **bearer())[1])
    assert summary["rows"] == [{"terminalId": till, "salesCount": 1, "salesTotal": "25.00000",
                                "refundCount": 1, "refundTotal": "-5.00000"}]
    assert summary["totals"]["netTotal"] == "20.00000"
    # 007 on a shop period names its terminal, as executeReport's TERMINALID does
    status, body = get(app, f"/periods/{period}/STD_RECON_007", **bearer())
    assert status == 400 and b"TERMINALID" in body
    terminal = json.loads(get(app, f"/periods/{period}/STD_RECON_007.json",
                              f"terminal={till}", **bearer())[1])
    assert terminal["terminalId"] == till and len(terminal["rows"]) == 2
    assert get(app, "/periods/1234567890123456789012345", **bearer())[0] == 404


def test_a_live_part_answers_204_while_unchanged(world: dict[str, Any]) -> None:
    app = world["app"]
    status, headers, first = call(app, "GET", "/phone", "fragment=1", **bearer())
    assert status == 200 and world["open_invoice"].encode() in first
    assert b"<html" not in first  # the live part alone
    stamp = headers["X-Stamp"]
    assert call(app, "GET", "/phone", f"fragment=1&stamp={stamp}", **bearer())[::2] == (
        204, b"")
    with app.db.write() as session:
        payments.buyer_fail(session, world["open_invoice"], RULES, utcnow())
    status, headers, changed = call(app, "GET", "/phone", f"fragment=1&stamp={stamp}",
                                    **bearer())
    assert status == 200 and b"FAILED" in changed and headers["X-Stamp"] != stamp


def test_buyer_actions_without_script_redirect_back_with_the_outcome(world: dict[str, Any]
                                                                      ) -> None:
    app, reference = world["app"], world["open_invoice"]
    status, headers, _ = call(app, "POST", f"/phone/invoices/{reference}/reserve",
                              body=f"back=%2Fphone%23invoice-{reference}".encode(), **bearer())
    assert status == 303
    assert headers["Location"].startswith("/phone?notice=") and "IMMEDIATE_DEBIT" in \
        headers["Location"].replace("%20", " ") and headers["Location"].endswith(
        f"#invoice-{reference}")
    status, headers, _ = call(app, "POST", "/terminals/TILL1/pay", body=b"back=%2Fterminals",
                              **bearer())
    assert status == 303 and "PAID" in headers["Location"]
    status, _, body = call(app, "POST", "/terminals/NOSUCH/pay", **bearer(),
                           HTTP_ACCEPT="application/json")
    assert status == 404 and json.loads(body)["error"] == "no terminal has SEQR ID NOSUCH"


def test_qr_codes_encode_the_seqr_formats() -> None:
    """The SVG's accessible name and title carry the text given to the encoder; the encoder
    input is the SEQR format (the browser test decodes the drawn code itself)."""
    assert payments.invoice_qr("1397240460668") == "HTTP://SEQR.SE/R1397240460668"
    assert terminals.sticker_qr("TILL1") == "HTTP://SEQR.SE/QTILL1"
    svg = str(qr_svg(payments.invoice_qr("1397240460668")))
    root = etree.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    assert root.get("aria-label") == "QR code: HTTP://SEQR.SE/R1397240460668"
    assert root.findtext("{http://www.w3.org/2000/svg}title") == "HTTP://SEQR.SE/R1397240460668"


def test_a_journal_entry_shows_its_envelopes_masked_and_its_deviations_marked(
        world: dict[str, Any]) -> None:
    app = world["app"]
    status, body = get(app, f"/journal/{world['call']}", **bearer())
    page = body.decode()
    assert status == 200
    assert "till-secret-pw" not in page and "&lt;password&gt;***&lt;/password&gt;" in page
    marked = re.findall(r'<mark class="deviation"[^>]*>(.*?)</mark>', page, re.S)
    lines = [re.sub(r"<[^>]+>", "", line) for line in marked]
    # the unknown element's line, and the parent of the element that was left out
    assert any("&lt;colour&gt;red&lt;/colour&gt;" in line for line in lines), lines
    assert any(line.strip().endswith("&lt;invoice&gt;") for line in lines), lines
    assert "unknown-element" in page and "acknowledgment-mode-omitted-on-v2" in page
    listing = get(app, "/journal", "deviations=1", **bearer())[1].decode()
    assert f'id="call-{world["call"]}"' in listing and "⚠" in listing
    assert f'id="call-{world["call"]}"' not in get(
        app, "/journal", "operation=getPaymentStatus", **bearer())[1].decode()


def test_the_fault_form_makes_the_rule_the_admin_api_takes(world: dict[str, Any]) -> None:
    app = world["app"]
    form = (f"operation=getPaymentStatus&terminal={world['till_id']}&which=times&count=1"
            "&effect=result_code&resultCode=94&httpStatus=&delayMs=&polls=&seconds=2"
            "&expiresIn=")
    status, _, body = call(app, "POST", "/control/faults", body=form.encode(), **bearer(),
                           HTTP_ACCEPT="application/json")
    assert status == 200, body
    with app.db.read() as session:
        rule = faults.describe(faults.listed(session)[-1])
    assert {k: rule[k] for k in ("operation", "terminal", "times", "effect", "resultCode",
                                 "seconds", "nth")} == {
        "operation": "getPaymentStatus", "terminal": world["till_id"], "times": 1,
        "effect": "result_code", "resultCode": 94, "seconds": None, "nth": None}
    status, _, body = call(app, "POST", "/control/faults", body=b"effect=delay&which=all",
                           **bearer(), HTTP_ACCEPT="application/json")
    assert status == 400 and "delayMs" in json.loads(body)["error"]
    status, _, _ = call(app, "POST", f"/control/faults/{rule['id']}/delete", **bearer())
    assert status == 303
    with app.db.read() as session:
        assert rule["id"] not in [r.id for r in faults.listed(session)]


def test_the_clock_form(world: dict[str, Any]) -> None:
    app = world["app"]
    for form, frozen in ((b"action=freeze", True), (b"action=advance&seconds=20", True),
                         (b"action=resume", False), (b"action=reset", False)):
        status, _, body = call(app, "POST", "/control/clock", body=form, **bearer(),
                               HTTP_ACCEPT="application/json")
        assert status == 200, body
        with app.db.read() as session:
            assert (clock.read_state(session).frozen_at is not None) == frozen, form
    status, _, body = call(app, "POST", "/control/clock",
                           body=b"action=set&at=2030-01-02T03:04:05", **bearer(),
                           HTTP_ACCEPT="application/json")
    assert status == 200 and "2030-01-02 03:04" in json.loads(body)["message"]
    overview = get(app, "/", **bearer())[1].decode()
    assert "2030-01-02 03:04" in overview and "s from real time" in overview
    status, _, body = call(app, "POST", "/control/clock", body=b"action=advance&seconds=x",
                           **bearer(), HTTP_ACCEPT="application/json")
    assert status == 400


def test_without_the_control_plane_its_pages_are_gone(tmp_path: Path) -> None:
    app = console(tmp_path, admin=False)
    for path in ("/journal", "/control"):
        assert get(app, path)[0] == 404, path
    assert call(app, "POST", "/control/clock", body=b"action=freeze")[0] == 404
    overview = get(app, "/")[1].decode()
    assert 'href="/journal"' not in overview and 'href="/control"' not in overview


def test_a_registers_deviant_call_is_journaled_with_its_deviations_marked(
        world: dict[str, Any]) -> None:
    """A real SOAP call with an element the contract lacks and one left out: the wire layer
    finds the deviations, the journal keeps them, the console marks their lines."""
    app, till = world["app"], world["till_id"]
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ext="http://external.interfaces.ers.seamless.com/"><soapenv:Body>'
        "<ext:getPaymentStatus><context><initiatorPrincipalId>"
        f"<id>{till}</id><type>TERMINALID</type></initiatorPrincipalId>"
        "<password>till-pw</password></context>"
        f"<invoiceReference>{world['open_invoice']}</invoiceReference>"
        "<invoiceVersion>0</invoiceVersion><tableNumber>4</tableNumber>"
        "</ext:getPaymentStatus></soapenv:Body></soapenv:Envelope>")
    status, answer = app.post(envelope)
    assert status == 200 and b"<resultCode>0</resultCode>" in answer
    app.app.journal.flush()
    listing = get(app, "/journal", f"terminal={till}&deviations=1", **bearer())[1].decode()
    calls = re.findall(r'id="call-(\d+)"', listing)
    assert calls == [calls[0], str(world["call"])]  # this call, above the fixture's
    page = get(app, f"/journal/{calls[0]}", **bearer())[1].decode()
    marked = [re.sub(r"<[^>]+>", "", line) for line in
              re.findall(r'<mark class="deviation"[^>]*>(.*?)</mark>', page, re.S)]
    assert any("&lt;tableNumber&gt;4&lt;/tableNumber&gt;" in line for line in marked), marked
    assert "till-pw" not in page
