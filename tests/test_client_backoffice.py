"""The back-office outputs of `seqr-client reconcile` and `export`, and the period rules.

Against the real gateway: one shop whose two tills sold and refunded through two closed
periods, a clean one and one with every kind of discrepancy (unmatched, missing, amount,
terminal and cashier). Every format of both periods is compared with a golden file in
tests/data/backoffice/ after the generated ids and times are replaced by names
(SEQR_UPDATE_GOLDEN=1 writes them anew); the Hii Retail event is validated against the
JSON Schema shipped in the package; the PDF is read back with pypdf. Then the Koncili-style
rules (duplicates, spans, overlaps, the completion notice, a receiver that fails), and the
settlement report of 1,000 transactions paged.
"""

import io
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pypdf
import pytest

from client import DetailRow, JournalError, parse_journal, parse_report, reconcile
from client.backoffice import (
    HII_RECOUNT,
    HTML,
    PDF,
    DocumentOptions,
    PeriodLedger,
    PeriodRuleError,
    ReconciledPeriod,
    period_facts,
    recount_event,
    reference_time,
    render,
    sharespine,
)
from client.backoffice.rules import notify
from tests.support.clients import (
    Till,
    cli_env,
    once_per_run,
    run_cli,
    shop_args,
    shop_client,
    till_args,
    write_journal,
)
from tests.support.servers import GatewayServer, Shop, make_shop

GOLDEN = Path(__file__).parent / "data" / "backoffice"
UPDATE = os.environ.get("SEQR_UPDATE_GOLDEN") == "1"
SCHEMA = Path(__file__).resolve().parents[1] / "client" / "backoffice" / "schemas" / \
    "hii-reconciliation-recount-v1.json"
FAST = ["--first-poll-after", "0", "--poll-interval", "0.2", "--wait", "30"]
BUSINESS_DATE = "2020-02-29"  # never the day the tests run: dates of transactions differ
SPANS = {"clean": ("2020-02-29T08:00:00Z", "2020-02-29T12:00:00Z"),
         "discrepancies": ("2020-02-29T12:00:00Z", "2020-02-29T18:00:00Z")}
T1, T2 = "a" * 32, "b" * 32


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


@dataclass
class Day:
    """A shop's two periods; `names` turns generated ids into stable names."""

    server: GatewayServer
    shop: Shop
    tills: list[Till]
    periods: dict[str, str]
    journals: dict[str, Path]
    state: Path
    names: dict[str, str] = field(default_factory=dict)

    def args(self, kind: str, *extra: str, state: Path | None = None) -> list[str]:
        start, end = SPANS[kind]
        return ["reconcile", "--journal", str(self.journals[kind]), "--period",
                self.periods[kind], "--period-start", start, "--period-end", end,
                "--business-date", BUSINESS_DATE, "--state-file", str(state or self.state),
                *extra, *FAST, *shop_args(self.server, self.shop)]


@pytest.fixture(scope="module")
def day(server: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> Day:
    folder = tmp_path_factory.mktemp("backoffice")
    shop = make_shop(server.db)
    # the tills in the order of their ids, so that the documents list them in this order
    a, b = sorted((Till(server, shop, "Till 1"), Till(server, shop, "Till 2")),
                  key=lambda till: till.id)
    names = {a.id: "<TILL-A>", b.id: "<TILL-B>", shop.reseller_id: "<SHOP>"}

    def named(reference: str) -> str:
        names[reference] = f"<T{len(names) - 2}>"
        return reference

    # the clean period: everything in the journal as SEQR has it
    first = named(a.sell("93.31", "anna"))
    named(a.sell("10.00"))
    named(a.refund(first, "13.31", "anna"))
    named(b.sell("250.50", "bob"))
    named(b.sell("0.01", "carl"))
    clean_rows = [*a.journal, *b.journal]
    shop_seqr = shop_client(server, shop)
    clean = shop_seqr.close_period().period_id
    names[clean] = "<PERIOD-CLEAN>"

    # the other period: each kind of discrepancy once, one transaction matched
    a.journal.clear()
    b.journal.clear()
    renamed = named(a.sell("40.00", "anna"))  # written down for cashier eve
    named(a.sell("5.00", "anna"))  # not in the journal: missing
    wrong = named(b.sell("120.00", "bob"))  # written down as 102.00
    named(b.refund(wrong, "20.00", "bob"))  # matched
    moved = named(b.sell("7.50", "carl"))  # written down at till A
    invented = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:17] + "99999999"
    names[invented] = "<UNMATCHED>"
    journal = [(renamed, a.id, "eve", "40.00", "sale"), (wrong, b.id, "bob", "102.00", "sale"),
               b.journal[1], (moved, a.id, "carl", "7.50", "sale"),
               (invented, a.id, "anna", "12.00", "sale")]
    other = shop_seqr.close_period().period_id
    names[other] = "<PERIOD-DISCREPANCIES>"
    return Day(server, shop, [a, b], {"clean": clean, "discrepancies": other},
               {"clean": write_journal(folder / "clean.csv", clean_rows),
                "discrepancies": write_journal(folder / "discrepancies.csv", journal)},
               folder / "periods.json", names)


