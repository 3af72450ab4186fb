"""`seqr-client`: the reference client's command line.

Exit codes: 0 done (reconcile: everything matches; pay: PAID), 1 reconcile found
discrepancies (pay: not paid), 2 an error (result code, connection, input), 130 interrupted.
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from client.backoffice.command import OWN_FORMATS, BackOffice
from client.backoffice.command import add_options as add_backoffice_options
from client.backoffice.formats import FORMATS as BACKOFFICE_FORMATS
from client.errors import PeriodMismatchError, SeqrClientError, SeqrError, WaitTimeoutError
from client.journal import read_journal
from client.output import Output, PipeSafe, show_payment, show_reconciliation, write_report
from client.reconcile import Reconciliation, money, reconcile
from client.reports import ReportDocument, report_kind
from client.results import RESELLERUSER, TERMINALID, Invoice, PaymentStatus
from client.service import (
    FIRST_POLL_AFTER,
    PAYMENT_POLL_INTERVAL,
    REPORT_POLL_INTERVAL,
    SeqrClient,
)
from wsdl import redact
from wsdl.catalog import SHOP_DETAILS, TERMINAL_DETAILS
from wsdl.resultcodes import ResultCode

log = logging.getLogger("client.cli")

EXIT_OK, EXIT_DISCREPANCIES, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
REPORT_FORMATS = ("xml", "json", "csv", "table")


class ConfigurationError(SeqrClientError):
    """A setting missing or malformed, in a flag or its environment variable."""


# --- settings: flags first, then the environment ---------------------------------------------

@dataclass(frozen=True)
class Connection:
    endpoint: str
    principal_type: str
    principal_id: str
    user_id: str | None
    password: str
    timeout: float
    retries: int
    backoff: float


def _setting(args: argparse.Namespace, name: str, env: str) -> str | None:
    value = getattr(args, name, None)
    if value is None:
        value = os.environ.get(env) or None
    return value


def _number(args: argparse.Namespace, name: str, env: str, default: float,
            kind: Callable[[str], Any] = float) -> Any:
    value = getattr(args, name, None)
    if value is not None:
        return value
    text = os.environ.get(env)
    if not text:
        return default
    try:
        number = kind(text)
    except ValueError:
        raise ConfigurationError(f"{env}={text!r} is not a number",
                                 f"unset {env} or give --{name.replace('_', '-')}") from None
    if number < 0:
        raise ConfigurationError(f"{env}={text!r} is negative", f"fix {env}")
    return number


def connection(args: argparse.Namespace) -> Connection:
    endpoint = _setting(args, "endpoint", "SEQR_ENDPOINT")
    if not endpoint:
        raise ConfigurationError(
            "no endpoint", "give --endpoint URL or set SEQR_ENDPOINT, e.g. "
            "http://127.0.0.1:8080/extclientproxy/service/v2")
    _check_endpoint(endpoint)
    principal_id = _setting(args, "principal_id", "SEQR_PRINCIPAL_ID")
    if not principal_id:
        raise ConfigurationError(
            "no principal", "give --principal-id (or SEQR_PRINCIPAL_ID): the shop's reseller "
            "id with --user-id, or a terminal's 32-hex terminalId")
    password = _setting(args, "password", "SEQR_PASSWORD")
    if password is None:
        raise ConfigurationError("no password",
                                 "give --password or set SEQR_PASSWORD (safer: not in ps)")
    user_id = _setting(args, "user_id", "SEQR_USER_ID")
    kind = (_setting(args, "principal_type", "SEQR_PRINCIPAL_TYPE")
            or (RESELLERUSER if user_id else TERMINALID)).upper()
    if kind not in (RESELLERUSER, TERMINALID):
        raise ConfigurationError(f"unknown principal type {kind!r}",
                                 "use RESELLERUSER (a shop's user) or TERMINALID (a till)")
    return Connection(
        endpoint=endpoint, principal_type=kind, principal_id=principal_id,
        user_id=user_id if kind == RESELLERUSER else None, password=password,
        timeout=_number(args, "timeout", "SEQR_TIMEOUT", 30.0),
        retries=_number(args, "retries", "SEQR_RETRIES", 3, int),
        backoff=_number(args, "retry_backoff", "SEQR_RETRY_BACKOFF", 1.0),
    )


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    if "://" not in endpoint:
        raise ConfigurationError(
            f"endpoint {endpoint!r} has no http:// or https://",
            f"write the URL in full, e.g. --endpoint http://{endpoint.lstrip('/')}")
    raise ConfigurationError(
        f"endpoint {endpoint!r} is not an http(s) URL",
        "give --endpoint (or SEQR_ENDPOINT) as http://HOST:PORT/extclientproxy/service/v2")


def make_client(args: argparse.Namespace) -> SeqrClient:
    conn = connection(args)
    return SeqrClient(
        conn.endpoint, conn.principal_id, conn.password, principal_type=conn.principal_type,
        user_id=conn.user_id, timeout=conn.timeout, retries=conn.retries,
        backoff=conn.backoff,
    )


def _own_terminal(args: argparse.Namespace, client: SeqrClient) -> str | None:
    """--terminal, or the terminal these credentials are (a till closes its own period)."""
    terminal: str | None = getattr(args, "terminal", None)
    if terminal is None and client.principal.principal_type == TERMINALID:
        terminal = client.principal.principal_id
    return terminal


# --- commands ----------------------------------------------------------------------------

def cmd_register_terminal(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    password = args.terminal_password or os.environ.get("SEQR_TERMINAL_PASSWORD")
    if not password:
        raise ConfigurationError("no terminal password",
                                 "give --terminal-password (or SEQR_TERMINAL_PASSWORD): "
                                 "the password the new till will log in with")
    terminal_id = client.register_terminal(args.external_id, password, args.name)
    out.note(f"registered {args.external_id!r} as terminal {terminal_id}")
    if out.json_mode:
        out.json({"terminalId": terminal_id, "externalTerminalId": args.external_id})
    else:
        out.line(terminal_id)
    return EXIT_OK


def cmd_assign_seqr_id(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    client.assign_seqr_id(args.seqr_id)
    qr = f"HTTP://SEQR.SE/Q{args.seqr_id}"
    out.note(f"terminal {client.principal.principal_id} now answers the sticker {qr}")
    if out.json_mode:
        out.json({"terminalId": client.principal.principal_id, "seqrId": args.seqr_id,
                  "qrCode": qr})
    else:
        out.line(qr)
    return EXIT_OK


def cmd_pay(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    invoice = Invoice(amount=args.amount, currency=args.currency.upper(), title=args.title,
                      cashier_id=args.cashier, client_invoice_id=args.client_invoice_id)
    sent = client.send_invoice(invoice)
    reference = sent.invoice_reference
    out.note(f"invoice {reference} sent for {money(args.amount)} {invoice.currency} "
             f"({sent.qr_code}); waiting for the buyer (on the emulator: "
             f"seqr-gateway simulate pay {reference})")
    try:
        with out.waiting(f"invoice {reference}") as on_poll:
            status = client.wait_for_payment(reference, timeout=args.wait,
                                             poll_interval=args.poll_interval, on_poll=on_poll)
    except WaitTimeoutError as timeout:
        out.note(f"{timeout.message}; canceling it")
        status = _cancel_after_timeout(client, reference)
    show_payment(out, status)
    return EXIT_OK if status.status == "PAID" else EXIT_DISCREPANCIES


def _cancel_after_timeout(client: SeqrClient, reference: str) -> PaymentStatus:
    """Cancel an invoice nobody paid in time; if the buyer got there first, its status."""
    try:
        client.cancel_invoice(reference)
    except SeqrError as error:
        if error.code not in (ResultCode.CANNOT_CANCEL_PAID_INVOICE,
                              ResultCode.CANNOT_CANCEL_INVOICE_IN_PROGRESS,
                              ResultCode.INVOICE_ALREADY_CANCELED):
            raise
    return client.get_payment_status(reference)


def cmd_status(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    show_payment(out, client.get_payment_status(args.invoice_reference, args.version))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    client.cancel_invoice(args.invoice_reference)
    out.note(f"invoice {args.invoice_reference} canceled")
    if out.json_mode:
        out.json({"invoiceReference": args.invoice_reference, "status": "CANCELED"})
    else:
        out.line("CANCELED")
    return EXIT_OK


def cmd_refund(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    refund = client.refund_payment(args.ers_reference, args.amount,
                                   currency=args.currency.upper(), cashier_id=args.cashier)
    out.note(f"refunded {money(args.amount)} {args.currency.upper()} of payment "
             f"{args.ers_reference}")
    if out.json_mode:
        out.json({"paymentReference": args.ers_reference, "ersReference": refund,
                  "amount": money(args.amount), "currency": args.currency.upper()})
    else:
        out.line(refund)
    return EXIT_OK


def cmd_close_period(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    closed = client.close_period(_own_terminal(args, client))
    out.note(f"closed the {closed.scope} period {closed.period_id}")
    if out.json_mode:
        out.json({"transactionPeriodId": closed.period_id, "terminalId": closed.terminal_id,
                  "closedAt": closed.closed_at.isoformat()})
    else:
        out.line(closed.period_id)
    return EXIT_OK


def cmd_report(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    kind = report_kind(args.report_id)
    terminal = args.terminal
    if terminal is None and kind.per_terminal:
        terminal = _own_terminal(args, client)
    fmt = args.format or ("json" if out.json_mode else None) or _format_of(args.output) \
        or "table"
    with out.waiting(f"{kind.report_id} of period {args.period}") as on_poll:
        document = client.fetch_report(kind.report_id, args.period, terminal,
                                       timeout=args.wait, poll_interval=args.poll_interval,
                                       first_poll_after=args.first_poll_after,
                                       on_poll=on_poll)
    write_report(out, document, fmt, args.output)
    if args.output is not None:
        out.note(f"wrote {kind.report_id} ({len(document.rows)} rows) to {args.output}")
    return EXIT_OK


def _format_of(path: Path | None) -> str | None:
    suffix = path.suffix.lower().lstrip(".") if path is not None else ""
    return suffix if suffix in REPORT_FORMATS else None


def cmd_reconcile(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    journal = read_journal(args.journal)  # a bad journal stops us before anything changes
    terminal = _own_terminal(args, client)
    office = BackOffice.prepare(args, client, terminal, journal=True)  # so do its rules
    out.json_mode = out.json_mode or (office.fmt == "json" and args.output is None)
    period = args.period
    scope = None
    if period is None:
        closed = client.close_period(terminal)
        period, scope = closed.period_id, closed.scope
        out.note(f"closed the {scope} period {period}")
    report_id = TERMINAL_DETAILS if terminal else SHOP_DETAILS
    try:
        with out.waiting(f"{report_id} of period {period}") as on_poll:
            document = client.fetch_report(report_id, period, terminal, timeout=args.wait,
                                           poll_interval=args.poll_interval,
                                           first_poll_after=args.first_poll_after,
                                           on_poll=on_poll)
    except WaitTimeoutError as error:
        error.hint = (f"the period {period} is closed; reconcile it later with "
                      f"--period {period}" + (f" --terminal {terminal}" if terminal else ""))
        raise
    result = reconcile(journal, document, args.tolerance, terminal_id=terminal)
    if scope is not None and result.expected.count and \
            len(result.missing_in_seqr) == result.expected.count:
        raise _not_this_period(result.expected.count, len(document.details), scope, period)
    _deliver(out, office, document, result)
    return EXIT_OK if result.is_clean else EXIT_DISCREPANCIES


def _deliver(out: Output, office: BackOffice, document: ReportDocument,
             result: Reconciliation) -> None:
    """The result in the chosen format (to -o FILE or stdout); then the period is
    remembered and --notify-url told. Neither of those changes the exit code."""
    period = office.period(document, result)
    verdict = "everything matches" if result.is_clean else \
        f"{result.discrepancy_count} discrepancies"
    if office.is_document:
        office.write(period, out.out)
    elif office.output is not None:
        with office.output.open("w", encoding="utf-8", newline="") as file:
            show_reconciliation(Output(json_mode=office.fmt == "json", stdout=file), result)
    else:
        show_reconciliation(out, result)
    if office.output is not None:
        out.note(f"{verdict}; wrote {office.fmt or 'table'} to {office.output}")
        if out.json_mode:
            out.json(result.as_dict())
    problem = office.record(period, result)
    if problem:
        _warn(out, problem)
    notice = office.send_notice(result)
    if notice is not None:
        if notice.startswith("notified"):
            out.note(notice)
        else:
            _warn(out, notice)


def _warn(out: Output, text: str) -> None:
    """A problem that does not change the outcome: on stderr even with --quiet."""
    print(f"seqr-client: warning: {text}", file=out.err, flush=True)


def cmd_export(args: argparse.Namespace, client: SeqrClient, out: Output) -> int:
    terminal = _own_terminal(args, client)
    office = BackOffice.prepare(args, client, terminal, journal=False)
    period = args.period
    if period is None:
        closed = client.close_period(terminal)
        period = closed.period_id
        out.note(f"closed the {closed.scope} period {period}")
    report_id = TERMINAL_DETAILS if terminal else SHOP_DETAILS
    with out.waiting(f"{report_id} of period {period}") as on_poll:
        document = client.fetch_report(report_id, period, terminal, timeout=args.wait,
                                       poll_interval=args.poll_interval,
                                       first_poll_after=args.first_poll_after,
                                       on_poll=on_poll)
    office.write(office.period(document, None), out.out)
    if office.output is not None:
        out.note(f"wrote {office.fmt} of period {period} ({len(document.rows)} "
                 f"transactions) to {office.output}")
    return EXIT_OK


def _not_this_period(entries: int, rows: int, scope: str, period: str) -> PeriodMismatchError:
    """A re-run: the period this run closed holds none of the journal's transactions."""
    held = "no transactions" if rows == 0 else f"{rows} other transaction(s)"
    return PeriodMismatchError(
        f"none of the journal's {entries} transaction(s) is in the {scope} period {period} "
        f"that this run just closed (it holds {held}); nothing compared",
        "the journal's transactions are in an earlier period, most likely closed by an earlier "
        "reconcile, which printed \"closed the ... period ID\": run again with --period ID "
        f"(to compare with the new period anyway: --period {period})")


