"""`seqr-client reconcile`: a register's journal against SEQR's detail report.

End to end against the real gateway: the close-and-reconcile flow per shop and per terminal,
journals with a missing sale, an extra sale and a wrong amount (exit 1, each reported), a
clean journal (exit 0); and the journal format and the comparison on their own.
"""

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from client import (
    DetailRow,
    JournalEntry,
    JournalError,
    parse_journal,
    read_journal,
    reconcile,
)
from tests.support.clients import (
    Till,
    fake_reference,
    once_per_run,
    run_cli,
    shop_args,
    shop_client,
    till_args,
    write_journal,
)
from tests.support.envelopes import PERIOD_RE
from tests.support.servers import GatewayServer, Shop, make_shop

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "journal.csv"
FAST = ["--first-poll-after", "0", "--poll-interval", "0.2", "--wait", "30"]
T1, T2 = "a" * 32, "b" * 32
R1, R2, R3, R4 = (f"20260521120000000000000{n:02d}" for n in range(1, 5))  # ersReferences
ClosedDay = tuple[Shop, list[Till], str]  # the shop, its tills, its closed shop period


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


# --- end to end: the register's day, closed and reconciled ------------------------------------

def _a_day(server: GatewayServer) -> tuple[Shop, list[Till]]:
    """A new shop whose two tills sold and refunded."""
    shop = make_shop(server.db)
    tills = [Till(server, shop, f"Till {i}") for i in (1, 2)]
    first = tills[0].sell("93.31", "anna")
    tills[0].sell("10.00")  # no cashier: NULL in the report
    tills[0].refund(first, "13.31", "anna")
    tills[1].sell("250.50", "bob")
    tills[1].sell("0.01", "carl")
    return shop, tills


@pytest.fixture(scope="module")
def day(server: GatewayServer) -> tuple[Shop, list[Till]]:
    return _a_day(server)


@pytest.fixture(scope="module")
def closed_day(server: GatewayServer) -> ClosedDay:
    """Another such day, its shop period closed: journals are compared with it by --period."""
    shop, tills = _a_day(server)
    return shop, tills, shop_client(server, shop).close_period().period_id


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


def test_close_and_reconcile_per_terminal_and_per_shop(
        server: GatewayServer, day: tuple[Shop, list[Till]], tmp_path: Path) -> None:
    shop, tills = day
    everything = write_journal(tmp_path / "journal.csv",
                               [row for till in tills for row in till.journal])

    # the first till, closed by its shop: only its rows of the journal count (007)
    first = run_cli("reconcile", "--journal", str(everything), "--terminal", tills[0].id,
                    "--close", "--format", "json", *FAST, *shop_args(server, shop))
    assert first.returncode == 0, first.stderr
    result = _json(first)
    assert result["result"] == "match" and result["reportId"] == "STD_RECON_007"
    assert result["terminalId"] == tills[0].id and PERIOD_RE.match(result["transactionPeriodId"])
    assert result["expected"] == result["actual"] == {"count": 3, "total": "90.00"}
    assert result["matched"] == 3 and result["discrepancies"] == 0
    assert [g["terminalId"] for g in result["byTerminal"]] == [tills[0].id]
    assert f"closed the terminal {tills[0].id} period" in first.stderr

    # the second till closes its own period with its own credentials, table output
    second = run_cli("reconcile", "--journal", str(everything), *FAST,
                     *till_args(server, tills[1]))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "MATCH: 2 transactions, net 250.51" in second.stdout
    assert tills[1].id in second.stdout and "carl" in second.stdout
    assert "STD_RECON_007" in second.stdout

    # the shop's own period is independent of the terminal periods: all five rows (003)
    shop_run = run_cli("reconcile", "--journal", str(everything), "--format", "json",
                       *FAST, *shop_args(server, shop))
    assert shop_run.returncode == 0, shop_run.stderr
    result = _json(shop_run)
    assert result["reportId"] == "STD_RECON_003" and result["terminalId"] is None
    assert result["expected"] == result["actual"] == {"count": 5, "total": "340.51"}
    by_cashier = {g["cashierId"]: g for g in result["byCashier"]}
    assert set(by_cashier) == {"anna", "bob", "carl", None}
    assert by_cashier["anna"]["actual"] == {"count": 2, "total": "80.00"}
    assert by_cashier[None]["difference"] == {"count": 0, "total": "0.00"}

    # the same period again, by id: still clean, nothing closed this time
    again = run_cli("reconcile", "--journal", str(everything), "--period",
                    result["transactionPeriodId"], "--format", "json", *FAST,
                    *shop_args(server, shop))
    assert again.returncode == 0 and _json(again)["matched"] == 5
    assert "closed" not in again.stderr


