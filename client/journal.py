"""The register's own journal: a CSV file of the transactions it saw in a period.

    ersReference,terminalId,cashierId,amount,type
    2026052112000000000000001,2469e0bf14214797880cafb0eda1b535,anna,25.00,sale
    2026052112000000000000003,2469e0bf14214797880cafb0eda1b535,anna,5.00,refund

- `ersReference`: the payment's ersReference (getPaymentStatus when PAID), or the refund's
  (what refundPayment answered): 25 digits. Unique within the file.
- `terminalId`: the 32-hex terminalId of the till (upper case is read as lower case).
- `cashierId`: may be empty (or `NULL`): no cashier.
- `amount`: a decimal, positive; `type` (`sale` or `refund`) gives the sign. A refund may
  also be written negative (`-5.00`); a negative sale is an error. A decimal comma
  (`12,50`, as Swedish tills export) is read as `12.50` when the file's columns are
  separated by `;` or tabs, or when the field is quoted; thousands separators are refused.
- `currency` (optional column): ISO 4217, e.g. `SEK`; empty or absent: the run's currency
  (SEQR's reports name none, so the back-office formats take it from here or a flag).

The columns are separated by `,`, `;` or a tab: the header line decides which (the one that
splits it into the five column names). Columns may come in any order; other columns are
ignored; blank lines are skipped. An error names the line and what is wrong with it.
"""

import csv
import io
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from client.errors import JournalError

COLUMNS = ("ersReference", "terminalId", "cashierId", "amount", "type")
CURRENCY = "currency"  # an optional column
SALE = "sale"
REFUND = "refund"


@dataclass(frozen=True)
class JournalEntry:
    ers_reference: str
    terminal_id: str
    cashier_id: str | None
    amount: Decimal  # signed as in the reports: a refund is negative
    kind: str  # "sale" | "refund"
    line: int = 0
    currency: str | None = None  # None: the run's currency


def read_journal(path: str | Path) -> list[JournalEntry]:
    """The entries of the journal file at `path` (UTF-8, a BOM is fine)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise JournalError(f"cannot read the journal {path}: {error.strerror or error}",
                           "check the --journal path") from error
    except UnicodeDecodeError as error:
        raise JournalError(f"the journal {path} is not UTF-8 text",
                           "save the journal as UTF-8 CSV") from error
    return parse_journal(io.StringIO(text), str(path))


def parse_journal(lines: Iterable[str], source: str = "journal") -> list[JournalEntry]:
    rest = iter(lines)
    first = next(rest, None)
    if first is None or not first.strip():
        raise JournalError(f"{source}: empty file", _FORMAT_HINT)
    delimiter, header = _delimiter(first, source)
    reader = csv.reader(itertools.chain([first], rest), delimiter=delimiter)
    next(reader)
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    needed = max(index[c.lower()] for c in COLUMNS) + 1
    entries: list[JournalEntry] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(header) or len(record) < needed:
            raise JournalError(_field_count(record, header, index, delimiter, source, line),
                               _FORMAT_HINT)
        values = {name: record[index[name.lower()]].strip() for name in COLUMNS}
        if CURRENCY in index and index[CURRENCY] < len(record):
            values[CURRENCY] = record[index[CURRENCY]].strip()
        entry = _entry(values, line, source)
        if entry.ers_reference in seen:
            raise JournalError(f"{source}: line {line}: ersReference {entry.ers_reference} "
                               f"again (first on line {seen[entry.ers_reference]})",
                               "each transaction has one line in the journal")
        seen[entry.ers_reference] = line
        entries.append(entry)
    return entries


_FORMAT_HINT = ("a journal is CSV with the header "
                "ersReference,terminalId,cashierId,amount,type (see the README)")
_DELIMITERS = {",": "','", ";": "';'", "\t": "a tab"}
_ERS_REFERENCE = re.compile(r"^[0-9]{25}$")
_TERMINAL_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_POINT = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_COMMA = re.compile(r"^[+-]?[0-9]+,[0-9]+$")


def _delimiter(first: str, source: str) -> tuple[str, list[str]]:
    """The delimiter that splits the header line into the journal's columns, and the header."""
    wanted = {c.lower() for c in COLUMNS}
    best: tuple[tuple[int, int], str, list[str]] | None = None
    for delimiter in _DELIMITERS:
        header = next(csv.reader([first], delimiter=delimiter))
        found = {name.strip().lower() for name in header}
        if wanted <= found:
            return delimiter, header
        score = (len(wanted & found), len(header))  # the most known names, then columns
        if best is None or score > best[0]:
            best = (score, delimiter, header)
    assert best is not None
    _, delimiter, header = best
    names = {name.strip().lower() for name in header}
    missing = [c for c in COLUMNS if c.lower() not in names]
    shown = ", ".join(repr(name.strip()) for name in header[:8]) + (
        ", ..." if len(header) > 8 else "")
    raise JournalError(
        f"{source}: line 1: missing column(s) {', '.join(missing)} (the header has "
        f"{len(header)} column(s) when split at {_DELIMITERS[delimiter]}: {shown})",
        _FORMAT_HINT + "; columns separated by ',', ';' or a tab")


