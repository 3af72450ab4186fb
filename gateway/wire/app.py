"""The WSGI application: the SOAP endpoints, ?wsdl, /health, /metrics, the simulator and
admin APIs, the request size limit, and the journal of every SOAP exchange."""

import contextlib
import errno
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import request_uri

from gateway.auth import client_address
from gateway.clock import Clock
from gateway.config import Settings
from gateway.control import faults, journal
from gateway.control.journal import Exchange
from gateway.service import Gateway
from gateway.wire import envelope, health, metrics, streaming
from gateway.wire.admin import PREFIX as ADMIN_PREFIX
from gateway.wire.admin import Admin
from gateway.wire.console import Console
from gateway.wire.deviations import ENVIRON_KEY as DEVIATIONS_KEY
from gateway.wire.intercept import Intercept
from gateway.wire.simulator import PREFIX as SIMULATOR_PREFIX
from gateway.wire.simulator import Simulator
from gateway.wire.soap import FAULT_STATUS, SoapEndpoint
from storage.database import Database
from storage.models import utcnow
from wsdl import served_wsdl

log = logging.getLogger(__name__)
calls_log = logging.getLogger("gateway.calls")  # one INFO line per SOAP call

#: both are the v2 service; a POST to either's `?wsdl` URL reaches it too
SOAP_PATHS = ("/extclientproxy/service/v2", "/soap/merchant/cashregister-2")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

_FAULT_STRING = re.compile(rb"<faultstring>([^<]*)</faultstring>")
SOCKET_KEYS = ("gunicorn.socket", "seqr.socket")  # the client connection, to drop it


class ConnectionDroppedError(OSError):
    """Raised to the WSGI server after closing the connection on purpose (a fault rule)."""

    def __init__(self) -> None:
        super().__init__(errno.ENOTCONN, "connection dropped by a fault rule")