def test_each_kind_of_discrepancy_is_reported_with_exit_1(
        server: GatewayServer, closed_day: ClosedDay, tmp_path: Path) -> None:
    shop, tills, period = closed_day
    rows = [row for till in tills for row in till.journal]
    extra = (fake_reference(), tills[0].id, "anna", "12.00", "sale")
    missing = rows[1]  # the 10.00 sale without a cashier
    wrong = rows[3]  # 250.50 by bob, written down as 205.50
    journal = [row for row in rows if row not in (missing, wrong)]
    journal += [extra, (*wrong[:3], "205.50", "sale")]
    path = write_journal(tmp_path / "journal.csv", journal)

    run = run_cli("reconcile", "--journal", str(path), "--period", period, "--format", "json",
                  *FAST, *shop_args(server, shop))
    assert run.returncode == 1, run.stderr
    result = _json(run)
    assert result["result"] == "discrepancies" and result["discrepancies"] == 3
    assert result["matching"] == {"matched": 3, "unmatched": 1, "missing": 1,
                                  "amountDiscrepancies": 1}  # MPAC's words for the same
    assert [r["ersReference"] for r in result["missingInSeqr"]] == [extra[0]]
    assert result["missingInSeqr"][0]["line"] == 5
    assert [(r["ersReference"], r["amount"], r["cashierId"])
            for r in result["missingInRegister"]] == [(missing[0], "10.00", None)]
    assert result["amountMismatches"] == [{
        "ersReference": wrong[0], "terminalId": tills[1].id, "cashierId": "bob",
        "expected": "205.50", "actual": "250.50", "difference": "45.00"}]
    assert result["expected"] == {"count": 5, "total": "297.51"}
    assert result["actual"] == {"count": 5, "total": "340.51"}
    assert result["difference"] == {"count": 0, "total": "43.00"}
    terminals = {g["terminalId"]: g["difference"] for g in result["byTerminal"]}
    assert terminals == {tills[0].id: {"count": 0, "total": "-2.00"},
                         tills[1].id: {"count": 0, "total": "45.00"}}

    table = run_cli("reconcile", "--journal", str(path), "--period", period, *FAST,
                    *shop_args(server, shop))
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert any("missing in SEQR" in line and extra[0] in line for line in lines)
    assert any("missing in register" in line and missing[0] in line for line in lines)
    assert any("amount mismatch" in line and wrong[0] in line and "45.00" in line
               for line in lines)
    assert ("DISCREPANCIES: 3 (1 missing in SEQR, 1 missing in the register, "
            "1 amount mismatch(es))") in table.stdout


@pytest.mark.parametrize("change", ["missing sale", "extra sale", "wrong amount"])
def test_one_discrepancy_is_enough_for_exit_1(
        server: GatewayServer, closed_day: ClosedDay, tmp_path: Path, change: str) -> None:
    shop, tills, period = closed_day
    rows = [row for till in tills for row in till.journal]
    if change == "missing sale":
        rows = rows[1:]
    elif change == "extra sale":
        rows = [*rows, (fake_reference(), tills[1].id, "bob", "1.00", "sale")]
    else:
        rows = [(*rows[0][:3], "93.30", "sale"), *rows[1:]]
    path = write_journal(tmp_path / "journal.csv", rows)
    run = run_cli("reconcile", "--journal", str(path), "--period", period, "--format", "json",
                  *FAST, *shop_args(server, shop))
    assert run.returncode == 1, run.stderr
    result = _json(run)
    found = {"missing sale": result["missingInRegister"], "extra sale": result["missingInSeqr"],
             "wrong amount": result["amountMismatches"]}
    assert [len(v) for v in found.values()] == [int(k == change) for k in found]


def test_tolerance_accepts_small_differences(
        server: GatewayServer, closed_day: ClosedDay, tmp_path: Path) -> None:
    shop, tills, period = closed_day
    rows = [row for till in tills for row in till.journal]
    rows[0] = (*rows[0][:3], "93.30", "sale")  # one cent short
    path = write_journal(tmp_path / "journal.csv", rows)
    strict = run_cli("reconcile", "--journal", str(path), "--period", period, "--json",
                     *FAST, *shop_args(server, shop))
    assert strict.returncode == 1 and _json(strict)["amountMismatches"][0]["difference"] == "0.01"
    lenient = run_cli("reconcile", "--journal", str(path), "--period", period, "--json",
                      "--tolerance", "0.01", *FAST, *shop_args(server, shop))
    assert lenient.returncode == 0, lenient.stdout
    assert _json(lenient)["tolerance"] == "0.01"


