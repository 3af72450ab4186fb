"""Everything the client raises: one family, each error saying what to do about it.

`SeqrError` is a business answer with a non-zero result code (the service said no); its
subclasses name the common ones. `TransportError` is everything below that: the endpoint
cannot be reached, does not answer in time, or does not answer like a SEQR service.
"""

import re

from wsdl.resultcodes import ResultCode, code_name


class SeqrClientError(Exception):
    """Base of every error the client raises. `hint` tells a person what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SeqrError(SeqrClientError):
    """A non-zero `resultCode`: `code` (int), `name` (`AUTHENTICATION_FAILED`), `detail`
    (the text after `NAME: ` in `resultDescription`, if any) and the `operation` called."""

    def __init__(self, code: int, description: str | None = None, operation: str = "",
                 hint: str | None = None, note: str | None = None) -> None:
        self.code = code
        self.name = code_name(code)
        self.description = description or self.name
        self.detail = _detail(self.description, self.name)
        self.operation = operation
        where = f"{operation}: " if operation else ""
        text = f"{where}{code} {self.name}" + (f" ({self.detail})" if self.detail else "")
        text += f", {note}" if note else ""
        super().__init__(text, hint if hint is not None
                         else hint_for(code, operation, self.detail))


class AuthenticationError(SeqrError):
    """The credentials were refused: 20, 29, 33 or 37."""


class AccessDeniedError(SeqrError):
    """21: authenticated, but this principal may not do that."""


class NotFoundError(SeqrError):
    """An unknown reference: 23 (ersReference, transaction period), 54 (invoice), 63."""


class ReportNotReadyError(SeqrError):
    """2: the report is still being generated; ask again in a few seconds."""


class ServiceBusyError(SeqrError):
    """93 SYSTEM_BUSY or 94 SERVICE_UNAVAILABLE, still so after the client's retries."""


class TransportError(SeqrClientError):
    """No SEQR answer at all: see the subclasses."""


class EndpointUnreachableError(TransportError):
    """The endpoint refused the connection, or its host name does not resolve."""


class RequestTimeoutError(TransportError):
    """The endpoint took longer than the client's transport timeout to answer."""


class ProtocolError(TransportError):
    """An answer that is not a SEQR answer: a SOAP fault, an HTTP error, not XML."""


class WaitTimeoutError(SeqrClientError):
    """A report or a payment did not reach its end before the client stopped waiting."""


class PeriodMismatchError(SeqrClientError):
    """reconcile closed a new period that holds none of the journal's transactions (a second
    run on the same journal): nothing is compared."""


class ReportFormatError(SeqrClientError):
    """A report document the client cannot read."""


class JournalError(SeqrClientError):
    """A register journal (CSV) the client cannot read; the message names the line."""


_CLASSES: dict[int, type[SeqrError]] = {
    ResultCode.REPORT_NOT_READY: ReportNotReadyError,
    ResultCode.AUTHENTICATION_FAILED: AuthenticationError,
    ResultCode.INVALID_INITIATOR_PRINCIPAL_ID: AuthenticationError,
    ResultCode.INVALID_INITIATOR_PRINCIPAL_STATE: AuthenticationError,
    ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND: AuthenticationError,
    ResultCode.ACCESS_DENIED: AccessDeniedError,
    ResultCode.INVALID_ERS_REFERENCE: NotFoundError,
    ResultCode.INVALID_INVOICE_REFERENCE: NotFoundError,
    ResultCode.INVALID_AUTHORIZATION_REFERENCE: NotFoundError,
    ResultCode.SYSTEM_BUSY: ServiceBusyError,
    ResultCode.SERVICE_UNAVAILABLE: ServiceBusyError,
}

RETRYABLE = frozenset({ResultCode.SYSTEM_BUSY, ResultCode.SERVICE_UNAVAILABLE})