def normalize(text: str, names: dict[str, str]) -> str:
    """Generated ids by their names; times made now by placeholders."""
    text = re.sub(r'"timestamp": "[^"]+"', '"timestamp": "<NOW>"', text)
    text = re.sub(r"(Generated</th><td>)[^<]+", r"\1<NOW>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<TIME>", text)
    for value, name in names.items():
        text = text.replace(value, name)
    days = {t.date().isoformat() for t in map(reference_time, names) if t is not None}
    for date_text in days:
        text = text.replace(date_text, "<DAY>")
    return text


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


def _run(day: Day, kind: str, fmt: str, tmp_path: Path, *extra: str,
         env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], bytes]:
    target = tmp_path / f"{kind}.{fmt}"
    run = run_cli(*day.args(kind, "--format", fmt, "-o", str(target), *extra), env=env)
    assert run.returncode == (0 if kind == "clean" else 1), run.stderr
    return run, target.read_bytes()


# --- every format, golden, for the clean period and the one with every discrepancy ----------

@pytest.mark.parametrize("kind", ["clean", "discrepancies"])
def test_json_formats_match_their_golden_files(day: Day, kind: str, tmp_path: Path) -> None:
    env = cli_env(SEQR_TENANT_ID="tenant-1")
    for fmt in ("hii-recount", "sharespine-zreport", "sharespine-settlement",
                "sharespine-events"):
        run, data = _run(day, kind, fmt, tmp_path, "--reconciliation-id", f"rec-{kind}",
                         "--recount-id", "recount-1", "--note", "counted by anna", env=env)
        assert f"wrote {fmt} to" in run.stderr and run.stdout == ""
        value = json.loads(data)
        if fmt == "sharespine-events":  # each event at the moment its ersReference names
            for event in value:
                moment = reference_time(event["correlationId"])
                assert moment is not None
                assert event["eventTime"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        golden(f"{kind}.{fmt}.json", normalize(data.decode("utf-8"), day.names))


def test_the_hii_event_is_valid_against_hii_retails_schema(day: Day, tmp_path: Path) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    events = {}
    for kind in SPANS:
        _, data = _run(day, kind, "hii-recount", tmp_path, "--tenant-id", "tenant-1")
        events[kind] = json.loads(data)
        validator.validate(events[kind])
    tender = events["discrepancies"]["tenders"][0]
    # the register wrote 40 + 102 - 20 + 7.50 + 12; SEQR has 40 + 5 + 120 - 20 + 7.50
    assert (tender["expectedAmount"], tender["expectedQuantity"]) == (141.5, 5)
    assert (tender["actualAmount"], tender["actualQuantity"]) == (152.5, 5)
    assert (tender["amountCorrection"], tender["quantityCorrection"]) == (11, 0)
    assert events["discrepancies"]["correlationId"] == day.periods["discrepancies"]
    assert events["clean"]["businessDate"] == BUSINESS_DATE
    assert events["clean"]["workstationId"] is None  # the shop, not one terminal
    ids = {e["reconciliationId"] for e in events.values()} | \
        {e["recountId"] for e in events.values()}
    assert len(ids) == 4  # generated, and new each time
    # the validator does check formats: a timestamp that is not a date-time fails
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        validator.validate({**events["clean"], "timestamp": "yesterday"})


@pytest.mark.parametrize("kind", ["clean", "discrepancies"])
def test_the_html_settlement_report_matches_its_golden_file(day: Day, kind: str,
                                                            tmp_path: Path) -> None:
    _, data = _run(day, kind, "html", tmp_path, "--threshold", "10.00", "--note",
                   "Counted by anna & bob <night shift>")
    text = data.decode("utf-8")
    assert "Counted by anna &amp; bob &lt;night shift&gt;" in text  # escaped, not markup
    golden(f"{kind}.settlement.html", normalize(text, day.names))


def _pdf_text(data: bytes) -> list[str]:
    """The text of each page, its whitespace (wrapped lines too) as single spaces."""
    return [" ".join(page.extract_text().split())
            for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def test_the_pdf_settlement_report_reads_back_with_its_totals(day: Day, tmp_path: Path) -> None:
    _, clean = _run(day, "clean", "pdf", tmp_path)
    pages = _pdf_text(clean)
    assert len(pages) == 1  # a normal shift fits one A4 page, signature and all
    text = pages[0]
    assert "Status: reconciled. 5 transactions matched, net 340.51 SEK" in text
    assert re.search(r"SEK\s+register\s+4\s+353\.82\s+1\s+-13\.31\s+340\.51", text), text
    assert re.search(r"SEQR\s+4\s+353\.82\s+1\s+-13\.31\s+340\.51", text)
    assert day.periods["clean"] in text and "2020-02-29 08:00:00 UTC" in text
    assert "Reconciled by (name)" in text and "Signature" in text and "page 1 of 1" in text

    _, other = _run(day, "discrepancies", "pdf", tmp_path, "--threshold", "10.00",
                    "--note", "Till B recounted")
    text = "\n".join(_pdf_text(other))
    assert "Status: discrepancies. 5 found (1 unmatched, 1 missing, 1 amount discrepancies, " \
           "1 terminal mismatches, 1 cashier mismatches); 1 matched" in text
    assert re.search(r"register\s+4\s+161\.50\s+1\s+-20\.00\s+141\.50", text), text
    assert re.search(r"SEQR\s+4\s+172\.50\s+1\s+-20\.00\s+152\.50", text)
    assert re.search(r"difference\s+0\s+\+11\.00\s+0\s+0\.00\s+\+11\.00\s+REVIEW", text)
    a, b = day.tills
    assert re.search(rf"{a.id}\s+register\s+3\s+59\.50", text)  # 40 + 7.50 + 12
    assert re.search(rf"{b.id}\s+register\s+1\s+102\.00\s+1\s+-20\.00\s+82\.00", text)
    for title in ("Unmatched: in the register, not in SEQR", "Missing: in SEQR, not in the "
                  "register", "Amount discrepancies", "Terminal mismatches",
                  "Cashier mismatches", "Till B recounted"):
        assert title in text


def test_export_needs_no_journal(day: Day, tmp_path: Path) -> None:
    period = day.periods["discrepancies"]
    common = ["--period", period, "--period-start", SPANS["discrepancies"][0],
              "--period-end", SPANS["discrepancies"][1], "--state-file", str(day.state),
              *FAST, *shop_args(day.server, day.shop)]
    zreports = run_cli("export", "--format", "sharespine-zreport", *common)
    assert zreports.returncode == 0, zreports.stderr
    # made from SEQR's rows (no journal): the 5.00 sale is there, the invented one is not
    golden("discrepancies.export.sharespine-zreport.json",
           normalize(zreports.stdout, day.names))

    settlement = tmp_path / "settlement.json"
    run = run_cli("export", "--format", "sharespine-settlement", "-o", str(settlement),
                  *common)
    assert run.returncode == 0 and f"to {settlement}" in run.stderr
    # the same as reconcile writes: a settlement is SEQR's side only
    expected = (GOLDEN / "discrepancies.sharespine-settlement.json").read_text()
    assert normalize(settlement.read_text(), day.names) == expected

    html = run_cli("export", "--format", "html", *common)
    assert html.returncode == 2 and "compares with the register's journal" in html.stderr
    assert "seqr-client reconcile --journal" in html.stderr


def test_a_till_reports_its_own_period_with_its_cashier(server: GatewayServer,
                                                        tmp_path: Path) -> None:
    shop = make_shop(server.db)
    till = Till(server, shop, "Till 9")
    till.sell("19.90", "dana")
    till.sell("5.10", "dana")
    journal = write_journal(tmp_path / "journal.csv", till.journal)
    target = tmp_path / "recount.json"
    run = run_cli("reconcile", "--journal", str(journal), "--format", "hii-recount", "-o",
                  str(target), "--tenant-id", "t", "--business-unit-id", "store-9",
                  "--state-file", str(tmp_path / "state.json"), *FAST,
                  *till_args(server, till))
    assert run.returncode == 0, run.stderr
    event = json.loads(target.read_text())
    assert event["workstationId"] == till.id and event["operatorId"] == "dana"
    assert event["businessUnitId"] == "store-9"
    assert event["tenders"] == [{
        "tenderId": "SEQR", "currencyId": "SEK", "isReadOnly": True, "expectedAmount": 25,
        "actualAmount": 25, "expectedQuantity": 2, "actualQuantity": 2,
        "amountCorrection": 0, "quantityCorrection": 0}]
    # the period's end and business date come from the id of the period it closed
    closed = re.search(r"period (\d{25})", run.stderr)
    assert closed is not None and event["correlationId"] == closed.group(1)
    end = reference_time(closed.group(1))
    assert end is not None and event["businessDate"] == end.date().isoformat()

    events = run_cli("export", "--close", "--format", "sharespine-events", *FAST,
                     *till_args(server, till))
    assert events.returncode == 0 and json.loads(events.stdout) == []  # nothing since


# --- Koncili-style rules ---------------------------------------------------------------------

def test_a_journal_with_a_duplicate_entry_is_refused_naming_both_lines(
        server: GatewayServer, shop: Shop, tmp_path: Path) -> None:
    reference = "2026052109121530100000001"
    journal = tmp_path / "journal.csv"
    journal.write_text("ersReference,terminalId,cashierId,amount,type\n"
                       f"{reference},{T1},anna,93.31,sale\n"
                       f"2026052109121530100000002,{T1},anna,5.00,sale\n"
                       f"{reference},{T1},anna,93.31,sale\n")
    run = run_cli("reconcile", "--journal", str(journal), "--format", "pdf", "-o",
                  str(tmp_path / "r.pdf"), *FAST, *shop_args(server, shop))
    assert run.returncode == 2
    assert f"line 4: ersReference {reference} again (first on line 2)" in run.stderr
    assert "closed" not in run.stderr and not (tmp_path / "r.pdf").exists()

    journal.write_text("ersReference,terminalId,cashierId,amount,type\n")  # a quiet day
    no_tenant = run_cli("reconcile", "--journal", str(journal), "--format", "hii-recount",
                        *FAST, *shop_args(server, shop))
    assert no_tenant.returncode == 2 and "needs a tenantId" in no_tenant.stderr
    assert "closed" not in no_tenant.stderr  # refused before the period was closed


def test_period_spans_must_be_ordered_and_must_not_overlap(day: Day, tmp_path: Path) -> None:
    state = tmp_path / "periods.json"
    backwards = run_cli(*day.args("clean", "--period-end", "2020-02-29T07:00:00Z",
                                  state=state))
    assert backwards.returncode == 2
    assert "start 2020-02-29T08:00:00+00:00 is not before its end" in backwards.stderr
    assert not state.exists()

    assert run_cli(*day.args("clean", state=state)).returncode == 0
    args = day.args("clean", "--format", "sharespine-settlement", state=state)
    at = args.index("--period-start")
    again = run_cli(*args[:at], *args[at + 2:])  # the same period again: fine, same span
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["startTime"] == "2020-02-29T08:00:00Z"
    overlapping = run_cli(*day.args("discrepancies", "--period-start",
                                    "2020-02-29T11:00:00Z", state=state))
    assert overlapping.returncode == 2 and overlapping.stdout == ""
    assert f"overlaps period {day.periods['clean']}" in overlapping.stderr
    assert "2020-02-29T08:00:00+00:00 .. 2020-02-29T12:00:00+00:00" in overlapping.stderr
    recorded = json.loads(state.read_text())["periods"]
    assert [p["transactionPeriodId"] for p in recorded] == [day.periods["clean"]]
    # right after it is fine; without a start the next period starts where it ended
    args = day.args("discrepancies", "--format", "json", state=state)
    at = args.index("--period-start")
    after = run_cli(*args[:at], *args[at + 2:])
    assert after.returncode == 1, after.stderr
    recorded = json.loads(state.read_text())["periods"]
    assert [(p["start"], p["result"]) for p in recorded] == [
        ("2020-02-29T08:00:00+00:00", "match"), ("2020-02-29T12:00:00+00:00", "discrepancies")]


def test_the_period_ledger_rules() -> None:
    def at(hour: int) -> datetime:
        return datetime(2026, 5, 21, hour, tzinfo=UTC)

    first = ReconciledPeriod("s", "p1", None, at(10), at(10), "match")  # start unknown
    assert first.overlaps(at(9), at(11)) and first.overlaps(None, at(12))
    assert not first.overlaps(at(10), at(12))  # touching is not overlapping
    bounded = ReconciledPeriod("s", "p2", at(10), at(12), at(12), "match")
    assert bounded.overlaps(at(11), None) and not bounded.overlaps(at(8), at(10))
    with pytest.raises(PeriodRuleError, match="not before its end"):
        PeriodLedger(Path("/nonexistent/periods.json")).check("s", at(12), at(12))


class _Receiver:
    """127.0.0.1, a free port: answers each POST with the next of `statuses` (the last
    one repeats), after `delay` seconds on the first; keeps the bodies."""

    def __init__(self, *statuses: int, delay: float = 0.0) -> None:
        self.statuses, self.delay, self.bodies = list(statuses), delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                if len(receiver.bodies) == 1 and receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses[min(len(receiver.bodies), len(receiver.statuses))
                                           - 1]
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/seqr/done"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> "_Receiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_completion_notice_is_posted(day: Day, tmp_path: Path) -> None:
    with _Receiver(200) as receiver:
        run = run_cli(*day.args("discrepancies", "--format", "json", "--notify-url",
                                receiver.url, state=tmp_path / "s.json"))
    assert run.returncode == 1  # the comparison's verdict, whatever the notice did
    assert receiver.bodies and json.loads(receiver.bodies[0]) == json.loads(run.stdout)
    assert f"notified {receiver.url} (HTTP 200, attempt 1)" in run.stderr


def test_a_failing_notice_is_retried_and_reported_without_changing_the_exit_code(
        day: Day, tmp_path: Path) -> None:
    with _Receiver(500) as receiver:
        run = run_cli(*day.args("clean", "--notify-url", receiver.url, "--quiet",
                                "--notify-attempts", "3", state=tmp_path / "s.json"))
    assert run.returncode == 0 and len(receiver.bodies) == 3
    assert f"warning: could not notify {receiver.url} after 3 attempt(s): HTTP 500" \
        in run.stderr  # even with --quiet
    assert "MATCH" in run.stdout

    with _Receiver(204, delay=1.0) as slow:  # the first answer too late, the second on time
        late = notify(slow.url, {"a": 1}, attempts=3, backoff=0.1, timeout=0.3)
    assert (late.delivered, late.attempts, late.status) == (True, 2, 204)
    assert late.describe() == f"notified {slow.url} (HTTP 204, attempt 2)"

    refused = notify("http://127.0.0.1:9/", {"a": 1}, attempts=2, backoff=0, timeout=1)
    assert not refused.delivered and refused.attempts == 2 and refused.status is None
    assert "ConnectionError" in (refused.error or "")
    with _Receiver(404) as missing:  # an answer that another attempt will not change
        gone = notify(missing.url, {"a": 1}, attempts=3, backoff=0, timeout=1)
    assert (gone.delivered, gone.attempts, gone.status) == (False, 1, 404)
    assert json.loads(missing.bodies[0]) == {"a": 1}

    bad = run_cli(*day.args("clean", "--notify-url", "ftp://backoffice/x",
                            state=tmp_path / "s.json"))
    assert bad.returncode == 2 and "is not an http(s) URL" in bad.stderr


# --- the documents on their own ----------------------------------------------------------

def _period_of(rows: list[DetailRow], journal_lines: list[str], period_id: str) -> Any:
    xml = ("<TransactionDetails><Meta><ResellerId>4711</ResellerId><TransactionPeriodId>"
           f"{period_id}</TransactionPeriodId><GeneratedAt>2026-05-21 18:00</GeneratedAt>"
           "</Meta>" + "".join(
               f"<Row><TerminalId>{r.terminal_id}</TerminalId><CashierId>"
               f"{r.cashier_id or 'NULL'}</CashierId><SalesAmount>{r.amount:.5f}</SalesAmount>"
               f"<ErsReference>{r.ers_reference}</ErsReference></Row>" for r in rows)
           + "</TransactionDetails>")
    report = parse_report(xml.encode(), "STD_RECON_003")
    journal = parse_journal(["ersReference,terminalId,cashierId,amount,type,currency\n",
                             *journal_lines])
    return period_facts(report, reconcile(journal, report))


def test_a_long_settlement_report_is_paged_with_its_headers() -> None:
    rows = [DetailRow(T1 if i % 2 else T2, f"c{i % 7}", Decimal(i % 90 + 1),
                      f"20260521{i:09d}{i:08d}") for i in range(1000)]
    period = _period_of(rows, [], "2026052118000000000000009")  # an empty journal
    pages = _pdf_text(render(PDF, period))
    assert len(pages) > 10
    for number, text in enumerate(pages, 1):
        assert f"page {number} of {len(pages)}" in text and "2026052118000000000000009" in text
        if number > 2:  # the missing list, its header row on every page
            assert "ersReference" in text and "Difference" in text
    everything = "\n".join(pages)
    assert all(row.ers_reference in everything for row in rows)
    assert everything.index("Missing: in SEQR") < everything.index("Reconciled by (name)")
    assert "Terminal mismatches Cashier mismatches 0 0 1000 0 0 0" in everything


def test_transactions_keep_the_currency_of_their_journal_line() -> None:
    rows = [DetailRow(T1, "anna", Decimal("10.00"), "2026052109000000000000001"),
            DetailRow(T1, "anna", Decimal("7.00"), "2026052109000000000000002"),
            DetailRow(T2, None, Decimal("-2.00"), "2026052109000000000000003")]
    lines = [f"2026052109000000000000001,{T1},anna,10.00,sale,EUR\n",
             f"2026052109000000000000002,{T1},anna,7.00,sale,\n",
             f"2026052109000000000000003,{T2},,2.00,refund,sek\n"]
    period = _period_of(rows, lines, "2026052118000000000000009")
    event = recount_event(period, tenant_id="t", now=datetime(2026, 5, 21, tzinfo=UTC))
    assert [(t["currencyId"], t["actualAmount"], t["actualQuantity"])
            for t in event["tenders"]] == [("EUR", 10, 1), ("SEK", 5, 2)]
    settlement = sharespine.settlement_report(period, payment_method="Swish")
    assert settlement["paidPerPaymentMethod"] == [
        {"paymentMethod": "Swish", "count": 1, "amount": {"currency": "EUR", "amount": "10.00"}},
        {"paymentMethod": "Swish", "count": 1, "amount": {"currency": "SEK", "amount": "7.00"}}]
    assert "depositedPerPaymentMethod" not in settlement  # SEQR does not say
    assert settlement["refundedPerPaymentMethod"][1]["amount"] == {"currency": "SEK",
                                                                  "amount": "2.00"}
    html = render(HTML, period, DocumentOptions(notes=("x",))).decode()
    assert "anna EUR" in html and "anna SEK" in html  # the groups split by currency
    with pytest.raises(ValueError, match="tenant"):
        render(HII_RECOUNT, period)
    with pytest.raises(JournalError, match="line 2: currency 'KRONA' is not an ISO 4217"):
        parse_journal(["ersReference,terminalId,cashierId,amount,type,currency\n",
                       f"2026052109000000000000001,{T1},,1.00,sale,KRONA\n"])
