"""Helpers shared by the reference client's tests (test_client_*.py); no tests here.

- `run_cli`: `seqr-client` in a subprocess, as a user runs it (stdout/stderr not terminals).
- `BusyProxy`: an HTTP proxy on 127.0.0.1 in front of the gateway that answers the first N
  SOAP requests with a well-formed erswsResponse carrying 93 SYSTEM_BUSY (or 94), and
  forwards the rest.
- `Till`: a registered terminal that sells (the buyer pays through the simulator) and
  refunds, remembering what it did as a register journal would.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from client import Invoice, SeqrClient
from tests.support.databases import SQLITE
from tests.support.envelopes import NS, SOAP_ENV, SOAP_PATH
from tests.support.servers import GatewayServer, Shop
from wsdl.resultcodes import ResultCode

CLI = [sys.executable, "-m", "client.cli"]


#: where CLI runs keep their state (the periods reconciled) unless a test says otherwise
STATE_HOME = tempfile.mkdtemp(prefix="seqr-client-state-")
atexit.register(shutil.rmtree, STATE_HOME, True)


def cli_env(**values: str) -> dict[str, str]:
    """The environment of a CLI run: no SEQR_* settings of ours leak in, only `values`;
    its state file in a temporary folder, not the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQR_")}
    env.pop("COLUMNS", None)
    env["XDG_STATE_HOME"] = STATE_HOME
    env.update(values)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                            env=env if env is not None else cli_env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def shop_args(server: GatewayServer | str, shop: Shop) -> list[str]:
    endpoint = server if isinstance(server, str) else server.endpoint
    return ["--endpoint", endpoint, "--principal-id", shop.reseller_id,
            "--user-id", shop.user_id, "--password", shop.password]


def till_args(server: GatewayServer, till: "Till") -> list[str]:
    return ["--endpoint", server.endpoint, "--principal-type", "TERMINALID",
            "--principal-id", till.id, "--password", till.password]


def shop_client(server: GatewayServer | str, shop: Shop, **options: Any) -> SeqrClient:
    endpoint = server if isinstance(server, str) else server.endpoint
    return SeqrClient.for_shop(endpoint, shop.reseller_id, shop.user_id, shop.password,
                               **options)


def simulate(server: GatewayServer, invoice_reference: str, action: str = "pay") -> dict:
    answer = requests.post(f"{server.base}/simulator/invoices/{invoice_reference}/{action}",
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@dataclass
class Till:
    """A till of `shop`; `journal` is what its register would write down."""

    server: GatewayServer
    shop: Shop
    label: str
    password: str = "till-pw"
    journal: list[tuple[str, str, str | None, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = shop_client(self.server, self.shop).register_terminal(
            self.label, self.password)
        self.client = SeqrClient.for_terminal(self.server.endpoint, self.id, self.password)

    def sell(self, amount: str, cashier: str | None = None) -> str:
        sent = self.client.send_invoice(Invoice(Decimal(amount), cashier_id=cashier))
        simulate(self.server, sent.invoice_reference)
        status = self.client.get_payment_status(sent.invoice_reference, 1)
        assert status.status == "PAID" and status.ers_reference
        self.journal.append((status.ers_reference, self.id, cashier, amount, "sale"))
        return status.ers_reference

    def refund(self, payment: str, amount: str, cashier: str | None = None) -> str:
        reference = self.client.refund_payment(payment, Decimal(amount), cashier_id=cashier)
        self.journal.append((reference, self.id, cashier, amount, "refund"))
        return reference


def write_journal(path: Path, rows: list[tuple[str, str, str | None, str, str]]) -> Path:
    lines = ["ersReference,terminalId,cashierId,amount,type"]
    lines += [f"{ref},{terminal},{cashier or ''},{amount},{kind}"
              for ref, terminal, cashier, amount, kind in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_reference() -> str:
    """A 25-digit ersReference SEQR never gave."""
    return "1999" + str(uuid.uuid4().int)[:21]


class BusyProxy:
    """127.0.0.1, a free port: the first `busy` SOAP requests answer `code` (93 or 94),
    the rest go to the gateway. `requests` counts every SOAP request seen."""

    def __init__(self, server: GatewayServer, busy: int = 0,
                 code: int = ResultCode.SYSTEM_BUSY) -> None:
        self.target = server.base
        self.busy = busy
        self.code = code
        self.requests = 0
        self.busy_answers = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.httpd.proxy = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}{SOAP_PATH}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "BusyProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def take(self) -> bool:
        """Count a request; True when it is to be answered busy."""
        with self._lock:
            self.requests += 1
            if self.busy_answers < self.busy:
                self.busy_answers += 1
                return True
            return False

    def busy_envelope(self, request: bytes) -> bytes:
        operation = etree.QName(etree.fromstring(request).find(f"{{{SOAP_ENV}}}Body")[0]
                                ).localname
        name = ResultCode(self.code).name
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}">'
            f'<soap:Body><ns2:{operation}Response xmlns:ns2="{NS}"><return>'
            f"<resultCode>{self.code}</resultCode>"
            f"<resultDescription>{name}: try again later</resultDescription>"
            f"</return></ns2:{operation}Response></soap:Body></soap:Envelope>"
        ).encode()


class _ProxyHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        proxy: BusyProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if proxy.take():
            status, content_type, payload = 200, "text/xml; charset=utf-8", \
                proxy.busy_envelope(body)
        else:
            answer = requests.post(proxy.target + self.path, data=body, timeout=30, headers={
                "Content-Type": self.headers.get("Content-Type", "text/xml"),
                "SOAPAction": self.headers.get("SOAPAction", '""')})
            status, content_type, payload = answer.status_code, \
                answer.headers.get("Content-Type", "text/xml"), answer.content
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def once_per_run(database_backend: str) -> None:
    """The client does not care which database the gateway keeps: its tests run on the
    first backend only (SQLite), not again on PostgreSQL."""
    if database_backend != SQLITE:
        pytest.skip("the reference client's tests run once, on the SQLite gateway")