_HINTS: dict[int, str] = {
    ResultCode.REPORT_NOT_READY: "the report is still being generated: ask again in 3-5 seconds",
    ResultCode.REJECTED_BUSINESS_LOGIC:
        "a terminal report (STD_RECON_006/007) on a shop period needs --terminal",
    ResultCode.AUTHENTICATION_FAILED:
        "the password was refused: check --password (or SEQR_PASSWORD) for this principal",
    ResultCode.ACCESS_DENIED:
        "this principal may not do that: shop work (registering terminals, shop periods and "
        "reports) needs RESELLERUSER credentials, and a terminal only reaches its own invoices "
        "and periods",
    ResultCode.INVALID_NEW_PASSWORD: "choose a password of at least 4 characters",
    ResultCode.INVALID_ERS_REFERENCE:
        "unknown reference: check the ersReference (or transaction period) you gave",
    ResultCode.INVALID_INITIATOR_PRINCIPAL_ID:
        "unknown terminal or principal type: check --principal-id (the 32-hex terminalId "
        "register-terminal printed) and --principal-type",
    ResultCode.INVALID_INITIATOR_PRINCIPAL_STATE:
        "this terminal was unregistered: register it again with register-terminal",
    ResultCode.INITIATOR_PRINCIPAL_NOT_FOUND:
        "unknown shop or user: check --principal-id and --user-id "
        "(or SEQR_PRINCIPAL_ID and SEQR_USER_ID)",
    ResultCode.PAYMENT_IN_PROGRESS: "the buyer is paying this invoice: it can no longer change",
    ResultCode.INVALID_INVOICE_DATA:
        "the invoice was refused: check the amounts (positive, not too many decimals) and the "
        "currency (ISO 4217, e.g. SEK)",
    ResultCode.CANNOT_CANCEL_PAID_INVOICE: "the invoice is paid: refund it instead",
    ResultCode.CANNOT_CANCEL_INVOICE_IN_PROGRESS:
        "the buyer is paying right now: poll its status and refund it if it gets paid",
    ResultCode.INVALID_SEQR_ID:
        "a SEQR ID is letters and digits only and belongs to one terminal: use another one",
    ResultCode.INVALID_INVOICE_REFERENCE:
        "unknown invoice: check the invoice reference (sendInvoice / pay printed it) and that "
        "you use the credentials of the terminal that sent it",
    ResultCode.INVALID_NOTIFICATION_URL: "a notificationUrl must be an http(s) URL",
    ResultCode.SYSTEM_ERROR:
        "the service failed: try again, and tell the service's operator if it persists",
    ResultCode.UNSUPPORTED_OPERATION:
        "the service does not offer that; report ids are STD_RECON_001..004, 006 and 007",
    ResultCode.SYSTEM_BUSY:
        "the service is busy: try again in a minute (--retries raises the retry budget)",
    ResultCode.SERVICE_UNAVAILABLE:
        "the service is unavailable: try again later (--retries raises the retry budget)",
    ResultCode.INVOICE_ALREADY_CANCELED: "nothing to do: the invoice is already canceled",
    ResultCode.INVOICE_STATE_NOT_RESERVED: "only a RESERVED invoice can be committed",
    ResultCode.SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION:
        "the refunds of a payment may not add up to more than the payment: refund less",
}

_OPERATION_HINTS: dict[tuple[int, str], str] = {
    (ResultCode.INVALID_ERS_REFERENCE, "executeReport"):
        "unknown transaction period (or terminal): check --period and --terminal; "
        "close-period prints the id of a new period",
    (ResultCode.INVALID_ERS_REFERENCE, "markTransactionPeriod"):
        "unknown terminal: check --terminal (a 32-hex terminalId of this shop)",
    (ResultCode.INVALID_ERS_REFERENCE, "refundPayment"):
        "unknown or reversed payment: give the ersReference of a PAID payment",
    (ResultCode.INVALID_ERS_REFERENCE, "submitPaymentReceipt"):
        "unknown or reversed payment: give the ersReference of a PAID payment",
}


