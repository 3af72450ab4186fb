"""The settlement report a store manager signs off: one model, as HTML (Jinja2) or PDF.

What it shows (after MPAC SmartPOS's settlement report): the shop, the scope, the period
id, its time span and business date; expected (the register's journal) against actual
(SEQR) per currency, per terminal and per cashier, with sales and refunds (count and
amount) and the net, a difference beyond the review threshold flagged; the matching in
MPAC's words (matched; unmatched: in the register, not in SEQR; missing: in SEQR, not in the
register; amount discrepancies) and each discrepancy list; a status line (`reconciled` or
`discrepancies`), the notes and room for a signature.

`settlement_report()` builds the model; `render_html()` and `client.backoffice.pdf.render_pdf()`
lay the same model out, so both documents always say the same.
"""

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import jinja2

from client.backoffice.period import Flow, Period, Transaction, flows
from client.reconcile import money

RECONCILED = "reconciled"
DISCREPANCIES = "discrepancies"
REVIEW = "REVIEW"  # the flag on a difference beyond the threshold

FLOW_COLUMNS = ("", "Sales", "Sales amount", "Refunds", "Refunds amount", "Net", "")
FLOW_NUMERIC = (False, True, True, True, True, True, False)


@dataclass(frozen=True)
class Section:
    """A titled table. `flagged`: indexes of rows beyond the threshold; `subtotal`: rows
    that close a group (drawn with a rule under them)."""

    title: str
    columns: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str | None = None
    flagged: frozenset[int] = frozenset()
    subtotal: frozenset[int] = frozenset()
    widths: tuple[float, ...] | None = None  # relative column widths, for the PDF


@dataclass(frozen=True)
class SettlementReport:
    title: str
    facts: tuple[tuple[str, str], ...]
    status: str  # RECONCILED | DISCREPANCIES
    status_line: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...]
    generated_at: datetime
    period_id: str
    flagged_count: int = 0
    signature_lines: tuple[str, ...] = field(
        default=("Reconciled by (name)", "Signature", "Date"))


def settlement_report(period: Period, *, threshold: Decimal = Decimal(0),
                      notes: Sequence[str] = (), now: datetime | None = None
                      ) -> SettlementReport:
    """The settlement report of a reconciled `period`. A difference in amount larger than
    `threshold` (sales, refunds or net of a group) is flagged for review."""
    result = period.reconciliation
    register = period.journal_side()
    if result is None:
        raise ValueError("a settlement report needs a reconciliation")
    if threshold < 0:
        raise ValueError("the review threshold cannot be negative")
    generated = (now or datetime.now(UTC)).astimezone(UTC)
    multi = len(period.currencies) > 1

    def breakdown(title: str, name: str, key_of: Callable[[Transaction], Hashable],
                  label: Callable[[Any], str], note: str | None = None,
                  always_difference: bool = False) -> Section:
        expected = flows(register, key_of)
        actual = flows(period.seqr, key_of)
        keys = sorted(set(expected) | set(actual), key=_sort_key)
        rows: list[tuple[str, ...]] = []
        flagged: set[int] = set()
        subtotal: set[int] = set()
        for key in keys:
            want, got = expected.get(key, Flow()), actual.get(key, Flow())
            diff = got.minus(want)
            beyond = any(abs(a) > threshold for a in
                         (diff.sales_amount, diff.refund_amount, diff.net))
            shown = label(key)
            rows.append((shown, *_flow_cells("register", want), ""))
            rows.append(("", *_flow_cells("SEQR", got), ""))
            if diff == Flow() and not always_difference:  # the same: no line of zeros
                subtotal.add(len(rows) - 1)
                continue
            if beyond:
                flagged.add(len(rows))
            subtotal.add(len(rows))
            rows.append(("", *_flow_cells("difference", diff, signed=True),
                         REVIEW if beyond else ""))
        columns = (name, *FLOW_COLUMNS)
        return Section(title, columns, (False, *FLOW_NUMERIC), tuple(rows), note,
                       frozenset(flagged), frozenset(subtotal),
                       widths=(3.2 if name == "Terminal" else 1.6, 1.1, 0.8, 1.3, 0.8, 1.3,
                               1.3, 0.8))

    def with_currency(text: str | None, currency: str) -> str:
        shown = "(no cashier)" if text is None else text
        return f"{shown} {currency}" if multi else shown

    sections = [
        breakdown("Expected (register) vs actual (SEQR)", "Currency",
                  lambda t: t.currency, lambda k: k,
                  note="difference = SEQR minus the register; "
                       f"{REVIEW}: beyond the review threshold {money(threshold)}",
                  always_difference=True),
        breakdown("Per terminal", "Terminal", lambda t: (t.terminal_id, t.currency),
                  lambda k: with_currency(k[0], k[1])),
        breakdown("Per cashier", "Cashier", lambda t: (t.cashier_id, t.currency),
                  lambda k: with_currency(k[0], k[1])),
        _matching(period),
        *_discrepancy_lists(period),
    ]
    flagged_count = sum(len(s.flagged) for s in sections[:3])
    totals = flows(period.seqr, lambda t: t.currency)
    net = ", ".join(f"{money(totals[c].net)} {c}" for c in sorted(totals)) or \
        f"0.00 {period.currency}"
    if result.is_clean:
        status = RECONCILED
        line = (f"Status: {RECONCILED}. {len(result.matched)} transactions matched, net "
                f"{net}, as in the register's journal.")
    else:
        status = DISCREPANCIES
        counts = result.matching()
        parts = [(counts["unmatched"], "unmatched"), (counts["missing"], "missing"),
                 (counts["amountDiscrepancies"], "amount discrepancies"),
                 (len(result.terminal_mismatches), "terminal mismatches"),
                 (len(result.cashier_mismatches), "cashier mismatches")]
        line = (f"Status: {DISCREPANCIES}. {result.discrepancy_count} found ("
                + ", ".join(f"{n} {what}" for n, what in parts if n)
                + f"); {len(result.matched)} matched; SEQR net {net}.")
    if flagged_count:
        line += f" {flagged_count} difference(s) beyond the review threshold."
    scope = f"terminal {period.terminal_id}" if period.terminal_id else \
        "the shop (every terminal)"
    facts = (  # in pairs: two to a line
        ("Shop", period.shop_id or "?"),
        ("Business date", period.business_date.isoformat()),
        ("Scope", scope),
        ("Review threshold", money(threshold)),
        ("Period", period.period_id),
        ("Tolerance", f"{money(result.tolerance)} per transaction"),
        ("From", _when(period.start, "the previous close of this scope")),
        ("Compared", f"SEQR's {period.report_id} with the register's journal"),
        ("To", _when(period.end, "?")),
        ("Generated", _when(generated, "")),
    )
    return SettlementReport(
        title="Settlement report", facts=facts, status=status, status_line=line,
        sections=tuple(sections), notes=tuple(notes), generated_at=generated,
        period_id=period.period_id, flagged_count=flagged_count,
    )


