"""Requests as real registers sent them, and real SEQR (CXF/JAXB, no schema validation) took.

Each case is a raw envelope in a shape the WSDL does not have (elements out of order or
missing, unknown elements, other prefixes, a SOAPAction, a POST to ?wsdl, a principal spelled
`shop/user`, ...), posted byte for byte to the real gateway. The assertion is the business
result (the invoice stored as sent, the status polled, the period closed), not just "no
fault". The same request to a gateway started with `--strict` gets a Client fault naming
every deviation; a request in the WSDL's shape passes there too. Last, a register that
reads answers as legacy registers do, by string search, takes a payment end to end.
"""

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import requests
from lxml import etree

from gateway.wire.deviations import ENVIRON_KEY
from storage.models import Invoice, TransactionPeriod
from tests.support.envelopes import (
    SOAP_ENV,
    SOAP_PATH,
    TILL_PASSWORD,
    context_xml,
    envelope,
    text_of,
)
from tests.support.servers import GatewayServer, InProcess, make_shop
from tests.support.wire import check_response, result

pytestmark = pytest.mark.once

ALIAS_PATH = "/soap/merchant/cashregister-2"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    gateway = GatewayServer(tmp_path_factory.mktemp("strict"), "--strict").start()
    yield gateway
    gateway.stop()


def soap_envelope(operation: str, inner: str, env: str = "soapenv", op: str = "ext") -> bytes:
    return envelope(operation, inner, env=env, op=op).encode()


@dataclass
class Register:
    """A shop with one registered cash register on a gateway, set up with clean requests."""

    server: GatewayServer
    reseller_id: str = ""
    password: str = ""
    terminal_id: str = ""
    posted: list[requests.Response] = field(default_factory=list)
    sent: int = 0  # invoices made by clean requests

    @classmethod
    def on(cls, server: GatewayServer) -> "Register":
        shop = make_shop(server.db)
        register = cls(server, shop.reseller_id, shop.password)
        inner = (register.shop_context() + "<externalTerminalId>Till 1</externalTerminalId>"
                 f"<password>{TILL_PASSWORD}</password><name>Till 1</name>")
        ret = register.clean("registerTerminal", inner)
        register.terminal_id = text_of(ret, "terminalId") or ""
        return register

    def shop_context(self, **kwargs: Any) -> str:
        return context_xml(self.reseller_id, password=self.password, **kwargs)

    def till_context(self, **kwargs: Any) -> str:
        return context_xml(self.terminal_id, "TERMINALID", TILL_PASSWORD, None, **kwargs)

    def clean(self, operation: str, inner: str) -> Any:
        """A request in the WSDL's own shape (valid against its schema): its `<return>`."""
        return check_response(self.server.post(soap_envelope(operation, inner)), operation)

    def send(self, amount: str = "10.00") -> str:
        ret = self.clean("sendInvoice", self.till_context() + (
            "<invoice><paymentMode>IMMEDIATE_DEBIT</paymentMode>"
            "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode>"
            f"<totalAmount><currency>SEK</currency><value>{amount}</value></totalAmount>"
            "</invoice>"))
        assert result(ret) == (0, "SUCCESS")
        self.sent += 1
        return text_of(ret, "invoiceReference") or ""

    def pay(self, reference: str) -> None:
        answer = requests.post(f"{self.server.base}/simulator/invoices/{reference}/pay",
                               timeout=10)
        assert answer.status_code == 200, answer.text

    def paid(self) -> tuple[str, str]:
        """A paid invoice the register has seen: (invoice reference, payment ersReference)."""
        reference = self.send()
        self.pay(reference)
        ret = self.clean("getPaymentStatus", self.till_context()
                         + f"<invoiceReference>{reference}</invoiceReference>"
                         "<invoiceVersion>1</invoiceVersion>")
        assert text_of(ret, "status") == "PAID"
        return reference, text_of(ret, "ersReference") or ""

    def post(self, body: bytes, path: str = SOAP_PATH, query: str = "",
             soap_action: str | None = '""') -> requests.Response:
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if soap_action is not None:
            headers["SOAPAction"] = soap_action
        url = self.server.base + path + (f"?{query}" if query else "")
        response = requests.post(url, data=body, headers=headers, timeout=30)
        self.posted.append(response)
        return response

    def invoice_row(self, reference: str) -> Invoice:
        with self.server.db.read() as session:
            row = session.get(Invoice, reference)
            assert row is not None
            return row

    def invoice_count(self) -> int:
        with self.server.db.read() as session:
            return len(session.execute(Invoice.__table__.select().where(
                Invoice.terminal_id == self.terminal_id)).all())

    def closed_periods(self) -> list[str]:
        with self.server.db.read() as session:
            return [p for (p,) in session.execute(
                TransactionPeriod.__table__.select()
                .with_only_columns(TransactionPeriod.public_id)
                .where(TransactionPeriod.reseller_id == self.reseller_id,
                       TransactionPeriod.status == TransactionPeriod.CLOSED))]


