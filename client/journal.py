"""The register's own journal: a CSV file of the transactions it saw in a period.

    ersReference,terminalId,cashierId,amount,type
    2026052112000000000000001,2469e0bf14214797880cafb0eda1b535,anna,25.00,sale
    2026052112000000000000003,2469e0bf14214797880cafb0eda1b535,anna,5.00,refund

- `ersReference`: the payment's ersReference (getPaymentStatus when PAID), or the refund's
  (what refundPayment answered). Unique within the file.
- `terminalId`: the 32-hex terminalId of the till.
- `cashierId`: may be empty (or `NULL`): no cashier.
- `amount`: a decimal with a point, positive; `type` (`sale` or `refund`) gives the sign. A
  refund may also be written negative (`-5.00`); a negative sale is an error.
- `currency` (optional column): ISO 4217, e.g. `SEK`; empty or absent: the run's currency
  (SEQR's reports name none, so the back-office formats take it from here or a flag).

Columns may come in any order; other columns are ignored; blank lines are skipped.
"""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
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
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise JournalError(f"{source}: empty file", _FORMAT_HINT)
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in COLUMNS if c.lower() not in index]
    if missing:
        raise JournalError(f"{source}: line 1: missing column(s) {', '.join(missing)}",
                           _FORMAT_HINT)
    entries: list[JournalEntry] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        values = {
            name: record[index[name.lower()]].strip() if index[name.lower()] < len(record)
            else "" for name in COLUMNS
        }
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


def _entry(cell: dict[str, str], line: int, source: str) -> JournalEntry:
    where = f"{source}: line {line}"
    reference = cell["ersReference"]
    if not reference:
        raise JournalError(f"{where}: no ersReference", _FORMAT_HINT)
    terminal = cell["terminalId"]
    if not terminal:
        raise JournalError(f"{where}: no terminalId", _FORMAT_HINT)
    kind = cell["type"].lower()
    if kind not in (SALE, REFUND):
        raise JournalError(f"{where}: type {cell['type']!r}, expected sale or refund",
                           _FORMAT_HINT)
    text = cell["amount"]
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or "e" in text.lower() or amount == 0:
        raise JournalError(f"{where}: amount {text!r} is not a non-zero decimal like 25.00",
                           _FORMAT_HINT)
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
        ers_reference=reference, terminal_id=terminal,
        cashier_id=None if cashier in ("", "NULL") else cashier,
        amount=-abs(amount) if kind == REFUND else amount, kind=kind, line=line,
        currency=currency,
    )
