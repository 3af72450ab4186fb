"""What the CLI shows: results on stdout (text, rich tables or JSON), progress on stderr.

While it waits the CLI shows a live spinner with the elapsed time and the poll count when
stderr is a terminal, a plain line whenever the state changes when it is not (a log file or
CI gets the changes, not a line a second), and nothing with --quiet.

A closed stdout or stderr (`seqr-client ... | head -1`) silences the rest of the output: the
command still finishes and exits with its own code, as Unix tools do.
"""

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from client.errors import SeqrClientError, SeqrError
from client.reconcile import Reconciliation, money
from client.reports import DetailRow, ReportDocument, SummaryRow
from client.results import PaymentStatus, Poll
from client.service import OnPoll

PLAIN_WIDTH = 160  # tables written to a file or a pipe: wide enough for ids not to wrap


class PipeSafe:
    """A stream (stdout, stderr, or their binary `buffer`) that a closed pipe silences.

    When the reader goes away (`| head -1`) the first failed write points the descriptor at
    /dev/null, so that nothing later (not even the interpreter's last flush) fails, and every
    write after that is dropped. The command runs to its end and keeps its exit code."""

    def __init__(self, stream: Any, owner: "PipeSafe | None" = None) -> None:
        self._stream = stream
        self._owner = owner

    @property
    def broken(self) -> bool:
        return self._owner.broken if self._owner is not None else bool(
            self.__dict__.get("_broken"))

    def _break(self) -> None:
        if self._owner is not None:
            self._owner._break()
            return
        self.__dict__["_broken"] = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real descriptor: drop writes
            pass

    def write(self, data: Any) -> int:
        if not self.broken:
            try:
                return int(self._stream.write(data))
            except BrokenPipeError:
                self._break()
        return len(data)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._break()

    @property
    def buffer(self) -> "PipeSafe":
        return PipeSafe(self._stream.buffer, owner=self)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


