"""All 19 operations of the official port type answer, with the official message shapes.

The list of operations is read from the official WSDL's portType, so an operation the
gateway lacks fails here. Each is called with a minimal schema-valid envelope (checked
against the official schema before it is sent) and its raw answer checked as on the wire.
benchmarkingNop and markTransactionPeriod also go through zeep and suds-community clients
generated from the official WSDL file, as a third-party register would build them.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import zeep
from lxml import etree
from suds.client import Client as SudsClient

from tests.conftest import (
    NS,
    OFFICIAL_WSDL,
    PERIOD_RE,
    SOAP_ENV,
    GatewayServer,
    Shop,
    context_xml,
    envelope,
)
from tests.test_contract_types import official_operations, official_schema, official_xml_schema
from tests.test_wire_samples import (
    TERMINAL_ID_RE,
    check_response,
    child_text,
    register_terminal,
    result,
)

OPERATIONS = official_operations()
BINDING = f"{{{NS}}}ERSWSExternalClientServiceServiceSoapBinding"
UNSUPPORTED = {
    "sendInvoice", "updateInvoice", "getPaymentStatus", "cancelInvoice", "commitReservation",
    "submitPaymentReceipt", "refundPayment", "requestPrincipalInformation",
    "changePrincipalPassword", "confirmCustomerRegistration", "requestPurchase",
    "requestTopup", "requestTransfer",
}
SAMPLE_VALUES = {"xs:int": "0", "xs:long": "0", "xs:string": "x", "xs:decimal": "0"}
TILL_PASSWORD = "till-pw"  # what tests.test_wire_samples.register_terminal chooses


def shop_context(shop: Shop) -> str:
    return context_xml(shop.reseller_id, password=shop.password)


def till_context(terminal_id: str) -> str:
    return context_xml(terminal_id, "TERMINALID", password=TILL_PASSWORD, user_id=None)


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


def call(server: GatewayServer, operation: str, inner: str) -> Any:
    """Post `operation` after checking the envelope is schema-valid; the checked `<return>`."""
    body = envelope(operation, inner)
    request = etree.fromstring(body.encode()).find(f"{{{SOAP_ENV}}}Body")[0]
    schema = official_xml_schema()
    assert schema.validate(request), f"test envelope is not schema-valid: {schema.error_log}"
    return check_response(server.post(body), operation)


# --- the implemented operations: their real behaviour --------------------------------------


def _benchmarking_nop(server: GatewayServer, shop: Shop) -> None:
    ret = call(server, "benchmarkingNop", "")
    assert result(ret) == (0, "SUCCESS")


def _register_terminal(server: GatewayServer, shop: Shop) -> None:
    inner = shop_context(shop) + "<externalTerminalId>Till 1</externalTerminalId>" \
        "<password>abcd</password><name>Till 1</name>"
    ret = call(server, "registerTerminal", inner)
    assert result(ret) == (0, "SUCCESS")
    assert TERMINAL_ID_RE.match(child_text(ret, "terminalId") or "")
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
    period = child_text(ret, "transactionPeriodId") or ""
    assert PERIOD_RE.match(period)
    assert child_text(ret, "ersReference") == period
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


IMPLEMENTED: dict[str, Callable[[GatewayServer, Shop], None]] = {
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


def test_get_payment_status_requires_invoice_version(server: GatewayServer, shop: Shop) -> None:
    schema = official_schema()
    fields = schema["complexTypes"]["getPaymentStatus"]["fields"]
    assert fields[-1] == ("invoiceVersion", "xs:int", 1, 1, False)
    inner = shop_context(shop) + "<invoiceReference>1397240460668</invoiceReference>"
    assert "invoiceVersion" in minimal_inner("getPaymentStatus", "")
    response = server.post(envelope("getPaymentStatus", inner))  # invoiceVersion left out
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert (fault.findtext("faultcode") or "").split(":")[-1].startswith("Client")
    assert "invoiceVersion" in (fault.findtext("faultstring") or "")
    with_version = inner + "<invoiceVersion>0</invoiceVersion>"
    code, _ = result(call(server, "getPaymentStatus", with_version))
    assert code == 91


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