def answer(response: requests.Response, operation: str) -> Any:
    """A lenient request's answer: in the manual's shape, SUCCESS; its `<return>`."""
    ret = check_response(response, operation)
    assert result(ret) == (0, "SUCCESS"), result(ret)
    return ret


# --- the cases: (request, what it must have done, the deviations it has) ---------------------


@dataclass(frozen=True)
class Case:
    send: Callable[[Register], requests.Response]
    check: Callable[[Register, requests.Response], None]
    deviations: tuple[str, ...]


def _poll_in_manual_order(reg: Register) -> requests.Response:
    reference = reg.send()
    reg.pay(reference)
    return reg.post(soap_envelope("getPaymentStatus", reg.till_context()
                                  + "<invoiceVersion>0</invoiceVersion>"
                                  f"<invoiceReference>{reference}</invoiceReference>"))


def _is_paid(reg: Register, response: requests.Response) -> None:
    ret = answer(response, "getPaymentStatus")
    assert (text_of(ret, "status"), text_of(ret, "version")) == ("PAID", "2")
    payment = text_of(ret, "ersReference")
    assert payment and text_of(ret, "receipt/paymentReference") == payment


def _poll_without_version(reg: Register) -> requests.Response:
    reference = reg.send()
    return reg.post(soap_envelope("getPaymentStatus", reg.till_context()
                                  + f"<invoiceReference>{reference}</invoiceReference>"))


def _is_issued(reg: Register, response: requests.Response) -> None:
    ret = answer(response, "getPaymentStatus")
    assert (text_of(ret, "status"), text_of(ret, "version")) == ("ISSUED", "1")


def _manual_send_invoice(reg: Register) -> requests.Response:
    """The manual's example 5.1: title, cashierId, totalAmount, and no modes."""
    return reg.post(soap_envelope("sendInvoice", reg.till_context() + (
        "<invoice><title>Some Invoice</title><cashierId>Bob</cashierId><totalAmount>"
        "<currency>SEK</currency><value>10.22</value></totalAmount></invoice>")))


def _stored_as_sent(reg: Register, response: requests.Response) -> None:
    ret = answer(response, "sendInvoice")
    row = reg.invoice_row(text_of(ret, "invoiceReference") or "")
    assert (row.status, row.cashier_id, row.currency, row.total_amount) == (
        Invoice.ISSUED, "Bob", "SEK", Decimal("10.22"))
    assert (row.payment_mode, row.acknowledgment_mode) == (
        "IMMEDIATE_DEBIT", "REQUIRE_ACKNOWLEDGMENT")  # v2's reading of an omitted mode


def _closed_a_period(reg: Register, response: requests.Response) -> None:
    ret = answer(response, "markTransactionPeriod")
    assert reg.closed_periods() == [text_of(ret, "transactionPeriodId")]


def _mark_as_shop(**context_options: Any) -> Callable[[Register], requests.Response]:
    return lambda reg: reg.post(soap_envelope("markTransactionPeriod",
                                              reg.shop_context(**context_options)))


def _receipt_without_data(reg: Register) -> requests.Response:
    _, payment = reg.paid()
    return reg.post(soap_envelope("submitPaymentReceipt", reg.till_context() + (
        f"<ersReference>{payment}</ersReference><receiptDocument><mimeType>Base64</mimeType>"
        "<receiptData/><receiptType>PAYMENT_RECEIPT</receiptType></receiptDocument>")))


def _receipt_taken(reg: Register, response: requests.Response) -> None:
    ret = answer(response, "submitPaymentReceipt")
    assert re.fullmatch(r"\d{25}", text_of(ret, "ersReference") or "")


def _midnight_issue_date(reg: Register) -> requests.Response:
    return reg.post(soap_envelope("sendInvoice", reg.till_context() + (
        "<invoice><paymentMode>IMMEDIATE_DEBIT</paymentMode>"
        "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode>"
        "<issueDate>2014-04-11T24:00:00Z</issueDate><totalAmount><currency>SEK</currency>"
        "<value>5.00</value></totalAmount></invoice>")))


def _issued_next_day(reg: Register, response: requests.Response) -> None:
    import json

    ret = answer(response, "sendInvoice")
    document = json.loads(reg.invoice_row(text_of(ret, "invoiceReference") or "").document)
    assert datetime.fromisoformat(document["issue_date"]) == datetime(2014, 4, 12, tzinfo=UTC)


