"""The WSGI application: the SOAP endpoints, ?wsdl, /health, and the request size limit."""

import json
import logging
import re
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any
from wsgiref.util import request_uri
from xml.sax.saxutils import escape

import spyne.const as spyne_const
from spyne import Application
from spyne.server.wsgi import WsgiApplication
from sqlalchemy import text

from gateway.auth import client_address
from gateway.config import Settings
from gateway.service import Gateway
from gateway.wire import metrics
from gateway.wire.contract import NS, ERSWSExternalClientService
from gateway.wire.simulator import PREFIX as SIMULATOR_PREFIX
from gateway.wire.simulator import Simulator
from gateway.wire.soap import ContractSoap11
from storage.database import Database
from storage.jobs import waiting_jobs
from wsdl import served_wsdl

log = logging.getLogger(__name__)

SOAP_PATHS = ("/extclientproxy/service/v2", "/soap/merchant/cashregister-2")
_FAULT_CODE = re.compile(rb"<faultcode>(?:[^<:]*:)?([^<]*)</faultcode>")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


def _fault(code: str, reason: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{escape(reason)}"
        "</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


class GatewayApp:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.gateway = Gateway(db, settings)
        self.simulator = Simulator(db, settings) if settings.simulator else None
        # Spyne forces a full gc.collect() after a request at most once a second, for SOAP
        # attachments; the gateway takes none, and the pause was most of the p99.
        spyne_const.MIN_GC_INTERVAL = float("inf")
        application = Application(
            [ERSWSExternalClientService],
            tns=NS,
            name="ERSWSExternalClientServiceService",
            in_protocol=ContractSoap11(),
            out_protocol=ContractSoap11(),
        )
        application.gateway = self.gateway  # reached by the service methods as ctx.app.gateway
        metrics.instrument(application)
        self.soap = WsgiApplication(application, max_content_length=settings.max_body_bytes + 1)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            return self._health(start_response)
        if path == "/metrics":
            return _send(start_response, "200 OK", metrics.CONTENT_TYPE,
                         metrics.exposition(self.db))
        if path.startswith(SIMULATOR_PREFIX) and self.simulator is not None:
            return self.simulator(environ, start_response)
        if path.rstrip("/") not in SOAP_PATHS:
            return _plain(start_response, "404 Not Found", "no such endpoint\n")
        if method == "GET":
            if environ.get("QUERY_STRING", "").lower() in ("wsdl", "wsdl="):
                body = served_wsdl(request_uri(environ, include_query=False))
                return _send(start_response, "200 OK", "text/xml; charset=utf-8", body)
            return _plain(start_response, "405 Method Not Allowed",
                          "POST a SOAP envelope, or GET ?wsdl\n", [("Allow", "GET, POST")])
        if method != "POST":
            return _plain(start_response, "405 Method Not Allowed", "POST a SOAP envelope\n",
                          [("Allow", "GET, POST")])
        body = self._read_body(environ)
        if body is None:
            reason = f"request body larger than {self.settings.max_body_bytes} bytes"
            return _send(start_response, "413 Request Entity Too Large",
                         "text/xml; charset=utf-8", _fault("Client", reason))
        client_address.set(environ.get("REMOTE_ADDR"))  # failed logins count per address
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.setdefault("CONTENT_TYPE", "text/xml")
        return self._soap(environ, start_response)

    def _soap(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Spyne's answer, or a SOAP `Server` fault (logged) if anything escapes it: never an
        HTML error page with the traceback left to the WSGI server."""
        answer: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: None  # spyne never uses the legacy write()

        try:
            body = list(self.soap(environ, capture))  # the chunks as they are: no extra copy
        except Exception as error:
            log.exception("unhandled error in the SOAP layer")
            metrics.count_error(type(error).__name__)
            return _send(start_response, "500 Internal Server Error", "text/xml; charset=utf-8",
                         _fault("Server", "internal error"))
        if answer[0].startswith("5"):
            fault = _FAULT_CODE.search(b"".join(body))
            metrics.count_fault(fault.group(1).decode() if fault else "unknown")
        start_response(*answer)
        return body

    def _read_body(self, environ: Environ) -> bytes | None:
        """The whole body, or None when it is over the limit (then it is not read at all)."""
        limit = self.settings.max_body_bytes
        length = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length.isdigit():
            if int(length) > limit:
                return None
            return stream.read(int(length))
        body = stream.read(limit + 1)  # chunked: read one byte past the limit to know
        return None if len(body) > limit else body

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        """Database reachability and the report queue: how many wait, the oldest for how long."""
        try:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
                waiting, oldest_age = waiting_jobs(session)
            status = "200 OK"
            report: dict[str, Any] = {
                "status": "ok", "database": "ok", "report_jobs_waiting": waiting,
                "oldest_waiting_job_age_seconds": round(oldest_age, 3),
            }
        except Exception:
            log.warning("/health: the database cannot be reached", exc_info=True)
            # the error itself (URL, host, driver text) goes to the log only
            status, report = "503 Service Unavailable", {"status": "error",
                                                         "database": "unreachable"}
        return _send(start_response, status, "application/json", json.dumps(report).encode())


def _send(start_response: StartResponse, status: str, content_type: str, body: bytes,
          extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra_headers or []))
    return [body]


def _plain(start_response: StartResponse, status: str, message: str,
           extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    return _send(start_response, status, "text/plain; charset=utf-8", message.encode(),
                 extra_headers)


def create_app(settings: Settings | None = None, db: Database | None = None,
               *, create_schema: bool = False) -> GatewayApp:
    """The WSGI app. `create_schema` makes a new database's tables (tests, in-process use);
    a served database is migrated beforehand (`seqr-gateway migrate`, checked by `serve`)."""
    settings = settings or Settings.from_env()
    db = db or Database(settings.database_url)
    if create_schema:
        db.create_schema()
    return GatewayApp(db, settings)
