"""What a retailer's back office does with a reconciliation: the outputs made from one
closed SEQR period (and, after `reconcile`, the register's journal beside it).

- the settlement report a store manager signs (`settlement_report`, `render_html`,
  `render_pdf`), after MPAC SmartPOS;
- Hii Retail's `ReconciliationRecount` v1 event (`recount_event`);
- Sharespine's Z reports, settlement report and payment transaction events (`sharespine`);
- Koncili-style rules: period spans, no overlap with periods reconciled before
  (`PeriodLedger`), the completion notice (`notify`).

    period = period_facts(report, reconcile(journal, report))
    render(PDF, period, DocumentOptions(threshold=Decimal("1.00")))
"""

from importlib import import_module
from typing import Any

#: what this package offers, and the module each comes from: imported on first use, so that
#: `seqr-client` commands that make no document never load ReportLab, Jinja2 or jsonschema
_HOMES = {
    **dict.fromkeys(("BINARY", "FORMATS", "HII_RECOUNT", "HTML", "NEEDS_JOURNAL", "PDF",
                     "SHARESPINE_EVENTS", "SHARESPINE_SETTLEMENT", "SHARESPINE_ZREPORT",
                     "DocumentOptions", "render"), "formats"),
    **dict.fromkeys(("recount_event", "recount_schema", "validate_recount"), "hii"),
    "render_pdf": "pdf",
    **dict.fromkeys(("Flow", "Period", "Transaction", "period_facts", "reference_time"),
                    "period"),
    **dict.fromkeys(("NoticeOutcome", "PeriodLedger", "PeriodRuleError", "ReconciledPeriod",
                     "default_state_file", "notify", "scope_key"), "rules"),
    **dict.fromkeys(("SettlementReport", "render_html", "settlement_report"), "settlement"),
}


def __getattr__(name: str) -> Any:
    if name == "sharespine":
        return import_module("client.backoffice.sharespine")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'client.backoffice' has no attribute {name!r}")
    return getattr(import_module(f"client.backoffice.{home}"), name)


__all__ = [
    "BINARY", "FORMATS", "HII_RECOUNT", "HTML", "NEEDS_JOURNAL", "PDF", "SHARESPINE_EVENTS",
    "SHARESPINE_SETTLEMENT", "SHARESPINE_ZREPORT", "DocumentOptions", "Flow",
    "NoticeOutcome", "Period", "PeriodLedger", "PeriodRuleError", "ReconciledPeriod",
    "SettlementReport", "Transaction", "default_state_file", "notify", "period_facts",
    "recount_event", "recount_schema", "reference_time", "render", "render_html",
    "render_pdf", "scope_key", "settlement_report", "sharespine", "validate_recount",
]