def test_reconcile_errors_exit_2_without_touching_the_period(server: GatewayServer,
                                                             shop: Shop,
                                                             tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"ersReference,terminalId,cashierId,amount,type\n{R1},{T1},anna,ten,sale\n")
    run = run_cli("reconcile", "--journal", str(bad), *FAST, *shop_args(server, shop))
    assert run.returncode == 2 and run.stdout == ""
    assert "line 2" in run.stderr and "'ten'" in run.stderr
    assert "closed" not in run.stderr  # the journal is read before the period is closed

    gone = run_cli("reconcile", "--journal", str(tmp_path / "nope.csv"), *FAST,
                   *shop_args(server, shop))
    assert gone.returncode == 2 and "cannot read the journal" in gone.stderr

    unknown = run_cli("reconcile", "--journal", str(EXAMPLE), "--period", "9" * 25, *FAST,
                      *shop_args(server, shop))
    assert unknown.returncode == 2
    assert "23 INVALID_ERS_REFERENCE" in unknown.stderr and "--period" in unknown.stderr


# --- the journal format --------------------------------------------------------------------

def test_the_example_journal_reads_as_documented() -> None:
    entries = read_journal(EXAMPLE)
    assert [e.kind for e in entries] == ["sale"] * 4 + ["refund"]
    assert entries[0].amount == Decimal("93.31") and entries[2].cashier_id is None
    assert entries[-1].amount == Decimal("-50.25")  # a refund is negative, as in the reports
    assert all(isinstance(e.amount, Decimal) for e in entries)


def test_journal_rules() -> None:
    header = "type,amount,cashierId,terminalId,ersReference,note\n"  # any order, extra columns
    entries = parse_journal([header, f"refund,-5.00,NULL,{T1},{R1},x\n", "\n",
                             f"SALE,7,,{T1.upper()},{R2},\n"])
    assert [(e.ers_reference, e.terminal_id, e.amount, e.cashier_id, e.kind)
            for e in entries] == [(R1, T1, Decimal("-5.00"), None, "refund"),
                                  (R2, T1, Decimal("7"), None, "sale")]

    head = "ersReference,terminalId,cashierId,amount,type\n"
    bad = {
        "ersReference,terminalId,amount,type\n": "missing column(s) cashierId",
        f"{head}{R1},{T1},c,-1,sale\n": "sales are positive",
        f"{head}{R1},{T1},c,1,void\n": "type 'void', expected sale or refund",
        f"{head}{R1},{T1},c,1e3,sale\n": "amount '1e3': not a decimal like 25.00",
        f"{head}{R1},{T1},c,0.00,sale\n": "amount '0.00' is zero",
        f"{head}{R1},{T1},c,1,sale\n{R1},{T1},c,2,sale\n":
            f"line 3: ersReference {R1} again (first on line 2)",
        f"{head},{T1},c,1,sale\n": "no ersReference",
        f"{head}{R1},,c,1,sale\n": "no terminalId",
        f"{head}r1,{T1},c,1,sale\n": "line 2: ersReference 'r1' cannot be SEQR's: SEQR's are "
                                      "25 digits",
        f"{head}{R1},Till 1,c,1,sale\n": "line 2: terminalId 'Till 1' cannot be SEQR's: SEQR's "
                                         "are 32 hexadecimal characters",
        f"{head}{R1},{T1},c\n": "line 2: 3 fields, the header has 5 columns",
        "": "empty",
    }
    for text, message in bad.items():
        with pytest.raises(JournalError) as raised:
            parse_journal(text.splitlines(keepends=True))
        assert message in raised.value.message, (text, raised.value.message)


