"""All 19 operations of the official port type answer, with the official message shapes.

The list of operations is read from the official WSDL's portType, so an operation the
gateway lacks fails here. Each is called with a minimal schema-valid envelope (checked
against the official schema before it is sent) and its raw answer checked as on the wire.
benchmarkingNop and markTransactionPeriod also go through zeep and suds-community clients
generated from the official WSDL file, as a third-party register would build them.
"""

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
import zeep
from suds.client import Client as SudsClient

from tests.support.envelopes import (
    NS,
    PERIOD_RE,
    envelope,
    invoice_xml,
    shop_context,
    text_of,
    till_context,
)
from tests.support.official import (
    OFFICIAL_WSDL,
    official_operations,
    official_schema,
)
from tests.support.servers import GatewayServer, Shop
from tests.support.wire import (
    TERMINAL_ID_RE,
    call,
    check_response,
    register_terminal,
    result,
)

OPERATIONS = official_operations()
BINDING = f"{{{NS}}}ERSWSExternalClientServiceServiceSoapBinding"
# consumer-side operations, outside a merchant's interface
UNSUPPORTED = {"confirmCustomerRegistration", "requestPurchase", "requestTopup", "requestTransfer"}
SAMPLE_VALUES = {"xs:int": "0", "xs:long": "0", "xs:string": "x", "xs:decimal": "0"}


def minimal_inner(operation: str, context: str) -> str:
    """The operation's children: its context, then whatever the schema requires."""
    schema = official_schema()
    fields = schema["complexTypes"][schema["elements"][operation][4:]]["fields"]
    parts = []
    for name, kind, min_occurs, _, _ in fields:
        if name == "context":
            parts.append(context)
        elif min_occurs > 0:
            assert kind in SAMPLE_VALUES, f"{operation}: no sample value for required {name}"
            parts.append(f"<{name}>{SAMPLE_VALUES[kind]}</{name}>")
    return "".join(parts)


# --- the implemented operations: their real behaviour --------------------------------------


def _benchmarking_nop(server: GatewayServer, shop: Shop) -> None:
    ret = call(server, "benchmarkingNop", "")
    assert result(ret) == (0, "SUCCESS")


def _register_terminal(server: GatewayServer, shop: Shop) -> None:
    inner = shop_context(shop) + "<externalTerminalId>Till 1</externalTerminalId>" \
        "<password>abcd</password><name>Till 1</name>"
    ret = call(server, "registerTerminal", inner)
    assert result(ret) == (0, "SUCCESS")
    assert TERMINAL_ID_RE.match(text_of(ret, "terminalId") or "")
    short = shop_context(shop) + "<externalTerminalId>Till 2</externalTerminalId>" \
        "<password>abc</password><name>Till 2</name>"
    code, description = result(call(server, "registerTerminal", short))
    assert code == 21 and description.startswith("ACCESS_DENIED")


