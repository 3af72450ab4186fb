"""Hostile values against the real gateway: every size limit at its limit and one past it,
a period at the largest amounts rendered into all six reports, and a failed render that
tells the wire nothing of the gateway's insides.

Everything goes over HTTP to `seqr-gateway serve` (the session's server, on SQLite and
again on PostgreSQL), as raw envelopes read by string search.
"""

import base64
import re
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from gateway import limits
from gateway.auth import Principal
from gateway.invoices import MAX_TOTAL
from gateway.reports.requests import RENDER_FAILED
from storage.models import Invoice, ReportJob, Terminal
from tests.support.domain import Journal, new_terminal
from tests.support.envelopes import context_xml, envelope
from tests.support.servers import GatewayServer, Shop, make_shop

pytestmark = pytest.mark.server

TILL_PASSWORD = "till-pw"
LARGEST = MAX_TOTAL - Decimal("0.00001")  # 999999999999.99999, the largest accepted total


def call(server: GatewayServer, operation: str, inner: str) -> tuple[int, str]:
    """(resultCode, resultDescription) of a raw envelope's answer, read off the wire."""
    response = server.post(envelope(operation, inner))
    assert response.status_code == 200, response.text[:500]
    text = response.text
    code = re.search(r"<resultCode>(\d+)</resultCode>", text)
    assert code is not None, text[:500]
    description = re.search(r"<resultDescription>([^<]*)</resultDescription>", text)
    return int(code.group(1)), description.group(1) if description else ""


def till_xml(terminal_id: str) -> str:
    return context_xml(terminal_id, "TERMINALID", password=TILL_PASSWORD, user_id=None)


def amount_xml(value: str) -> str:
    return f"<currency>SEK</currency><value>{value}</value>"


def invoice_xml(total: str = "10.00", rows: str | None = None, **fields: str) -> str:
    """An invoice with `fields` (element name: text) in the contract's order; it states
    NO_ACKNOWLEDGMENT (an omitted mode would wait for the register after the scan)."""
    if rows is None:
        rows = (f"<invoiceRow><itemDescription>Coffee</itemDescription><itemQuantity>1"
                f"</itemQuantity><itemTotalAmount>{amount_xml(total)}</itemTotalAmount>"
                "</invoiceRow>")
    head = "".join(f"<{k}>{fields[k]}</{k}>" for k in ("title", "clientInvoiceId") if k in fields)
    tail = "".join(f"<{k}>{fields[k]}</{k}>"
                   for k in ("cashierId", "footer", "backURL", "notificationUrl") if k in fields)
    return (f"<invoice><acknowledgmentMode>NO_ACKNOWLEDGMENT</acknowledgmentMode>{head}"
            f"<invoiceRows>{rows}</invoiceRows>"
            f"<totalAmount>{amount_xml(total)}</totalAmount>{tail}</invoice>")


def row_xml(**fields: str) -> str:
    order = ("itemDescription", "itemEAN", "itemQuantity", "itemSKU", "itemTotalAmount",
             "itemUnit")
    fields = {"itemQuantity": "1", "itemTotalAmount": amount_xml("10.00"), **fields}
    return "<invoiceRow>" + "".join(
        f"<{k}>{fields[k]}</{k}>" for k in order if k in fields) + "</invoiceRow>"


class Till:
    def __init__(self, server: GatewayServer, shop: Shop) -> None:
        self.server = server
        owner = Principal("RESELLERUSER", shop.reseller_id, user_id=shop.user_id)
        self.terminal_id = new_terminal(server.db, owner, "Till " + uuid.uuid4().hex[:6])

    def call(self, operation: str, inner: str = "") -> tuple[int, str]:
        return call(self.server, operation, till_xml(self.terminal_id) + inner)

    def invoices(self) -> int:
        with self.server.db.read() as session:
            return session.scalar(select(func.count()).select_from(Invoice).where(
                Invoice.terminal_id == self.terminal_id))

    def sell(self, total: str = "10.00", **fields: str) -> str:
        """A paid sale the register has seen; its ersReference."""
        code, _ = self.call("sendInvoice", invoice_xml(total, **fields))
        assert code == 0
        with self.server.db.read() as session:
            reference = session.scalars(select(Invoice.reference).where(
                Invoice.terminal_id == self.terminal_id).order_by(Invoice.reference.desc())
            ).first()
        paid = requests.post(f"{self.server.base}/simulator/invoices/{reference}/pay",
                             timeout=10)
        assert paid.status_code == 200, paid.text
        response = self.server.post(envelope("getPaymentStatus", till_xml(self.terminal_id)
                                             + f"<invoiceReference>{reference}</invoiceReference>"
                                             "<invoiceVersion>0</invoiceVersion>"))
        assert "<status>PAID</status>" in response.text
        return paid.json()["paymentReference"]


