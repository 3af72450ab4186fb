"""pytest plugin: the SEQR emulator for a test suite's integration tests.

Installed with the emulator (entry point `pytest11`), it gives every pytest run of the
environment two fixtures; neither starts anything until a test asks for it.

- `seqr_gateway`: `seqr-gateway serve` in a subprocess on a free port of 127.0.0.1, seeded
  with `--seqr-seed FILE` (or the `seqr_seed` ini option; without one, `DEFAULT_FIXTURE`).
  Scope: `session` unless `--seqr-scope function` (or ini `seqr_scope`) asks for a fresh
  emulator per test.
- `seqr_gateway_inprocess`: the same emulator as a WSGI app served by a thread of the test
  process (no subprocess, no gunicorn): faster to start, for suites that start many.

Both yield a `SeqrGateway`: `endpoint` (the SOAP URL), `credentials` (the first shop's user
and its terminals, from the fixture), `admin` (`client.admin.Admin`), and the shortcuts
`journal()`, `count()`, `faults`, `clock`, `pay(invoice_ref)`, `reset()` (back to the
seeded world).

This module imports only the standard library and pytest when pytest loads it.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SOAP_PATH = "/extclientproxy/service/v2"

DEFAULT_FIXTURE: dict[str, Any] = {
    "shops": [{
        "id": "test-shop", "name": "Test Shop",
        "users": [{"id": "9900", "password": "test-password"}],
        "terminals": [{
            "terminalId": "5eed0000000000000000000000000001", "password": "till-password",
            "name": "Till 1", "externalTerminalId": "Test Shop/Till 1", "seqrId": "TILL1",
            "kind": "cash-register",
        }],
    }],
}


@dataclass(frozen=True)
class TerminalCredentials:
    terminal_id: str
    password: str
    seqr_id: str | None = None


@dataclass(frozen=True)
class Credentials:
    """A shop's first user (RESELLERUSER) and the shop's terminals (TERMINALID)."""

    reseller_id: str
    user_id: str
    password: str
    terminals: tuple[TerminalCredentials, ...] = ()

    @property
    def terminal(self) -> TerminalCredentials:
        return self.terminals[0]


@dataclass
class SeqrGateway:
    base_url: str
    fixture: dict[str, Any]
    admin: Any  # client.admin.Admin
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return self.base_url + SOAP_PATH

    @property
    def wsdl_url(self) -> str:
        return self.endpoint + "?wsdl"

    @property
    def all_credentials(self) -> list[Credentials]:
        out, terminal_ids = [], iter(self.seeded.get("terminals", []))
        for shop in self.fixture["shops"]:
            tills = tuple(TerminalCredentials(next(terminal_ids), t["password"], t.get("seqrId"))
                          for t in shop.get("terminals", ()))
            user = shop["users"][0]
            out.append(Credentials(shop["id"], user["id"], user["password"], tills))
        return out

    @property
    def credentials(self) -> Credentials:
        return self.all_credentials[0]

    @property
    def faults(self) -> Any:
        return self.admin.faults

    @property
    def clock(self) -> Any:
        return self.admin.clock

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        return self.admin.journal(**filters)  # type: ignore[no-any-return]

    def count(self, **filters: Any) -> int:
        return self.admin.count(**filters)  # type: ignore[no-any-return]

    def pay(self, invoice_reference: str) -> dict[str, Any]:
        return self.admin.pay(invoice_reference)  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Back to the seeded world: everything emptied (journal, fault rules, clock too),
        then the fixture loaded again."""
        self.seeded = self.admin.seed(self.fixture, reset=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seqr", "SEQR emulator (seqr_gateway fixture)")
    group.addoption("--seqr-seed", metavar="FILE",
                    help="YAML or JSON fixture the emulator starts with")
    group.addoption("--seqr-scope", choices=["session", "function"],
                    help="one emulator per session (default) or per test")
    parser.addini("seqr_seed", "YAML or JSON fixture the emulator starts with")
    parser.addini("seqr_scope", "session (default) or function")
    parser.addini("seqr_gateway_args", "more `seqr-gateway serve` flags", type="args")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("seqr_scope", None) or config.getini("seqr_scope") or "session"
    return str(scope)


def _fixture(config: pytest.Config) -> tuple[dict[str, Any], Path | None]:
    path = config.getoption("seqr_seed", None) or config.getini("seqr_seed")
    if not path:
        return DEFAULT_FIXTURE, None
    file = Path(path)
    if not file.is_absolute():
        file = Path(config.rootpath) / file
    import yaml

    return yaml.safe_load(file.read_text()), file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(base_url: str) -> Any:
    from client.admin import Admin

    return Admin(base_url, token=os.environ.get("SEQR_ADMIN_TOKEN"), timeout=30)


def _wait_healthy(base_url: str, process: "subprocess.Popen[bytes] | None", log: Path | None,
                  timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"seqr-gateway exited: {log.read_text() if log else ''}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(base_url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"seqr-gateway did not start in {timeout} s")


@contextlib.contextmanager
def serve_subprocess(workdir: Path, fixture: dict[str, Any],
                     extra: list[str] | None = None) -> Iterator[SeqrGateway]:
    """`seqr-gateway serve` on a free port with a fresh SQLite database, seeded."""
    port = _free_port()
    log = workdir / "seqr-gateway.log"
    args = [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
            "--database-url", f"sqlite:///{workdir / 'seqr-gateway.sqlite3'}",
            "--report-delay", "0", "--no-demo", *(extra or [])]
    with open(log, "ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, process, log)
        gateway = SeqrGateway(base_url, fixture, _admin(base_url))
        gateway.seeded = gateway.admin.seed(fixture)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_in_process(workdir: Path, fixture: dict[str, Any]) -> Iterator[SeqrGateway]:
    """The WSGI app on a thread of this process (wsgiref), with its report worker and
    housekeeping threads, on a fresh SQLite database."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from gateway.background.worker import start_background_threads
    from gateway.config import Settings
    from gateway.wire.app import create_app

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Handler(WSGIRequestHandler):
        def get_environ(self) -> dict[str, Any]:
            environ = super().get_environ()
            environ["seqr.socket"] = self.connection  # a drop fault rule closes it
            return environ

        def log_message(self, *args: Any) -> None:  # no line per request on stderr
            pass

    settings = Settings(database_url=f"sqlite:///{workdir / 'seqr-inprocess.sqlite3'}",
                        report_delay=0, admin_token=os.environ.get("SEQR_ADMIN_TOKEN") or None)
    app = create_app(settings, create_schema=True)
    server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Handler)
    thread = threading.Thread(target=server.serve_forever, name="seqr-gateway", daemon=True)
    thread.start()
    worker, housekeeper = start_background_threads(settings)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        gateway = SeqrGateway(base_url, fixture, _admin(base_url))
        gateway.seeded = gateway.admin.seed(fixture)
        yield gateway
    finally:
        worker.stop()
        housekeeper.stop()
        server.shutdown()
        server.server_close()
        app.db.dispose()
        app.journal.db.dispose()


@pytest.fixture(scope=_scope)
def seqr_gateway(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeqrGateway]:
    """The SEQR emulator (`seqr-gateway serve`), seeded; see the module's doc."""
    fixture, _path = _fixture(request.config)
    extra = list(request.config.getini("seqr_gateway_args") or [])
    with serve_subprocess(tmp_path_factory.mktemp("seqr"), fixture, extra) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def seqr_gateway_inprocess(request: pytest.FixtureRequest,
                           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeqrGateway]:
    """The SEQR emulator in this process (a WSGI server thread), seeded."""
    fixture, _path = _fixture(request.config)
    with serve_in_process(tmp_path_factory.mktemp("seqr-inprocess"), fixture) as gateway:
        yield gateway
