"""`SeqrClient`: the SEQR merchant operations as typed Python calls, on zeep.

Built from the official WSDL shipped in `wsdl/`; only the endpoint address differs between
our gateway and a real SEQR. A non-zero result code raises a `SeqrError` (see errors.py);
93 SYSTEM_BUSY and 94 SERVICE_UNAVAILABLE are retried with exponential backoff first.
"""

import base64
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from client.errors import (
    RETRYABLE,
    AuthenticationError,
    EndpointUnreachableError,
    ProtocolError,
    ReportNotReadyError,
    RequestTimeoutError,
    SeqrError,
    WaitTimeoutError,
    error_for,
)
from client.reports import ReportDocument, parse_report, report_kind
from client.results import (
    FINAL_STATUSES,
    RESELLERUSER,
    TERMINALID,
    ClosedPeriod,
    Invoice,
    InvoiceRow,
    PaymentStatus,
    Poll,
    Principal,
    PrincipalInfo,
    RawReport,
    Receipt,
    SentInvoice,
    to_decimal,
    utc,
)
from wsdl import BINDING, redact, wsdl_path

log = logging.getLogger(__name__)
# zeep logs each envelope at DEBUG, passwords and all: masked for any handler of any program
redact.install(loggers=("zeep.transports",))


#: the register cadence of the SEQR manual: wait ~3 s after the mark, then ask every 3-5 s
FIRST_POLL_AFTER = 3.0
REPORT_POLL_INTERVAL = 4.0
#: a register polls a payment about once a second (SEQR reverses one unpolled for 20 s)
PAYMENT_POLL_INTERVAL = 1.0

OnPoll = Callable[[Poll], None]


def zeep_service(endpoint: str, *, wsdl: str | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None) -> Any:
    """A zeep service proxy for `endpoint`, from the official WSDL (or the `wsdl` given)."""
    transport = Transport(timeout=timeout, operation_timeout=timeout, session=session)
    settings = zeep.Settings(xml_huge_tree=True)  # a big period's report exceeds 10 MB
    client = zeep.Client(wsdl or wsdl_path(), transport=transport, settings=settings)
    return client.create_service(BINDING, endpoint)


def parameters(**entries: str | None) -> dict[str, Any] | None:
    """SEQR's `parameterMap` (`<parameter><entry><key/><value/></entry>...`); None if empty."""
    items = [{"key": k, "value": v} for k, v in entries.items() if v is not None]
    return {"parameter": {"entry": items}} if items else None


