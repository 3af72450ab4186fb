"""The manual's own SOAP examples (tests/data/manual), posted byte for byte to the real gateway.

One walk through every request example of chapters 5 and 8, in the order a register would
send them (register, link the sticker, sell, poll, acknowledge, pay, receipt, refund,
cancel, close the periods, fetch every report, unregister), with only the placeholders
filled in. Each must succeed with the business result it stands for. Then every response
example's shape (prefixes, where each namespace is declared, the element sequence) is
compared with the gateway's answer to the matching request, and each correction the data
README lists is checked against the example as printed.
"""

import re
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from storage.models import Invoice
from tests.support.envelopes import PERIOD_RE, SOAP_ENV, text_of
from tests.support.servers import GatewayServer, Shop, make_shop
from tests.support.wire import check_response, result
from wsdl import TARGET_NAMESPACE
from wsdl.catalog import REPORTS

pytestmark = pytest.mark.once

MANUAL = Path(__file__).resolve().parent / "data" / "manual"
PLACEHOLDERS = re.compile(rb"\b(RESELLER_ID|RESELLER_PASSWORD|TERMINAL_ID|TERMINAL_PASSWORD|"
                          rb"SEQR_ID|INVOICE_REFERENCE|ERS_REFERENCE|TRANSACTION_PERIOD_ID)\b")
TERMINAL_PASSWORD = "secret"
REPORT_EXAMPLES = {"8.1": "STD_RECON_001", "8.3": "STD_RECON_002", "8.5": "STD_RECON_003",
                   "8.7": "STD_RECON_004", "8.9": "STD_RECON_006", "8.11": "STD_RECON_007"}


def example(number: str, kind: str) -> Path:
    """The file of example `number` ("5.5"), its request or response."""
    major, minor = number.split(".")
    (path,) = MANUAL.glob(f"example-{major}.{int(minor):02d}-*-{kind}.xml")
    return path


def request_body(number: str, values: dict[str, str]) -> bytes:
    body = example(number, "request").read_bytes()  # byte for byte, but the placeholders
    for placeholder, value in values.items():
        body = body.replace(placeholder.encode(), value.encode())
    left = PLACEHOLDERS.search(body)
    assert left is None, f"{left.group(0).decode()} left in example {number}"
    return body


