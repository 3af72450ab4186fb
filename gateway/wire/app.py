"""The WSGI application: the SOAP endpoints, ?wsdl, /health, and the request size limit."""

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import request_uri

from sqlalchemy import text

from gateway.auth import client_address
from gateway.config import Settings
from gateway.service import Gateway
from gateway.wire import envelope, metrics
from gateway.wire.deviations import ENVIRON_KEY as DEVIATIONS_KEY
from gateway.wire.simulator import PREFIX as SIMULATOR_PREFIX
from gateway.wire.simulator import Simulator
from gateway.wire.soap import FAULT_STATUS, SoapEndpoint
from storage.database import Database
from storage.jobs import waiting_jobs
from wsdl import served_wsdl

log = logging.getLogger(__name__)

#: both are the v2 service; a POST to either's `?wsdl` URL reaches it too
SOAP_PATHS = ("/extclientproxy/service/v2", "/soap/merchant/cashregister-2")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class GatewayApp:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.gateway = Gateway(db, settings)
        self.simulator = Simulator(db, settings) if settings.simulator else None
        self.soap = SoapEndpoint(self.gateway, strict=settings.strict)

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
        environ[DEVIATIONS_KEY] = []
        body = self._read_body(environ)
        if body is None:
            reason = f"request body larger than {self.settings.max_body_bytes} bytes"
            metrics.count_fault(envelope.CLIENT)
            return _send(start_response, "413 Request Entity Too Large", envelope.CONTENT_TYPE,
                         envelope.fault(envelope.CLIENT, reason))
        client_address.set(environ.get("REMOTE_ADDR"))  # failed logins count per address
        return self._soap(environ, start_response, body)


    def _soap(self, environ: Environ, start_response: StartResponse,
              body: bytes) -> Iterable[bytes]:
        """The SOAP answer, or a SOAP `Server` fault (logged) if anything escapes it: never
        an HTML error page with the traceback left to the WSGI server. The request's
        contract deviations are left in the environ for whatever wraps this app."""
        try:
            exchange = self.soap.handle(body, environ.get("HTTP_SOAPACTION"),
                                        environ.get("QUERY_STRING", ""))
        except Exception as error:
            log.exception("unhandled error in the SOAP layer")
            metrics.count_error(type(error).__name__)
            metrics.count_fault(envelope.SERVER)
            return _send(start_response, FAULT_STATUS, envelope.CONTENT_TYPE,
                         envelope.fault(envelope.SERVER, "internal error"))
        environ[DEVIATIONS_KEY] = exchange.deviations
        length = sum(len(chunk) for chunk in exchange.chunks)
        start_response(exchange.status, [("Content-Type", envelope.CONTENT_TYPE),
                                         ("Content-Length", str(length))])
        return exchange.chunks

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