@pytest.fixture(scope="module")
def shop(server: GatewayServer) -> Shop:
    return make_shop(server.db)


@pytest.fixture(scope="module")
def till(server: GatewayServer, shop: Shop) -> Till:
    return Till(server, shop)


def url_of(length: int) -> str:
    base = "http://shop.example/back?"
    return base + "q" * (length - len(base))


# (element, limit, a value of the given length, the code past the limit)
INVOICE_FIELDS = [
    ("cashierId", limits.CASHIER_ID, lambda n: "é" * n, 49),  # characters, not bytes
    ("clientInvoiceId", limits.CLIENT_INVOICE_ID, lambda n: "c" * n, 49),
    ("title", limits.INVOICE_TEXT, lambda n: "t" * n, 49),
    ("footer", limits.INVOICE_TEXT, lambda n: "f" * n, 49),
    ("backURL", limits.URL, url_of, 49),
    ("notificationUrl", limits.URL, url_of, 64),
]


@pytest.mark.parametrize(("field", "limit", "value", "code"), INVOICE_FIELDS,
                         ids=[f[0] for f in INVOICE_FIELDS])
def test_invoice_field_at_its_limit_and_one_past(till: Till, field: str, limit: int, value: Any,
                                                 code: int) -> None:
    before = till.invoices()
    assert till.call("sendInvoice", invoice_xml(**{field: value(limit)}))[0] == 0
    refused = till.call("sendInvoice", invoice_xml(**{field: value(limit + 1)}))
    assert refused[0] == code
    assert field in refused[1] and str(limit) in refused[1], refused
    assert till.invoices() == before + 1  # the refused one stored nothing


ROW_FIELDS = ["itemDescription", "itemEAN", "itemSKU", "itemUnit"]


@pytest.mark.parametrize("field", ROW_FIELDS)
def test_invoice_row_text_at_its_limit_and_one_past(till: Till, field: str) -> None:
    before = till.invoices()
    at_limit = row_xml(**{field: "x" * limits.ROW_TEXT})
    assert till.call("sendInvoice", invoice_xml(rows=at_limit))[0] == 0
    over = row_xml(**{field: "x" * (limits.ROW_TEXT + 1)})
    code, description = till.call("sendInvoice", invoice_xml(rows=at_limit + over))
    assert code == 49 and f"invoiceRow 2 {field}" in description
    assert str(limits.ROW_TEXT) in description
    assert till.invoices() == before + 1


def test_invoice_rows_at_the_limit_and_past_it(till: Till) -> None:
    before = till.invoices()
    row = "<invoiceRow/>"
    assert till.call("sendInvoice", invoice_xml(rows=row * limits.INVOICE_ROWS))[0] == 0
    code, description = till.call("sendInvoice", invoice_xml(rows=row * (limits.INVOICE_ROWS + 1)))
    assert code == 49 and f"more than {limits.INVOICE_ROWS} invoiceRows" in description
    # the attack of the issue: ~80,000 empty rows in a 1 MiB body, refused the same way
    code, description = till.call("sendInvoice", invoice_xml(rows=row * 78_000))
    assert code == 49 and "invoiceRows" in description
    assert till.invoices() == before + 1


def test_update_invoice_applies_the_same_limits(till: Till) -> None:
    assert till.call("sendInvoice", invoice_xml())[0] == 0
    with till.server.db.read() as session:
        reference = session.scalars(select(Invoice.reference).where(
            Invoice.terminal_id == till.terminal_id).order_by(Invoice.reference.desc())).first()
    ref = f"<invoiceReference>{reference}</invoiceReference>"
    code, description = till.call(
        "updateInvoice", ref + invoice_xml(cashierId="c" * (limits.CASHIER_ID + 1)))
    assert code == 49 and "cashierId" in description
    assert till.call("updateInvoice", ref + invoice_xml(cashierId="c" * limits.CASHIER_ID))[0] == 0
    with till.server.db.read() as session:
        assert session.get(Invoice, reference).cashier_id == "c" * limits.CASHIER_ID


def test_refund_cashier_at_its_limit_and_one_past(till: Till) -> None:
    payment = till.sell("20.00")

    def refund(cashier: str) -> tuple[int, str]:
        return till.call("refundPayment", f"<ersReference>{payment}</ersReference>"
                         f"<invoice><totalAmount>{amount_xml('1.00')}</totalAmount>"
                         f"<cashierId>{cashier}</cashierId></invoice>")

    code, description = refund("r" * (limits.CASHIER_ID + 1))
    assert code == 49 and "cashierId" in description and str(limits.CASHIER_ID) in description
    assert refund("r" * limits.CASHIER_ID)[0] == 0


