"""Raw SOAP request envelopes as the documentation shapes them, and reading raw answers.

Shared by the tests and the benchmarks (which run as scripts with the repository root on
`sys.path`), so it imports nothing but the standard library, lxml and `wsdl`.
"""

import re
from typing import Any

from lxml import etree

from wsdl import TARGET_NAMESPACE

NS = TARGET_NAMESPACE
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH = "/extclientproxy/service/v2"
PERIOD_RE = re.compile(r"^\d{25}$")
TILL_PASSWORD = "till-pw"  # the password tests give the terminals they register


def envelope(operation: str, inner: str = "", *, env: str = "soapenv", op: str = "ext") -> str:
    """A request envelope shaped like the documentation's (unqualified children), with the
    envelope's and the operation's prefixes as given (the documentation's by default)."""
    return (
        f'<{env}:Envelope xmlns:{env}="{SOAP_ENV}" xmlns:{op}="{NS}">'
        f"<{env}:Header/><{env}:Body><{op}:{operation}>{inner}</{op}:{operation}>"
        f"</{env}:Body></{env}:Envelope>"
    )


def context_xml(principal_id: str | None, principal_type: str = "RESELLERUSER",
                password: str | None = "secret-pw", user_id: str | None = "9900", *,
                timeout: bool = True, channel: str = "WS") -> str:
    """A clientContext; `timeout=False` leaves clientRequestTimeout out, as webshops did."""
    principal = ""
    if principal_id is not None:
        principal = f"<initiatorPrincipalId><id>{principal_id}</id><type>{principal_type}</type>"
        if user_id is not None:
            principal += f"<userId>{user_id}</userId>"
        principal += "</initiatorPrincipalId>"
    pw = f"<password>{password}</password>" if password is not None else ""
    timeout_xml = "<clientRequestTimeout>0</clientRequestTimeout>" if timeout else ""
    return (f"<context><channel>{channel}</channel><clientId>pytest</clientId>"
            f"{timeout_xml}{principal}{pw}</context>")


def shop_context(shop: Any) -> str:
    """The context of a shop's user (`servers.Shop`: `reseller_id`, `password`)."""
    return context_xml(shop.reseller_id, password=shop.password)


def till_context(terminal_id: str, password: str = TILL_PASSWORD) -> str:
    return context_xml(terminal_id, "TERMINALID", password=password, user_id=None)


def params_xml(**entries: str | None) -> str:
    """SEQR's `parameters` map; empty when no entry has a value."""
    inner = "".join(f"<entry><key>{k}</key><value>{v}</value></entry>"
                    for k, v in entries.items() if v is not None)
    return f"<parameters><parameter>{inner}</parameter></parameters>" if inner else ""


def invoice_xml(amount: str = "10.00", currency: str = "SEK", mode: str = "IMMEDIATE_DEBIT",
                extra: str = "") -> str:
    return (
        f"<invoice><paymentMode>{mode}</paymentMode>"
        "<acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode>"
        "<title>Test</title><clientInvoiceId>c-1</clientInvoiceId>"
        "<invoiceRows><invoiceRow><itemDescription>Coffee</itemDescription>"
        "<itemQuantity>1</itemQuantity><itemTotalAmount>"
        f"<currency>{currency}</currency><value>{amount}</value></itemTotalAmount>"
        "</invoiceRow></invoiceRows>"
        f"<totalAmount><currency>{currency}</currency><value>{amount}</value></totalAmount>"
        f"<cashierId>anna</cashierId>{extra}</invoice>"
    )


def parse_response(body: bytes) -> Any:
    """The `<return>` element of a SOAP response, checking its namespaces on the way."""
    root = etree.fromstring(body)
    payload = root.find(f"{{{SOAP_ENV}}}Body")[0]
    assert payload.tag.startswith(f"{{{NS}}}"), payload.tag
    ret = payload.find("return")
    assert ret is not None, etree.tostring(payload)
    return ret


def text_of(element: Any, path: str) -> str | None:
    found = element.find(path)
    return None if found is None else found.text
