"""The back-office part of `seqr-client reconcile` and `seqr-client export`: their options,
the rules checked before a period is closed, and the outputs written after.

`client.cli` calls `add_options` when it builds the parser, `BackOffice.prepare` before it
closes a period and `BackOffice.deliver` once it has the report (and the comparison).
"""

import argparse
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from client.backoffice.formats import BINARY, FORMATS, NEEDS_JOURNAL, DocumentOptions, render
from client.backoffice.period import DEFAULT_TENDER, Period, period_facts, reference_time
from client.backoffice.rules import (
    PeriodLedger,
    PeriodRuleError,
    ReconciledPeriod,
    check_notify_url,
    check_span,
    default_state_file,
    notify,
    scope_key,
)
from client.errors import SeqrClientError
from client.reconcile import Reconciliation
from client.reports import ReportDocument
from client.results import RESELLERUSER
from client.service import SeqrClient

OWN_FORMATS = ("table", "json")  # reconcile's own, before the back-office ones
DOCUMENT_SUFFIXES = {".html": "html", ".htm": "html", ".pdf": "pdf", ".json": "json"}


class DocumentError(SeqrClientError):
    """A back-office output cannot be made from what was given."""


# --- option types ---------------------------------------------------------------------------

def moment(text: str) -> datetime:
    """ISO 8601, e.g. `2026-05-21T08:00:00Z` or `2026-05-21T10:00+02:00`; without an offset
    it is UTC; a bare date is its midnight, UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time like 2026-05-21T08:00:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-05-21") from None


def threshold(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount like 1.00") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the threshold cannot be negative")
    return value


def currency(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 4217 code like SEK")
    return code


def attempts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 attempt")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be positive")
    return value


def add_options(cmd: argparse.ArgumentParser, *, reconcile: bool) -> None:
    """The back-office options of `reconcile` (all) or `export` (those without a journal)."""
    docs = cmd.add_argument_group("back-office outputs")
    docs.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="write the output to FILE (the format follows a .html, .pdf or "
                           ".json name unless --format says otherwise)")
    docs.add_argument("--currency", type=currency, default="SEK",
                      help="currency of transactions whose journal line names none (SEQR's "
                           "reports name none; default SEK)")
    docs.add_argument("--tender-id", default=DEFAULT_TENDER, metavar="ID",
                      help="SEQR's tender (Hii Retail) / payment method (Sharespine) "
                           "(default SEQR)")
    docs.add_argument("--business-date", type=day, metavar="YYYY-MM-DD",
                      help="the business date (default: the UTC date the period ends)")
    docs.add_argument("--period-start", type=moment, metavar="TIME",
                      help="when the period began, ISO 8601 (default: the end of the "
                           "scope's previous period reconciled here)")
    docs.add_argument("--period-end", type=moment, metavar="TIME",
                      help="when the period ended (default: when it was closed, from its id)")
    docs.add_argument("--state-file", type=Path, metavar="FILE",
                      help="where the reconciled periods are kept [SEQR_CLIENT_STATE_FILE] "
                           "(default $XDG_STATE_HOME/seqr-client/periods.json)")
    if not reconcile:
        return
    docs.add_argument("--threshold", type=threshold, default=Decimal(0), metavar="AMOUNT",
                      help="settlement report: flag a difference larger than this for review "
                           "(default 0)")
    docs.add_argument("--note", action="append", default=[], metavar="TEXT",
                      help="settlement report's notes (and the Hii event's comment); "
                           "may be repeated")
    docs.add_argument("--tenant-id", metavar="ID",
                      help="Hii Retail tenantId [SEQR_TENANT_ID]")
    docs.add_argument("--business-unit-id", metavar="ID",
                      help="Hii Retail businessUnitId [SEQR_BUSINESS_UNIT_ID] (default: the "
                           "SEQR shop id)")
    docs.add_argument("--reconciliation-id", metavar="ID",
                      help="Hii Retail reconciliationId (default: a new UUID)")
    docs.add_argument("--recount-id", metavar="ID",
                      help="Hii Retail recountId (default: a new UUID)")
    done = cmd.add_argument_group("when the reconciliation completes")
    done.add_argument("--notify-url", metavar="URL",
                      help="POST the JSON result (as --format json prints it) to URL "
                           "[SEQR_NOTIFY_URL]")
    done.add_argument("--notify-attempts", type=attempts, default=3, metavar="N",
                      help="attempts at the notice (default 3)")
    done.add_argument("--notify-timeout", type=seconds, default=5.0, metavar="SECONDS",
                      help="seconds each attempt may take (default 5)")


def output_format(args: argparse.Namespace, allowed: tuple[str, ...]) -> str | None:
    """--format, else the one -o's name says (if allowed), else None (the default)."""
    if args.format:
        return str(args.format)
    suffix = args.output.suffix.lower() if args.output is not None else ""
    guessed = DOCUMENT_SUFFIXES.get(suffix)
    return guessed if guessed in allowed else None


def _env(args: argparse.Namespace, name: str, env: str) -> Any:
    value = getattr(args, name, None)
    return value if value is not None else os.environ.get(env) or None


# --- one run --------------------------------------------------------------------------------