# --- the parser --------------------------------------------------------------------------

def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount like 25.00") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the amount must be positive")
    return value


def _tolerance(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount like 0.01") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the tolerance cannot be negative")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds cannot be negative")
    return value


def _report_id(text: str) -> str:
    try:
        return report_kind(text).report_id
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(parser: argparse.ArgumentParser, default: Any) -> None:
    """The connection and output options; on every subcommand too, so they go anywhere."""
    conn = parser.add_argument_group("connection (flags, else the environment)")
    conn.add_argument("--endpoint", default=default,
                      help="SOAP endpoint URL [SEQR_ENDPOINT]")
    conn.add_argument("--principal-type", default=default, type=str.upper,
                      choices=(RESELLERUSER, TERMINALID),
                      help="RESELLERUSER or TERMINALID; default RESELLERUSER with --user-id, "
                           "else TERMINALID [SEQR_PRINCIPAL_TYPE]")
    conn.add_argument("--principal-id", default=default,
                      help="reseller id, or 32-hex terminalId [SEQR_PRINCIPAL_ID]")
    conn.add_argument("--user-id", default=default,
                      help="user within the shop, e.g. 9900 [SEQR_USER_ID]")
    conn.add_argument("--password", default=default, help="password [SEQR_PASSWORD]")
    conn.add_argument("--timeout", default=default, type=_seconds,
                      help="seconds per HTTP request (default 30) [SEQR_TIMEOUT]")
    conn.add_argument("--retries", default=default, type=int,
                      help="retries after 93 SYSTEM_BUSY / 94 SERVICE_UNAVAILABLE "
                           "(default 3) [SEQR_RETRIES]")
    conn.add_argument("--retry-backoff", default=default, type=_seconds,
                      help="seconds before the first retry, doubling (default 1) "
                           "[SEQR_RETRY_BACKOFF]")
    shown = parser.add_argument_group("output")
    flag_default = False if default is None else default
    shown.add_argument("-q", "--quiet", action="store_true", default=flag_default,
                       help="no progress or notes on stderr")
    shown.add_argument("--json", action="store_true", default=flag_default,
                       help="results (and errors) as JSON on stdout")
    shown.add_argument("-v", "--verbose", action="store_true", default=flag_default,
                       help="log every call (and zeep's) on stderr")