def _sort_key(key: object) -> tuple[object, ...]:
    parts = key if isinstance(key, tuple) else (key,)
    return tuple((p is None, p or "") for p in parts)


def _when(moment: datetime | None, unknown: str) -> str:
    if moment is None:
        return unknown
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _flow_cells(side: str, flow: Flow, signed: bool = False) -> tuple[str, ...]:
    def count(n: int) -> str:
        return f"{n:+d}" if signed and n else str(n)

    def amount(value: Decimal) -> str:
        text = money(value)
        return f"+{text}" if signed and value > 0 else text

    return (side, count(flow.sales_count), amount(flow.sales_amount),
            count(flow.refund_count), amount(flow.refund_amount), amount(flow.net))


def _matching(period: Period) -> Section:
    result = period.reconciliation
    assert result is not None
    counts = result.matching()
    row = (str(counts["matched"]), str(counts["unmatched"]), str(counts["missing"]),
           str(counts["amountDiscrepancies"]), str(len(result.terminal_mismatches)),
           str(len(result.cashier_mismatches)))
    return Section(
        "Matching", ("Matched", "Unmatched", "Missing", "Amount discrepancies",
                     "Terminal mismatches", "Cashier mismatches"), (True,) * 6, (row,),
        note="matched: in both, the same amount, terminal and cashier; unmatched: in the "
             "register, not in SEQR; missing: in SEQR, not in the register; amount "
             f"discrepancies: in both, amounts differ by more than {money(result.tolerance)}",
        flagged=frozenset() if result.is_clean else frozenset({0}))


def _discrepancy_lists(period: Period) -> list[Section]:
    result = period.reconciliation
    assert result is not None
    currency = {t.ers_reference: t.currency for t in period.seqr}
    currency.update({t.ers_reference: t.currency for t in period.register or ()})
    lists = []
    columns = ("ersReference", "Terminal", "Cashier", "Type", "Register", "SEQR", "Difference")
    numeric = (False, False, False, False, True, True, True)
    widths = (2.7, 3.2, 1.2, 0.8, 1.1, 1.1, 1.1)

    def cashier(value: str | None) -> str:
        return "NULL" if value is None else value

    def cur(reference: str) -> str:
        return f" {currency[reference]}" if len(period.currencies) > 1 else ""

    if result.missing_in_seqr:
        lists.append(Section(
            "Unmatched: in the register, not in SEQR", columns, numeric, tuple(
                (e.ers_reference, e.terminal_id, cashier(e.cashier_id), e.kind,
                 money(e.amount) + cur(e.ers_reference), "-", money(-e.amount))
                for e in result.missing_in_seqr),
            note="journal lines SEQR has no transaction for", widths=widths))
    if result.missing_in_register:
        lists.append(Section(
            "Missing: in SEQR, not in the register", columns, numeric, tuple(
                (r.ers_reference, r.terminal_id, cashier(r.cashier_id),
                 "refund" if r.is_refund else "sale", "-",
                 money(r.amount) + cur(r.ers_reference), money(r.amount))
                for r in result.missing_in_register),
            note="SEQR transactions the register's journal lacks", widths=widths))
    if result.amount_mismatches:
        lists.append(Section(
            "Amount discrepancies", columns, numeric, tuple(
                (m.row.ers_reference, m.row.terminal_id, cashier(m.row.cashier_id),
                 m.entry.kind, money(m.expected) + cur(m.row.ers_reference),
                 money(m.actual), money(m.difference))
                for m in result.amount_mismatches),
            widths=widths))
    for title, mismatches, widths_of in (
            ("Terminal mismatches", result.terminal_mismatches, (2.7, 4.5, 4.5)),
            ("Cashier mismatches", result.cashier_mismatches, (2.7, 4.5, 4.5))):
        if mismatches:
            lists.append(Section(
                title, ("ersReference", "Register", "SEQR"), (False, False, False), tuple(
                    (m.ers_reference, cashier(m.expected), cashier(m.actual))
                    for m in mismatches),
                widths=widths_of))
    return lists


# --- HTML --------------------------------------------------------------------------------

@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("client.backoffice", "templates"),
        autoescape=jinja2.select_autoescape(("html", "j2")),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )


def render_html(report: SettlementReport) -> str:
    """The report as one self-contained HTML page (styles inline, A4 when printed)."""
    return _environment().get_template("settlement.html.j2").render(report=report)
