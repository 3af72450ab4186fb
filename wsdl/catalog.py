"""The six STD_RECON reconciliation reports: a fact of the contract, shared by gateway and client.

Each report's document has its XSD in `wsdl/reports/<report_id>.xsd`. Registers name a report
in `executeReport` as `Reconciliation/STD_RECON_003.xml`, `STD_RECON_003` or, for 001, the
older `Reconciliation/Shop.xml`.
"""

import re
from dataclasses import dataclass
from enum import Enum


class Layout(Enum):
    TOTAL = "total"  # one Row: counts and totals
    BY_TERMINAL = "by_terminal"  # one Row per terminal
    BY_CASHIER = "by_cashier"  # one Row per cashier
    DETAILS = "details"  # one Row per transaction


@dataclass(frozen=True)
class ReportSpec:
    report_id: str
    name: str
    #: the document's root element
    root: str
    layout: Layout
    #: a per-terminal report: needs a terminal, and names it in Meta
    per_terminal: bool = False

    @property
    def details(self) -> bool:
        """One Row per transaction (003, 007), rather than counts and totals."""
        return self.layout is Layout.DETAILS

    @property
    def wire_id(self) -> str:
        """The id registers send: `Reconciliation/STD_RECON_003.xml`."""
        return f"Reconciliation/{self.report_id}.xml"

    def title(self, transaction_period_id: str) -> str:
        """The document's title in an executeReport answer."""
        return f"{self.report_id}_{transaction_period_id}.xml"


#: what the real service sent as these XML documents' mime type
MIME_TYPE = "text/html"

REPORTS: dict[str, ReportSpec] = {
    spec.report_id: spec
    for spec in (
        ReportSpec("STD_RECON_001", "Merchant transactions summary",
                   "ResellerTransactionSummary", Layout.TOTAL),
        ReportSpec("STD_RECON_002", "Merchant summary, terminal by terminal",
                   "TerminalTransactionSummary", Layout.BY_TERMINAL),
        ReportSpec("STD_RECON_003", "Merchant transaction details",
                   "TransactionDetails", Layout.DETAILS),
        ReportSpec("STD_RECON_004", "Merchant summary, cashier by cashier",
                   "CashierTransactionSummary", Layout.BY_CASHIER),
        ReportSpec("STD_RECON_006", "Terminal transactions summary",
                   "TerminalTransactionSummary", Layout.TOTAL, per_terminal=True),
        ReportSpec("STD_RECON_007", "Terminal transaction details",
                   "TransactionDetails", Layout.DETAILS, per_terminal=True),
    )
}

#: the detail reports a journal is compared with: per shop, and per terminal
SHOP_DETAILS = "STD_RECON_003"
TERMINAL_DETAILS = "STD_RECON_007"

_SHOP_ALIAS = "reconciliation/shop.xml"
_WIRE_ID = re.compile(r"^(?:reconciliation/)?(std_recon_\d{3})(?:\.xml)?$", re.IGNORECASE)


def answer_title(wire_id: str | None, spec: ReportSpec, transaction_period_id: str) -> str:
    """The `title` of a ready executeReport answer: empty for `Reconciliation/Shop.xml` (the
    manual's 001 sample, `<title/>`), `STD_RECON_00N_<transactionPeriodId>.xml` otherwise."""
    if (wire_id or "").strip().lower() == _SHOP_ALIAS:
        return ""
    return spec.title(transaction_period_id)


def find_report(wire_id: str | None) -> ReportSpec | None:
    """The report a register's `reportId` names, or None: the service's own reading of it."""
    text = (wire_id or "").strip()
    if text.lower() == _SHOP_ALIAS:
        return REPORTS["STD_RECON_001"]
    match = _WIRE_ID.match(text)
    return REPORTS.get(match.group(1).upper()) if match else None
