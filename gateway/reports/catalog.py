"""The six STD_RECON reports, and the report ids registers send for them."""

import re
from dataclasses import dataclass
from enum import Enum

from gateway.errors import SeqrError
from gateway.resultcodes import ResultCode


class Layout(Enum):
    TOTAL = "total"  # one Row: counts and totals
    BY_TERMINAL = "by_terminal"  # one Row per terminal
    BY_CASHIER = "by_cashier"  # one Row per cashier
    DETAILS = "details"  # one Row per transaction


@dataclass(frozen=True)
class ReportSpec:
    report_id: str
    name: str
    root: str
    layout: Layout
    #: a per-terminal report: needs a terminal, and names it in Meta
    per_terminal: bool = False

    def title(self, transaction_period_id: str) -> str:
        return f"{self.report_id}_{transaction_period_id}.xml"


MIME_TYPE = "text/html"  # what the real service sent for these XML documents

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

_ALIASES = {"reconciliation/shop.xml": "STD_RECON_001"}
_ID_RE = re.compile(r"^(?:reconciliation/)?(std_recon_\d{3})(?:\.xml)?$", re.IGNORECASE)


def lookup(raw_report_id: str | None) -> ReportSpec:
    """`Reconciliation/STD_RECON_003.xml`, `STD_RECON_003` or `Reconciliation/Shop.xml` (001)."""
    text = (raw_report_id or "").strip()
    report_id = _ALIASES.get(text.lower())
    if report_id is None:
        match = _ID_RE.match(text)
        report_id = match.group(1).upper() if match else None
    spec = REPORTS.get(report_id or "")
    if spec is None:
        raise SeqrError(ResultCode.UNSUPPORTED_OPERATION, f"unknown report id {text!r}")
    return spec
