"""Real gateways for tests: `seqr-gateway serve` under gunicorn on a free port, the WSGI app
in process, and shops in their databases.
"""

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import requests

from gateway import shops
from gateway.wire.app import GatewayApp
from storage.database import Database
from tests.support.databases import new_database_url
from tests.support.envelopes import SOAP_PATH


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
