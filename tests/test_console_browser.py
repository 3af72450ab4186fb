"""The web console in a real browser: Debian's Chromium, driven by Playwright.

One gateway for the module (started with an admin token, as a shared test gateway would
be), one browser for the session. A register is the reference client (zeep, from the
official WSDL); what it sees is checked over SOAP, what a person sees in the page.

Chromium is Debian's package (`apt-get install chromium`; `.ci/run` installs it). Without
it these tests are skipped on a developer's machine, and fail under CI.
"""

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from client import Invoice, InvoiceRow, SeqrClient, ServiceBusyError
from tests.support.servers import GatewayServer, Shop, make_shop

pytestmark = [pytest.mark.server, pytest.mark.once]

TOKEN = "console-test-token"
CHROMIUM = shutil.which("chromium")
#: the live parts are polled twice a second: a new invoice must show within one
APPEARS_WITHIN_MS = 1000

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed: .ci/run installs it")
        pytest.skip("the browser tests need Debian's chromium (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def gateway(database_backend: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path_factory.mktemp("console"),
                           env={"SEQR_ADMIN_TOKEN": TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def logged_in(browser: Any, gateway: GatewayServer) -> Iterator[Any]:
    """A browser context that has logged in once with the admin token."""
    context = browser.new_context(base_url=gateway.base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(gateway.base + "/")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(logged_in: Any) -> Iterator[Any]:
    tab = logged_in.new_page()
    yield tab
    tab.close()


@pytest.fixture
def shop(gateway: GatewayServer) -> Shop:
    return make_shop(gateway.db)


class Register:
    """A till of a shop, as its register software drives it: over SOAP, with zeep."""

    def __init__(self, gateway: GatewayServer, shop: Shop, name: str = "Till 1") -> None:
        self.gateway = gateway
        self.shop = SeqrClient.for_shop(gateway.endpoint, shop.reseller_id, shop.user_id,
                                        shop.password, timeout=10)
        self.id = self.shop.register_terminal(f"{shop.reseller_id}/{name}", "till-pw", name)
        self.till = self.shop.as_terminal(self.id, "till-pw")

    def send(self, amount: str, *rows: tuple[str, str], payment_mode: str = "IMMEDIATE_DEBIT"
             ) -> Any:
        return self.till.send_invoice(Invoice(
            Decimal(amount), cashier_id="anna", payment_mode=payment_mode,
            acknowledgment_mode="NO_ACKNOWLEDGMENT",
            rows=tuple(InvoiceRow(text, Decimal(value)) for text, value in rows)))

    def status(self, reference: str) -> Any:
        return self.till.get_payment_status(reference)


def buyer_pays(gateway: GatewayServer, reference: str) -> None:
    answer = requests.post(f"{gateway.base}/simulator/invoices/{reference}/pay", timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text


# Chromium draws the QR code's SVG onto a canvas; its grey levels go to zxing-cpp, which
# decodes them as a phone's camera would.
_RASTERIZE = """async (svg) => {
  const modules = svg.viewBox.baseVal.width;
  const size = modules * 6;
  const xml = new XMLSerializer().serializeToString(svg);
  const image = new Image();
  image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(xml);
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, size, size);
  context.drawImage(image, 0, 0, size, size);
  const rgba = context.getImageData(0, 0, size, size).data;
  const grey = new Array(size * size);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[i * 4];
  return grey;
}"""


def decode_qr(svg: Any) -> str:
    import zxingcpp

    grey = svg.evaluate(_RASTERIZE)
    size = int(len(grey) ** 0.5)
    image = memoryview(bytes(grey)).cast("B", (size, size))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"{len(found)} QR codes decoded"
    return str(found[0].text)


def test_an_invoice_appears_with_its_qr_code_and_pay_makes_it_paid(
        page: Any, gateway: GatewayServer, shop: Shop) -> None:
    register = Register(gateway, shop)
    page.goto("/phone")
    sent = register.send("25.00", ("Coffee", "18.00"), ("Bun", "7.00"))
    reference = sent.invoice_reference
    sent_at = time.monotonic()
    card = page.locator(f"#invoice-{reference}")
    card.wait_for(timeout=APPEARS_WITHIN_MS)  # without reloading: the page polls
    print(f"invoice shown {time.monotonic() - sent_at:.3f} s after sendInvoice answered")

    assert decode_qr(card.locator("svg.qr")) == f"HTTP://SEQR.SE/R{reference}" == sent.qr_code
    expect = playwright_api.expect
    expect(card.locator("h2")).to_contain_text("25.00 SEK")
    expect(card.locator("table.rows")).to_contain_text("Coffee")
    expect(card.locator("table.rows")).to_contain_text("Bun")
    expect(card.locator(".status-text")).to_have_text("ISSUED")
    expect(card.locator(".version")).to_have_text("1")
    reserve = card.get_by_role("button", name="Reserve", exact=True)
    expect(reserve).to_be_disabled()
    expect(reserve).to_have_attribute("title",
                                      "Cannot reserve: its payment mode is IMMEDIATE_DEBIT")
    assert [b.inner_text() for b in card.get_by_role("button").all()] == [
        "Scan", "Pay", "Reserve", "Fail"]

    pay = card.get_by_role("button", name="Pay", exact=True)
    pay.focus()
    page.keyboard.press("Enter")  # keyboard-reachable, like every control
    expect(page.locator("#notice")).to_contain_text(f"invoice {reference} is PAID")
    status = register.status(reference)
    assert (status.status, status.version) == ("PAID", 2)
    assert status.receipt is not None and status.receipt.amount == Decimal("25.00")

    # the card follows without a reload: status, version, and the buttons now refused
    expect(card.locator(".status-text")).to_have_text("PAID")
    expect(card.locator(".version")).to_have_text("2")
    expect(card.get_by_role("button", name="Pay", exact=True)).to_have_attribute(
        "title", "Cannot pay: it is PAID")
    expect(card.locator(".till")).to_contain_text("answers PAID")


def test_the_sticker_pays_the_tills_open_invoice(page: Any, gateway: GatewayServer,
                                                 shop: Shop) -> None:
    register = Register(gateway, shop)
    seqr_id = "T" + uuid.uuid4().hex[:10].upper()
    register.till.assign_seqr_id(seqr_id)
    page.goto("/terminals")
    card = page.locator(f"#terminal-{register.id}")
    assert decode_qr(card.locator("svg.qr")) == f"HTTP://SEQR.SE/Q{seqr_id}"
    button = card.get_by_role("button", name="Scan sticker and pay")
    expect = playwright_api.expect
    expect(button).to_have_attribute("title", "Cannot pay: it has no open invoice")
    sent = register.send("12.50")
    expect(card).to_contain_text(sent.invoice_reference)  # live
    expect(button).to_be_enabled()
    button.click()
    expect(page.locator("#notice")).to_contain_text(f"invoice {sent.invoice_reference} is PAID")
    assert register.status(sent.invoice_reference).status == "PAID"


def test_a_closed_period_appears_and_its_report_shows_the_sale(
        page: Any, gateway: GatewayServer, shop: Shop) -> None:
    register = Register(gateway, shop)
    sent = register.send("25.00", ("Coffee", "25.00"))
    buyer_pays(gateway, sent.invoice_reference)
    paid = register.status(sent.invoice_reference)  # the register sees it: a sale
    assert paid.status == "PAID" and paid.ers_reference

    page.goto("/periods")
    period = register.shop.close_period()  # the shop's user, from the register's side
    row = page.locator(f'tr[data-period="{period.period_id}"]')
    expect = playwright_api.expect
    expect(row).to_contain_text("25.00")  # appears without a reload, with its net total
    row.get_by_role("link").click()
    page.get_by_role("link", name="STD_RECON_003").click()

    table = page.locator("#report-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    cells = table.locator("tbody tr td").all_inner_texts()
    assert cells == [register.id, "anna", "25.00000", paid.ers_reference]
    expect(page.locator("#totals .sales-count")).to_have_text("1")
    expect(page.locator("#totals .net-total")).to_have_text("25.00000")

    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines == ["TerminalId,CashierId,SalesAmount,ErsReference",
                     f"{register.id},anna,25.00000,{paid.ers_reference}"]


def test_the_journal_lists_the_registers_calls(page: Any, gateway: GatewayServer,
                                               shop: Shop) -> None:
    register = Register(gateway, shop)
    page.goto(f"/journal?terminal={register.id}")
    sent = register.send("7.00", ("Tea", "7.00"))
    register.status(sent.invoice_reference)
    rows = page.locator("table.journal tbody tr")
    expect = playwright_api.expect
    expect(rows).to_have_count(2)  # live, newest first
    assert [row.locator("td").nth(2).inner_text() for row in rows.all()] == [
        "getPaymentStatus", "sendInvoice"]
    expect(rows.first).to_contain_text("0 SUCCESS")
    rows.nth(1).get_by_role("link", name="sendInvoice").click()
    request = page.locator("figure.envelope").first
    expect(request).to_contain_text("<password>***</password>")
    expect(request).to_contain_text("<value>7.00</value>")
    assert "till-pw" not in page.content()


def test_a_fault_rule_from_the_form_makes_the_next_call_answer_94(
        page: Any, gateway: GatewayServer, shop: Shop) -> None:
    register = Register(gateway, shop)
    sent = register.send("5.00")
    page.goto("/control")
    page.get_by_label("Operation").fill("getPaymentStatus")
    page.get_by_label("Terminal id").fill(register.id)
    page.get_by_label("Hit").select_option("times")
    page.get_by_label("N", exact=True).fill("1")
    page.get_by_label("Effect").select_option("result_code")
    page.get_by_label("Result code").fill("94")
    page.get_by_role("button", name="Add rule").click()
    expect = playwright_api.expect
    expect(page.locator("#notice")).to_contain_text("added")
    rule = page.locator("#fault-rules tbody tr").last
    expect(rule).to_contain_text("getPaymentStatus")

    # no retries: the register's own next call, as it comes
    till = SeqrClient.for_terminal(gateway.endpoint, register.id, "till-pw", retries=0)
    with pytest.raises(ServiceBusyError) as refused:
        till.get_payment_status(sent.invoice_reference)
    assert refused.value.code == 94
    assert till.get_payment_status(sent.invoice_reference).status == "ISSUED"  # once only
    expect(rule.locator("td").nth(5)).to_have_text("1")  # fired, shown live
    page.goto(f"/journal?terminal={register.id}&injected=1")
    injected = page.locator("table.journal tbody tr")
    expect(injected).to_have_count(1)
    expect(injected).to_contain_text("94 SERVICE_UNAVAILABLE")
    expect(injected).to_contain_text("result_code 94")
    page.goto("/control")
    page.get_by_role("button", name="Delete every rule").click()
    expect(page.locator("#fault-rules")).to_contain_text("None")


def test_the_clock_form_makes_an_unpolled_payment_reverse(
        page: Any, gateway: GatewayServer, shop: Shop) -> None:
    register = Register(gateway, shop)
    sent = register.send("8.00")
    buyer_pays(gateway, sent.invoice_reference)  # the register does not poll
    page.goto("/control")
    expect = playwright_api.expect
    try:
        page.get_by_label("Advance by (seconds)").fill("21")
        page.get_by_role("button", name="Advance", exact=True).click()
        expect(page.locator("#notice")).to_contain_text("Clock running")
        expect(page.locator("#clock-now")).to_contain_text("s from real time")
        assert register.status(sent.invoice_reference).status == "CANCELED"
    finally:
        page.get_by_role("button", name="Back to real time").click()
        expect(page.locator("#clock-now")).to_contain_text("real time")
        expect(page.locator("#clock-now")).not_to_contain_text("from real time")


def test_the_token_guards_pages_and_actions(browser: Any, gateway: GatewayServer) -> None:
    context = browser.new_context(base_url=gateway.base)
    try:
        page = context.new_page()
        page.goto("/phone")
        assert page.url == f"{gateway.base}/login?next=%2Fphone"
        assert page.locator("main").inner_text().count("Admin token") == 1
        # an action posted without logging in is refused, and the page offers no data
        assert page.evaluate("fetch('/terminals/ANY/pay', {method: 'POST'})"
                             ".then(r => r.status)") == 401
        assert page.evaluate("fetch('/phone?fragment=1').then(r => r.status)") == 401
        page.get_by_label("Admin token").fill("not-the-token")
        page.get_by_role("button", name="Log in").click()
        playwright_api.expect(page.get_by_role("alert")).to_contain_text(
            "not the admin token")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{gateway.base}/phone")
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{gateway.base}/login")
        page.goto("/periods")
        assert page.url.startswith(f"{gateway.base}/login")
    finally:
        context.close()


# Accessibility and small screens: checked in the page itself on every page.
_PROBLEMS = """() => {
  const problems = [];
  const seen = (el) => el.getClientRects().length > 0;
  const show = (el) => el.outerHTML.slice(0, 80);
  const inputs = "input:not([type=hidden]), select, textarea";
  for (const el of document.querySelectorAll(inputs)) {
    if (el.labels.length === 0 && !el.getAttribute("aria-label")) {
      problems.push("unlabelled " + show(el));
    }
  }
  const controls = "a[href], button, select, input:not([type=hidden])";
  for (const el of document.querySelectorAll(controls)) {
    if (seen(el) && el.tabIndex < 0) problems.push("not keyboard-reachable " + show(el));
  }
  for (const el of document.querySelectorAll(".status")) {
    if (!/[A-Za-z]/.test(el.textContent)) problems.push("status without words " + show(el));
  }
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth) {
    problems.push("wider than the screen: " + page.scrollWidth + " > " + page.clientWidth);
  }
  return problems;
}"""


def test_every_page_is_labelled_keyboard_reachable_and_fits_a_phone(
        page: Any, gateway: GatewayServer, shop: Shop) -> None:
    register = Register(gateway, shop)
    register.till.assign_seqr_id("A" + uuid.uuid4().hex[:10].upper())
    sent = register.send("9.99", ("Tea", "9.99"))
    buyer_pays(gateway, sent.invoice_reference)
    register.status(sent.invoice_reference)
    register.send("30.00", payment_mode="RESERVATION_REQUIRED")
    period = register.shop.close_period().period_id
    paths = ["/", "/terminals", "/phone", "/periods", f"/periods/{period}",
             f"/periods/{period}/STD_RECON_003", f"/periods/{period}/STD_RECON_002",
             "/journal", "/control", f"/journal?terminal={register.id}"]
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        for path in paths:
            page.goto(path)
            assert page.evaluate(_PROBLEMS) == [], (width, path)
    # the skip link is the first stop of the keyboard, and leads to the content
    page.goto("/phone")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