class GatewayApp:
    def __init__(self, db: Database, settings: Settings, *, stream_reports: bool = True) -> None:
        """`stream_reports=False` builds a ready executeReport answer whole in memory, as
        the SOAP serializer alone makes it (tests compare the streamed answer with it)."""
        self.db = db
        self.settings = settings
        self.clock = Clock(db)
        self.faults = faults.Faults(db)
        self.gateway = Gateway(db, settings, self.clock)
        self.simulator = Simulator(db, settings, self.clock) if settings.simulator else None
        self.journal = journal.Writer(journal.database(db), settings.journal_size)
        self.admin = Admin(db, settings, self.journal) if settings.admin else None
        # the web console is the simulator's face: on and off with it
        self.console = (Console(db, settings, self.clock, self.journal.db)
                        if settings.simulator else None)
        self.soap = SoapEndpoint(self.gateway, strict=settings.strict,
                                 stream_reports=stream_reports)

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
        if self.admin is not None and (path == ADMIN_PREFIX
                                       or path.startswith(ADMIN_PREFIX + "/")):
            return self.admin(environ, start_response)
        if self.console is not None and Console.handles(path):
            return self.console(environ, start_response)
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
        exchange = Exchange(at=utcnow(), path=path)
        started = time.perf_counter()
        body = self._read_body(environ)
        if body is None:
            reason = f"request body larger than {self.settings.max_body_bytes} bytes"
            metrics.count_fault(envelope.CLIENT)
            exchange.request = b"(not read: " + reason.encode() + b")"
            answer = _send(start_response, "413 Request Entity Too Large",
                           envelope.CONTENT_TYPE, envelope.fault(envelope.CLIENT, reason))
            exchange.http_status, exchange.response = 413, answer[0]
            exchange.fault = f"{envelope.CLIENT}: {reason}"
            self._journal(exchange, started)
            return answer
        client_address.set(environ.get("REMOTE_ADDR"))  # failed logins count per address
        exchange.request = body
        return self._soap(environ, start_response, body, exchange, started)


    def _soap(self, environ: Environ, start_response: StartResponse, body: bytes,
              noted: Exchange, started: float) -> Iterable[bytes]:
        """The SOAP answer, or a SOAP `Server` fault (logged) if anything escapes it: never
        an HTML error page with the traceback left to the WSGI server. The request's
        contract deviations are left in the environ for whatever wraps this app; the
        exchange goes to the journal (`noted`), shaped by a fault rule if one hits it."""
        try:
            exchange = self.soap.handle(body, environ.get("HTTP_SOAPACTION"),
                                        environ.get("QUERY_STRING", ""),
                                        Intercept(self.faults, noted))
        except Exception as error:
            log.exception("unhandled error in the SOAP layer")
            metrics.count_error(type(error).__name__)
            metrics.count_fault(envelope.SERVER)
            answer = _send(start_response, FAULT_STATUS, envelope.CONTENT_TYPE,
                           envelope.fault(envelope.SERVER, "internal error"))
            noted.http_status, noted.response = 500, answer[0]
            noted.fault, noted.result_code = f"{envelope.SERVER}: internal error", None
            self._journal(noted, started)
            return answer
        environ[DEVIATIONS_KEY] = exchange.deviations
        noted.operation = exchange.operation or noted.operation
        noted.deviations = [d.as_dict() for d in exchange.deviations]
        status, chunks, streamed = exchange.status, exchange.chunks, exchange.streamed
        hit = noted.hit
        if hit is not None and hit.effect == faults.DROP:
            noted.http_status, noted.fault, noted.result_code = 0, "connection dropped", None
            self._journal(noted, started)
            _drop(environ)
        if hit is not None and hit.effect == faults.HTTP_ERROR:
            code = int(hit.rule.http_status or 500)
            status = f"{code} {_reason(code)}"
            chunks = [envelope.fault(envelope.SERVER, f"HTTP {code} ({hit.label})")]
            streamed = None
        noted.http_status = int(status.split(" ", 1)[0])
        answer = b"".join(chunks)
        # a ready report is streamed: the journal keeps its envelope, saying where it went
        noted.response = answer if streamed is None else streaming.outline(answer, streamed)
        if exchange.fault_code is not None or noted.http_status >= 400:
            why = _FAULT_STRING.search(noted.response)
            fault_code = exchange.fault_code or envelope.SERVER
            noted.fault = f"{fault_code}: {why.group(1).decode() if why else ''}".rstrip(": ")
            noted.result_code = None
        else:
            noted.result_code = exchange.result_code
        self._journal(noted, started)
        if streamed is not None:  # its length is known only at the end: chunked
            start_response(status, [("Content-Type", envelope.CONTENT_TYPE)])
            return streaming.splice(answer, streamed)
        start_response(status, [("Content-Type", envelope.CONTENT_TYPE),
                                ("Content-Length", str(len(answer)))])
        return [answer]

    def _journal(self, exchange: Exchange, started: float) -> None:
        """The call's INFO line, and its journal entry unless the journal is off."""
        exchange.latency_ms = (time.perf_counter() - started) * 1000
        calls_log.info("%s %s %s %.1f ms%s", exchange.operation or "-", exchange.principal,
                       exchange.outcome, exchange.latency_ms,
                       f" (injected: {exchange.injected})" if exchange.injected else "")
        if self.settings.journal_size <= 0:
            return
        try:
            self.journal.write(exchange)
        except Exception:  # the answer stands; the journal is the tester's aid
            log.warning("journal entry not written", exc_info=True)

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
        healthy, report = health.check(self.db)
        status = "200 OK" if healthy else "503 Service Unavailable"
        return _send(start_response, status, "application/json", json.dumps(report).encode())


def _reason(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _drop(environ: Environ) -> None:
    """Close the client's connection without an answer (a fault rule asked for it)."""
    for key in SOCKET_KEYS:
        connection = environ.get(key)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            break
    raise ConnectionDroppedError()


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
               *, create_schema: bool = False, stream_reports: bool = True) -> GatewayApp:
    """The WSGI app. `create_schema` makes a new database's tables (tests, in-process use);
    a served database is migrated beforehand (`seqr-gateway migrate`, checked by `serve`)."""
    settings = settings or Settings.from_env()
    db = db or Database(settings.database_url)
    if create_schema:
        db.create_schema()
    return GatewayApp(db, settings, stream_reports=stream_reports)