CASES: dict[str, Case] = {
    "manual-getPaymentStatus-order": Case(
        _poll_in_manual_order, _is_paid, ("element-out-of-order",)),
    "getPaymentStatus-without-invoiceVersion": Case(
        _poll_without_version, _is_issued, ("required-element-missing",)),
    "manual-minimal-sendInvoice": Case(
        _manual_send_invoice, _stored_as_sent,
        ("element-out-of-order", "acknowledgment-mode-omitted-on-v2")),
    "webshop-context-without-clientRequestTimeout": Case(
        _mark_as_shop(timeout=False), _closed_a_period, ("required-element-missing",)),
    "unknown-elements": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context().replace(
            "<channel>", "<terminalName>Till 1</terminalName><channel>")
            + "<comment>closing</comment>")),
        _closed_a_period, ("unknown-element", "unknown-element")),
    "qualified-child": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context().replace(
            "<channel>WS</channel>", "<ext:channel>WS</ext:channel>"))),
        _closed_a_period, ("unknown-element",)),
    "attribute-on-a-child": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context().replace(
            "<context>", '<context kind="shop">'))),
        _closed_a_period, ("unknown-attribute",)),
    "repeated-element-last-counts": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context().replace(
            "<password>", "<password>wrong</password><password>"))),
        _closed_a_period, ("repeated-element",)),
    "SOAP-ENV-and-ns1-prefixes": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context(),
                                           env="SOAP-ENV", op="ns1")),
        _closed_a_period, ()),
    "soap-and-tns-prefixes-no-header-no-soapaction": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context(),
                                           env="soap", op="tns").replace(b"<soap:Header/>", b""),
                             soap_action=None),
        _closed_a_period, ()),
    "any-soapaction": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context()),
                             soap_action='"urn:markTransactionPeriod"'),
        _closed_a_period, ("soap-action",)),
    "post-to-the-wsdl-url": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context()),
                             query="wsdl"),
        _closed_a_period, ("post-to-wsdl-url",)),
    "post-to-the-other-path's-wsdl-url": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", reg.shop_context()),
                             path=ALIAS_PATH, query="wsdl"),
        _closed_a_period, ("post-to-wsdl-url",)),
    "principal-shop-slash-user": Case(
        lambda reg: reg.post(soap_envelope("markTransactionPeriod", context_xml(
            f"{reg.reseller_id}/9900", password=reg.password, user_id=None))),
        _closed_a_period, ("principal-shop-slash-user",)),
    "userId-beside-TERMINALID-and-free-channel": Case(
        lambda reg: reg.post(soap_envelope("getPaymentStatus", context_xml(
            reg.terminal_id, "TERMINALID", TILL_PASSWORD, "9900", channel="MagentoWS")
            + f"<invoiceReference>{reg.send()}</invoiceReference>"
            "<invoiceVersion>0</invoiceVersion>")),
        _is_issued, ()),
    "stale-invoiceVersion": Case(
        lambda reg: reg.post(soap_envelope("getPaymentStatus", reg.till_context()
                                           + f"<invoiceReference>{reg.send()}</invoiceReference>"
                                           "<invoiceVersion>7</invoiceVersion>")),
        _is_issued, ()),
    "empty-receiptData": Case(_receipt_without_data, _receipt_taken, ()),
    "dateTime-at-24:00": Case(_midnight_issue_date, _issued_next_day, ()),
    "base64-cut-short": Case(
        lambda reg: reg.post(soap_envelope("submitPaymentReceipt", reg.till_context() + (
            f"<ersReference>{reg.paid()[1]}</ersReference><receiptDocument>"
            "<mimeType>text/html</mimeType><receiptData>PGI+cGFpZDwvYj4</receiptData>"
            "</receiptDocument>"))),
        _receipt_taken, ("base64-repaired",)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_accepted_as_real_seqr_did(server: GatewayServer, name: str) -> None:
    case = CASES[name]
    reg = Register.on(server)
    response = case.send(reg)
    case.check(reg, response)


@pytest.mark.parametrize("name", list(CASES))
def test_strict_mode_names_every_deviation(strict_server: GatewayServer, name: str) -> None:
    case = CASES[name]
    reg = Register.on(strict_server)
    response = case.send(reg)
    if not case.deviations:  # a shape the WSDL allows: strict takes it too
        case.check(reg, response)
        return
    assert response.status_code == 500, response.text
    assert response.text.startswith(
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><soap:Fault>'
        "<faultcode>soap:Client</faultcode><faultstring>strict mode: "), response.text
    reason = etree.fromstring(response.content).findtext(f".//{{{SOAP_ENV}}}Fault/faultstring")
    assert f"departs from the WSDL in {len(case.deviations)} way(s): " in reason, reason
    for kind in set(case.deviations):
        assert reason.count(f"{kind}: ") == case.deviations.count(kind), (kind, reason)
    assert reg.closed_periods() == []  # refused before anything was done
    assert reg.invoice_count() == reg.sent


def test_deviations_are_logged_per_request(server: GatewayServer) -> None:
    reg = Register.on(server)
    before = server.log_path.stat().st_size
    reference = reg.send()
    answer(reg.post(soap_envelope("getPaymentStatus", reg.till_context()
                                  + f"<invoiceReference>{reference}</invoiceReference>")),
           "getPaymentStatus")
    with open(server.log_path, "rb") as log:
        log.seek(before)
        written = log.read().decode(errors="replace")
    line = next(line for line in written.splitlines() if "deviation" in line)
    assert "getPaymentStatus answered 0 with 1 deviation(s) from the WSDL" in line, line
    assert "required-element-missing: getPaymentStatus/invoiceVersion" in line, line


def test_deviations_are_left_in_the_wsgi_environ(inprocess: InProcess) -> None:
    """What wraps the app (the request journal) finds each request's deviations in
    environ["seqr.deviations"]: objects with kind, detail and as_dict()."""
    shop = make_shop(inprocess.db)
    body = soap_envelope("markTransactionPeriod", context_xml(
        f"{shop.reseller_id}/9900", password=shop.password, user_id=None, timeout=False)
        + "<note>x</note>")
    environ = wsgi_environ(body)
    status: list[str] = []
    answer_bytes = b"".join(inprocess.app(environ, lambda s, h, e=None: status.append(s)))
    assert status == ["200 OK"] and b"<resultCode>0</resultCode>" in answer_bytes
    found = environ[ENVIRON_KEY]
    assert [d.as_dict() for d in found] == [
        {"kind": "required-element-missing",
         "detail": "markTransactionPeriod/context/clientRequestTimeout: read as 0"},
        {"kind": "unknown-element", "detail": "markTransactionPeriod/note"},
        {"kind": "principal-shop-slash-user",
         "detail": f"markTransactionPeriod/context/initiatorPrincipalId/id "
                   f"'{shop.reseller_id}/9900': read as reseller '{shop.reseller_id}', "
                   "user '9900'"},
    ]
    assert [(d.kind, d.detail) for d in found] == [tuple(d.as_dict().values()) for d in found]
    clean = wsgi_environ(soap_envelope("benchmarkingNop", ""))
    b"".join(inprocess.app(clean, lambda s, h, e=None: None))
    assert clean[ENVIRON_KEY] == []
    broken = wsgi_environ(b"<not-xml")
    b"".join(inprocess.app(broken, lambda s, h, e=None: None))
    assert broken[ENVIRON_KEY] == []


def wsgi_environ(body: bytes) -> dict[str, Any]:
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="POST", PATH_INFO=SOAP_PATH, CONTENT_TYPE="text/xml",
                   CONTENT_LENGTH=str(len(body)), HTTP_SOAPACTION='""')
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