def test_journals_of_swedish_tills_decimal_commas_and_semicolons() -> None:
    """Swedish tills export `;`-separated files with decimal commas; a decimal comma in a
    `,`-separated file is named as the problem it is."""
    semicolons = parse_journal(["ersReference;terminalId;cashierId;amount;type\n",
                                f"{R1};{T1};anna;12,50;sale\n", f"{R2};{T1};;2,5;refund\n"])
    assert [(e.ers_reference, e.amount, e.cashier_id) for e in semicolons] == [
        (R1, Decimal("12.50"), "anna"), (R2, Decimal("-2.5"), None)]
    tabs = parse_journal(["ersReference\tterminalId\tcashierId\tamount\ttype\n",
                          f"{R1}\t{T1}\tanna\t12,50\tsale\n"])
    assert tabs[0].amount == Decimal("12.50")
    quoted = parse_journal(["ersReference,terminalId,cashierId,amount,type\n",
                            f'{R1},{T1},anna,"12,50",sale\n'])
    assert quoted[0].amount == Decimal("12.50")

    with pytest.raises(JournalError) as comma:
        parse_journal(["ersReference,terminalId,cashierId,amount,type\n",
                       f"{R1},{T1},anna,12,50,sale\n"])
    assert comma.value.message == (
        "journal: line 2: 6 fields, the header has 5 columns: the amount '12,50' looks written "
        "with a decimal comma, which also separates the columns: write it with a point "
        "(12.50), quote it (\"12,50\"), or separate the columns with ';'")
    with pytest.raises(JournalError) as thousands:
        parse_journal(["ersReference;terminalId;cashierId;amount;type\n",
                       f"{R1};{T1};anna;1.234,50;sale\n"])
    assert "amount '1.234,50': thousands separators are not allowed" in thousands.value.message
    with pytest.raises(JournalError) as header:
        parse_journal(["Referens;Terminal;Kassör;Belopp;Typ\n"])
    assert header.value.message == (
        "journal: line 1: missing column(s) ersReference, terminalId, cashierId, amount, type "
        "(the header has 5 column(s) when split at ';': 'Referens', 'Terminal', 'Kassör', "
        "'Belopp', 'Typ')")
    with pytest.raises(JournalError) as spreadsheet:
        parse_journal(["ersReference,terminalId,cashierId,amount,type\n",
                       f"2.02605E+24,{T1},anna,1.00,sale\n"])
    assert spreadsheet.value.hint is not None and "format the column as text" in \
        spreadsheet.value.hint


# --- the comparison on its own ---------------------------------------------------------------

def _entries(*rows: tuple[str, str, str | None, str, str]) -> list[JournalEntry]:
    lines = ["ersReference,terminalId,cashierId,amount,type\n"]
    lines += [f"{r},{t},{c or ''},{a},{k}\n" for r, t, c, a, k in rows]
    return parse_journal(lines)


def test_reconcile_compares_by_reference_terminal_and_cashier() -> None:
    journal = _entries((R1, T1, "anna", "10.00", "sale"), (R2, T1, "anna", "5.00", "refund"),
                       (R3, T2, "bob", "7.00", "sale"), (R4, T1, None, "1.00", "sale"))
    report = [DetailRow(T1, "anna", Decimal("10.00000"), R1),
              DetailRow(T1, "anna", Decimal("-5.00000"), R2),
              DetailRow(T1, "bob", Decimal("7.00000"), R3),  # another till, another cashier?
              DetailRow(T1, None, Decimal("1.00500"), R4)]
    result = reconcile(journal, report)
    assert [m.entry.ers_reference for m in result.matched] == [R1, R2]
    assert [(m.ers_reference, m.expected, m.actual) for m in result.terminal_mismatches] == [
        (R3, T2, T1)]
    assert result.cashier_mismatches == ()
    assert [(m.row.ers_reference, m.difference) for m in result.amount_mismatches] == [
        (R4, Decimal("0.00500"))]
    assert result.discrepancy_count == 2 and not result.is_clean
    one_till = reconcile(journal, report, terminal_id=T2)  # T1's rows left out, both sides
    assert [e.ers_reference for e in one_till.missing_in_seqr] == [R3]
    assert one_till.missing_in_register == () and one_till.actual.count == 0

    lenient = reconcile(journal, report, Decimal("0.01"))
    assert lenient.amount_mismatches == () and len(lenient.terminal_mismatches) == 1
    by_terminal = {g.key: (g.expected.count, g.actual.count) for g in lenient.by_terminal}
    assert by_terminal == {T1: (3, 4), T2: (1, 0)}

    renamed = reconcile(_entries((R1, T1, "eve", "10.00", "sale")), report[:1])
    assert [(m.expected, m.actual) for m in renamed.cashier_mismatches] == [("eve", "anna")]
    assert renamed.as_dict()["cashierMismatches"] == [
        {"ersReference": R1, "expected": "eve", "actual": "anna"}]
    with pytest.raises(ValueError, match="negative"):
        reconcile(journal, report, Decimal("-1"))


def test_reconcile_json_keys_are_stable() -> None:
    result = reconcile(_entries((R1, T1, None, "2.50", "sale")),
                       [DetailRow(T1, None, Decimal("2.50000"), R1)]).as_dict()
    assert list(result) == [
        "result", "transactionPeriodId", "reportId", "terminalId", "tolerance", "expected",
        "actual", "difference", "matched", "discrepancies", "missingInSeqr",
        "missingInRegister", "amountMismatches", "terminalMismatches", "cashierMismatches",
        "byTerminal", "byCashier", "matching"]
    assert result["matching"] == {"matched": 1, "unmatched": 0, "missing": 0,
                                  "amountDiscrepancies": 0}
    assert result["byCashier"] == [{"cashierId": None, "expected": {"count": 1, "total": "2.50"},
                                    "actual": {"count": 1, "total": "2.50"},
                                    "difference": {"count": 0, "total": "0.00"}}]