def test_receipt_document_limits(till: Till) -> None:
    payment = till.sell()

    def receipt(mime: str = "text/plain", kind: str = "POS", size: int = 10) -> tuple[int, str]:
        data = base64.b64encode(b"r" * size).decode()
        return till.call("submitPaymentReceipt", f"<ersReference>{payment}</ersReference>"
                         f"<receiptDocument><mimeType>{mime}</mimeType><receiptData>{data}"
                         f"</receiptData><receiptType>{kind}</receiptType></receiptDocument>")

    for refused, name, limit in (
        (receipt(mime="m" * (limits.RECEIPT_MIME_TYPE + 1)), "mimeType", limits.RECEIPT_MIME_TYPE),
        (receipt(kind="k" * (limits.RECEIPT_TYPE + 1)), "receiptType", limits.RECEIPT_TYPE),
        (receipt(size=limits.RECEIPT_BYTES + 1), "receiptData", limits.RECEIPT_BYTES),
    ):
        assert refused[0] == 10 and name in refused[1] and str(limit) in refused[1], refused
    with till.server.db.read() as session:
        assert session.scalar(select(Invoice.receipt_data).where(
            Invoice.payment_reference == payment)) is None
    assert receipt("m" * limits.RECEIPT_MIME_TYPE, "k" * limits.RECEIPT_TYPE,
                   limits.RECEIPT_BYTES)[0] == 0
    with till.server.db.read() as session:
        stored = session.scalar(select(Invoice.receipt_data).where(
            Invoice.payment_reference == payment))
    assert stored == b"r" * limits.RECEIPT_BYTES


@pytest.mark.parametrize(("field", "limit"), [
    ("externalTerminalId", limits.EXTERNAL_TERMINAL_ID), ("name", limits.TERMINAL_NAME)])
def test_register_terminal_text_at_its_limit_and_one_past(server: GatewayServer, shop: Shop,
                                                          field: str, limit: int) -> None:
    def register(length: int) -> tuple[int, str]:
        values = {"externalTerminalId": "Store/Till", "name": "Till", field: "n" * length}
        return call(server, "registerTerminal", context_xml(shop.reseller_id)
                    + f"<externalTerminalId>{values['externalTerminalId']}</externalTerminalId>"
                    f"<password>{TILL_PASSWORD}</password><name>{values['name']}</name>")

    def terminals() -> int:
        with server.db.read() as session:
            return session.scalar(select(func.count()).select_from(Terminal).where(
                Terminal.reseller_id == shop.reseller_id))

    before = terminals()
    code, description = register(limit + 1)
    assert code == 10 and field in description and str(limit) in description
    assert terminals() == before
    assert register(limit)[0] == 0
    assert terminals() == before + 1


def test_descriptions_do_not_echo_a_megabyte(till: Till) -> None:
    """A huge value quoted back in a description is cut short: no amplification."""
    code, description = till.call("getPaymentStatus", f"<invoiceReference>{'9' * 500_000}"
                                  "</invoiceReference><invoiceVersion>0</invoiceVersion>")
    assert code == 54 and len(description) < 400, len(description)


# --- sums at the limits -------------------------------------------------------------------


def params_xml(**entries: str) -> str:
    return "<parameters><parameter>" + "".join(
        f"<entry><key>{k}</key><value>{v}</value></entry>" for k, v in entries.items()
    ) + "</parameter></parameters>"


def fetch_report(server: GatewayServer, shop: Shop, report_id: str, **params: str) -> str:
    """The report document (contentString), once the worker has rendered it."""
    inner = (context_xml(shop.reseller_id, password=shop.password)
             + f"<reportId>{report_id}</reportId><language>en</language>" + params_xml(**params))
    deadline = time.monotonic() + 30
    while True:
        response = server.post(envelope("executeReport", inner))
        code = int(re.search(r"<resultCode>(\d+)</resultCode>", response.text).group(1))
        if code != 2:
            break
        assert time.monotonic() < deadline, "report not ready in time"
        time.sleep(0.1)
    assert code == 0, response.text[:1000]
    content = re.search(r"<contentString>(.*)</contentString>", response.text, re.S)
    return content.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def totals(document: str) -> list[tuple[int, Decimal, int, Decimal]]:
    return [(int(a), Decimal(b), int(c), Decimal(d)) for a, b, c, d in re.findall(
        r"<SalesCount>(\d+)</SalesCount><SalesTotal>([-\d.]+)</SalesTotal>"
        r"<RefundCount>(\d+)</RefundCount><RefundTotal>([-\d.]+)</RefundTotal>", document)]


def mark(server: GatewayServer, shop: Shop, **params: str) -> str:
    response = server.post(envelope("markTransactionPeriod", context_xml(
        shop.reseller_id, password=shop.password) + (params_xml(**params) if params else "")))
    return re.search(r"<transactionPeriodId>(\d{25})</transactionPeriodId>", response.text)[1]