@dataclass
class BackOffice:
    """The back-office settings of one run, checked before anything is closed."""

    fmt: str | None
    output: Path | None
    scope: str
    ledger: PeriodLedger
    start: datetime | None
    end: datetime | None
    business_date: date | None
    options: DocumentOptions
    currency: str
    notify_url: str | None = None
    notify_attempts: int = 3
    notify_timeout: float = 5.0

    @classmethod
    def prepare(cls, args: argparse.Namespace, client: SeqrClient, terminal: str | None, *,
                journal: bool) -> "BackOffice":
        """Check the options and the period rules (PeriodRuleError, DocumentError): all of
        it before a period is closed."""
        fmt = output_format(args, (*OWN_FORMATS, *FORMATS) if journal else FORMATS)
        if not journal and fmt is None:
            raise DocumentError("no --format", f"export writes one of {', '.join(FORMATS)}")
        if not journal and fmt in NEEDS_JOURNAL:
            raise DocumentError(f"--format {fmt} compares with the register's journal",
                                f"use seqr-client reconcile --journal FILE --format {fmt}")
        tenant = _env(args, "tenant_id", "SEQR_TENANT_ID")
        if fmt == "hii-recount" and not tenant:
            raise DocumentError("the Hii Retail event needs a tenantId",
                                "give --tenant-id (or set SEQR_TENANT_ID)")
        state = _env(args, "state_file", "SEQR_CLIENT_STATE_FILE")
        ledger = PeriodLedger(Path(state) if state else default_state_file())
        shop = client.principal.principal_id if client.principal.principal_type == \
            RESELLERUSER else None
        scope = scope_key(client.endpoint, shop, terminal)
        period = getattr(args, "period", None)
        start, end = args.period_start, args.period_end
        if start is not None or end is not None:
            check_span(start, end)
            until = end or reference_time(period) or datetime.now(UTC)
            if start is None:
                start = ledger.previous_end(scope, until, period)
            if journal:  # Koncili: no overlap with a period reconciled before
                ledger.check(scope, start, until, period)
            else:
                check_span(start, until)
        notify_url = _env(args, "notify_url", "SEQR_NOTIFY_URL") if journal else None
        if notify_url:
            check_notify_url(notify_url)
        options = DocumentOptions(
            threshold=getattr(args, "threshold", Decimal(0)),
            notes=tuple(getattr(args, "note", ()) or ()), tender_id=args.tender_id,
            tenant_id=tenant,
            business_unit_id=_env(args, "business_unit_id", "SEQR_BUSINESS_UNIT_ID"),
            reconciliation_id=getattr(args, "reconciliation_id", None),
            recount_id=getattr(args, "recount_id", None),
        )
        return cls(fmt=fmt, output=args.output, scope=scope, ledger=ledger, start=start,
                   end=end, business_date=args.business_date, options=options,
                   currency=args.currency, notify_url=notify_url,
                   notify_attempts=getattr(args, "notify_attempts", 3),
                   notify_timeout=getattr(args, "notify_timeout", 5.0))

    @property
    def is_document(self) -> bool:
        return self.fmt in FORMATS

    def period(self, document: ReportDocument, result: Reconciliation | None) -> Period:
        end = self.end or reference_time(document.period_id)
        start = self.start
        if start is None and document.period_id:  # as recorded, or where the last one ended
            known = self.ledger.find(self.scope, document.period_id)
            start = known.start if known is not None and known.start is not None else \
                self.ledger.previous_end(self.scope, end, document.period_id)
        return period_facts(document, result, currency=self.currency, start=start, end=end,
                            business_date=self.business_date)

    def write(self, period: Period, out: Any) -> None:
        """The document in the chosen format, to -o FILE or stdout."""
        assert self.fmt is not None
        try:
            data = render(self.fmt, period, self.options)
        except ValueError as error:
            raise DocumentError(str(error)) from error
        if self.output is not None:
            try:
                self.output.write_bytes(data)
            except OSError as error:
                raise DocumentError(f"cannot write {self.output}: {error.strerror or error}",
                                    "check the -o path") from error
            return
        out.flush()
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        elif self.fmt in BINARY:
            raise DocumentError(f"{self.fmt} is binary", "write it to a file with -o FILE")
        else:
            out.write(data.decode("utf-8"))
            out.flush()

    def record(self, period: Period, result: Reconciliation) -> str | None:
        """Remember the reconciled period; a message if the state file cannot be written."""
        try:
            self.ledger.record(ReconciledPeriod(
                scope=self.scope, period_id=period.period_id, start=period.start,
                end=period.end, reconciled_at=datetime.now(UTC),
                result="match" if result.is_clean else "discrepancies"))
        except (OSError, PeriodRuleError) as error:
            return f"could not remember period {period.period_id} in {self.ledger.path}: " \
                   f"{getattr(error, 'message', None) or error}"
        return None

    def send_notice(self, result: Reconciliation) -> str | None:
        """POST the result to --notify-url; what happened, for stderr (None: no URL)."""
        if not self.notify_url:
            return None
        outcome = notify(self.notify_url, result.as_dict(), attempts=self.notify_attempts,
                         timeout=self.notify_timeout)
        return outcome.describe()