def _unregister_terminal(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    ret = call(server, "unregisterTerminal", till_context(terminal_id))
    assert result(ret) == (0, "SUCCESS")
    code, description = result(call(server, "unregisterTerminal", till_context(terminal_id)))
    assert code == 33 and description.startswith("INVALID_INITIATOR_PRINCIPAL_STATE")


def _assign_seqr_id(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    seqr_id = "Q" + uuid.uuid4().hex[:12]
    ret = call(server, "assignSeqrId", till_context(terminal_id) + f"<seqrId>{seqr_id}</seqrId>")
    assert result(ret) == (0, "SUCCESS")
    bad = call(server, "assignSeqrId", till_context(terminal_id) + "<seqrId>not/alnum</seqrId>")
    code, description = result(bad)
    assert code == 53 and description.startswith("INVALID_SEQR_ID")


def _mark(server: GatewayServer, shop: Shop) -> str:
    ret = call(server, "markTransactionPeriod", shop_context(shop))
    assert result(ret) == (0, "SUCCESS")
    period = text_of(ret, "transactionPeriodId") or ""
    assert PERIOD_RE.match(period)
    assert text_of(ret, "ersReference") == period
    return period


def _mark_transaction_period(server: GatewayServer, shop: Shop) -> None:
    first, second = _mark(server, shop), _mark(server, shop)
    assert second != first  # the mark closed one period and opened the next


def _execute_report(server: GatewayServer, shop: Shop) -> None:
    period = _mark(server, shop)
    inner = (shop_context(shop) + "<reportId>STD_RECON_001</reportId><language>en</language>"
             "<parameters><parameter><entry><key>transactionPeriodId</key>"
             f"<value>{period}</value></entry></parameter></parameters>")
    code, description = result(call(server, "executeReport", inner))
    assert code == 2 and description.startswith("REPORT_NOT_READY")  # queued; ready later
    unknown = inner.replace(f"<value>{period}</value>", "<value>1234</value>")
    code, description = result(call(server, "executeReport", unknown))
    assert code == 23 and description.startswith("INVALID_ERS_REFERENCE")


def _send(server: GatewayServer, terminal_id: str, **invoice: str) -> str:
    ret = call(server, "sendInvoice", till_context(terminal_id) + invoice_xml(**invoice))
    assert result(ret) == (0, "SUCCESS")
    reference = text_of(ret, "invoiceReference") or ""
    assert len(reference) == 13 and reference.isdigit()
    assert text_of(ret, "invoiceQRCode") == "HTTP://SEQR.SE/R" + reference
    return reference


def _buyer(server: GatewayServer, reference: str, action: str) -> dict:
    answer = requests.post(f"{server.base}/simulator/invoices/{reference}/{action}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _status(server: GatewayServer, terminal_id: str, reference: str) -> Any:
    return call(server, "getPaymentStatus", till_context(terminal_id)
                + f"<invoiceReference>{reference}</invoiceReference>"
                "<invoiceVersion>0</invoiceVersion>")


def _paid(server: GatewayServer, shop: Shop, amount: str = "10.00") -> tuple[str, str, str]:
    """A terminal, a paid invoice the register has seen, and the payment's ersReference."""
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id, amount=amount)
    _buyer(server, reference, "pay")
    ret = _status(server, terminal_id, reference)
    assert text_of(ret, "status") == "PAID"
    return terminal_id, reference, text_of(ret, "ersReference") or ""


def _send_invoice(server: GatewayServer, shop: Shop) -> None:
    _send(server, register_terminal(server, shop))
    code, description = result(call(server, "sendInvoice", shop_context(shop) + invoice_xml()))
    assert code == 21 and description.startswith("ACCESS_DENIED")  # only terminals send
    bad = call(server, "sendInvoice",
               till_context(register_terminal(server, shop)) + invoice_xml(amount="-1"))
    assert result(bad)[0] == 49


def _get_payment_status(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id)
    ret = _status(server, terminal_id, reference)
    assert (text_of(ret, "status"), text_of(ret, "version")) == ("ISSUED", "1")
    assert ret.find("receipt") is None
    _buyer(server, reference, "pay")
    paid = _status(server, terminal_id, reference)
    assert (text_of(paid, "status"), text_of(paid, "version")) == ("PAID", "2")
    receipt = paid.find("receipt")
    assert text_of(receipt, "paymentReference") == text_of(paid, "ersReference")
    assert text_of(receipt, "invoice/totalAmount/value") in ("10.00", "10.00000", "10")
    unknown = _status(server, terminal_id, "1" * 13)
    assert result(unknown)[0] == 54


def _update_invoice(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id)
    inner = (till_context(terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
             + invoice_xml(amount="12.50"))
    assert result(call(server, "updateInvoice", inner)) == (0, "SUCCESS")
    assert text_of(_status(server, terminal_id, reference), "version") == "2"
    _buyer(server, reference, "pay")
    assert result(call(server, "updateInvoice", inner))[0] == 48


def _cancel_invoice(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id)
    inner = till_context(terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
    assert result(call(server, "cancelInvoice", inner)) == (0, "SUCCESS")
    assert result(call(server, "cancelInvoice", inner))[0] == 95
    assert text_of(_status(server, terminal_id, reference), "status") == "CANCELED"


def _commit_reservation(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id, mode="RESERVATION_REQUIRED")
    inner = till_context(terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
    assert result(call(server, "commitReservation", inner))[0] == 96  # not reserved yet
    _buyer(server, reference, "reserve")
    assert result(call(server, "commitReservation", inner)) == (0, "SUCCESS")
    assert text_of(_status(server, terminal_id, reference), "status") == "PAID"


def _submit_payment_receipt(server: GatewayServer, shop: Shop) -> None:
    terminal_id, _, payment = _paid(server, shop)
    document = base64.b64encode(b"Coffee 10.00 SEK").decode()
    inner = (till_context(terminal_id) + f"<ersReference>{payment}</ersReference>"
             "<receiptDocument><mimeType>text/plain</mimeType>"
             f"<receiptData>{document}</receiptData><receiptType>CUSTOMER</receiptType>"
             "</receiptDocument>")
    assert result(call(server, "submitPaymentReceipt", inner)) == (0, "SUCCESS")
    unknown = inner.replace(payment, "9" * 25)
    assert result(call(server, "submitPaymentReceipt", unknown))[0] == 23


def _refund_payment(server: GatewayServer, shop: Shop) -> None:
    terminal_id, _, payment = _paid(server, shop, amount="10.00")
    inner = till_context(terminal_id) + f"<ersReference>{payment}</ersReference>"
    ret = call(server, "refundPayment", inner + invoice_xml(amount="4.00"))
    assert result(ret) == (0, "SUCCESS")
    refund = text_of(ret, "ersReference") or ""
    assert PERIOD_RE.match(refund) and refund != payment
    assert result(call(server, "refundPayment", inner + invoice_xml(amount="6.01")))[0] == 98
    assert result(call(server, "refundPayment", inner + invoice_xml(currency="EUR")))[0] == 49
    unknown = till_context(terminal_id) + "<ersReference>1234</ersReference>" + invoice_xml()
    assert result(call(server, "refundPayment", unknown))[0] == 23


def _request_principal_information(server: GatewayServer, shop: Shop) -> None:
    ret = call(server, "requestPrincipalInformation", shop_context(shop))
    assert result(ret) == (0, "SUCCESS")
    principal = ret.find("requestedPrincipal")
    assert text_of(principal, "principalId/id") == shop.reseller_id
    assert text_of(principal, "principalId/type") == "RESELLERUSER"
    terminal_id = register_terminal(server, shop)
    till = call(server, "requestPrincipalInformation", till_context(terminal_id))
    assert text_of(till.find("requestedPrincipal"), "principalId/id") == terminal_id
    assert text_of(till.find("requestedPrincipal"), "status") == "ACTIVE"


def _change_principal_password(server: GatewayServer, shop: Shop) -> None:
    terminal_id = register_terminal(server, shop)
    short = till_context(terminal_id) + "<newPassword>abc</newPassword>"
    assert result(call(server, "changePrincipalPassword", short))[0] == 22
    ok = till_context(terminal_id) + "<newPassword>new-pass</newPassword>"
    assert result(call(server, "changePrincipalPassword", ok)) == (0, "SUCCESS")
    old = call(server, "requestPrincipalInformation", till_context(terminal_id))
    assert result(old)[0] == 20  # the old password no longer works


IMPLEMENTED: dict[str, Callable[[GatewayServer, Shop], None]] = {
    "sendInvoice": _send_invoice,
    "getPaymentStatus": _get_payment_status,
    "updateInvoice": _update_invoice,
    "cancelInvoice": _cancel_invoice,
    "commitReservation": _commit_reservation,
    "submitPaymentReceipt": _submit_payment_receipt,
    "refundPayment": _refund_payment,
    "requestPrincipalInformation": _request_principal_information,
    "changePrincipalPassword": _change_principal_password,
    "benchmarkingNop": _benchmarking_nop,
    "registerTerminal": _register_terminal,
    "unregisterTerminal": _unregister_terminal,
    "assignSeqrId": _assign_seqr_id,
    "markTransactionPeriod": _mark_transaction_period,
    "executeReport": _execute_report,
}


def test_the_port_type_has_19_operations() -> None:
    assert len(OPERATIONS) == len(set(OPERATIONS)) == 19
    assert set(OPERATIONS) == set(IMPLEMENTED) | UNSUPPORTED
    assert not set(IMPLEMENTED) & UNSUPPORTED


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_answers(server: GatewayServer, shop: Shop, operation: str) -> None:
    if operation in IMPLEMENTED:
        IMPLEMENTED[operation](server, shop)
        return
    assert operation in UNSUPPORTED, f"no expectation for {operation}: teach this test about it"
    ret = call(server, operation, minimal_inner(operation, shop_context(shop)))
    code, description = result(ret)
    assert code == 91, (code, description)
    assert description.startswith("UNSUPPORTED_OPERATION"), description
    assert operation in description


def test_get_payment_status_without_invoice_version_reads_it_as_0(
    server: GatewayServer, shop: Shop
) -> None:
    """The WSDL requires invoiceVersion; the developer site's Python sample polls without it,
    and SEQR (JAXB) read it as 0, as it reads any missing int."""
    schema = official_schema()
    fields = schema["complexTypes"]["getPaymentStatus"]["fields"]
    assert fields[-1] == ("invoiceVersion", "xs:int", 1, 1, False)
    terminal_id = register_terminal(server, shop)
    reference = _send(server, terminal_id)
    inner = till_context(terminal_id) + f"<invoiceReference>{reference}</invoiceReference>"
    ret = check_response(server.post(envelope("getPaymentStatus", inner)), "getPaymentStatus")
    assert result(ret) == (0, "SUCCESS")
    assert (text_of(ret, "status"), text_of(ret, "version")) == ("ISSUED", "1")


# --- third-party clients generated from the official WSDL file -----------------------------


def test_zeep_client_from_the_official_wsdl(server: GatewayServer, shop: Shop) -> None:
    client = zeep.Client(str(OFFICIAL_WSDL))
    service = client.create_service(BINDING, server.endpoint)
    nop = service.benchmarkingNop()
    assert (nop.resultCode, nop.resultDescription) == (0, "SUCCESS")
    answer = service.markTransactionPeriod(context=shop.context())
    assert (answer.resultCode, answer.resultDescription) == (0, "SUCCESS")
    assert PERIOD_RE.match(answer.transactionPeriodId)
    assert answer.ersReference == answer.transactionPeriodId


def test_suds_client_from_the_official_wsdl(server: GatewayServer, shop: Shop) -> None:
    client = SudsClient("file://" + str(OFFICIAL_WSDL), location=server.endpoint, cache=None)
    nop = client.service.benchmarkingNop()
    assert (nop.resultCode, nop.resultDescription) == (0, "SUCCESS")
    context = client.factory.create("clientContext")
    principal = client.factory.create("principalId")
    values = shop.context()
    for key, value in values.pop("initiatorPrincipalId").items():
        setattr(principal, key, value)
    for key, value in values.items():
        setattr(context, key, value)
    context.initiatorPrincipalId = principal
    answer = client.service.markTransactionPeriod(context=context)
    assert (answer.resultCode, answer.resultDescription) == (0, "SUCCESS")
    assert PERIOD_RE.match(str(answer.transactionPeriodId))
    assert str(answer.ersReference) == str(answer.transactionPeriodId)
