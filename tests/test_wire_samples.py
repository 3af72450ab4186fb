"""Every wire sample of tests/data/samples, posted byte for byte, and the raw answers.

A sample is the documentation's own envelope (`ext:` prefix, unqualified children, empty
Header); only its upper-case placeholders are replaced. The answers are checked as bytes
parsed by lxml, not through a SOAP client: SOAP 1.1 envelope, one `<opResponse>` in the
service namespace, `<return>` and everything below it without a namespace, elements in the
official order, and the whole payload valid against the official WSDL's schema.
"""

import base64
import binascii
import re
import time
from decimal import Decimal
from typing import Any

import pytest
import requests
from lxml import etree

from gateway import ledger
from storage.database import Database
from storage.models import Terminal, Transaction
from tests.support.envelopes import NS, PERIOD_RE, SOAP_ENV, text_of
from tests.support.official import (
    SAMPLES,
)
from tests.support.servers import GatewayServer, Shop
from tests.support.wire import check_response, register_terminal, result
from wsdl import report_schema

pytestmark = pytest.mark.once

SAMPLE_NAMES = sorted(p.name for p in SAMPLES.glob("*.xml"))
REPORT_SAMPLE = re.compile(r"^executeReport-(STD_RECON_00\d)\.xml$")
TERMINAL_REPORTS = {"STD_RECON_006", "STD_RECON_007"}
PLACEHOLDERS = ("RESELLER_ID", "RESELLER_PASSWORD", "TERMINAL_ID", "TRANSACTION_PERIOD_ID")
SALES = (("93.31", "cashier-1"), ("6.69", None))  # recorded before the periods are marked


# --- checks on raw responses, shared with test_operations.py ------------------------------


# --- flows ---------------------------------------------------------------------------------


def record_sale(db: Database, terminal_id: str, amount: str, cashier: str | None) -> None:
    """A completed sale, stored as the payment lifecycle will store it."""
    with db.write() as session:
        terminal = session.get(Terminal, terminal_id)
        assert terminal is not None
        ledger.record_transaction(session, terminal, Transaction.SALE, Decimal(amount), "SEK",
                                  cashier)


def post_sample(server: GatewayServer, name: str, **values: str) -> Any:
    """A sample with its placeholders replaced, posted as the documentation says: the bytes
    of the file, `Content-Type: text/xml`, an empty SOAPAction."""
    body = (SAMPLES / name).read_bytes()  # byte for byte: no newline or encoding translation
    for placeholder, value in values.items():
        body = body.replace(placeholder.encode(), value.encode())
    for placeholder in PLACEHOLDERS:
        assert placeholder.encode() not in body, f"{placeholder} left in {name}"
    headers = {"Content-Type": "text/xml", "SOAPAction": '""'}
    return requests.post(server.endpoint, data=body, headers=headers, timeout=30)


def credentials(shop: Shop) -> dict[str, str]:
    return {"RESELLER_ID": shop.reseller_id, "RESELLER_PASSWORD": shop.password}


def mark(server: GatewayServer, name: str, **values: str) -> str:
    """Post a markTransactionPeriod sample; the new period's id."""
    ret = check_response(post_sample(server, name, **values), "markTransactionPeriod")
    assert result(ret) == (0, "SUCCESS")
    period = text_of(ret, "transactionPeriodId")
    assert period is not None and PERIOD_RE.match(period), period
    assert text_of(ret, "ersReference") == period
    return period


def prepare(server: GatewayServer, shop: Shop) -> tuple[str, str, str]:
    """A terminal with two sales, then both samples' periods: (terminal, shop, terminal period)."""
    terminal_id = register_terminal(server, shop)
    for amount, cashier in SALES:
        record_sale(server.db, terminal_id, amount, cashier)
    shop_period = mark(server, "markTransactionPeriod-shop.xml", **credentials(shop))
    terminal_period = mark(server, "markTransactionPeriod-terminal.xml",
                           TERMINAL_ID=terminal_id, **credentials(shop))
    assert shop_period != terminal_period
    return terminal_id, shop_period, terminal_period


def poll_report(server: GatewayServer, name: str, **values: str) -> Any:
    """executeReport until ready: first 2 REPORT_NOT_READY, then 0 within 20 s."""
    ret = check_response(post_sample(server, name, **values), "executeReport")
    code, description = result(ret)
    assert code == 2 and description.startswith("REPORT_NOT_READY"), (code, description)
    assert ret.find("report") is None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        ret = check_response(post_sample(server, name, **values), "executeReport")
        code, description = result(ret)
        if code != 2:
            break
    assert (code, description) == (0, "SUCCESS")
    return ret


def check_report(ret: Any, report_id: str, period: str, shop: Shop,
                 terminal_id: str | None) -> Any:
    """The `report` of a ready answer; its parsed document."""
    report = ret.find("report")
    assert report is not None
    assert [c.tag for c in report] == ["title", "mimeType", "content", "contentString"]
    assert text_of(report, "title") == f"{report_id}_{period}.xml"
    assert text_of(report, "mimeType") == "text/html"
    encoded = "".join((text_of(report, "content") or "").split())
    try:
        content = base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        pytest.fail(f"content is not base64: {error}")
    assert content == (text_of(report, "contentString") or "").encode("utf-8")
    assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    document = etree.fromstring(content)  # well-formed, or this raises
    xsd = report_schema(report_id)
    assert xsd.validate(document), xsd.error_log

    meta = document.find("Meta")
    assert text_of(meta, "ResellerId") == shop.reseller_id
    assert text_of(meta, "TransactionPeriodId") == period
    assert text_of(meta, "TerminalId") == terminal_id
    rows = document.findall("Row")
    totals = [r.findtext("SalesAmount") or r.findtext("SalesTotal") for r in rows]
    assert sum(Decimal(t) for t in totals) == sum(Decimal(a) for a, _ in SALES)
    return document


