"""The buyer's side over HTTP: what a phone would do to an invoice.

    POST /simulator/invoices/{invoiceReference}/scan|pay|fail|reserve
    POST /simulator/seqr-ids/{seqrId}/scan|pay|fail|reserve   (scanning the till's sticker:
         the terminal's newest open invoice)
    GET  /simulator/invoices/{invoiceReference}

Answers are JSON: the invoice's new state, or {"error": ...} with 404 (unknown invoice or
SEQR ID), 409 (the transition is impossible now), 401 (bad admin token), 405, or 503 when the
database cannot be reached (never an HTML error page).
"""

import json
import logging
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway import payments
from gateway.clock import Clock
from gateway.config import Settings
from gateway.errors import database_error_code
from gateway.wire.admin import authorised
from storage.database import Database
from storage.models import Invoice
from wsdl.resultcodes import ResultCode

log = logging.getLogger(__name__)

PREFIX = "/simulator/"
_INVOICE = re.compile(r"^/simulator/invoices/([0-9]{1,32})(?:/(scan|pay|fail|reserve))?/?$")
_SEQR_ID = re.compile(r"^/simulator/seqr-ids/([A-Za-z0-9]{1,64})/(scan|pay|fail|reserve)/?$")

StartResponse = Callable[..., Any]


def describe(row: Invoice) -> dict[str, Any]:
    return {
        "invoiceReference": row.reference,
        "terminalId": row.terminal_id,
        "status": row.status,
        "version": row.version,
        "paymentReference": row.payment_reference,
        "totalAmount": {"currency": row.currency, "value": str(row.total_amount)},
    }


class Simulator:
    def __init__(self, db: Database, settings: Settings, clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.rules = settings.payment_rules
        self.clock = clock or Clock(db)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._authorised(environ):
            return _json(start_response, "401 Unauthorized", {"error": "bearer token required"},
                         [("WWW-Authenticate", 'Bearer realm="seqr-simulator"')])
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        invoice = _INVOICE.match(path)
        sticker = _SEQR_ID.match(path)
        if invoice is None and sticker is None:
            return _json(start_response, "404 Not Found", {"error": f"no such endpoint {path}"})
        action = invoice.group(2) if invoice else sticker.group(2)  # type: ignore[union-attr]
        wanted = "GET" if invoice and action is None else "POST"
        if method != wanted:
            return _json(start_response, "405 Method Not Allowed",
                         {"error": f"use {wanted}"}, [("Allow", wanted)])
        try:
            if invoice is None:
                assert sticker is not None
                row = self._write(lambda s, now: ACTIONS[action](
                    s, payments.sticker_invoice(s, sticker.group(1), action), self.rules, now))
            elif action is None:
                row = self._read(invoice.group(1))
            else:
                row = self._write(lambda s, now: ACTIONS[action](
                    s, invoice.group(1), self.rules, now))
        except payments.BuyerActionError as error:
            if error.not_found:
                return _json(start_response, "404 Not Found", {"error": str(error)})
            return _json(start_response, "409 Conflict",
                         {"error": str(error), "status": error.status})
        except DBAPIError as error:
            log.warning("simulator %s %s: database error: %s", method, path, error)
            if database_error_code(error) in (ResultCode.SERVICE_UNAVAILABLE,
                                              ResultCode.SYSTEM_BUSY):
                return _json(start_response, "503 Service Unavailable",
                             {"error": "the database cannot be reached; try again"},
                             [("Retry-After", "1")])
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})
        except Exception:
            log.exception("simulator %s %s failed", method, path)
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})
        return _json(start_response, "200 OK", row)

    def _authorised(self, environ: dict[str, Any]) -> bool:
        return authorised(environ, self.settings.admin_token)

    def _write(self, action: Callable[[Session, Any], Invoice]) -> dict[str, Any]:
        return describe(run_buyer_action(self.db, action, self.clock.now))

    def _read(self, reference: str) -> dict[str, Any]:
        with self.db.read() as session:
            row = session.get(Invoice, reference)
            if row is None:
                raise payments.BuyerActionError(f"no invoice {reference}", not_found=True)
            return describe(row)


def run_buyer_action(db: Database, action: Callable[[Session, Any], Invoice],
                     now: Callable[[], datetime]) -> Invoice:
    """Run a buyer action (`action(session, now())`) in one transaction; the invoice it
    changed.

    A refused action is committed too: what it changed before refusing (the 20-second rule's
    reversal, applied on the way) is the state its refusal reports, and must not be rolled
    back. (The buyer actions of `gateway.payments` refuse before they change anything of
    their own.)"""
    with db.write() as session:
        try:
            return action(session, now())
        except payments.BuyerActionError as error:
            refused = error
    raise refused


ACTIONS: dict[str, Callable[..., Invoice]] = {
    "scan": payments.buyer_scan,
    "pay": payments.buyer_pay,
    "fail": payments.buyer_fail,
    "reserve": payments.buyer_reserve,
}


def _json(start_response: StartResponse, status: str, body: dict[str, Any],
          extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers + (extra_headers or []))
    return [data]
