"""Closing a large transaction period and rendering its reconciliation reports.

What it measures, for one shop period of N transactions (default 100,000) in a database of
its own (a temporary SQLite file by default; with `--database-url` naming a PostgreSQL
server, a new database created there for the run and dropped afterwards, see
`benchmarks/scratch.py`), its schema made by the migrations (`Database.migrate()`, what
`seqr-gateway migrate` runs):

- closing the period: `gateway.periods.close_open_period` for the shop scope inside
  `Database.write()`, commit included;
- STD_RECON_003 (one Row per transaction): wall time and peak RSS of the rendering alone,
  each in a fresh child process (this script's hidden `_render` sub-command) that imports
  the modules and opens the database first, then reports its RSS just before rendering
  (baseline) and its peak RSS during the rendering. The peak is the kernel's VmHWM,
  restarted at the baseline (/proc/self/clear_refs) just before rendering:
  `getrusage(RUSAGE_SELF).ru_maxrss` is printed as well but is useless in a child on
  Linux, which inherits through exec the peak RSS of the process that started it (this
  parent, after seeding). Two ways: the report worker's job (`storage.jobs.enqueue`, then
  `gateway.background.worker.ReportWorker.run_once()`: claim, render, store the document in 1 MiB
  chunks) and `gateway.reports.render.render` straight into a file;
- STD_RECON_001 (an SQL aggregate) the same two ways;
- the STD_RECON_003 document's size and its Row count (lxml iterparse; it must equal N),
  and STD_RECON_001's counts and totals against what was seeded;
- the READY STD_RECON_003 fetched with executeReport from `seqr-gateway serve` (one gunicorn
  worker, `--no-worker`), which streams it from the stored chunks: the time to its last
  byte, read by this script over HTTP, against the time to read the same stored chunks
  from the database (`storage.jobs.document_chunks`, the gateway's own reader, here in
  this process), and how much the serving worker's RSS grows during the answer (its VmHWM,
  restarted through /proc/<pid>/clear_refs just before, minus its RSS then). Two rounds,
  each a chunk read then an answer; the best of each is compared, the worst growth kept.

Targets, by backend (the figures are compared with them whatever N is; they are set for
the N named):

| backend    | set for N | close  | 003 worker job      | 001      | 003 streamed answer     |
|------------|-----------|--------|---------------------|----------|-------------------------|
| SQLite     | 100,000   | <= 1 s | <= 0.5 s, <= 150 MB | <= 0.5 s | RSS +64 MB              |
| PostgreSQL | 1,000,000 | <= 3 s | <= 4 s, <= 200 MB   | <= 2 s   | <= 3x read, RSS +64 MB  |

(3x read: the last byte of the answer within 3 times the time to read its stored chunks.
On SQLite that read is a copy out of the page cache, 15-25 ms for 100,000 rows, far below
what base64 and escaping 18 MB cost, so the ratio is printed there without a target.)

The worker job is the time target; `render()` into a file is printed beside it (and held to
the memory target). For information it also prints STD_RECON_002/004 render times.

Seeding (printed, not a target): one shop with several terminals (gateway.shops.add_reseller,
gateway.terminals.register_terminal), then N rows, each stamped with the open period of the
shop scope and of its terminal's scope, a unique 25-digit ersReference, an amount of up to
2 decimals; about 5 % are refunds (kind REFUND, stored negative), some have no cashier. On
SQLite they go in with SQLAlchemy Core `insert(Transaction)` executemany batches; on
PostgreSQL with COPY through psycopg (`cursor.copy("COPY transactions (...) FROM STDIN")`),
then `VACUUM (ANALYZE) transactions` (timed apart, printed), the state autovacuum leaves a
table in after a day of sales; `--no-vacuum` skips it.

Run from the repository root (about 10 s with the defaults; a few minutes for 1,000,000):

    python benchmarks/bench_period.py
    python benchmarks/bench_period.py --transactions 1000000
    python benchmarks/bench_period.py -n 1000000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

It prints figures and whether each target is met; it asserts nothing.
"""