# --- a legacy register: it reads answers by string search ------------------------------------


def between(text: str, start: str, end: str) -> str:
    """What a register's `substring(indexOf(start) + len, indexOf(end))` finds."""
    assert start in text, (start, text[:400])
    begin = text.index(start) + len(start)
    return text[begin:text.index(end, begin)]


def test_a_register_that_string_matches_the_answers(server: GatewayServer) -> None:
    reg = Register.on(server)
    text = reg.post(soap_envelope("sendInvoice", reg.till_context() + (
        "<invoice><paymentMode>IMMEDIATE_DEBIT</paymentMode><acknowledgmentMode>"
        "NO_ACKNOWLEDGMENT</acknowledgmentMode><title>Lunch</title><totalAmount>"
        "<currency>SEK</currency><value>89.00</value></totalAmount></invoice>"))).text
    assert text.startswith("<soap:Envelope")
    assert "<ns2:sendInvoiceResponse" in text and "<resultCode>0</resultCode>" in text
    reference = between(text, "<invoiceReference>", "</invoiceReference>")
    assert between(text, "<invoiceQRCode>", "</invoiceQRCode>") == f"HTTP://SEQR.SE/R{reference}"
    poll = soap_envelope("getPaymentStatus", reg.till_context()
                         + f"<invoiceReference>{reference}</invoiceReference>"
                         "<invoiceVersion>0</invoiceVersion>")
    assert "<status>ISSUED</status>" in reg.post(poll).text
    reg.pay(reference)
    text = reg.post(poll).text
    assert "<soap:Envelope" in text
    assert "<ns2:getPaymentStatusResponse" in text
    assert "<status>PAID</status>" in text
    assert between(text, "<version>", "</version>") == "2"
    payment = between(text, "<ersReference>", "</ersReference>")
    assert between(text, "<paymentReference>", "</paymentReference>") == payment
    assert between(text, "<invoiceReference>", "</invoiceReference>") == reference
