"""SEQR's certification walk-through for a point of sale, end to end (SPEC.md, last section).

Driven by clients generated from the official WSDL file (zeep, then suds-community), with
the buyer's steps done through the simulator. The server's reversal window is scaled down
from 20 s to 2 s so that step 4's "wait 30 s" takes 3 s here.
"""

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
import zeep
from suds.client import Client as SudsClient

from client import BINDING
from tests.support.envelopes import PERIOD_RE
from tests.support.flows import poll_report, report_document
from tests.support.official import OFFICIAL_WSDL
from tests.support.servers import GatewayServer, make_shop, terminal_context

pytestmark = pytest.mark.e2e  # .ci/run runs it on every supported Python

REVERSAL_SECONDS = 2


@pytest.fixture(scope="module")
def certification_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path_factory.mktemp("certification"),
                           "--unpolled-reversal-seconds", str(REVERSAL_SECONDS)).start()
    yield server
    server.stop()


def buyer(server: GatewayServer, path: str) -> dict:
    answer = requests.post(f"{server.base}/simulator/{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


class ZeepRegister:
    """The register's side, as zeep builds it from the official WSDL."""

    def __init__(self, endpoint: str) -> None:
        self.soap = zeep.Client(str(OFFICIAL_WSDL)).create_service(BINDING, endpoint)

    def context(self, values: dict) -> Any:
        return values

    def invoice(self, total: str, cashier: str, rows: list[tuple[str, str, str]]) -> Any:
        return {
            "paymentMode": "IMMEDIATE_DEBIT", "acknowledgmentMode": "NO_ACKNOWLEDGMENT",
            "title": "Certification", "clientInvoiceId": "cert-" + uuid.uuid4().hex[:8],
            "invoiceRows": {"invoiceRow": [
                {"itemDescription": name, "itemQuantity": Decimal(quantity),
                 "itemTotalAmount": {"currency": "SEK", "value": Decimal(amount)}}
                for name, quantity, amount in rows
            ]},
            "totalAmount": {"currency": "SEK", "value": Decimal(total)},
            "cashierId": cashier,
        }

    def refund(self, amount: str) -> Any:
        return {"totalAmount": {"currency": "SEK", "value": Decimal(amount)}}

    def params(self, **entries: str) -> Any:
        return {"parameter": {"entry": [{"key": k, "value": v} for k, v in entries.items()]}}

    def receipt(self) -> Any:
        return {"mimeType": "text/plain", "receiptData": b"1 x Coffee 25.00 SEK",
                "receiptType": "CUSTOMER"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.soap, name)


class SudsRegister(ZeepRegister):
    """The same register, as suds-community builds it from the official WSDL."""

    def __init__(self, endpoint: str) -> None:
        self.client = SudsClient(OFFICIAL_WSDL.as_uri(), location=endpoint, cache=None)
        self.soap = self.client.service

    def _make(self, type_name: str, **values: Any) -> Any:
        obj = self.client.factory.create(type_name)
        for key, value in values.items():
            setattr(obj, key, value)
        return obj

    def _amount(self, value: str) -> Any:
        return self._make("amount", currency="SEK", value=value)

    def context(self, values: dict) -> Any:
        values = dict(values)
        principal = self._make("principalId", **values.pop("initiatorPrincipalId"))
        return self._make("clientContext", initiatorPrincipalId=principal, **values)

    def invoice(self, total: str, cashier: str, rows: list[tuple[str, str, str]]) -> Any:
        invoice = self._make(
            "invoice", paymentMode="IMMEDIATE_DEBIT", acknowledgmentMode="NO_ACKNOWLEDGMENT",
            title="Certification", clientInvoiceId="cert-" + uuid.uuid4().hex[:8],
            totalAmount=self._amount(total), cashierId=cashier,
        )
        invoice.invoiceRows = {"invoiceRow": [  # an anonymous type: suds takes a dict
            self._make("paymentInvoiceRow", itemDescription=name, itemQuantity=quantity,
                       itemTotalAmount=self._amount(amount))
            for name, quantity, amount in rows
        ]}
        return invoice

    def refund(self, amount: str) -> Any:
        return self._make("invoice", totalAmount=self._amount(amount))

    def params(self, **entries: str) -> Any:
        array = self._make("mapArray")
        array.entry = [self._make("parameter", key=k, value=v) for k, v in entries.items()]
        return self._make("parameterMap", parameter=array)

    def receipt(self) -> Any:
        import base64

        data = base64.b64encode(b"1 x Coffee 25.00 SEK").decode()
        return self._make("receiptDocument", mimeType="text/plain", receiptData=data,
                          receiptType="CUSTOMER")


def _ok(answer: Any) -> Any:
    assert answer.resultCode == 0, (answer.resultCode, answer.resultDescription)
    return answer


@pytest.mark.parametrize("register_kind", [ZeepRegister, SudsRegister], ids=["zeep", "suds"])
def test_certification_walk_through(certification_server: GatewayServer, register_kind) -> None:
    server = certification_server
    shop = make_shop(server.db)
    pos = register_kind(server.endpoint)
    shop_ctx = pos.context(shop.context())

    # 1. registerTerminal as RESELLERUSER
    terminal_id = _ok(pos.registerTerminal(shop_ctx, "Store 1/Till 1", "till-pw", "Till 1")
                      ).terminalId
    till = pos.context(terminal_context(terminal_id, "till-pw"))
    # 2. assignSeqrId
    seqr_id = "CERT" + uuid.uuid4().hex[:10].upper()
    _ok(pos.assignSeqrId(till, seqr_id))

    # 3. sendInvoice with rows (itemQuantity and itemTotalAmount at least)
    sale = _ok(pos.sendInvoice(till, pos.invoice(
        "25.00", "cashier-1", [("Coffee", "1", "20.00"), ("Bun", "1", "5.00")])))
    assert sale.invoiceQRCode == "HTTP://SEQR.SE/R" + sale.invoiceReference
    # 4. poll before the buyer scans (ISSUED); the buyer scans the sticker and pays; PAID
    issued = _ok(pos.getPaymentStatus(till, sale.invoiceReference, 0))
    assert (issued.status, issued.version) == ("ISSUED", 1)
    assert buyer(server, f"invoices/{sale.invoiceReference}/scan")["status"] == "ISSUED"
    assert buyer(server, f"seqr-ids/{seqr_id}/pay")["invoiceReference"] == sale.invoiceReference
    paid = _ok(pos.getPaymentStatus(till, sale.invoiceReference, issued.version))
    assert (paid.status, paid.version) == ("PAID", 2)
    payment = paid.ersReference
    assert PERIOD_RE.match(payment)
    receipt = paid.receipt
    assert receipt.terminalId == terminal_id and receipt.paymentReference == payment
    assert receipt.invoiceReference == sale.invoiceReference and receipt.receiverName == "Till 1"
    assert Decimal(str(receipt.invoice.totalAmount.value)) == Decimal("25.00")
    #    ... "Repeat sendInvoice. Wait 30 seconds. Send getPaymentStatus with the previous
    #    received invoiceReference": a cash register has one live invoice, so the repeat
    #    replaces (cancels) the previous one
    previous = _ok(pos.sendInvoice(till, pos.invoice("9.00", "cashier-1", [("Tea", "1", "9.00")])))
    juice = pos.invoice("7.00", "cashier-1", [("Juice", "1", "7.00")])
    unpolled = _ok(pos.sendInvoice(till, juice))
    buyer(server, f"invoices/{unpolled.invoiceReference}/pay")  # paid, but the till is busy
    time.sleep(REVERSAL_SECONDS + 1)
    replaced = _ok(pos.getPaymentStatus(till, previous.invoiceReference, 1))
    assert (replaced.status, replaced.version) == ("CANCELED", 2)  # the repeat replaced it
    lost = _ok(pos.getPaymentStatus(till, unpolled.invoiceReference, 1))
    assert (lost.status, lost.version) == ("CANCELED", 3)  # paid, never polled: reversed
    assert pos.cancelInvoice(till, previous.invoiceReference).resultCode == 95

    # 5. submitPaymentReceipt after PAID
    _ok(pos.submitPaymentReceipt(till, payment, pos.receipt()))

    # 6. sendInvoice, getPaymentStatus, cancelInvoice
    doomed = _ok(pos.sendInvoice(till, pos.invoice("3.00", "cashier-2", [("Gum", "1", "3.00")])))
    assert _ok(pos.getPaymentStatus(till, doomed.invoiceReference, 0)).status == "ISSUED"
    _ok(pos.cancelInvoice(till, doomed.invoiceReference))
    canceled = _ok(pos.getPaymentStatus(till, doomed.invoiceReference, 1))
    assert (canceled.status, canceled.version) == ("CANCELED", 2)
    assert pos.cancelInvoice(till, doomed.invoiceReference).resultCode == 95

    # 7. sendInvoice, pay, refundPayment
    second = _ok(pos.sendInvoice(till, pos.invoice("40.00", "cashier-2", [("Mug", "2", "40.00")])))
    buyer(server, f"invoices/{second.invoiceReference}/pay")
    second_payment = _ok(pos.getPaymentStatus(till, second.invoiceReference, 1)).ersReference
    refund = _ok(pos.refundPayment(till, second_payment, pos.refund("15.00")))
    assert PERIOD_RE.match(refund.ersReference) and refund.ersReference != second_payment
    assert pos.refundPayment(till, second_payment, pos.refund("25.01")).resultCode == 98

    # 8. markTransactionPeriod when closing the register, then executeReport
    mark = _ok(pos.markTransactionPeriod(till, pos.params(TERMINALID=terminal_id)))
    period = mark.transactionPeriodId
    answer = poll_report(lambda: pos.executeReport(
        till, "Reconciliation/STD_RECON_007.xml", "en",
        pos.params(transactionPeriodId=period, TERMINALID=terminal_id)))
    rows = [(r.findtext("ErsReference"), r.findtext("CashierId"), r.findtext("SalesAmount"))
            for r in report_document(answer, "STD_RECON_007", period).findall("Row")]
    assert rows == [
        (payment, "cashier-1", "25.00000"),
        (second_payment, "cashier-2", "40.00000"),
        (refund.ersReference, "NULL", "-15.00000"),  # the refund invoice named no cashier
    ]
    summary = poll_report(lambda: pos.executeReport(
        till, "STD_RECON_006", "en", pos.params(transactionPeriodId=period)))
    (row,) = report_document(summary, "STD_RECON_006", period).findall("Row")
    assert [row.findtext(f) for f in ("SalesCount", "SalesTotal", "RefundCount",
                                      "RefundTotal")] == ["2", "65.00000", "1", "-15.00000"]

    # 9. unregisterTerminal
    _ok(pos.unregisterTerminal(till))
    assert pos.getPaymentStatus(till, sale.invoiceReference, 2).resultCode == 33