# The cause the service gave (the text after `NAME: ` in resultDescription), when it names
# one: each pattern is matched against that detail, and its hint (a format string over the
# pattern's named groups) replaces the code's general hint. A real SEQR gives no detail, so
# the general hints above stay what it gets.
_CAUSE_HINTS: dict[int, tuple[tuple[re.Pattern[str], str], ...]] = {
    ResultCode.ACCESS_DENIED: (
        (re.compile(r"needs a RESELLERUSER principal"),
         "this is the shop's work: call it with the shop user's credentials "
         "(--principal-id SHOP --user-id USER, principal type RESELLERUSER)"),
        (re.compile(r"needs a TERMINALID principal"),
         "this is a till's work: call it with the terminal's credentials "
         "(--principal-type TERMINALID --principal-id TERMINAL_ID)"),
        (re.compile(r"^terminal password refused: .*at least (?P<n>\d+) characters"),
         "choose a terminal password of at least {n} characters (--terminal-password)"),
        (re.compile(r"^user (?P<me>\S+) may not change the password of user (?P<other>\S+)"),
         "a shop's user changes its own password and its terminals', not user {other}'s: "
         "call as user {other}"),
        (re.compile(r"^(?P<what>terminal|transaction period|reseller) (?P<id>\S+) is not yours"),
         "{what} {id} belongs to another shop (or, for a till, to another terminal): check "
         "the id, and that you call with the credentials of the shop or till it belongs to"),
        (re.compile(r"a terminal may close only its own period"),
         "a till closes only its own period: give --terminal with its own terminalId, or "
         "close the shop's period with the shop user's credentials"),
        (re.compile(r"a terminal may fetch only the reports of its own periods"),
         "a till fetches only the reports of its own periods: use a period its close-period "
         "printed, or the shop user's credentials"),
        (re.compile(r"^no user (?P<user>\S+) in reseller"),
         "user {user} is not in that shop: check --user-id"),
    ),
    ResultCode.INVALID_INVOICE_DATA: (
        (re.compile(r"has more than (?P<n>\d+) decimals"),
         "round the amount to at most {n} decimals"),
        (re.compile(r"is not an ISO 4217 code"),
         "give the currency as an ISO 4217 code, e.g. --currency SEK"),
        (re.compile(r"must be more than 0"), "amounts must be more than 0"),
        (re.compile(r"too large: it must be less than (?P<max>\S+)"),
         "the total must be less than {max}: split the sale"),
        (re.compile(r"the refund is in (?P<given>\w+), the payment was in (?P<paid>\w+)"),
         "refund in the payment's currency: --currency {paid}"),
        (re.compile(r"is in (?P<given>\w+), the invoice in (?P<currency>\w+)"),
         "every row's amounts must be in the invoice's currency ({currency})"),
    ),
}


def hint_for(code: int, operation: str = "", detail: str | None = None) -> str | None:
    """What a person should do about `code` coming back from `operation`, for the cause
    (`detail`) the service gave when it gave one."""
    for pattern, hint in _CAUSE_HINTS.get(code, ()) if detail else ():
        found = pattern.search(detail or "")
        if found:
            return hint.format(**found.groupdict())
    return _OPERATION_HINTS.get((code, operation)) or _HINTS.get(code)


def error_for(code: int, description: str | None = None, operation: str = "",
              note: str | None = None) -> SeqrError:
    """The `SeqrError` (sub)class instance for a non-zero result code."""
    return _CLASSES.get(code, SeqrError)(code, description, operation, note=note)


def _detail(description: str, name: str) -> str | None:
    """`NAME: text` -> `text`; a description that is only the name -> None."""
    if description == name:
        return None
    if description.startswith(name + ":"):
        return description[len(name) + 1:].strip() or None
    return description
