"""Compare a register's journal with SEQR's detail report (STD_RECON_003 or 007).

Rows are matched by ersReference. A reference in the journal only is *missing in SEQR*; one
in the report only is *missing in the register*; one in both whose amounts differ by more
than the tolerance is an *amount mismatch* (refunds are negative on both sides), and one
whose terminal or cashier differs a *terminal* / *cashier mismatch*. Beside the rows: the
expected (journal) and actual (report) count and total, per period, terminal and cashier.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from client.journal import JournalEntry
from client.reports import DetailRow, ReportDocument

ZERO = Decimal(0)
CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """An amount as text: two decimals when that loses nothing (`93.31000` -> `93.31`),
    all of them otherwise (`0.00001`); never `-0.00`."""
    if value == 0:
        return "0.00"
    quantized = value.quantize(CENT)
    return str(quantized) if quantized == value else str(value.normalize())


@dataclass(frozen=True)
class Tally:
    count: int = 0
    total: Decimal = ZERO

    def add(self, amount: Decimal) -> "Tally":
        return Tally(self.count + 1, self.total + amount)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "total": money(self.total)}


@dataclass(frozen=True)
class Match:
    entry: JournalEntry
    row: DetailRow


@dataclass(frozen=True)
class AmountMismatch:
    entry: JournalEntry
    row: DetailRow

    @property
    def expected(self) -> Decimal:
        return self.entry.amount

    @property
    def actual(self) -> Decimal:
        return self.row.amount

    @property
    def difference(self) -> Decimal:
        return self.row.amount - self.entry.amount


@dataclass(frozen=True)
class FieldMismatch:
    """The same ersReference with another terminalId / cashierId in the report."""

    ers_reference: str
    expected: str | None
    actual: str | None


@dataclass(frozen=True)
class GroupTally:
    """Expected (journal) vs actual (report) for one terminal or cashier (None: no cashier)."""

    key: str | None
    expected: Tally
    actual: Tally

    @property
    def difference_count(self) -> int:
        return self.actual.count - self.expected.count

    @property
    def difference_total(self) -> Decimal:
        return self.actual.total - self.expected.total

    def as_dict(self, name: str) -> dict[str, Any]:
        return {
            name: self.key, "expected": self.expected.as_dict(),
            "actual": self.actual.as_dict(),
            "difference": {"count": self.difference_count,
                           "total": money(self.difference_total)},
        }


@dataclass(frozen=True)
class Reconciliation:
    tolerance: Decimal
    matched: tuple[Match, ...]
    missing_in_seqr: tuple[JournalEntry, ...]
    missing_in_register: tuple[DetailRow, ...]
    amount_mismatches: tuple[AmountMismatch, ...]
    terminal_mismatches: tuple[FieldMismatch, ...]
    cashier_mismatches: tuple[FieldMismatch, ...]
    expected: Tally
    actual: Tally
    by_terminal: tuple[GroupTally, ...]
    by_cashier: tuple[GroupTally, ...]
    period_id: str | None = None
    report_id: str | None = None
    terminal_id: str | None = None
    entries: tuple[JournalEntry, ...] = ()  # the journal lines compared (of the terminal)
    rows: tuple[DetailRow, ...] = ()  # the report rows compared (of the terminal)

    @property
    def discrepancy_count(self) -> int:
        return (len(self.missing_in_seqr) + len(self.missing_in_register)
                + len(self.amount_mismatches) + len(self.terminal_mismatches)
                + len(self.cashier_mismatches))

    @property
    def is_clean(self) -> bool:
        return self.discrepancy_count == 0

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of `seqr-client reconcile --format json` (see README)."""
        return {
            "result": "match" if self.is_clean else "discrepancies",
            "transactionPeriodId": self.period_id,
            "reportId": self.report_id,
            "terminalId": self.terminal_id,
            "tolerance": money(self.tolerance),
            "expected": self.expected.as_dict(),
            "actual": self.actual.as_dict(),
            "difference": {"count": self.actual.count - self.expected.count,
                           "total": money(self.actual.total - self.expected.total)},
            "matched": len(self.matched),
            "discrepancies": self.discrepancy_count,
            "missingInSeqr": [_entry_dict(e) for e in self.missing_in_seqr],
            "missingInRegister": [_row_dict(r) for r in self.missing_in_register],
            "amountMismatches": [
                {"ersReference": m.row.ers_reference, "terminalId": m.row.terminal_id,
                 "cashierId": m.row.cashier_id, "expected": money(m.expected),
                 "actual": money(m.actual), "difference": money(m.difference)}
                for m in self.amount_mismatches
            ],
            "terminalMismatches": [_field_dict(m) for m in self.terminal_mismatches],
            "cashierMismatches": [_field_dict(m) for m in self.cashier_mismatches],
            "byTerminal": [g.as_dict("terminalId") for g in self.by_terminal],
            "byCashier": [g.as_dict("cashierId") for g in self.by_cashier],
            "matching": self.matching(),
        }

    def matching(self) -> dict[str, int]:
        """The counts in MPAC's matching words: matched; unmatched (in the register, not in
        SEQR); missing (in SEQR, not in the register); amount discrepancies."""
        return {"matched": len(self.matched), "unmatched": len(self.missing_in_seqr),
                "missing": len(self.missing_in_register),
                "amountDiscrepancies": len(self.amount_mismatches)}