class SeqrClient:
    """One principal's connection to a SEQR endpoint.

    `principal` is a shop (reseller) id with `user_id`, or a 32-hex terminalId; without a
    `principal_type` a principal with a `user_id` is a RESELLERUSER, one without a
    TERMINALID. `timeout` bounds each HTTP request; `retries` more attempts are made after
    93/94, waiting `backoff`, then twice that, ... (at most `max_backoff`) between them.
    """

    def __init__(
        self, endpoint: str, principal: str, password: str, *,
        principal_type: str | None = None, user_id: str | None = None,
        timeout: float = 30.0, retries: int = 3, backoff: float = 1.0,
        max_backoff: float = 30.0, wsdl: str | None = None, client_id: str = "seqr-client",
        first_poll_after: float = FIRST_POLL_AFTER,
        report_poll_interval: float = REPORT_POLL_INTERVAL,
        payment_poll_interval: float = PAYMENT_POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
        _service: Any = None,
    ) -> None:
        kind = (principal_type or (RESELLERUSER if user_id else TERMINALID)).upper()
        self.endpoint = endpoint
        self.principal = Principal(kind, principal, user_id if kind == RESELLERUSER else None)
        self._password = password
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.client_id = client_id
        self.first_poll_after = first_poll_after
        self.report_poll_interval = report_poll_interval
        self.payment_poll_interval = payment_poll_interval
        self._sleep = sleep
        self._service = _service or zeep_service(endpoint, wsdl=wsdl, timeout=timeout)
        self._marked_at: dict[str, float] = {}  # period id -> monotonic time of its mark
        self._sequence = itertools.count(1)
        self._session_tag = uuid.uuid4().hex[:8]

    @classmethod
    def for_shop(cls, endpoint: str, reseller_id: str, user_id: str, password: str,
                 **options: Any) -> "SeqrClient":
        return cls(endpoint, reseller_id, password, principal_type=RESELLERUSER,
                   user_id=user_id, **options)

    @classmethod
    def for_terminal(cls, endpoint: str, terminal_id: str, password: str,
                     **options: Any) -> "SeqrClient":
        return cls(endpoint, terminal_id, password, principal_type=TERMINALID, **options)

    def as_terminal(self, terminal_id: str, password: str) -> "SeqrClient":
        """The same endpoint and settings, as the terminal (e.g. one just registered)."""
        return SeqrClient(
            self.endpoint, terminal_id, password, principal_type=TERMINALID,
            timeout=self.timeout, retries=self.retries, backoff=self.backoff,
            max_backoff=self.max_backoff, client_id=self.client_id,
            first_poll_after=self.first_poll_after,
            report_poll_interval=self.report_poll_interval,
            payment_poll_interval=self.payment_poll_interval, sleep=self._sleep,
            _service=self._service,
        )

    # --- the wire ------------------------------------------------------------------------

    def _context(self) -> dict[str, Any]:
        principal: dict[str, Any] = {"id": self.principal.principal_id,
                                     "type": self.principal.principal_type}
        if self.principal.user_id is not None:
            principal["userId"] = self.principal.user_id
        return {
            "channel": "WS", "clientId": self.client_id,
            "clientReference": f"{self._session_tag}-{next(self._sequence)}",  # <= 32 chars
            "clientRequestTimeout": 0, "initiatorPrincipalId": principal,
            "password": self._password,
        }

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """`operation` with this principal's context; its `return` on SUCCESS, else a
        SeqrError. 93/94 are retried with backoff before they are raised."""
        attempt = 0
        while True:
            answer = self._send(operation, *args, **kwargs)
            code = int(answer.resultCode)
            if code == 0:
                return answer
            if code in RETRYABLE and attempt < self.retries:
                delay = min(self.backoff * 2 ** attempt, self.max_backoff)
                attempt += 1
                log.warning("%s answered %s %s; retry %d of %d in %.1f s", operation, code,
                            answer.resultDescription, attempt, self.retries, delay)
                self._sleep(delay)
                continue
            note = f"still so after {self.retries} retries" \
                if code in RETRYABLE and self.retries else None
            error = error_for(code, answer.resultDescription, operation, note)
            if isinstance(error, AuthenticationError) and error.hint:
                error.hint += f" (you called as {self.principal})"
            raise error

    def _send(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        log.debug("-> %s as %s", operation, self.principal)
        method = getattr(self._service, operation)
        try:
            if operation == "benchmarkingNop":
                return method()
            return method(self._context(), *args, **kwargs)
        except requests.Timeout as error:
            raise RequestTimeoutError(
                f"{operation}: no answer from {self.endpoint} within {self.timeout:g} s",
                "the service is slow or stuck: try again, or raise --timeout "
                "(SEQR_TIMEOUT)") from error
        except requests.ConnectionError as error:
            raise EndpointUnreachableError(
                f"cannot reach {self.endpoint}: {_reason(error)}",
                "check --endpoint (or SEQR_ENDPOINT), e.g. "
                "http://HOST:PORT/extclientproxy/service/v2, and that the service is running"
            ) from error
        except requests.RequestException as error:
            raise EndpointUnreachableError(f"cannot call {self.endpoint}: {error}",
                                           "check --endpoint (or SEQR_ENDPOINT)") from error
        except zeep.exceptions.Fault as error:
            raise ProtocolError(
                f"{operation}: the service answered with a SOAP fault: {error.message}",
                "the request did not match the service's contract; if the endpoint is "
                "right, report this with the client's --verbose output") from error
        except zeep.exceptions.TransportError as error:
            raise ProtocolError(
                f"{operation}: {self.endpoint} answered HTTP {error.status_code}, "
                "not a SOAP response",
                "is this the SOAP endpoint? SEQR's path is /extclientproxy/service/v2"
            ) from error
        except zeep.exceptions.Error as error:
            raise ProtocolError(f"{operation}: {type(error).__name__}: {error}",
                                "the answer was not a SEQR answer: check --endpoint"
                                ) from error

    # --- terminals -----------------------------------------------------------------------

    def register_terminal(self, external_terminal_id: str, password: str,
                          name: str | None = None) -> str:
        """Register a till (as the shop's user); its new 32-hex terminalId."""
        answer = self.call("registerTerminal", external_terminal_id, password,
                           name or external_terminal_id)
        return str(answer.terminalId)

    def unregister_terminal(self) -> None:
        """Remove the terminal these credentials name."""
        self.call("unregisterTerminal")

    def assign_seqr_id(self, seqr_id: str) -> None:
        """Link this terminal to the QR sticker `seqr_id` at its till."""
        self.call("assignSeqrId", seqr_id)

    def nop(self) -> None:
        """`benchmarkingNop`: an empty round trip (no credentials)."""
        self.call("benchmarkingNop")

    # --- principals ----------------------------------------------------------------------

    def request_principal_information(self, principal: Principal | None = None
                                      ) -> PrincipalInfo:
        """This principal (or the one given) as the service knows it."""
        answer = self.call("requestPrincipalInformation", _principal_id(principal))
        found = answer.requestedPrincipal
        pid = found.principalId if found is not None else None
        return PrincipalInfo(
            principal_id=getattr(pid, "id", None), principal_type=getattr(pid, "type", None),
            user_id=getattr(pid, "userId", None),
            name=getattr(found, "principalName", None), status=getattr(found, "status", None),
        )

    def change_principal_password(self, new_password: str,
                                  principal: Principal | None = None) -> None:
        """This principal's password (or, for a shop's user, one of its terminals')."""
        self.call("changePrincipalPassword", _principal_id(principal), new_password)

    # --- payments ------------------------------------------------------------------------

    def send_invoice(self, invoice: Invoice) -> SentInvoice:
        answer = self.call("sendInvoice", _invoice(invoice))
        return SentInvoice(str(answer.invoiceReference), answer.invoiceQRCode)

    def update_invoice(self, invoice_reference: str, invoice: Invoice) -> None:
        self.call("updateInvoice", invoice_reference, _invoice(invoice))

    def get_payment_status(self, invoice_reference: str, version: int = 0) -> PaymentStatus:
        answer = self.call("getPaymentStatus", invoice_reference, version)
        return PaymentStatus(
            invoice_reference=invoice_reference, status=str(answer.status),
            version=int(answer.version), ers_reference=answer.ersReference,
            receipt=_receipt(answer.receipt),
        )

    def wait_for_payment(self, invoice_reference: str, *, timeout: float = 120.0,
                         poll_interval: float | None = None,
                         on_poll: OnPoll | None = None) -> PaymentStatus:
        """Poll `getPaymentStatus` (about once a second) until PAID, CANCELED, FAILED or
        RESERVED. WaitTimeoutError after `timeout` seconds; the invoice stays open."""
        interval = self.payment_poll_interval if poll_interval is None else poll_interval
        started = time.monotonic()
        version, count = 0, 0
        while True:
            status = self.get_payment_status(invoice_reference, version)
            version, count = status.version, count + 1
            elapsed = time.monotonic() - started
            if on_poll is not None:
                on_poll(Poll(count, elapsed, status.status))
            if status.status in FINAL_STATUSES:
                return status
            if elapsed >= timeout:
                raise WaitTimeoutError(
                    f"invoice {invoice_reference} still {status.status} after {elapsed:.0f} s",
                    "the buyer has not paid: cancel the invoice or wait longer (--wait)")
            self._sleep(_until_next_poll(interval, timeout - elapsed))

    def cancel_invoice(self, invoice_reference: str) -> None:
        self.call("cancelInvoice", invoice_reference)

    def commit_reservation(self, invoice_reference: str) -> None:
        self.call("commitReservation", invoice_reference)

    def submit_payment_receipt(self, ers_reference: str, data: bytes, *,
                               mime_type: str = "text/plain",
                               receipt_type: str = "CUSTOMER") -> None:
        """Confirm the register saw PAID, attaching its receipt document."""
        self.call("submitPaymentReceipt", ers_reference,
                  {"mimeType": mime_type, "receiptData": data, "receiptType": receipt_type})

    def refund_payment(self, ers_reference: str, amount: Decimal, *, currency: str = "SEK",
                       cashier_id: str | None = None) -> str:
        """Refund (part of) the payment `ers_reference`; the refund's own ersReference."""
        invoice = Invoice(amount=amount, currency=currency, cashier_id=cashier_id,
                          payment_mode=None)
        answer = self.call("refundPayment", ers_reference, _invoice(invoice))
        return str(answer.ersReference)

    # --- reconciliation ------------------------------------------------------------------

    def close_period(self, terminal_id: str | None = None) -> ClosedPeriod:
        """`markTransactionPeriod`: close the shop's (or `terminal_id`'s) current period."""
        answer = self.call("markTransactionPeriod", parameters(TERMINALID=terminal_id))
        period_id = str(answer.transactionPeriodId or answer.ersReference)
        self._marked_at[period_id] = time.monotonic()
        return ClosedPeriod(period_id, terminal_id, datetime.now(UTC))

    def execute_report(self, report_id: str, period_id: str, terminal_id: str | None = None,
                       *, language: str = "en") -> RawReport:
        """One `executeReport` call: the report, or ReportNotReadyError (2) while it is
        being generated."""
        kind = report_kind(report_id)
        answer = self.call("executeReport", kind.wire_id, language,
                           parameters(transactionPeriodId=period_id, TERMINALID=terminal_id))
        report = answer.report
        if report is None:
            raise ProtocolError(f"executeReport: SUCCESS without a report for {kind.report_id}")
        content = report.content
        if isinstance(content, str):
            content = base64.b64decode(content)
        if not content and report.contentString:
            content = report.contentString.encode("utf-8")
        return RawReport(report.title, report.mimeType, content or b"")

    def fetch_report(self, report_id: str, period_id: str, terminal_id: str | None = None,
                     timeout: float = 120.0, *, poll_interval: float | None = None,
                     first_poll_after: float | None = None, language: str = "en",
                     on_poll: OnPoll | None = None) -> ReportDocument:
        """The report parsed, once ready. As the SEQR manual asks: wait `first_poll_after`
        (~3 s) after this client's mark of the period, then ask again every
        `poll_interval` (~3-5 s) while the answer is 2 REPORT_NOT_READY. A period marked
        elsewhere, or long ago, is asked for at once. WaitTimeoutError after `timeout`."""
        kind = report_kind(report_id)
        interval = self.report_poll_interval if poll_interval is None else poll_interval
        settle = self.first_poll_after if first_poll_after is None else first_poll_after
        started = time.monotonic()
        marked = self._marked_at.get(period_id)
        if marked is not None and settle > 0:
            remaining = settle - (started - marked)
            if remaining > 0:
                if on_poll is not None:
                    on_poll(Poll(0, 0.0, f"waiting {remaining:.1f} s after closing the "
                                         "period, as SEQR asks"))
                self._sleep(remaining)
        count = 0
        while True:
            count += 1
            try:
                raw = self.execute_report(kind.report_id, period_id, terminal_id,
                                          language=language)
            except ReportNotReadyError as error:
                elapsed = time.monotonic() - started
                if on_poll is not None:
                    on_poll(Poll(count, elapsed, error.name))
                if elapsed >= timeout:
                    raise WaitTimeoutError(
                        f"{kind.report_id} of period {period_id} not ready after "
                        f"{elapsed:.0f} s ({count} polls)",
                        "the service is still generating it: fetch it later with "
                        "`seqr-client report`, or wait longer (--wait)") from error
                self._sleep(_until_next_poll(interval, timeout - elapsed))
                continue
            if on_poll is not None:
                on_poll(Poll(count, time.monotonic() - started, "ready"))
            return parse_report(raw.content, kind.report_id, title=raw.title,
                                mime_type=raw.mime_type)


def _until_next_poll(interval: float, remaining: float) -> float:
    """The sleep before the next poll: the interval, or what is left of the wait, so that
    the last poll comes when the wait runs out (not an interval before it)."""
    return max(0.0, min(interval, remaining))


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "nodename nor servname", "Temporary failure in name resolution"):
        if marker in text:
            return marker.lower()
    return text


