"""One client's HTTP session posting raw envelopes, every answer checked on the wire (HTTP
200, text/xml, the operation's `<return>`, valid against the official WSDL), and the
envelopes the production-like traffic sends.
"""

import copy
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from lxml import etree

from tests.support.envelopes import (
    NS,
    SOAP_ENV,
    SOAP_PATH,
    TILL_PASSWORD,
    params_xml,
    shop_context,
    till_context,
)
from tests.support.official import official_root, schema_of
from tests.support.servers import Shop

TIMEOUT = 30.0  # no request may take longer: a guard against hangs, not a measurement
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


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
    answer = soap.ok("registerTerminal", shop_context(shop)
                     + f"<externalTerminalId>{label}</externalTerminalId>"
                     f"<password>{TILL_PASSWORD}</password><name>{label}</name>")
    terminal_id = answer.text("terminalId")
    assert terminal_id is not None and len(terminal_id) == 32
    return terminal_id


def mark_xml(shop: Shop, scope: str, as_till: bool = False) -> str:
    """markTransactionPeriod's children for a scope: the shop, or a terminal (TERMINALID),
    asked by the shop's user or by the till itself."""
    if scope == SHOP:
        return shop_context(shop)
    ctx = till_context(scope) if as_till else shop_context(shop)
    return ctx + params_xml(TERMINALID=scope)


def report_xml(shop: Shop, report_id: str, period_id: str, terminal_id: str | None) -> str:
    return (shop_context(shop) + f"<reportId>{report_id}</reportId><language>en</language>"
            + params_xml(transactionPeriodId=period_id, TERMINALID=terminal_id))