def reconcile(journal: Sequence[JournalEntry], report: ReportDocument | Iterable[DetailRow],
              tolerance: Decimal = ZERO, *, terminal_id: str | None = None) -> Reconciliation:
    """Compare `journal` with the detail rows of `report`. With `terminal_id` (or a
    per-terminal report), the rows of other terminals are left out on both sides."""
    if tolerance < 0:
        raise ValueError("the tolerance cannot be negative")
    if isinstance(report, ReportDocument):
        if not report.kind.details:
            raise ValueError(f"{report.report_id} is a summary; reconcile needs a detail "
                             "report (STD_RECON_003 or STD_RECON_007)")
        rows: list[DetailRow] = list(report.details)
        period_id, report_id = report.period_id, report.report_id
        terminal_id = terminal_id or report.terminal_id
    else:
        rows, period_id, report_id = list(report), None, None
    entries = [e for e in journal if terminal_id is None or e.terminal_id == terminal_id]
    rows = [r for r in rows if terminal_id is None or r.terminal_id == terminal_id]
    by_reference = {row.ers_reference: row for row in rows}
    in_journal = {e.ers_reference for e in entries}

    matched: list[Match] = []
    missing_in_seqr: list[JournalEntry] = []
    amounts: list[AmountMismatch] = []
    terminals: list[FieldMismatch] = []
    cashiers: list[FieldMismatch] = []
    for entry in entries:
        row = by_reference.get(entry.ers_reference)
        if row is None:
            missing_in_seqr.append(entry)
            continue
        clean = True
        if abs(row.amount - entry.amount) > tolerance:
            amounts.append(AmountMismatch(entry, row))
            clean = False
        if row.terminal_id != entry.terminal_id:
            terminals.append(FieldMismatch(entry.ers_reference, entry.terminal_id,
                                           row.terminal_id))
            clean = False
        if row.cashier_id != entry.cashier_id:
            cashiers.append(FieldMismatch(entry.ers_reference, entry.cashier_id,
                                          row.cashier_id))
            clean = False
        if clean:
            matched.append(Match(entry, row))
    missing_in_register = [r for r in rows if r.ers_reference not in in_journal]

    return Reconciliation(
        tolerance=tolerance,
        matched=tuple(matched),
        missing_in_seqr=tuple(missing_in_seqr),
        missing_in_register=tuple(missing_in_register),
        amount_mismatches=tuple(amounts),
        terminal_mismatches=tuple(terminals),
        cashier_mismatches=tuple(cashiers),
        expected=_tally(e.amount for e in entries),
        actual=_tally(r.amount for r in rows),
        by_terminal=_groups([(e.terminal_id, e.amount) for e in entries],
                            [(r.terminal_id, r.amount) for r in rows]),
        by_cashier=_groups([(e.cashier_id, e.amount) for e in entries],
                           [(r.cashier_id, r.amount) for r in rows]),
        period_id=period_id,
        report_id=report_id,
        terminal_id=terminal_id,
        entries=tuple(entries),
        rows=tuple(rows),
    )


def _tally(amounts: Iterable[Decimal]) -> Tally:
    tally = Tally()
    for amount in amounts:
        tally = tally.add(amount)
    return tally


def _groups(expected: list[tuple[str | None, Decimal]],
            actual: list[tuple[str | None, Decimal]]) -> tuple[GroupTally, ...]:
    sides: dict[str | None, list[Tally]] = defaultdict(lambda: [Tally(), Tally()])
    for key, amount in expected:
        sides[key][0] = sides[key][0].add(amount)
    for key, amount in actual:
        sides[key][1] = sides[key][1].add(amount)
    order = sorted(sides, key=lambda k: (k is None, k or ""))
    return tuple(GroupTally(k, *sides[k]) for k in order)


def _entry_dict(entry: JournalEntry) -> dict[str, Any]:
    return {"ersReference": entry.ers_reference, "terminalId": entry.terminal_id,
            "cashierId": entry.cashier_id, "amount": money(entry.amount), "type": entry.kind,
            "line": entry.line}


def _row_dict(row: DetailRow) -> dict[str, Any]:
    return {"ersReference": row.ers_reference, "terminalId": row.terminal_id,
            "cashierId": row.cashier_id, "amount": money(row.amount),
            "type": "refund" if row.is_refund else "sale"}


def _field_dict(mismatch: FieldMismatch) -> dict[str, Any]:
    return {"ersReference": mismatch.ers_reference, "expected": mismatch.expected,
            "actual": mismatch.actual}