import argparse
import http.client
import io
import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_period.py` without installing
    sys.path.insert(0, str(ROOT))

from tests.support.envelopes import context_xml, envelope, params_xml  # noqa: E402

RENDER_COMMAND = "_render"  # the hidden sub-command run in child processes
USER_ID = "9900"
PASSWORD = "bench-password"
TERMINAL_PASSWORD = "till-password"


@dataclass(frozen=True)
class Targets:
    backend: str
    for_n: int  # the period size the targets are set for
    close_s: float
    detail_s: float  # STD_RECON_003 as the worker's job (claim, render, store)
    detail_mb: float
    summary_s: float
    answer_ratio: float | None  # streamed 003 answer, last byte / reading its stored chunks
    answer_growth_mb: float = 64.0  # the serving worker's RSS growth during that answer


TARGETS = {
    "sqlite": Targets("SQLite", 100_000, close_s=1.0, detail_s=0.5, detail_mb=150.0,
                      summary_s=0.5, answer_ratio=None),
    "postgresql": Targets("PostgreSQL", 1_000_000, close_s=3.0, detail_s=4.0,
                          detail_mb=200.0, summary_s=2.0, answer_ratio=3.0),
}


# --- memory ----------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    """A field of /proc/self/status in kB (Linux), or None where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kb() -> int | None:
    return _status_kb("VmRSS")


def ru_maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, kB on Linux


def reset_peak_rss() -> bool:
    """Restart the peak-RSS watermark (VmHWM) at the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class PeakMeter:
    """Baseline and peak RSS of one stretch of code in this process.

    The peak is the kernel's VmHWM, restarted at the baseline just before the code runs, so
    it is the rendering's own peak (baseline included). `ru_maxrss` is reported too but can
    not serve: a child inherits, through exec, the peak RSS of the process that started it
    (here the parent that just seeded the database), so it says nothing about the child.
    Without /proc (not Linux) the peak falls back to ru_maxrss.
    """

    def start(self) -> None:
        self.hwm_setup_kb = _status_kb("VmHWM")  # imports and setup, before the reset
        self.reset = reset_peak_rss()
        self.before_kb = current_rss_kb()

    def figures(self) -> dict[str, Any]:
        hwm = _status_kb("VmHWM")
        return {
            "rss_before_kb": self.before_kb,
            "peak_kb": hwm if hwm is not None else ru_maxrss_kb(),
            "peak_is_render_only": self.reset and hwm is not None,
            "setup_peak_kb": self.hwm_setup_kb,
            "ru_maxrss_kb": ru_maxrss_kb(),
        }


# --- the child process: one rendering, measured alone ----------------------------------------


def render_child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"bench_period.py {RENDER_COMMAND}")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--mode", choices=("worker", "file"), required=True)
    parser.add_argument("--period", required=True, help="transactionPeriodId (25 digits)")
    parser.add_argument("--report", required=True, help="e.g. STD_RECON_003")
    parser.add_argument("--job-id", type=int, help="worker mode: the queued job")
    parser.add_argument("--out", help="file mode: where the document goes")
    args = parser.parse_args(argv)

    from sqlalchemy import select, text

    from gateway.background.worker import ReportWorker
    from gateway.config import Settings
    from gateway.reports.render import ReportScope, render
    from storage.database import Database
    from storage.models import ReportJob, TransactionPeriod, utcnow
    from wsdl.catalog import REPORTS

    settings = Settings(database_url=args.database_url, report_delay=0)
    db = Database(args.database_url)
    with db.read() as session:
        session.execute(text("SELECT 1"))
    result: dict[str, Any] = {"mode": args.mode, "report": args.report}
    meter = PeakMeter()

    if args.mode == "worker":
        worker = ReportWorker(db, settings, name=f"bench-{os.getpid()}")
        meter.start()
        started = time.perf_counter()
        other_jobs = 0
        while True:
            busy = worker.run_once()
            with db.read() as session:
                status = session.scalar(
                    select(ReportJob.status).where(ReportJob.id == args.job_id)
                )
            if status in (ReportJob.DONE, ReportJob.FAILED) or not busy:
                break
            other_jobs += 1  # a shared database: somebody else's job came first
        result["seconds"] = time.perf_counter() - started
        result["status"] = status
        result["other_jobs"] = other_jobs

    else:  # file
        assert args.out
        with db.read() as session, open(args.out, "wb") as out:
            period = session.scalar(
                select(TransactionPeriod).where(TransactionPeriod.public_id == args.period)
            )
            assert period is not None
            scope = ReportScope(REPORTS[args.report], period, None)
            meter.start()
            started = time.perf_counter()
            render(session, scope, utcnow(), out)
            out.flush()
            result["seconds"] = time.perf_counter() - started
        result["bytes"] = os.path.getsize(args.out)

    result.update(meter.figures())
    db.dispose()
    print(json.dumps(result))
    return 0


def _execute_report_envelope(reseller_id: str, period_id: str, report: str) -> bytes:
    return envelope("executeReport", context_xml(reseller_id, password=PASSWORD, user_id=USER_ID)
                    + f"<reportId>Reconciliation/{report}.xml</reportId><language>en</language>"
                    + params_xml(transactionPeriodId=period_id)).encode()


# --- the streamed answer, from a running gateway ----------------------------------------------


SOAP_PATH = "/extclientproxy/service/v2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _only_child(pid: int, timeout: float = 30) -> int | None:
    """The gunicorn master's one worker process (Linux /proc), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                found = children.read().split()
        except OSError:
            return None
        if found:
            return int(found[0])
        time.sleep(0.1)
    return None


def _fetch(port: int, body: bytes) -> tuple[int, bytes, int, bytes, float]:
    """POST `body` over HTTP/1.1 and read the answer off the socket until the server closes
    it (gunicorn's sync worker closes after every answer): (status, first bytes, bytes
    received including the chunked framing, last bytes, seconds to the last byte). The
    bytes are counted and dropped, not decoded, so the client costs as little as it can."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(
            f"POST {SOAP_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: text/xml; charset=utf-8\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        first, total, tail = b"", 0, b""
        while received := sock.recv_into(view):
            if len(first) < 4096:
                first += bytes(view[:min(received, 4096 - len(first))])
            total += received
            tail = (tail + bytes(view[max(0, received - 64):received]))[-64:]
    seconds = time.perf_counter() - started
    status_line = first.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return status, first, total, tail, seconds


def served_answer(database_url: str, tmp: Path, db: Any, reseller: str, period: str,
                  job_id: int, document_size: int, rounds: int = 2) -> dict[str, Any]:
    """The READY 003 streamed by `seqr-gateway serve` (one worker), against reading its
    stored chunks here; see the module's docstring."""
    from storage import jobs

    port = _free_port()
    log_path = tmp / "gateway.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
             "--database-url", database_url, "--no-worker", "--no-demo", "--workers", "1"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    figures: dict[str, Any] = {"reads": [], "answers": [], "growth_kb": [], "problems": []}
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start:\n{log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        worker = _only_child(process.pid)
        # warm up on the small READY 001: Spyne's first call, the password check
        _fetch(port, _execute_report_envelope(reseller, period, "STD_RECON_001"))
        request = _execute_report_envelope(reseller, period, "STD_RECON_003")
        for _ in range(rounds):
            started = time.perf_counter()
            read = 0
            with db.read() as session:
                for chunk in jobs.document_chunks(session, job_id):
                    read += len(chunk)
            figures["reads"].append(time.perf_counter() - started)
            before = None
            if worker is not None:
                with open(f"/proc/{worker}/clear_refs", "w") as clear_refs:
                    clear_refs.write("5")
                before = _proc_kb(worker, "VmRSS")
            status, first, total, tail, seconds = _fetch(port, request)
            figures["answers"].append(seconds)
            peak = _proc_kb(worker, "VmHWM") if worker is not None else None
            if before is not None and peak is not None:
                figures["growth_kb"].append(peak - before)
            least = document_size + 4 * (document_size // 3)  # the document, twice encoded
            if status != 200 or b"<resultCode>0</resultCode>" not in first:
                figures["problems"].append(f"HTTP {status}: {first[:300]!r}")
            elif total < least or not tail.endswith(b"Envelope>\r\n0\r\n\r\n"):
                figures["problems"].append(f"{total} bytes ending {tail!r}: incomplete")
            if read != document_size:
                figures["problems"].append(f"read {read} bytes of a {document_size}-byte document")
        figures["bytes"] = total
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return figures


def run_child(database_url: str, mode: str, period: str, report: str, **extra: Any) -> dict:
    args = [
        sys.executable, str(Path(__file__).resolve()), RENDER_COMMAND,
        "--database-url", database_url, "--mode", mode, "--period", period, "--report", report,
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} {report} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- seeding ---------------------------------------------------------------------------------


class Seeded:
    def __init__(self, reseller_id: str, terminal_ids: list[str]) -> None:
        self.reseller_id = reseller_id
        self.terminal_ids = terminal_ids
        self.sales = 0
        self.refunds = 0
        self.sales_cents = 0
        self.refunds_cents = 0
        self.no_cashier = 0

    @property
    def sales_total(self) -> Decimal:
        return Decimal(self.sales_cents).scaleb(-2)

    @property
    def refunds_total(self) -> Decimal:
        return Decimal(self.refunds_cents).scaleb(-2)


# (ers_reference, kind, reseller_id, terminal_id, cashier_id, signed amount in cents,
#  committed_at (aware UTC), shop_period_id, terminal_period_id, invoice_reference,
#  refunded_reference)
Row = tuple[str, str, str, str, str | None, int, datetime, int, int, str | None, str | None]
COPY_COLUMNS = (
    "ers_reference", "kind", "reseller_id", "terminal_id", "cashier_id", "amount",
    "currency", "committed_at", "shop_period_id", "terminal_period_id",
    "invoice_reference", "refunded_reference",
)


def seed(db: Any, n: int, terminal_count: int, cashier_count: int, refund_share: float,
         no_cashier_share: float, batch_size: int, rng: random.Random) -> Seeded:
    from gateway import shops, terminals
    from gateway.auth import RESELLERUSER, Principal
    from storage.models import PeriodScope

    reseller_id = "bench-" + uuid.uuid4().hex[:10]
    with db.write() as session:
        shops.add_reseller(session, reseller_id, USER_ID, PASSWORD, "Benchmark shop")
        principal = Principal(RESELLERUSER, reseller_id, user_id=USER_ID)
        terminal_ids = [
            terminals.register_terminal(
                session, principal, f"Bench/Till {i + 1}", TERMINAL_PASSWORD, f"Till {i + 1}"
            )
            for i in range(terminal_count)
        ]
    with db.read() as session:
        shop_period = session.get(PeriodScope, PeriodScope.shop_key(reseller_id)).open_period_id
        till_period = {
            tid: session.get(PeriodScope, PeriodScope.terminal_key(tid)).open_period_id
            for tid in terminal_ids
        }

    seeded = Seeded(reseller_id, terminal_ids)
    rows = _rows(seeded, n, shop_period, till_period, cashier_count, refund_share,
                 no_cashier_share, rng)
    with db.write() as session:
        if db.is_sqlite:
            _insert_batches(session, rows, batch_size)
        else:
            _copy(session, rows)
    return seeded


def _rows(seeded: Seeded, n: int, shop_period: int, till_period: dict[str, int],
          cashier_count: int, refund_share: float, no_cashier_share: float,
          rng: random.Random) -> Iterator[Row]:
    from gateway.references import ers_reference
    from storage.models import Transaction

    reseller_id = seeded.reseller_id
    terminal_ids = seeded.terminal_ids
    terminal_count = len(terminal_ids)
    cashiers = [f"cashier-{k + 1:02d}" for k in range(cashier_count)]
    # spread over the last 8 hours; (timestamp, sequence) makes each ersReference unique
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=8)
    step = timedelta(hours=8) / max(n, 1)
    recent_sales: list[str] = []
    for i in range(n):
        at = start + step * i
        reference = ers_reference(at, i + 1)
        terminal_id = terminal_ids[rng.randrange(terminal_count)]
        cashier = None if rng.random() < no_cashier_share else rng.choice(cashiers)
        cents = rng.randint(1, 500_000)  # 0.01 .. 5000.00
        if recent_sales and rng.random() < refund_share:
            kind, cents = Transaction.REFUND, -cents
            refunded, invoice = rng.choice(recent_sales), None
            seeded.refunds += 1
            seeded.refunds_cents += cents
        else:
            kind = Transaction.SALE
            refunded, invoice = None, f"{rng.randrange(10**13):013d}"
            seeded.sales += 1
            seeded.sales_cents += cents
            recent_sales.append(reference)
            if len(recent_sales) > 1000:
                recent_sales = recent_sales[-500:]
        seeded.no_cashier += cashier is None
        yield (reference, kind, reseller_id, terminal_id, cashier, cents, at, shop_period,
               till_period[terminal_id], invoice, refunded)


def _insert_batches(session: Any, rows: Iterator[Row], batch_size: int) -> None:
    """SQLAlchemy Core executemany, through the models' column types."""
    from sqlalchemy import insert

    from storage.models import Transaction

    connection = session.connection()
    batch: list[dict[str, Any]] = []
    for row in rows:
        values = dict(zip(COPY_COLUMNS, (*row[:6], "SEK", *row[6:]), strict=True))
        values["amount"] = Decimal(row[5]).scaleb(-2)
        batch.append(values)
        if len(batch) >= batch_size:
            connection.execute(insert(Transaction), batch)
            batch = []
    if batch:
        connection.execute(insert(Transaction), batch)


def _copy(session: Any, rows: Iterator[Row]) -> None:
    """COPY FROM STDIN through psycopg, in the session's transaction. The values are written
    as the models' column types store them: amounts as integers of 10**-5 units
    (`storage.money.Money`), times as naive UTC (`storage.models.UTCDateTime`)."""
    from storage.money import SCALE

    factor = 10 ** (SCALE - 2)
    driver = session.connection().connection.driver_connection  # a psycopg.Connection
    statement = f"COPY transactions ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for (reference, kind, reseller_id, terminal_id, cashier, cents, at, shop_period,
             till_period, invoice, refunded) in rows:
            copy.write_row((
                reference, kind, reseller_id, terminal_id, cashier, cents * factor, "SEK",
                at.replace(tzinfo=None), shop_period, till_period, invoice, refunded,
            ))


def vacuum_analyze(db: Any) -> None:
    from sqlalchemy import text

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) transactions"))


# --- parent: the measurements ----------------------------------------------------------------


def count_rows(source: Any) -> int:
    from lxml import etree

    rows = 0
    for _event, element in etree.iterparse(source, events=("end",), tag="Row"):
        rows += 1
        element.clear()
        while element.getprevious() is not None:
            del element.getparent()[0]
    return rows


def summary_figures(content: bytes) -> dict[str, str]:
    from lxml import etree

    row = etree.fromstring(content).find("Row")
    return {} if row is None else {child.tag: child.text or "" for child in row}


def mb(kb: int | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [RENDER_COMMAND]:
        return render_child(argv[1:])

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", "-n", type=int, default=100_000,
                        help="transactions in the period (default 100000)")
    parser.add_argument("--terminals", type=int, default=8, help="terminals (default 8)")
    parser.add_argument("--cashiers", type=int, default=25, help="cashiers (default 25)")
    parser.add_argument("--refund-share", type=float, default=0.05,
                        help="share of refunds (default 0.05)")
    parser.add_argument("--no-cashier-share", type=float, default=0.10,
                        help="share of transactions without a cashier (default 0.10)")
    parser.add_argument("--batch", type=int, default=5000,
                        help="rows per executemany while seeding SQLite (default 5000)")
    parser.add_argument("--seed", type=int, default=4711, help="random seed (default 4711)")
    parser.add_argument("--database-url",
                        help="a PostgreSQL server to run on, e.g. "
                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres: a database is "
                        "created there for the run and dropped afterwards (see "
                        "benchmarks/scratch.py); or an SQLite URL, used as it is. Default: a "
                        "temporary SQLite file")
    parser.add_argument("--no-vacuum", action="store_true",
                        help="PostgreSQL: skip VACUUM (ANALYZE) after seeding")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (SQLite database, rendered files) "
                        "and the PostgreSQL database")
    args = parser.parse_args(argv)

    from benchmarks.scratch import scratch_database

    tmp = Path(tempfile.mkdtemp(prefix="bench-period-"))
    try:
        with scratch_database(args.database_url, tmp, "bench_period",
                              keep=args.keep) as database_url:
            return run(args, database_url, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, database_url: str, tmp: Path) -> int:
    from sqlalchemy import select

    from benchmarks.scratch import safe
    from gateway.periods import close_open_period
    from gateway.reports.render import ReportScope, render
    from storage import jobs
    from storage.database import Database
    from storage.models import PeriodScope, TransactionPeriod, utcnow
    from wsdl.catalog import REPORTS

    n = args.transactions
    db = Database(database_url)
    targets = TARGETS["sqlite" if db.is_sqlite else "postgresql"]
    results: list[tuple[str, str, str, bool | None]] = []  # figure, value, target, met
    warnings: list[str] = []
    try:
        db.migrate()
        with db.read() as session:
            version = session.connection().exec_driver_sql(
                "SELECT sqlite_version()" if db.is_sqlite else "SHOW server_version"
            ).scalar()
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}; database {safe(database_url)} ({targets.backend} "
              f"{version}); {n:,} transactions, {args.terminals} terminals, "
              f"{args.cashiers} cashiers", flush=True)
        print(f"targets for {targets.backend} (set for {targets.for_n:,} transactions"
              + ("" if n == targets.for_n else f"; this run has {n:,}") + ")", flush=True)

        started = time.perf_counter()
        seeded = seed(db, n, args.terminals, args.cashiers, args.refund_share,
                      args.no_cashier_share, args.batch, random.Random(args.seed))
        seconds = time.perf_counter() - started
        how = "executemany" if db.is_sqlite else "COPY"
        print(f"seeded shop {seeded.reseller_id}: {seeded.sales} sales, {seeded.refunds} refunds, "
              f"{seeded.no_cashier} without cashier, in {seconds:.2f} s "
              f"({n / seconds:,.0f} rows/s, {how})", flush=True)
        if not db.is_sqlite and not args.no_vacuum:
            started = time.perf_counter()
            vacuum_analyze(db)
            print(f"VACUUM (ANALYZE) transactions in {time.perf_counter() - started:.2f} s",
                  flush=True)

        # 1. close the shop period
        started = time.perf_counter()
        with db.write() as session:
            closed = close_open_period(session, PeriodScope.shop_key(seeded.reseller_id))
        seconds = time.perf_counter() - started
        results.append(("close the shop period", f"{seconds:.3f} s",
                        f"<= {targets.close_s:g} s", seconds <= targets.close_s))
        public_id = closed.transaction_period_id
        with db.read() as session:
            period = session.scalar(
                select(TransactionPeriod).where(TransactionPeriod.public_id == public_id)
            )
            assert period is not None
        print(f"closed period {public_id} in {seconds:.3f} s", flush=True)

        # 2. the renders, each alone in a fresh child process
        stored: dict[str, Path] = {}  # the worker's stored documents, copied into files
        for report, time_target, memory_target in (
            ("STD_RECON_003", targets.detail_s, targets.detail_mb),
            ("STD_RECON_001", targets.summary_s, None),
        ):
            with db.write() as session:
                job = jobs.enqueue(session, report, period.id, None,
                                   utcnow() - timedelta(seconds=1))
                job_id = job.id
            worker = run_child(database_url, "worker", public_id, report, job_id=job_id)
            if worker["status"] != "DONE":
                warnings.append(f"{report} worker job ended {worker['status']}")
            if worker["other_jobs"]:
                warnings.append(f"{report}: the worker rendered {worker['other_jobs']} other "
                                "jobs first (shared database); its time includes them")
            stored[report] = tmp / f"{report}.stored.xml"
            with db.read() as session, open(stored[report], "wb") as copy:
                for chunk in jobs.document_chunks(session, job_id):
                    copy.write(chunk)
            out = tmp / f"{report}.xml"
            direct = run_child(database_url, "file", public_id, report, out=out)
            for how, figures in (("worker job (claim+render+store)", worker),
                                 ("render() into a file", direct)):
                label = f"{report} {how}"
                seconds = figures["seconds"]
                if figures is worker:
                    results.append((f"{label}: time", f"{seconds:.3f} s",
                                    f"<= {time_target:g} s", seconds <= time_target))
                else:
                    results.append((f"{label}: time", f"{seconds:.3f} s", "-", None))
                peak, before = figures["peak_kb"], figures["rss_before_kb"]
                rss = (f"{mb(peak)} (RSS before {mb(before)}, +{mb(peak - before)})"
                       if before is not None else mb(peak))
                if memory_target is not None:
                    results.append((f"{label}: peak RSS", rss, f"<= {memory_target:g} MB",
                                    peak / 1024 <= memory_target))
                else:
                    results.append((f"{label}: peak RSS", rss, "-", None))
            for how, figures in (("worker job", worker), ("render() into a file", direct)):
                print(f"{report} {how}: {figures['seconds']:.3f} s; RSS before "
                      f"{mb(figures['rss_before_kb'])}, peak while rendering "
                      f"{mb(figures['peak_kb'])}; peak during imports/setup "
                      f"{mb(figures['setup_peak_kb'])}; ru_maxrss {mb(figures['ru_maxrss_kb'])} "
                      "(not used: at least this parent's peak, inherited through exec)",
                      flush=True)
                if not figures["peak_is_render_only"]:
                    warnings.append(f"{report} {how}: the peak RSS could not be restarted "
                                    "before rendering; it covers the whole child process")
            if report == "STD_RECON_003":
                file_rows = count_rows(str(out))
                if file_rows != n:
                    warnings.append(f"render() into a file wrote {file_rows} Rows, not {n}")

        # 3. the documents: size and row count of 003, figures of 001
        detail = stored["STD_RECON_003"]
        size = detail.stat().st_size
        rows = count_rows(str(detail))
        results.append(("STD_RECON_003 document size",
                        f"{size:,} bytes ({size / 2**20:.1f} MiB)", "-", None))
        results.append(("STD_RECON_003 Row count", f"{rows:,}", f"= {n:,}", rows == n))
        if rows != n:
            warnings.append(f"STD_RECON_003 has {rows} Rows, the period has {n} transactions")
        totals = summary_figures(stored["STD_RECON_001"].read_bytes())
        expected = {
            "SalesCount": str(seeded.sales),
            "SalesTotal": f"{seeded.sales_total:.5f}",
            "RefundCount": str(seeded.refunds),
            "RefundTotal": f"{seeded.refunds_total:.5f}",
        }
        consistent = totals == expected
        results.append(("STD_RECON_001 figures = seeded", "yes" if consistent else "no",
                        "yes", consistent))
        if not consistent:
            warnings.append(f"STD_RECON_001 says {totals}, seeded {expected}")

        # 4. for information: the other summaries, and fetching the READY 003 over SOAP
        for report in ("STD_RECON_002", "STD_RECON_004"):
            sink = io.BytesIO()
            started = time.perf_counter()
            with db.read() as session:
                render(session, ReportScope(REPORTS[report], period, None), utcnow(), sink)
            seconds = time.perf_counter() - started
            results.append((f"{report} render() in-process (info)", f"{seconds:.3f} s", "-",
                            None))
        with db.read() as session:
            detail_job = jobs.find_job(session, jobs.job_key("STD_RECON_003", period.id, None))
            assert detail_job is not None
            detail_job_id = detail_job.id
        answer = served_answer(database_url, tmp, db, seeded.reseller_id, public_id,
                               detail_job_id, size)
        warnings += [f"streamed 003 answer: {problem}" for problem in answer["problems"]]
        read_s, answer_s = min(answer["reads"]), min(answer["answers"])
        ratio = answer_s / read_s
        results.append(("STD_RECON_003 stored chunks read (document_chunks)",
                        f"{read_s:.3f} s (runs {', '.join(f'{r:.3f}' for r in answer['reads'])})",
                        "-", None))
        results.append(("executeReport READY 003 streamed: last byte",
                         f"{answer_s:.3f} s (runs "
                         f"{', '.join(f'{r:.3f}' for r in answer['answers'])}), "
                         f"{answer['bytes']:,} bytes", "-", None))
        if targets.answer_ratio is not None:
            results.append(("executeReport READY 003 streamed: last byte / chunk read",
                            f"{ratio:.2f}x", f"<= {targets.answer_ratio:g}x",
                            ratio <= targets.answer_ratio))
        else:
            results.append(("executeReport READY 003 streamed: last byte / chunk read",
                            f"{ratio:.2f}x", "-", None))
        if answer["growth_kb"]:
            growth = max(answer["growth_kb"])
            results.append(("executeReport READY 003 streamed: serving worker RSS growth",
                            f"+{mb(growth)}", f"<= {targets.answer_growth_mb:g} MB",
                            growth / 1024 <= targets.answer_growth_mb))
        else:
            warnings.append("the serving worker's RSS could not be read (no /proc)")

        print()
        width = max(len(figure) for figure, *_ in results)
        value_width = max(len(value) for _, value, *_ in results)
        print(f"{'figure':<{width}}  {'value':<{value_width}}  {'target':<12} met")
        print("-" * (width + value_width + 22))
        for figure, value, target, met in results:
            mark = "" if met is None else verdict(met)
            print(f"{figure:<{width}}  {value:<{value_width}}  {target:<12} {mark}")
        for warning in warnings:
            print(f"WARNING: {warning}")
        missed = [figure for figure, _, _, met in results if met is False]
        print(f"\n{len(missed)} target(s) MISSED" + (": " + "; ".join(missed) if missed else ""))
        print(f"(load average {os.getloadavg()[0]:.2f} at the end)")
        if args.database_url and db.is_sqlite:
            print(f"(shop {seeded.reseller_id} and its data stay in {safe(database_url)})")
        return 0
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