# --- the samples -------------------------------------------------------------------------


def test_samples_are_there() -> None:
    assert any(n.startswith("markTransactionPeriod-") for n in SAMPLE_NAMES)
    assert sum(bool(REPORT_SAMPLE.match(n)) for n in SAMPLE_NAMES) >= 6
    for name in SAMPLE_NAMES:  # as the documentation shows them: unqualified children
        root = etree.fromstring((SAMPLES / name).read_bytes())
        operation = root.find(f"{{{SOAP_ENV}}}Body")[0]
        assert etree.QName(operation).namespace == NS
        assert all(etree.QName(n).namespace is None for n in operation.iterdescendants())


def _cases() -> list[Any]:
    cases = []
    for name in SAMPLE_NAMES:
        match = REPORT_SAMPLE.match(name)
        if match and match.group(1) in TERMINAL_REPORTS:
            # the per-terminal flow, and a shop period narrowed to the terminal
            cases += [pytest.param(name, "terminal", id=f"{name}-terminal-period"),
                      pytest.param(name, "shop", id=f"{name}-shop-period")]
        else:
            cases.append(pytest.param(name, "shop", id=name))
    return cases


@pytest.mark.parametrize(("name", "period_scope"), _cases())
def test_sample(server: GatewayServer, shop: Shop, name: str, period_scope: str) -> None:
    terminal_id, shop_period, terminal_period = prepare(server, shop)
    if name.startswith("markTransactionPeriod-"):
        # prepare() posted both already; post this one again: it closes the next period
        values = {"TERMINAL_ID": terminal_id, **credentials(shop)}
        again = mark(server, name, **values)
        assert again not in (shop_period, terminal_period)
        return
    match = REPORT_SAMPLE.match(name)
    if match is None:
        pytest.fail(f"no expectation for sample {name}: teach this test about it")
    report_id = match.group(1)
    period = terminal_period if period_scope == "terminal" else shop_period
    values = {"TERMINAL_ID": terminal_id, "TRANSACTION_PERIOD_ID": period, **credentials(shop)}
    ret = poll_report(server, name, **values)
    document = check_report(ret, report_id, period, shop,
                            terminal_id if report_id in TERMINAL_REPORTS else None)
    # later calls: the same document
    again = check_response(post_sample(server, name, **values), "executeReport")
    assert result(again) == (0, "SUCCESS")
    assert again.findtext("report/content") == ret.findtext("report/content")
    assert document.getroottree().docinfo.encoding == "UTF-8"


class _Canned:
    """A stand-in HTTP response, to show check_response() refuses what real clients refuse."""

    def __init__(self, body: str) -> None:
        self.status_code = 200
        self.headers = {"Content-Type": "text/xml; charset=utf-8"}
        self.content = body.encode()


def _canned(payload: str, wrapper: str = f'ns2:{{op}}Response xmlns:ns2="{NS}"',
            envelope_prefix: str = "soap") -> _Canned:
    """A stand-in answer: `payload` inside the manual's envelope and wrapper (unless told)."""
    operation = "markTransactionPeriod" if "transactionPeriodId" in payload else \
        "benchmarkingNop"
    opening = wrapper.format(op=operation)
    closing = opening.split(" ")[0]
    e = envelope_prefix
    return _Canned(f'<{e}:Envelope xmlns:{e}="{SOAP_ENV}"><{e}:Body><{opening}>{payload}'
                   f"</{closing}></{e}:Body></{e}:Envelope>")


GOOD = "<return><resultCode>0</resultCode><resultDescription>SUCCESS</resultDescription></return>"


@pytest.mark.parametrize(("answer", "complaint"), [
    (_canned(GOOD.replace("return>", "ns2:return>")), "return"),
    (_canned(GOOD.replace("resultCode>", "ns2:resultCode>")), "qualified"),
    (_canned(GOOD, wrapper="benchmarkingNopResponse"), "startswith"),
    (_canned(GOOD, wrapper=f'tns:{{op}}Response xmlns:tns="{NS}"'), "startswith"),
    (_canned(GOOD, envelope_prefix="soap11env"), "startswith"),
    (_canned("<return><resultDescription>SUCCESS</resultDescription><resultCode>0</resultCode>"
             "</return>"), "resultCode"),
    (_canned("<return><resultCode>0</resultCode><transactionPeriodId>1</transactionPeriodId>"
             "<ersReference>1</ersReference></return>"), "ersReference"),
])
def test_check_response_refuses_misshapen_answers(answer: _Canned, complaint: str) -> None:
    operation = "markTransactionPeriod" if b"transactionPeriodId" in answer.content else \
        "benchmarkingNop"
    with pytest.raises(AssertionError, match=complaint):
        check_response(answer, operation)
    assert result(check_response(_canned(GOOD), "benchmarkingNop")) == (0, "SUCCESS")