def _waiting(parser: argparse.ArgumentParser, interval: float, what: str,
             first_poll: bool) -> None:
    parser.add_argument("--wait", type=_seconds, default=120.0,
                        help=f"seconds to wait for the {what} (default 120)")
    parser.add_argument("--poll-interval", type=_seconds, default=interval,
                        help=f"seconds between polls (default {interval:g})")
    if first_poll:
        parser.add_argument("--first-poll-after", type=_seconds, default=FIRST_POLL_AFTER,
                            help="seconds to wait after closing a period before asking for "
                                 f"its report (default {FIRST_POLL_AFTER:g})")


def _version() -> str:
    try:
        return metadata.version("seqr-emulator")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqr-client",
        description="The SEQR reference client: terminals, payments, periods, reports and "
                    "reconciliation against a SEQR endpoint (ours or the real one).",
        epilog="Exit codes: 0 done / everything matches, 1 discrepancies (pay: not paid), "
               "2 errors.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _common(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _common(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., int], help_text: str
                ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        return cmd

    cmd = command("register-terminal", cmd_register_terminal,
                  "register a till (as the shop's RESELLERUSER); prints its terminalId")
    cmd.add_argument("external_id", metavar="EXTERNAL_ID",
                     help='the register\'s own label, e.g. "Store 111/Till 4"')
    cmd.add_argument("--terminal-password",
                     help="the new till's password, 4+ characters [SEQR_TERMINAL_PASSWORD]")
    cmd.add_argument("--name", help="name shown on the buyer's phone (default: EXTERNAL_ID)")

    cmd = command("assign-seqr-id", cmd_assign_seqr_id,
                  "link this terminal (TERMINALID credentials) to the QR sticker at its till")
    cmd.add_argument("seqr_id", metavar="SEQR_ID", help="letters and digits")

    cmd = command("pay", cmd_pay,
                  "send an invoice and wait for the buyer: exit 0 PAID, 1 not paid")
    cmd.add_argument("amount", metavar="AMOUNT", type=_amount, help="e.g. 25.00")
    cmd.add_argument("--currency", default="SEK", help="ISO 4217 (default SEK)")
    cmd.add_argument("--cashier", help="cashierId, as the reports will show it")
    cmd.add_argument("--title", help="invoice title shown to the buyer")
    cmd.add_argument("--client-invoice-id", help="the register's own invoice id")
    _waiting(cmd, PAYMENT_POLL_INTERVAL, "buyer (then the invoice is canceled)", False)

    cmd = command("status", cmd_status, "an invoice's payment status")
    cmd.add_argument("invoice_reference", metavar="INVOICE_REFERENCE")
    cmd.add_argument("--version", type=int, default=0,
                     help="the last invoice version seen (default 0)")

    cmd = command("cancel", cmd_cancel, "cancel an unpaid invoice")
    cmd.add_argument("invoice_reference", metavar="INVOICE_REFERENCE")

    cmd = command("refund", cmd_refund, "refund (part of) a payment; prints the refund's "
                                        "ersReference")
    cmd.add_argument("ers_reference", metavar="ERS_REFERENCE", help="the payment's")
    cmd.add_argument("amount", metavar="AMOUNT", type=_amount)
    cmd.add_argument("--currency", default="SEK", help="the payment's currency (default SEK)")
    cmd.add_argument("--cashier", help="cashierId of the refund")

    cmd = command("close-period", cmd_close_period,
                  "close the shop's (or --terminal's) transaction period; prints its id")
    cmd.add_argument("--terminal", metavar="TERMINAL_ID",
                     help="close this terminal's period only (a till's own by default)")

    cmd = command("report", cmd_report, "fetch a STD_RECON report, waiting while it is "
                                        "generated")
    cmd.add_argument("report_id", metavar="REPORT_ID", type=_report_id,
                     help="STD_RECON_001..004, 006, 007 (or 3, 003, "
                          "Reconciliation/STD_RECON_003.xml)")
    cmd.add_argument("--period", required=True, metavar="PERIOD_ID",
                     help="the transactionPeriodId close-period printed")
    cmd.add_argument("--terminal", metavar="TERMINAL_ID",
                     help="for STD_RECON_006/007 on a shop period")
    cmd.add_argument("--format", choices=REPORT_FORMATS,
                     help="table (default), xml (the document as sent), json or csv; "
                          "-o picks it from the file's extension")
    cmd.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE")
    _waiting(cmd, REPORT_POLL_INTERVAL, "report", True)

    cmd = command("reconcile", cmd_reconcile,
                  "close the period (or take --period), fetch its detail report and compare "
                  "it with the register's journal: exit 0 match, 1 discrepancies, 2 errors")
    cmd.add_argument("--journal", required=True, type=Path, metavar="FILE.csv",
                     help="CSV: ersReference,terminalId,cashierId,amount,type (sale|refund)")
    cmd.add_argument("--terminal", metavar="TERMINAL_ID",
                     help="a terminal period (STD_RECON_007); default: the shop (003), "
                          "or the till these credentials are")
    which = cmd.add_mutually_exclusive_group()
    which.add_argument("--period", metavar="PERIOD_ID", help="an already closed period")
    which.add_argument("--close", action="store_true",
                       help="close the current period first (the default)")
    cmd.add_argument("--tolerance", type=_tolerance, default=Decimal(0), metavar="AMOUNT",
                     help="accepted difference per transaction (default 0)")
    cmd.add_argument("--format", choices=(*OWN_FORMATS, *BACKOFFICE_FORMATS), default=None,
                     help="table (default), json, or a back-office output: "
                          + ", ".join(BACKOFFICE_FORMATS))
    add_backoffice_options(cmd, reconcile=True)
    _waiting(cmd, REPORT_POLL_INTERVAL, "report", True)

    cmd = command("export", cmd_export,
                  "a closed period (--period) or the current one (--close) in a back-office "
                  "format that needs no journal")
    cmd.add_argument("--format", required=True, choices=BACKOFFICE_FORMATS,
                     help="sharespine-zreport, sharespine-settlement or sharespine-events "
                          "(html, pdf and hii-recount compare with a journal: reconcile)")
    cmd.add_argument("--terminal", metavar="TERMINAL_ID",
                     help="a terminal period (STD_RECON_007); default: the shop (003), "
                          "or the till these credentials are")
    which = cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--period", metavar="PERIOD_ID", help="an already closed period")
    which.add_argument("--close", action="store_true", help="close the current period first")
    add_backoffice_options(cmd, reconcile=False)
    _waiting(cmd, REPORT_POLL_INTERVAL, "report", True)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current sys.stderr (a live spinner swaps it for its own)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _configure_logging(verbose: bool, quiet: bool) -> None:
    handler = _StderrHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("seqr-client: %(message)s"))
    redact.install(handler)  # -v shows every SOAP envelope: never the passwords in them
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """The command's exit code. A closed stdout or stderr (`| head -1`) does not change it."""
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PipeSafe(sys.stdout), PipeSafe(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = real


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(quiet=args.quiet, json_mode=args.json)
    _configure_logging(args.verbose, args.quiet)
    try:
        client = make_client(args)
        code: int = args.handler(args, client, out)
        return code
    except SeqrClientError as error:
        out.error(error)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("seqr-client: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the promise: never a traceback
        log.debug("unexpected error", exc_info=True)
        out.error(SeqrClientError(f"unexpected {type(error).__name__}: {error}",
                                  "run again with --verbose and report the output"))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