def post_body(server: GatewayServer, body: bytes) -> requests.Response:
    return requests.post(server.endpoint, data=body, timeout=30,
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def post(server: GatewayServer, number: str, values: dict[str, str]) -> requests.Response:
    return post_body(server, request_body(number, values))


def buyer(server: GatewayServer, reference: str, action: str) -> None:
    answer = requests.post(f"{server.base}/simulator/invoices/{reference}/{action}", timeout=10)
    assert answer.status_code == 200, answer.text


# --- the walk ------------------------------------------------------------------------------


class Walk:
    """The gateway's answer to each request example, by example number."""

    def __init__(self, server: GatewayServer, shop: Shop) -> None:
        self.server = server
        self.shop = shop
        self.values = {"RESELLER_ID": shop.reseller_id, "RESELLER_PASSWORD": shop.password,
                       "TERMINAL_PASSWORD": TERMINAL_PASSWORD}
        self.answers: dict[str, bytes] = {}
        self.periods: dict[str, str] = {}  # "shop" and "terminal": the periods reported on

    def post(self, number: str, operation: str, **values: str) -> Any:
        """Post the example; its checked `<return>` (SUCCESS unless it is 5.23)."""
        response = post(self.server, number, {**self.values, **values})
        self.answers[number] = response.content
        ret = check_response(response, operation)
        if number != "5.23":
            assert result(ret) == (0, "SUCCESS"), (number, result(ret))
        return ret

    def invoice(self, reference: str) -> Invoice:
        with self.server.db.read() as session:
            row = session.get(Invoice, reference)
            assert row is not None
            return row

    def report(self, number: str, **values: str) -> Any:
        deadline = time.monotonic() + 20
        ret = self.post_report(number, values)
        while result(ret)[0] == 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            ret = self.post_report(number, values)
        assert result(ret) == (0, "SUCCESS"), (number, result(ret))
        return ret

    def post_report(self, number: str, values: dict[str, str]) -> Any:
        response = post(self.server, number, {**self.values, **values})
        self.answers[number] = response.content
        return check_response(response, "executeReport")


@pytest.fixture(scope="module")
def walk(server: GatewayServer) -> Walk:
    walk = Walk(server, make_shop(server.db))
    # 5.9 registerTerminal, as the shop; 5.13 assignSeqrId, as the new terminal
    terminal_id = text_of(walk.post("5.9", "registerTerminal"), "terminalId") or ""
    assert re.fullmatch(r"[0-9a-f]{32}", terminal_id)
    walk.values["TERMINAL_ID"] = terminal_id
    walk.post("5.13", "assignSeqrId", SEQR_ID="M" + uuid.uuid4().hex[:10].upper())

    # 5.1 sendInvoice: title, cashier, total; no modes (v2: it waits for acknowledgment)
    reference = text_of(walk.post("5.1", "sendInvoice"), "invoiceReference") or ""
    row = walk.invoice(reference)
    assert (row.status, row.cashier_id, row.total_amount, row.acknowledgment_mode) == (
        Invoice.ISSUED, "Bob", Decimal("10.22"), "REQUIRE_ACKNOWLEDGMENT")
    # 5.5 getPaymentStatus (invoiceVersion first) before the buyer scans: ISSUED
    issued = walk.post("5.5", "getPaymentStatus", INVOICE_REFERENCE=reference)
    assert (text_of(issued, "status"), text_of(issued, "version")) == ("ISSUED", "1")
    issued_answer = walk.answers["5.5"]
    buyer(walk.server, reference, "scan")
    waiting = walk.post("5.5", "getPaymentStatus", INVOICE_REFERENCE=reference)
    assert text_of(waiting, "status") == "PENDING_ISSUER_ACKNOWLEDGE"
    # 5.3 updateInvoice acknowledges it; the buyer pays; the register polls: PAID
    walk.post("5.3", "updateInvoice", INVOICE_REFERENCE=reference)
    buyer(walk.server, reference, "pay")
    paid = walk.post("5.5", "getPaymentStatus", INVOICE_REFERENCE=reference)
    assert text_of(paid, "status") == "PAID"
    payment = text_of(paid, "ersReference") or ""
    assert PERIOD_RE.match(payment) and text_of(paid, "receipt/paymentReference") == payment
    walk.answers["5.5"] = issued_answer  # 5.6 shows the ISSUED answer
    # 5.15 submitPaymentReceipt, 5.17 refundPayment (all of its 10.22)
    receipt = walk.post("5.15", "submitPaymentReceipt", ERS_REFERENCE=payment)
    assert PERIOD_RE.match(text_of(receipt, "ersReference") or "")
    refund = text_of(walk.post("5.17", "refundPayment", ERS_REFERENCE=payment),
                        "ersReference") or ""
    assert PERIOD_RE.match(refund) and refund != payment
    # 5.1 again, then 5.7 cancelInvoice
    doomed = text_of(walk.post("5.1", "sendInvoice"), "invoiceReference") or ""
    walk.post("5.7", "cancelInvoice", INVOICE_REFERENCE=doomed)
    assert walk.invoice(doomed).status == Invoice.CANCELED

    # 5.19 closes the shop's period; 5.21 (its entry outside <parameters>) another one
    shop_period = text_of(walk.post("5.19", "markTransactionPeriod"),
                             "transactionPeriodId") or ""
    assert PERIOD_RE.match(shop_period)
    again = text_of(walk.post("5.21", "markTransactionPeriod"), "transactionPeriodId")
    assert again != shop_period
    terminal_period = mark_terminal_period(walk, terminal_id)

    # chapter 8: every report of the shop period, the terminal reports of the till's
    walk.periods = {"shop": shop_period, "terminal": terminal_period}
    for number, report_id in REPORT_EXAMPLES.items():
        period = terminal_period if REPORTS[report_id].per_terminal else shop_period
        ret = walk.report(number, TRANSACTION_PERIOD_ID=period)
        document = etree.fromstring((text_of(ret, "report/contentString") or "").encode())
        totals = [Decimal(r.findtext("SalesAmount") or r.findtext("SalesTotal") or "0")
                  for r in document.findall("Row")]
        assert sum(t for t in totals if t > 0) == Decimal("10.22"), (number, totals)  # the sale
    # 5.23: SOME_REPORT is no SEQR report: a business answer naming it, not a fault
    code, description = result(walk.post("5.23", "executeReport"))
    assert code == 91 and "SOME_REPORT" in description, description
    # 5.11 unregisterTerminal: the terminal can no longer authenticate
    walk.post("5.11", "unregisterTerminal")
    gone = post(walk.server, "5.5", {**walk.values, "INVOICE_REFERENCE": reference})
    assert result(check_response(gone, "getPaymentStatus"))[0] == 33
    return walk


def mark_terminal_period(walk: Walk, terminal_id: str) -> str:
    """A terminal period (the manual's 5.21 does not make one, see the data README)."""
    body = request_body("5.19", walk.values).replace(
        b"</context>", b"</context><parameters><parameter><entry><key>TERMINALID</key>"
        + f"<value>{terminal_id}</value>".encode() + b"</entry></parameter></parameters>")
    ret = check_response(post_body(walk.server, body), "markTransactionPeriod")
    assert result(ret) == (0, "SUCCESS")
    return text_of(ret, "transactionPeriodId") or ""


def test_every_request_example_is_there() -> None:
    requests_ = sorted(p.name for p in MANUAL.glob("*-request.xml"))
    responses = sorted(p.name for p in MANUAL.glob("*-response.xml"))
    assert len(requests_) == len(responses) == 18  # 12 of chapter 5, 6 of chapter 8
    for path in MANUAL.glob("*.xml"):  # every example is well-formed as corrected
        etree.fromstring(path.read_bytes())


def test_every_request_example_succeeds(walk: Walk) -> None:
    numbers = {f"5.{n}" for n in range(1, 24, 2)} | set(REPORT_EXAMPLES)
    assert set(walk.answers) == numbers


# --- the shapes ------------------------------------------------------------------------------


def shape(data: bytes) -> list[str]:
    """Each element down to the report fields: depth, prefix:name, namespaces it declares."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    lines: list[str] = []

    def walk(element: Any, depth: int, inherited: dict[Any, str]) -> None:
        declared = sorted(f"xmlns:{p}={u}" for p, u in element.nsmap.items()
                          if inherited.get(p) != u)
        prefix = f"{element.prefix}:" if element.prefix else ""
        lines.append(" ".join([f"{depth} {prefix}{etree.QName(element).localname}", *declared]))
        if etree.QName(element).localname in ("content", "contentString"):
            return  # the documents are compared apart
        for child in element:
            if isinstance(child.tag, str):
                walk(child, depth + 1, dict(element.nsmap))

    walk(root, 0, {})
    return lines


def response_numbers() -> list[str]:
    numbers = []
    for path in sorted(MANUAL.glob("*-response.xml")):
        major, minor = path.name.split("-")[1].split(".")
        numbers.append(f"{major}.{int(minor)}")
    return numbers


def request_of(response_number: str) -> str:
    major, minor = response_number.split(".")
    return f"{major}.{int(minor) - 1}"


@pytest.mark.parametrize("number", response_numbers())
def test_answer_has_the_shape_of_the_response_example(walk: Walk, number: str) -> None:
    manual = example(number, "response").read_bytes()
    ours = walk.answers[request_of(number)]
    expected, got = shape(manual), shape(ours)
    head = ["0 soap:Envelope xmlns:soap=" + SOAP_ENV, "1 soap:Body"]
    assert expected[:2] == got[:2] == head
    operation = etree.QName(etree.fromstring(manual)[0][0]).localname
    wrapper = f"2 ns2:{operation} xmlns:ns2={TARGET_NAMESPACE}"
    assert expected[2:4] == got[2:4] == [wrapper, "3 return"]
    if number == "5.24":
        # SOME_REPORT has no report to show; the manual's report fields are alphabetical
        # here, in WSDL order in chapter 8 (compared there)
        assert got[4:] == ["4 resultCode", "4 resultDescription"]
        return
    if operation == "markTransactionPeriodResponse":
        assert got.pop(4) == "4 ersReference"  # the period id again (see the data README)
    assert got == expected
    # as bytes too: a register that searches the text finds what the manual shows
    text = ours.decode()
    assert text.startswith(f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><ns2:{operation}'
                           f' xmlns:ns2="{TARGET_NAMESPACE}"><return>')


def _document(contents: bytes) -> Any:
    """A report document; the manual's, some not well-formed, read as far as they go."""
    return etree.fromstring(contents, etree.XMLParser(recover=True))


@pytest.mark.parametrize("number", sorted(REPORT_EXAMPLES))
def test_report_answer_as_chapter_8_shows_it(walk: Walk, number: str) -> None:
    report_id = REPORT_EXAMPLES[number]
    ours = walk.answers[number].decode()
    manual = example(f"8.{int(number.split('.')[1]) + 1}", "response").read_text()
    period = walk.periods["terminal" if REPORTS[report_id].per_terminal else "shop"]
    if number == "8.1":  # Reconciliation/Shop.xml: an empty title, as the manual shows
        assert "<title/>" in manual and "<report><title/><mimeType>" in ours
    else:
        assert f"<title>{report_id}_" in manual
        assert f"<report><title>{report_id}_{period}.xml</title><mimeType>" in ours
    assert "<mimeType>text/html</mimeType>" in manual and "<mimeType>text/html</mimeType>" in ours
    cdata = '<contentString><![CDATA[<?xml version="1.0" encoding="UTF-8"?>'
    assert cdata in manual and cdata in ours  # the document as it is, not entity-escaped

    def parts(text: str) -> tuple[Any, list[str], list[str]]:
        inside = text[text.index(cdata) + len("<contentString><![CDATA["):]
        document = _document(inside[:inside.index("]]>")].encode())
        rows = document.findall("Row")
        return (document.tag, [c.tag for c in document.find("Meta")],
                [c.tag for c in rows[0]] if rows else [])

    (their_root, their_meta, their_row), (root, meta, row) = parts(manual), parts(ours)
    assert meta == their_meta
    assert row[:len(their_row)] == their_row  # our extra columns come after the manual's
    assert root == REPORTS[report_id].root
    if not REPORTS[report_id].per_terminal:  # 8.10 and 8.12 open with another root
        assert root == their_root


# --- the corrections, and the examples as printed --------------------------------------------


def test_the_examples_as_printed(server: GatewayServer) -> None:
    """What each correction of the data README undoes gets the answer it names there."""
    shop = make_shop(server.db)
    values = {"RESELLER_ID": shop.reseller_id, "RESELLER_PASSWORD": shop.password}
    fixed = request_body("5.19", values)

    unparsable = post_body(server, fixed.replace(b"<userId>9900</userId>",
                                                 b"<userId>9900</id>"))
    assert unparsable.status_code == 500
    fault = etree.fromstring(unparsable.content).find(f".//{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode") == "soap:Client"
    assert "malformed XML" in (fault.findtext("faultstring") or "")

    misspelled = post_body(server, fixed.replace(b"RESELLERUSER", b"RESELERUSER"))
    assert result(check_response(misspelled, "markTransactionPeriod"))[0] == 29

    user = post_body(server, request_body("5.23", values).replace(
        b"<userId>9900</userId>", b"<user>9900</user>"))
    assert result(check_response(user, "executeReport"))[0] == 37

    walk = Walk(server, shop)
    walk.values["TERMINAL_ID"] = text_of(walk.post("5.9", "registerTerminal"),
                                            "terminalId") or ""
    walk.post("5.1", "sendInvoice")
    no_reference = post_body(server, request_body(
        "5.3", {**walk.values, "INVOICE_REFERENCE": ""}).replace(
        b"         <invoiceReference></invoiceReference>\n", b""))
    assert b"invoiceReference" not in no_reference.request.body  # type: ignore[operator]
    assert result(check_response(no_reference, "updateInvoice"))[0] == 54
