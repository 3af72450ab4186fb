"""Every back-office output of a period by its `--format` name, as bytes to write.

The modules that make them (ReportLab, Jinja2, jsonschema behind them) are imported when a
format is asked for, not before: every `seqr-client` command starts without them.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from client.backoffice.period import DEFAULT_TENDER, Period

HTML, PDF = "html", "pdf"
HII_RECOUNT = "hii-recount"
SHARESPINE_ZREPORT = "sharespine-zreport"
SHARESPINE_SETTLEMENT = "sharespine-settlement"
SHARESPINE_EVENTS = "sharespine-events"
FORMATS = (HTML, PDF, HII_RECOUNT, SHARESPINE_ZREPORT, SHARESPINE_SETTLEMENT,
           SHARESPINE_EVENTS)
#: the formats that compare with a journal: `reconcile` only, not `export`
NEEDS_JOURNAL = frozenset({HTML, PDF, HII_RECOUNT})
BINARY = frozenset({PDF})


@dataclass(frozen=True)
class DocumentOptions:
    """What the documents take besides the period (flags of the CLI)."""

    threshold: Decimal = Decimal(0)  # settlement report: review differences beyond it
    notes: tuple[str, ...] = ()  # settlement report's notes; the Hii event's comment
    tender_id: str = DEFAULT_TENDER  # Hii tenderId, Sharespine payment method
    tenant_id: str | None = None
    business_unit_id: str | None = None
    reconciliation_id: str | None = None
    recount_id: str | None = None
    now: datetime | None = None  # when the document is made (default: now)


def render(fmt: str, period: Period, options: DocumentOptions = DocumentOptions()) -> bytes:
    """`period` in back-office format `fmt` (one of FORMATS): the PDF, or UTF-8 text."""
    from client.backoffice import hii, sharespine
    from client.backoffice.settlement import render_html, settlement_report

    if fmt in (HTML, PDF):
        from client.backoffice.pdf import render_pdf

        report = settlement_report(period, threshold=options.threshold, notes=options.notes,
                                   now=options.now)
        return render_pdf(report) if fmt == PDF else render_html(report).encode("utf-8")
    value: Any
    if fmt == HII_RECOUNT:
        if not options.tenant_id:
            raise ValueError("the Hii Retail event needs a tenant id (--tenant-id or "
                             "SEQR_TENANT_ID)")
        value = hii.recount_event(
            period, tenant_id=options.tenant_id, business_unit_id=options.business_unit_id,
            tender_id=options.tender_id, reconciliation_id=options.reconciliation_id,
            recount_id=options.recount_id, comment="\n".join(options.notes) or None,
            now=options.now)
    elif fmt == SHARESPINE_ZREPORT:
        value = sharespine.z_reports(period, payment_method=options.tender_id)
    elif fmt == SHARESPINE_SETTLEMENT:
        value = sharespine.settlement_report(period, payment_method=options.tender_id)
    elif fmt == SHARESPINE_EVENTS:
        value = sharespine.payment_events(period)
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
