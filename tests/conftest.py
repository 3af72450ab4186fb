"""Fixtures: a real gateway under gunicorn on a free port, shops, and raw SOAP helpers."""

import io
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import requests
from lxml import etree

from gateway import shops
from gateway.config import Settings
from gateway.wire.app import GatewayApp, create_app
from storage.database import Database
from tests.databases import POSTGRESQL, SKIP_REASON, SQLITE, Backends, new_database_url
from wsdl import TARGET_NAMESPACE

SHARED = Path(__file__).resolve().parents[2] / "shared" / "seqr"
if not SHARED.exists():  # CI clones next to shared/ too, but be explicit when it is not
    SHARED = Path(os.environ.get("SEQR_SHARED", "../shared/seqr")).resolve()
OFFICIAL_WSDL = SHARED / "ERSWSExternalClientService.wsdl"
SAMPLES = SHARED / "samples"
NS = TARGET_NAMESPACE
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH = "/extclientproxy/service/v2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Shop:
    reseller_id: str
    user_id: str
    password: str

    def context(self) -> dict[str, Any]:
        """A zeep/suds-style clientContext for this shop's reseller user."""
        return reseller_context(self.reseller_id, self.user_id, self.password)


def reseller_context(reseller_id: str, user_id: str, password: str) -> dict[str, Any]:
    return {
        "channel": "WS", "clientComment": "test", "clientId": "pytest",
        "clientReference": "12345", "clientRequestTimeout": 0,
        "initiatorPrincipalId": {"id": reseller_id, "type": "RESELLERUSER", "userId": user_id},
        "password": password,
    }


def terminal_context(terminal_id: str, password: str) -> dict[str, Any]:
    return {
        "channel": "WS", "clientComment": "test", "clientId": "pytest",
        "clientReference": "12345", "clientRequestTimeout": 0,
        "initiatorPrincipalId": {"id": terminal_id, "type": "TERMINALID"},
        "password": password,
    }


def make_shop(db: Database, password: str = "secret-pw") -> Shop:
    reseller_id = "shop-" + uuid.uuid4().hex[:10]
    with db.write() as session:
        shops.add_reseller(session, reseller_id, "9900", password, "Test shop")
    return Shop(reseller_id, "9900", password)


class GatewayServer:
    """`seqr-gateway serve` in a subprocess, on a free port, with its own database."""

    def __init__(self, workdir: Path, *extra: str, env: dict[str, str] | None = None,
                 db_url: str | None = None) -> None:
        self.db_url = db_url or new_database_url(workdir, "gateway")
        self.workdir = workdir
        self.extra = extra
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.db = Database(self.db_url)
        self.db.migrate()  # as a deployment does before serving (`seqr-gateway migrate`)
        self._bind(free_port())

    def _bind(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.endpoint = self.base + SOAP_PATH
        self.log_path = self.workdir / f"server-{port}.log"
        self.args = [
            sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
            "--database-url", self.db_url, "--report-delay", "0", "--no-demo", *self.extra,
        ]

    def start(self) -> "GatewayServer":
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()}")
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # refused, or too slow on a busy machine
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> "GatewayServer":
        """Stop, and start again on the same database (on a fresh port)."""
        self.stop()
        self._bind(free_port())
        return self.start()

    def post(self, envelope: bytes | str, **kwargs: Any) -> requests.Response:
        data = envelope.encode() if isinstance(envelope, str) else envelope
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        return requests.post(self.endpoint, data=data, headers=headers, timeout=30, **kwargs)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A PostgreSQL that is configured but cannot be reached fails the run; it is not skipped."""
    url = Backends.postgres_url()
    if url is None:
        return
    try:
        with Backends.admin().connect():
            pass
    except Exception as error:  # noqa: BLE001 - reported as the reason the run stops
        pytest.exit(f"SEQR_TEST_DATABASE_URL={url} is unreachable: {error}", returncode=3)


@pytest.fixture(scope="session", params=[SQLITE, POSTGRESQL], autouse=True)
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs on SQLite, and again on PostgreSQL when SEQR_TEST_DATABASE_URL is set."""
    if request.param == POSTGRESQL and Backends.postgres_url() is None:
        pytest.skip(SKIP_REASON)
    Backends.current = request.param
    yield request.param
    Backends.drop_all()
    Backends.current = SQLITE


@pytest.fixture(scope="session")
def server(database_backend: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """One gateway for the session; tests keep apart by using shops of their own."""
    gateway = GatewayServer(tmp_path_factory.mktemp("gateway")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def shop(server: GatewayServer) -> Shop:
    return make_shop(server.db)


def sample(name: str, **values: str) -> bytes:
    """A wire sample of ../shared/seqr/samples, byte for byte but for its placeholders."""
    data = (SAMPLES / name).read_bytes()
    for key, value in values.items():
        data = data.replace(key.encode(), value.encode())
    return data


def parse_response(body: bytes) -> Any:
    """The `<return>` element of a SOAP response, checking its namespaces on the way."""
    root = etree.fromstring(body)
    payload = root.find(f"{{{SOAP_ENV}}}Body")[0]
    assert payload.tag.startswith(f"{{{NS}}}"), payload.tag
    ret = payload.find("return")
    assert ret is not None, etree.tostring(payload)
    return ret


def text_of(element: Any, path: str) -> str | None:
    found = element.find(path)
    return None if found is None else found.text


# --- in-process calls, for fast tests of rules that need no real server -------------------


class InProcess:
    """The WSGI app called directly, on a fresh SQLite database."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.db = app.db

    def request(self, method: str, path: str = SOAP_PATH, body: bytes = b"",
                query: str = "", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        environ.update(
            REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query,
            CONTENT_TYPE="text/xml; charset=utf-8", CONTENT_LENGTH=str(len(body)),
        )
        environ["wsgi.input"] = io.BytesIO(body)
        for key, value in (headers or {}).items():
            environ[key] = value
        status: list[str] = []
        out = b"".join(self.app(environ, lambda s, h, e=None: status.append(s)))
        return int(status[0].split()[0]), out

    def post(self, envelope: bytes | str) -> tuple[int, bytes]:
        data = envelope.encode() if isinstance(envelope, str) else envelope
        return self.request("POST", body=data)


@pytest.fixture
def inprocess(tmp_path: Path) -> InProcess:
    settings = Settings(database_url=new_database_url(tmp_path, "inproc"), report_delay=0)
    return InProcess(create_app(settings, create_schema=True))


def envelope(operation: str, inner: str) -> str:
    """A request envelope shaped like the documentation's (unqualified children)."""
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:ext="{NS}">'
        f"<soapenv:Header/><soapenv:Body><ext:{operation}>{inner}</ext:{operation}>"
        "</soapenv:Body></soapenv:Envelope>"
    )


def context_xml(principal_id: str | None, principal_type: str = "RESELLERUSER",
                password: str | None = "secret-pw", user_id: str | None = "9900") -> str:
    principal = ""
    if principal_id is not None:
        principal = f"<initiatorPrincipalId><id>{principal_id}</id><type>{principal_type}</type>"
        if user_id is not None:
            principal += f"<userId>{user_id}</userId>"
        principal += "</initiatorPrincipalId>"
    pw = f"<password>{password}</password>" if password is not None else ""
    return (
        "<context><channel>WS</channel><clientId>pytest</clientId>"
        f"<clientRequestTimeout>0</clientRequestTimeout>{principal}{pw}</context>"
    )


PERIOD_RE = re.compile(r"^\d{25}$")