class Output:
    def __init__(self, *, quiet: bool = False, json_mode: bool = False,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.quiet = quiet
        self.json_mode = json_mode
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr

    # --- stderr: notes and progress ------------------------------------------------------

    def note(self, text: str) -> None:
        """A line for the person watching (stderr); none with --quiet."""
        if not self.quiet:
            print(f"seqr-client: {text}", file=self.err, flush=True)

    @contextmanager
    def waiting(self, label: str) -> Iterator[OnPoll]:
        """A callback for the client's polls that shows them, as the terminal allows."""
        if self.quiet:
            yield lambda poll: None
        elif _isatty(self.err):
            with _Spinner(Console(file=self.err), label) as spinner:
                yield spinner.update
        else:
            shown: list[str] = []

            def line(poll: Poll) -> None:  # a log (CI, a file) gets the changes, not every poll
                if shown and shown[-1] == poll.state:
                    return
                shown.append(poll.state)
                when = f" (poll {poll.count}, {poll.elapsed:.1f} s elapsed)" if poll.count \
                    else ""
                print(f"seqr-client: {label}: {poll.state}{when}", file=self.err, flush=True)

            yield line

    def error(self, error: SeqrClientError) -> None:
        """An error for people (stderr, always) and, with --json, for scripts (stdout)."""
        print(f"seqr-client: error: {error.message}", file=self.err)
        if error.hint:
            print(f"seqr-client: what to do: {error.hint}", file=self.err)
        self.err.flush()
        if self.json_mode:
            self.json({"error": error_dict(error)})

    # --- stdout: results -----------------------------------------------------------------

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def json(self, value: Any, file: TextIO | None = None) -> None:
        target = file or self.out
        json.dump(value, target, indent=2, ensure_ascii=False)
        target.write("\n")
        target.flush()

    def console(self, file: TextIO | None = None) -> Console:
        target = file or self.out
        width = None if _isatty(target) else int(os.environ.get("COLUMNS") or PLAIN_WIDTH)
        return Console(file=target, width=width, highlight=False, soft_wrap=False)

    def fields(self, pairs: list[tuple[str, Any]]) -> None:
        """`name   value` lines, the names padded to one column."""
        shown = [(k, v) for k, v in pairs if v is not None]
        width = max((len(k) for k, _ in shown), default=0)
        for key, value in shown:
            self.line(f"{key.ljust(width)}  {value}")


def error_dict(error: SeqrClientError) -> dict[str, Any]:
    """The `error` object of --json output."""
    if isinstance(error, SeqrError):
        return {"code": error.code, "name": error.name, "operation": error.operation or None,
                "message": error.message, "hint": error.hint}
    return {"code": None, "name": _snake(type(error).__name__), "operation": None,
            "message": error.message, "hint": error.hint}


def _snake(name: str) -> str:
    name = name.removesuffix("Error") or name
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Spinner:
    def __init__(self, console: Console, label: str) -> None:
        # what matters first, so that a narrow terminal only cuts the label short
        self.progress = Progress(
            SpinnerColumn(), TimeElapsedColumn(table_column=Column(no_wrap=True, min_width=7)),
            TextColumn("poll {task.fields[polls]}", table_column=Column(no_wrap=True)),
            TextColumn("[bold]{task.fields[state]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.description}", table_column=Column(
                ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console, transient=True,
        )
        self.task = self.progress.add_task(label, total=None, state="waiting", polls=0)

    def __enter__(self) -> "_Spinner":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, poll: Poll) -> None:
        self.progress.update(self.task, state=poll.state, polls=poll.count)


# --- payments ----------------------------------------------------------------------------

def payment_dict(status: PaymentStatus) -> dict[str, Any]:
    """The JSON of `pay` and `status`."""
    receipt = status.receipt
    return {
        "invoiceReference": status.invoice_reference,
        "status": status.status,
        "version": status.version,
        "ersReference": status.ers_reference,
        "receipt": None if receipt is None else {
            "terminalId": receipt.terminal_id,
            "paymentDate": receipt.payment_date.isoformat() if receipt.payment_date else None,
            "paymentReference": receipt.payment_reference,
            "invoiceReference": receipt.invoice_reference,
            "clientInvoiceId": receipt.client_invoice_id,
            "payerTerminalId": receipt.payer_terminal_id,
            "receiverName": receipt.receiver_name,
            "amount": money(receipt.amount) if receipt.amount is not None else None,
            "currency": receipt.currency,
            "cashierId": receipt.cashier_id,
        },
    }


def show_payment(output: Output, status: PaymentStatus) -> None:
    if output.json_mode:
        output.json(payment_dict(status))
        return
    receipt = status.receipt
    pairs: list[tuple[str, Any]] = [
        ("status", status.status), ("invoiceReference", status.invoice_reference),
        ("version", status.version), ("ersReference", status.ers_reference),
    ]
    if receipt is not None:
        amount = f"{money(receipt.amount)} {receipt.currency or ''}".strip() \
            if receipt.amount is not None else None
        pairs += [
            ("amount", amount), ("cashierId", receipt.cashier_id),
            ("paymentDate", receipt.payment_date.isoformat() if receipt.payment_date else None),
            ("terminalId", receipt.terminal_id), ("receiverName", receipt.receiver_name),
        ]
    output.fields(pairs)


# --- reports -----------------------------------------------------------------------------

def _cashier(value: str | None) -> str:
    return "NULL" if value is None else value


def report_columns(report: ReportDocument) -> list[str]:
    if report.kind.details:
        return ["TerminalId", "CashierId", "SalesAmount", "ErsReference"]
    first = report.rows[0] if report.rows else None
    names = []
    if report.report_id == "STD_RECON_002" or (first is not None and first.terminal_id):
        names.append("TerminalId")
    if report.report_id == "STD_RECON_004":
        names.append("CashierId")
    return [*names, "SalesCount", "SalesTotal", "RefundCount", "RefundTotal"]


def report_values(report: ReportDocument) -> list[list[str]]:
    """The rows as the document prints them (amounts with their five decimals, NULL)."""
    columns = report_columns(report)
    values = []
    for row in report.rows:
        if isinstance(row, DetailRow):
            values.append([row.terminal_id, _cashier(row.cashier_id), str(row.amount),
                           row.ers_reference])
        else:
            assert isinstance(row, SummaryRow)
            cells = {"TerminalId": row.terminal_id or "", "CashierId": _cashier(row.cashier_id),
                     "SalesCount": str(row.sales_count), "SalesTotal": str(row.sales_total),
                     "RefundCount": str(row.refund_count),
                     "RefundTotal": str(row.refund_total)}
            values.append([cells[c] for c in columns])
    return values


def report_dict(report: ReportDocument) -> dict[str, Any]:
    """The JSON of `report --format json`: Meta, rows and totals; amounts as strings with
    the document's five decimals, a NULL cashier as null."""
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        if isinstance(row, DetailRow):
            rows.append({"terminalId": row.terminal_id, "cashierId": row.cashier_id,
                         "salesAmount": str(row.amount), "ersReference": row.ers_reference})
        else:
            item: dict[str, Any] = {}
            if report.report_id == "STD_RECON_002" or row.terminal_id:
                item["terminalId"] = row.terminal_id
            if report.report_id == "STD_RECON_004":
                item["cashierId"] = row.cashier_id
            item.update(salesCount=row.sales_count, salesTotal=str(row.sales_total),
                        refundCount=row.refund_count, refundTotal=str(row.refund_total))
            rows.append(item)
    totals = report.totals
    return {
        "reportId": report.report_id,
        "name": report.kind.name,
        "title": report.title,
        "transactionPeriodId": report.period_id,
        "resellerId": report.reseller_id,
        "terminalId": report.terminal_id,
        "generatedAt": report.generated_at.isoformat() if report.generated_at else None,
        "rows": rows,
        "totals": {"salesCount": totals.sales_count, "salesTotal": str(totals.sales_total),
                   "refundCount": totals.refund_count, "refundTotal": str(totals.refund_total),
                   "netTotal": str(totals.net_total)},
    }


def write_report(output: Output, report: ReportDocument, fmt: str,
                 path: Path | None = None) -> None:
    """`report` as `fmt` (xml: the document byte for byte; json; csv; table) to the file at
    `path`, or to stdout."""
    if path is not None:
        if fmt == "xml":
            path.write_bytes(report.content)
            return
        with path.open("w", encoding="utf-8", newline="") as file:
            _write_text(output, report, fmt, file)
        return
    if fmt == "xml":
        output.out.flush()
        buffer = getattr(output.out, "buffer", None)
        if buffer is not None:
            buffer.write(report.content)
            buffer.flush()
        else:
            output.out.write(report.content.decode("utf-8"))
        return
    _write_text(output, report, fmt, output.out)


def _write_text(output: Output, report: ReportDocument, fmt: str, file: TextIO) -> None:
    if fmt == "json":
        output.json(report_dict(report), file)
    elif fmt == "csv":
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(report_columns(report))
        writer.writerows(report_values(report))
    else:
        _report_table(output.console(file), report)


def _report_table(console: Console, report: ReportDocument) -> None:
    scope = f"terminal {report.terminal_id}" if report.terminal_id else \
        f"shop {report.reseller_id}"
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC") if report.generated_at \
        else "?"
    console.print(f"{report.report_id} {report.kind.name}: period {report.period_id}, "
                  f"{scope}, generated {generated}")
    table = Table()
    columns = report_columns(report)
    for name in columns:
        numeric = name.startswith(("Sales", "Refund"))
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for values in report_values(report):
        table.add_row(*values)
    console.print(table)
    totals = report.totals
    console.print(f"Totals: sales {totals.sales_count} for {money(totals.sales_total)}, "
                  f"refunds {totals.refund_count} for {money(totals.refund_total)}, "
                  f"net {money(totals.net_total)}")


# --- reconciliation ----------------------------------------------------------------------

def show_reconciliation(output: Output, result: Reconciliation) -> None:
    if output.json_mode:
        output.json(result.as_dict())
        return
    console = output.console()
    scope = f"terminal {result.terminal_id}" if result.terminal_id else "the shop"
    console.print(f"Reconciliation of period {result.period_id} ({result.report_id}, "
                  f"{scope}), tolerance {money(result.tolerance)}")

    totals = Table(title="Register journal vs SEQR report")
    for name, justify in (("", "left"), ("count", "right"), ("total", "right")):
        totals.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    totals.add_row("register (expected)", str(result.expected.count),
                   money(result.expected.total))
    totals.add_row("SEQR (actual)", str(result.actual.count), money(result.actual.total))
    totals.add_row("difference", str(result.actual.count - result.expected.count),
                   money(result.actual.total - result.expected.total))
    console.print(totals)

    if not result.is_clean:
        table = Table(title="Discrepancies")
        for name in ("kind", "ersReference", "terminalId", "cashierId", "register", "SEQR",
                     "difference"):
            table.add_column(name, no_wrap=True,
                             justify="right" if name in ("register", "SEQR", "difference")
                             else "left")
        for entry in result.missing_in_seqr:
            table.add_row("missing in SEQR", entry.ers_reference, entry.terminal_id,
                          _cashier(entry.cashier_id), money(entry.amount), "-",
                          money(-entry.amount))
        for row in result.missing_in_register:
            table.add_row("missing in register", row.ers_reference, row.terminal_id,
                          _cashier(row.cashier_id), "-", money(row.amount), money(row.amount))
        for m in result.amount_mismatches:
            table.add_row("amount mismatch", m.row.ers_reference, m.row.terminal_id,
                          _cashier(m.row.cashier_id), money(m.expected), money(m.actual),
                          money(m.difference))
        for f in result.terminal_mismatches:
            table.add_row("terminal mismatch", f.ers_reference, f"{f.expected} -> {f.actual}",
                          "", "", "", "")
        for f in result.cashier_mismatches:
            table.add_row("cashier mismatch", f.ers_reference, "",
                          f"{_cashier(f.expected)} -> {_cashier(f.actual)}", "", "", "")
        console.print(table)

    for title, groups, name in (("Per terminal", result.by_terminal, "terminalId"),
                                ("Per cashier", result.by_cashier, "cashierId")):
        table = Table(title=title)
        for column in (name, "register count", "register total", "SEQR count", "SEQR total",
                       "difference"):
            table.add_column(column, no_wrap=True,
                             justify="left" if column == name else "right")
        for group in groups:
            table.add_row(_cashier(group.key), str(group.expected.count),
                          money(group.expected.total), str(group.actual.count),
                          money(group.actual.total), money(group.difference_total))
        console.print(table)

    if result.is_clean:
        console.print(f"MATCH: {len(result.matched)} transactions, net "
                      f"{money(result.actual.total)}, as in the register's journal")
    else:
        parts = [(len(result.missing_in_seqr), "missing in SEQR"),
                 (len(result.missing_in_register), "missing in the register"),
                 (len(result.amount_mismatches), "amount mismatch(es)"),
                 (len(result.terminal_mismatches), "terminal mismatch(es)"),
                 (len(result.cashier_mismatches), "cashier mismatch(es)")]
        console.print(f"DISCREPANCIES: {result.discrepancy_count} ("
                      + ", ".join(f"{n} {what}" for n, what in parts if n) + ")")