def test_a_period_at_the_largest_amounts_renders_all_six_reports(server: GatewayServer) -> None:
    """100 sales and 100 refunds of the largest amount: sums far past 2**63 units of 10**-5
    (the old SQLite SUM failed with 'integer overflow' from the 93rd), exact in every report."""
    shop = make_shop(server.db)
    owner = Principal("RESELLERUSER", shop.reseller_id, user_id=shop.user_id)
    till_a, till_b = new_terminal(server.db, owner, "A"), new_terminal(server.db, owner, "B")
    journal = Journal()
    for number in range(100):
        till = till_a if number % 3 else till_b
        journal.add(server.db, till, "SALE", str(LARGEST), "anna" if number % 2 else None)
        journal.add(server.db, till, "REFUND", str(LARGEST), "bob")
    assert journal.totals()[1] * 10**5 > 2**63 - 1  # the sums do not fit 64 bits
    shop_period = mark(server, shop)
    till_period = mark(server, shop, TERMINALID=till_a)

    def expected(terminal: str | None = None, cashier: Any = ...) -> tuple:
        return journal.totals(terminal, cashier)

    assert totals(fetch_report(server, shop, "STD_RECON_001",
                               transactionPeriodId=shop_period)) == [expected()]
    assert totals(fetch_report(server, shop, "STD_RECON_002", transactionPeriodId=shop_period)
                  ) == [expected(t) for t in sorted((till_a, till_b))]
    by_cashier = totals(fetch_report(server, shop, "STD_RECON_004",
                                     transactionPeriodId=shop_period))
    assert sorted(by_cashier) == sorted(expected(cashier=c) for c in ("anna", "bob", None))
    assert totals(fetch_report(server, shop, "STD_RECON_006", transactionPeriodId=till_period)
                  ) == [expected(till_a)]
    assert totals(fetch_report(server, shop, "STD_RECON_006", transactionPeriodId=shop_period,
                               TERMINALID=till_b)) == [expected(till_b)]
    details = fetch_report(server, shop, "STD_RECON_003", transactionPeriodId=shop_period)
    assert details.count(f"<SalesAmount>{LARGEST}</SalesAmount>") == 100
    assert details.count(f"<SalesAmount>-{LARGEST}</SalesAmount>") == 100
    till_details = fetch_report(server, shop, "STD_RECON_007", transactionPeriodId=till_period)
    assert till_details.count("<Row>") == len([r for r in journal.rows if r[0] == till_a])


# --- a failed render ------------------------------------------------------------------------


def test_a_failed_render_answers_90_with_no_internals(server: GatewayServer) -> None:
    """A cashierId no XML document can hold (only the database can have it) makes every
    render attempt fail: the register gets 90 'report rendering failed' and nothing else;
    the operator finds the error in the log and in /metrics."""
    shop = make_shop(server.db)
    owner = Principal("RESELLERUSER", shop.reseller_id, user_id=shop.user_id)
    till = new_terminal(server.db, owner)
    Journal().add(server.db, till, "SALE", "12.00", "bad\x01cashier")
    period = mark(server, shop)
    inner = (context_xml(shop.reseller_id, password=shop.password) + "<reportId>STD_RECON_003"
             "</reportId><language>en</language>" + params_xml(transactionPeriodId=period))
    deadline = time.monotonic() + 30
    while True:
        body = server.post(envelope("executeReport", inner)).text
        if "<resultCode>2</resultCode>" not in body:
            break
        assert time.monotonic() < deadline, "the render never failed for good"
        time.sleep(0.2)
    assert "<resultCode>90</resultCode>" in body, body
    assert f"<resultDescription>SYSTEM_ERROR: {RENDER_FAILED}</resultDescription>" in body
    for leak in ("ValueError", "Error:", "SELECT", "INSERT", "sqlalche", "psycopg", "sqlite",
                 "lxml", "Traceback", "File ", ".py", "cashier", str(server.workdir)):
        assert leak not in body, leak
    with server.db.read() as session:
        stored = session.scalars(select(ReportJob.last_error).where(
            ReportJob.status == ReportJob.FAILED)).all()
    assert any(error and error.startswith("ValueError") for error in stored), stored
    metrics = requests.get(server.base + "/metrics", timeout=10).text
    failures = [line for line in metrics.splitlines()
                if line.startswith("seqr_report_failures_total{")]
    assert any('report_id="STD_RECON_003"' in line and 'error="ValueError"' in line
               and not line.endswith(" 0.0") for line in failures), failures
    log = server.log_path.read_text()
    assert "report job" in log and "ValueError" in log  # the full error is in the log
