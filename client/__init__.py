"""The reference client: zeep, built from the official contract shipped in `wsdl/`.

Only the endpoint address differs between our gateway and a real SEQR service.

    from client import SeqrClient
    shop = SeqrClient.for_shop(endpoint, "demo-shop", "9900", "demo-password")
    period = shop.close_period()
    report = shop.fetch_report("STD_RECON_003", period.period_id)
    result = reconcile(read_journal("journal.csv"), report)

The raw zeep service proxy, for calls `SeqrClient` does not wrap: `zeep_service(endpoint)`.
What a back office makes of it (settlement report, Hii Retail, Sharespine): `client.backoffice`.
"""

from client.errors import (
    AccessDeniedError,
    AuthenticationError,
    EndpointUnreachableError,
    JournalError,
    NotFoundError,
    PeriodMismatchError,
    ProtocolError,
    ReportFormatError,
    ReportNotReadyError,
    RequestTimeoutError,
    SeqrClientError,
    SeqrError,
    ServiceBusyError,
    TransportError,
    WaitTimeoutError,
)
from client.journal import JournalEntry, parse_journal, read_journal
from client.reconcile import Reconciliation, reconcile
from client.reports import DetailRow, ReportDocument, SummaryRow, Totals, parse_report
from client.results import (
    ClosedPeriod,
    Invoice,
    InvoiceRow,
    PaymentStatus,
    Poll,
    Principal,
    PrincipalInfo,
    Receipt,
    SentInvoice,
)
from client.service import BINDING, SeqrClient, zeep_service
from wsdl.resultcodes import ResultCode

__all__ = [
    "BINDING", "AccessDeniedError", "AuthenticationError", "ClosedPeriod", "DetailRow",
    "EndpointUnreachableError", "Invoice", "InvoiceRow", "JournalEntry", "JournalError",
    "NotFoundError", "PaymentStatus", "PeriodMismatchError", "Poll", "Principal",
    "PrincipalInfo", "ProtocolError",
    "Receipt", "Reconciliation", "ReportDocument", "ReportFormatError", "ReportNotReadyError",
    "RequestTimeoutError", "ResultCode", "SentInvoice", "SeqrClient", "SeqrClientError",
    "SeqrError", "ServiceBusyError", "SummaryRow", "Totals", "TransportError",
    "WaitTimeoutError", "parse_journal", "parse_report", "read_journal", "reconcile",
    "zeep_service",
]
