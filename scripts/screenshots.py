"""Screenshots of every page of the web console, at desktop and phone width, for docs/.

    .venv/bin/python scripts/screenshots.py [--out docs/console]

Starts a gateway of its own (a temporary SQLite database, a free port, the demo shop),
plays a small day at the demo shop through the reference client (a till with a sticker, a
webshop, a sale, a refund, a closed period, open invoices in several states, a fault rule
hit) with the clock frozen at a fixed time, then has Debian's Chromium (through
Playwright) photograph each page at 1280 and 360 px.
"""

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from client import Invoice, InvoiceRow, SeqrClient, ServiceBusyError

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"desktop": 1280, "phone": 360}
DEMO = ("demo-shop", "9900", "demo-password")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_of(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'screenshots.sqlite3'}"


def start_gateway(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    database = database_of(workdir)
    log = (workdir / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
         "--database-url", database, "--report-delay", "0"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/health", timeout=1).status_code == 200:
                return process, base
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the gateway did not start: {(workdir / 'gateway.log').read_text()}")


def admin(base: str, path: str, body: dict[str, object]) -> dict[str, object]:
    answer = requests.post(f"{base}/admin/{path}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def add_webshop_terminal(workdir: Path) -> str:
    """A webshop's terminal, as the operator makes it (`seqr-gateway add-terminal --webshop`)."""
    made = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "add-terminal", "--database-url",
         database_of(workdir), "--reseller-id", DEMO[0], "--password", "web-pw",
         "--name", "Webshop", "--external-id", "webshop-1", "--webshop"],
        capture_output=True, text=True, check=True, cwd=workdir)
    return made.stdout.strip()


def a_day_at_the_shop(base: str, webshop_id: str) -> dict[str, str]:
    """Tills, invoices and a closed period, as a register would leave them; a fault rule that
    made one poll answer 94; the clock frozen at a fixed time, so the pages show the same
    times at every run."""
    endpoint = base + "/extclientproxy/service/v2"
    admin(base, "clock", {"action": "set", "at": "2026-05-21T09:12:00Z"})
    admin(base, "clock", {"action": "freeze"})
    shop = SeqrClient.for_shop(endpoint, *DEMO, timeout=10)
    till_id = shop.register_terminal("Store 1/Till 1", "till-pw", "Till 1")
    till = shop.as_terminal(till_id, "till-pw")
    till.assign_seqr_id("STORE1TILL1")
    web = shop.as_terminal(webshop_id, "web-pw")

    def invoice(amount: str, *rows: tuple[str, str], **fields: str) -> Invoice:
        return Invoice(Decimal(amount), acknowledgment_mode="NO_ACKNOWLEDGMENT",
                       rows=tuple(InvoiceRow(text, Decimal(value)) for text, value in rows),
                       **fields)

    def buyer(reference: str, action: str) -> None:
        requests.post(f"{base}/simulator/invoices/{reference}/{action}",
                      timeout=10).raise_for_status()

    sales = []
    for amount, cashier, rows in (("93.31", "anna", [("Lunch menu", "85.00"),
                                                      ("Mineral water", "8.31")]),
                                  ("25.00", "anna", [("Coffee", "18.00"), ("Bun", "7.00")]),
                                  ("250.50", "bob", [("Headphones", "250.50")])):
        sent = till.send_invoice(invoice(amount, *rows, cashier_id=cashier))
        buyer(sent.invoice_reference, "pay")
        sales.append(till.get_payment_status(sent.invoice_reference).ers_reference)
    till.refund_payment(sales[2], Decimal("50.25"), cashier_id="bob")
    period = shop.close_period().period_id

    declined = till.send_invoice(invoice("12.00", ("Sandwich", "12.00"), cashier_id="anna"))
    buyer(declined.invoice_reference, "fail")
    web.send_invoice(invoice("499.00", ("Order 1077: running shoes", "499.00"),
                             title="Order 1077", payment_mode="RESERVATION_REQUIRED"))
    table = till.send_invoice(invoice("42.50", ("Pasta", "35.00"), ("Espresso", "7.50"),
                                      cashier_id="anna", title="Table 4"))
    admin(base, "faults", {"operation": "getPaymentStatus", "times": 1,
                           "effect": "result_code", "resultCode": 94})
    impatient = SeqrClient.for_terminal(endpoint, till_id, "till-pw", retries=0)
    with contextlib.suppress(ServiceBusyError):  # 94, as the rule says
        impatient.get_payment_status(table.invoice_reference)
    impatient.get_payment_status(table.invoice_reference)  # answered
    admin(base, "faults", {"operation": "executeReport", "effect": "report_not_ready",
                           "polls": 3, "expiresIn": 3600})
    # a register's poll with an element the contract does not have: a contract deviation
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ext="http://external.interfaces.ers.seamless.com/"><soapenv:Body>'
        "<ext:getPaymentStatus><context><initiatorPrincipalId>"
        f"<id>{till_id}</id><type>TERMINALID</type></initiatorPrincipalId>"
        "<password>till-pw</password></context>"
        f"<invoiceReference>{table.invoice_reference}</invoiceReference>"
        "<invoiceVersion>0</invoiceVersion><tableNumber>4</tableNumber>"
        "</ext:getPaymentStatus></soapenv:Body></soapenv:Envelope>")
    requests.post(endpoint, data=envelope.encode(), timeout=10,
                  headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
    requests.get(f"{base}/admin/requests?limit=1", timeout=10)  # written by now
    calls = requests.get(f"{base}/admin/requests?operation=getPaymentStatus&limit=1",
                         timeout=10).json()
    return {"period": period, "call": str(calls[-1]["id"])}


def photograph(base: str, out: Path, period: str, call: str) -> list[Path]:
    pages = {
        "overview": "/",
        "terminals": "/terminals",
        "phone": "/phone",
        "periods": "/periods",
        "period": f"/periods/{period}",
        "report": f"/periods/{period}/STD_RECON_003",
        "journal": "/journal",
        "call": f"/journal/{call}",
        "control": "/control",
    }
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for device, width in WIDTHS.items():
            page = browser.new_page(viewport={"width": width, "height": 800})
            for name, path in pages.items():
                page.goto(base + path)
                page.wait_for_timeout(800)  # a round of the live parts' polling
                target = out / f"{name}-{device}.png"
                page.screenshot(path=str(target), full_page=True)
                written.append(target)
            page.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seqr-screenshots-") as work:
        process, base = start_gateway(Path(work))
        try:
            world = a_day_at_the_shop(base, add_webshop_terminal(Path(work)))
            for path in photograph(base, args.out, world["period"], world["call"]):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            process.terminate()
            process.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