def _field_count(record: list[str], header: list[str], index: dict[str, int], delimiter: str,
                 source: str, line: int) -> str:
    """Why a line has more (or fewer) fields than the header has columns."""
    where = f"{source}: line {line}: {len(record)} fields, the header has {len(header)} columns"
    at = index["amount"]
    if delimiter == "," and len(record) > len(header) and at + 1 < len(record) and \
            record[at].strip().lstrip("+-").isdigit() and record[at + 1].strip().isdigit():
        amount = f"{record[at].strip()},{record[at + 1].strip()}"
        return (f"{where}: the amount {amount!r} looks written with a decimal comma, which "
                "also separates the columns: write it with a point (12.50), quote it "
                "(\"12,50\"), or separate the columns with ';'")
    return f"{where}: a value with the separator {_DELIMITERS[delimiter]} in it must be quoted"


def _amount(text: str, where: str) -> Decimal:
    plain = text.replace(",", ".") if _COMMA.match(text) else text
    if not _POINT.match(plain):
        why = "thousands separators are not allowed" if "," in text and "." in text else \
            "not a decimal like 25.00"
        raise JournalError(f"{where}: amount {text!r}: {why}", _FORMAT_HINT)
    amount = Decimal(plain)
    if amount == 0:
        raise JournalError(f"{where}: amount {text!r} is zero: a transaction moves money",
                           _FORMAT_HINT)
    return amount


def _entry(cell: dict[str, str], line: int, source: str) -> JournalEntry:
    where = f"{source}: line {line}"
    reference = cell["ersReference"]
    if not reference:
        raise JournalError(f"{where}: no ersReference", _FORMAT_HINT)
    if not _ERS_REFERENCE.match(reference):
        hint = ("a spreadsheet turned it into a number: format the column as text and export "
                "again") if re.search(r"[eE][+]?[0-9]+$", reference) else (
                "give the ersReference getPaymentStatus (PAID) or refundPayment answered")
        raise JournalError(f"{where}: ersReference {reference!r} cannot be SEQR's: SEQR's are "
                           "25 digits", hint)
    terminal = cell["terminalId"]
    if not terminal:
        raise JournalError(f"{where}: no terminalId", _FORMAT_HINT)
    if not _TERMINAL_ID.match(terminal):
        raise JournalError(f"{where}: terminalId {terminal!r} cannot be SEQR's: SEQR's are 32 "
                           "hexadecimal characters",
                           "give the terminalId register-terminal printed, not the till's own "
                           "label")
    kind = cell["type"].lower()
    if kind not in (SALE, REFUND):
        raise JournalError(f"{where}: type {cell['type']!r}, expected sale or refund",
                           _FORMAT_HINT)
    text = cell["amount"]
    amount = _amount(text, where)
    if kind == SALE and amount < 0:
        raise JournalError(f"{where}: a sale of {text}: sales are positive; "
                           "write a refund as type refund", _FORMAT_HINT)
    cashier = cell["cashierId"]
    currency = cell.get(CURRENCY, "").upper() or None
    if currency is not None and not (len(currency) == 3 and currency.isalpha()
                                     and currency.isascii()):
        raise JournalError(f"{where}: currency {cell[CURRENCY]!r} is not an ISO 4217 code "
                           "like SEK", _FORMAT_HINT)
    return JournalEntry(
        ers_reference=reference, terminal_id=terminal.lower(),
        cashier_id=None if cashier in ("", "NULL") else cashier,
        amount=-abs(amount) if kind == REFUND else amount, kind=kind, line=line,
        currency=currency,
    )