def _principal_id(principal: Principal | None) -> dict[str, Any] | None:
    if principal is None:
        return None
    return {"id": principal.principal_id, "type": principal.principal_type,
            "userId": principal.user_id}


def _amount(value: Decimal | None, currency: str) -> dict[str, Any] | None:
    return None if value is None else {"currency": currency, "value": value}


def _row(row: InvoiceRow, currency: str) -> dict[str, Any]:
    return {
        "itemDescription": row.description, "itemDiscount": _amount(row.discount, currency),
        "itemEAN": row.ean, "itemQuantity": row.quantity, "itemSKU": row.sku,
        "itemTaxRate": row.tax_rate, "itemTotalAmount": _amount(row.total_amount, currency),
        "itemUnit": row.unit, "itemUnitPrice": _amount(row.unit_price, currency),
    }


def _invoice(invoice: Invoice) -> dict[str, Any]:
    rows = [_row(r, invoice.currency) for r in invoice.rows]
    return {
        "paymentMode": invoice.payment_mode,
        "acknowledgmentMode": invoice.acknowledgment_mode,
        "issueDate": invoice.issue_date,
        "title": invoice.title,
        "clientInvoiceId": invoice.client_invoice_id,
        "invoiceRows": {"invoiceRow": rows} if rows else None,
        "totalAmount": _amount(invoice.amount, invoice.currency),
        "cashierId": invoice.cashier_id,
        "footer": invoice.footer,
        "backURL": invoice.back_url,
        "notificationUrl": invoice.notification_url,
    }


def _receipt(value: Any) -> Receipt | None:
    if value is None:
        return None
    invoice = value.invoice
    total = getattr(invoice, "totalAmount", None)
    return Receipt(
        terminal_id=value.terminalId, payment_date=utc(value.paymentDate),
        client_invoice_id=value.clientInvoiceId, invoice_reference=value.invoiceReference,
        payment_reference=value.paymentReference, payer_terminal_id=value.payerTerminalId,
        receiver_name=value.receiverName,
        amount=to_decimal(getattr(total, "value", None)),
        currency=getattr(total, "currency", None),
        cashier_id=getattr(invoice, "cashierId", None), title=getattr(invoice, "title", None),
    )


__all__ = ["BINDING", "SeqrClient", "SeqrError", "parameters", "zeep_service"]
