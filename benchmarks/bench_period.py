"""Closing a large transaction period and rendering its reconciliation reports.

What it measures, for one shop period of N transactions (default 100,000) in a fresh
temporary SQLite database (or `--database-url`, e.g. PostgreSQL; the benchmark then adds a
shop of its own there and leaves it):

- closing the period: `gateway.periods.close_open_period` for the shop scope inside
  `Database.write()`, commit included (target <= 1 s);
- STD_RECON_003 (one Row per transaction): wall time and peak RSS of the rendering alone,
  each in a fresh child process (this script's hidden `_render` sub-command) that imports
  the modules and opens the database first, then reports its RSS just before rendering
  (baseline) and its peak RSS during the rendering (target <= 3 s within 150 MB). The peak
  is the kernel's VmHWM, restarted at the baseline (/proc/self/clear_refs) just before
  rendering: `getrusage(RUSAGE_SELF).ru_maxrss` is printed as well but is useless in a
  child on Linux, which inherits through exec the peak RSS of the process that started it
  (this parent, after seeding). Two ways: the report worker's job (`storage.jobs.enqueue`, then
  `gateway.worker.ReportWorker.run_once()`: claim, render, store the document) and
  `gateway.reports.render.render` straight into a file;
- STD_RECON_001 (an SQL aggregate) the same two ways (target <= 0.5 s);
- the STD_RECON_003 document's size and its Row count (lxml iterparse; it must equal N),
  and STD_RECON_001's counts and totals against what was seeded.

For information (no target) it also prints STD_RECON_002/004 render times and what the
gateway does when the READY 003 is fetched: an in-process executeReport call through the
WSGI app (a fresh child process again, warmed up on the READY 001), its time, response
size and peak RSS.

Seeding (printed, not a target): one shop with several terminals (gateway.shops.add_reseller,
gateway.terminals.register_terminal), then N rows bulk-inserted with SQLAlchemy Core
`insert(Transaction)` executemany, each stamped with the open period of the shop scope and
of its terminal's scope, a unique 25-digit ersReference, an amount of up to 2 decimals;
about 5 % are refunds (kind REFUND, stored negative), some have no cashier.

Run from the repository root (about 10 s with the defaults, 1 min for 1,000,000):

    python benchmarks/bench_period.py
    python benchmarks/bench_period.py --transactions 1000000
    python benchmarks/bench_period.py --database-url postgresql+psycopg://user@localhost/seqr

It prints figures and whether each target is met; it asserts nothing.
"""

import argparse
import io
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_period.py` without installing
    sys.path.insert(0, str(ROOT))

RENDER_COMMAND = "_render"  # the hidden sub-command run in child processes
USER_ID = "9900"
PASSWORD = "bench-password"
TERMINAL_PASSWORD = "till-password"

CLOSE_TARGET_S = 1.0
DETAIL_TARGET_S = 3.0
DETAIL_TARGET_MB = 150.0
SUMMARY_TARGET_S = 0.5


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
    parser.add_argument("--mode", choices=("worker", "file", "answer"), required=True)
    parser.add_argument("--period", required=True, help="transactionPeriodId (25 digits)")
    parser.add_argument("--report", required=True, help="e.g. STD_RECON_003")
    parser.add_argument("--job-id", type=int, help="worker mode: the queued job")
    parser.add_argument("--out", help="file mode: where the document goes")
    parser.add_argument("--reseller", help="answer mode: the shop of the period")
    args = parser.parse_args(argv)

    from sqlalchemy import select, text

    from gateway.config import Settings
    from gateway.reports.catalog import REPORTS
    from gateway.reports.render import ReportScope, render
    from gateway.worker import ReportWorker
    from storage.database import Database
    from storage.models import ReportJob, TransactionPeriod, utcnow

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

    elif args.mode == "file":
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

    else:  # answer: the READY document fetched through the gateway's WSGI app, in-process
        from gateway.app import create_app

        app = create_app(settings, db, create_schema=True)

        def call(report: str) -> tuple[str, bytes]:
            body = _execute_report_envelope(args.reseller, args.period, report)
            environ = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/extclientproxy/service/v2",
                "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "text/xml; charset=utf-8",
                "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
                "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            }
            status: list[str] = []
            chunks = app(environ, lambda s, h, e=None: status.append(s))
            return status[0], b"".join(chunks)

        # warm up on the (small, READY) STD_RECON_001 of the same period first: Spyne's
        # first call, and the password check, which is slow once and then remembered
        call("STD_RECON_001")
        meter.start()
        started = time.perf_counter()
        status, response = call(args.report)
        result["seconds"] = time.perf_counter() - started
        result["http_status"] = status
        result["bytes"] = len(response)
        code_at = response.find(b"<resultCode>")
        result["result_code"] = (
            response[code_at + 12: response.find(b"</resultCode>", code_at)].decode()
            if code_at >= 0 else None
        )

    result.update(meter.figures())
    db.dispose()
    print(json.dumps(result))
    return 0


def _execute_report_envelope(reseller_id: str, period_id: str, report: str) -> bytes:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:ext="http://external.interfaces.ers.seamless.com/"><soapenv:Header/>'
        "<soapenv:Body><ext:executeReport><context><channel>WS</channel>"
        "<clientComment>comment</clientComment><clientId>testClient</clientId>"
        "<clientReference>12345</clientReference><clientRequestTimeout>0</clientRequestTimeout>"
        f"<initiatorPrincipalId><id>{reseller_id}</id><type>RESELLERUSER</type>"
        f"<userId>{USER_ID}</userId></initiatorPrincipalId><password>{PASSWORD}</password>"
        f"</context><reportId>Reconciliation/{report}.xml</reportId><language>en</language>"
        "<parameters><parameter><entry><key>transactionPeriodId</key>"
        f"<value>{period_id}</value></entry></parameter></parameters></ext:executeReport>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


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
        self.sales_total = Decimal(0)
        self.refunds_total = Decimal(0)
        self.no_cashier = 0


def seed(db: Any, n: int, terminal_count: int, cashier_count: int, refund_share: float,
         no_cashier_share: float, batch_size: int, rng: random.Random) -> Seeded:
    from sqlalchemy import insert

    from gateway import shops, terminals
    from gateway.auth import RESELLERUSER, Principal
    from gateway.references import ers_reference
    from storage.models import PeriodScope, Transaction

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
    cashiers = [f"cashier-{k + 1:02d}" for k in range(cashier_count)]
    # spread over the last 8 hours; (timestamp, sequence) makes each ersReference unique
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=8)
    step = timedelta(hours=8) / max(n, 1)
    recent_sales: list[str] = []
    with db.write() as session:
        connection = session.connection()
        batch: list[dict[str, Any]] = []
        for i in range(n):
            at = start + step * i
            reference = ers_reference(at, i + 1)
            terminal_id = terminal_ids[rng.randrange(terminal_count)]
            cashier = None if rng.random() < no_cashier_share else rng.choice(cashiers)
            amount = Decimal(rng.randint(1, 500_000)) / 100  # 0.01 .. 5000.00
            refund = recent_sales and rng.random() < refund_share
            if refund:
                kind, signed = Transaction.REFUND, -amount
                refunded, invoice = rng.choice(recent_sales), None
                seeded.refunds += 1
                seeded.refunds_total += signed
            else:
                kind, signed = Transaction.SALE, amount
                refunded, invoice = None, f"{rng.randrange(10**13):013d}"
                seeded.sales += 1
                seeded.sales_total += signed
                recent_sales.append(reference)
                if len(recent_sales) > 1000:
                    recent_sales = recent_sales[-500:]
            seeded.no_cashier += cashier is None
            batch.append({
                "ers_reference": reference,
                "kind": kind,
                "reseller_id": reseller_id,
                "terminal_id": terminal_id,
                "cashier_id": cashier,
                "amount": signed,
                "currency": "SEK",
                "committed_at": at,
                "shop_period_id": shop_period,
                "terminal_period_id": till_period[terminal_id],
                "invoice_reference": invoice,
                "refunded_reference": refunded,
            })
            if len(batch) >= batch_size:
                connection.execute(insert(Transaction), batch)
                batch = []
        if batch:
            connection.execute(insert(Transaction), batch)
    return seeded


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
    return "MET" if ok else "NOT MET"


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
                        help="rows per executemany while seeding (default 5000)")
    parser.add_argument("--seed", type=int, default=4711, help="random seed (default 4711)")
    parser.add_argument("--database-url",
                        help="an SQLAlchemy URL to use instead of a temporary SQLite file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (SQLite database, rendered files)")
    args = parser.parse_args(argv)

    from sqlalchemy import select

    from gateway.periods import close_open_period
    from gateway.reports.catalog import REPORTS
    from gateway.reports.render import ReportScope, render
    from storage import jobs
    from storage.database import Database
    from storage.models import PeriodScope, TransactionPeriod, utcnow

    tmp = Path(tempfile.mkdtemp(prefix="bench-period-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'period.sqlite3'}"
    n = args.transactions
    db = Database(database_url)
    results: list[tuple[str, str, str, bool | None]] = []  # figure, value, target, met
    warnings: list[str] = []
    try:
        db.create_schema()
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}; database {database_url}; {n} transactions, "
              f"{args.terminals} terminals, {args.cashiers} cashiers", flush=True)

        started = time.perf_counter()
        seeded = seed(db, n, args.terminals, args.cashiers, args.refund_share,
                      args.no_cashier_share, args.batch, random.Random(args.seed))
        seconds = time.perf_counter() - started
        print(f"seeded shop {seeded.reseller_id}: {seeded.sales} sales, {seeded.refunds} refunds, "
              f"{seeded.no_cashier} without cashier, in {seconds:.2f} s "
              f"({n / seconds:,.0f} rows/s)", flush=True)

        # 1. close the shop period
        started = time.perf_counter()
        with db.write() as session:
            closed = close_open_period(session, PeriodScope.shop_key(seeded.reseller_id))
        seconds = time.perf_counter() - started
        results.append(("close the shop period", f"{seconds:.3f} s",
                        f"<= {CLOSE_TARGET_S:g} s", seconds <= CLOSE_TARGET_S))
        public_id = closed.transaction_period_id
        with db.read() as session:
            period = session.scalar(
                select(TransactionPeriod).where(TransactionPeriod.public_id == public_id)
            )
            assert period is not None
        print(f"closed period {public_id} in {seconds:.3f} s", flush=True)

        # 2. the renders, each alone in a fresh child process
        documents: dict[str, bytes] = {}
        for report, time_target, memory_target in (
            ("STD_RECON_003", DETAIL_TARGET_S, DETAIL_TARGET_MB),
            ("STD_RECON_001", SUMMARY_TARGET_S, None),
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
            with db.read() as session:
                documents[report] = b"".join(jobs.document_chunks(session, job_id))
            out = tmp / f"{report}.xml"
            direct = run_child(database_url, "file", public_id, report, out=out)
            for how, figures in (("worker job (claim+render+store)", worker),
                                 ("render() into a file", direct)):
                label = f"{report} {how}"
                seconds = figures["seconds"]
                results.append((f"{label}: time", f"{seconds:.3f} s", f"<= {time_target:g} s",
                                seconds <= time_target))
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
        detail = documents["STD_RECON_003"]
        rows = count_rows(io.BytesIO(detail))
        results.append(("STD_RECON_003 document size",
                        f"{len(detail):,} bytes ({len(detail) / 2**20:.1f} MiB)", "-", None))
        results.append(("STD_RECON_003 Row count", f"{rows:,}", f"= {n:,}", rows == n))
        if rows != n:
            warnings.append(f"STD_RECON_003 has {rows} Rows, the period has {n} transactions")
        totals = summary_figures(documents["STD_RECON_001"])
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
        answer = run_child(database_url, "answer", public_id, "STD_RECON_003",
                           reseller=seeded.reseller_id)
        if answer["result_code"] != "0":
            warnings.append(f"executeReport of the READY 003 answered {answer['http_status']} "
                            f"resultCode {answer['result_code']}")
        results.append(("executeReport READY 003 in-process (info): time",
                        f"{answer['seconds']:.3f} s", "-", None))
        results.append(("executeReport READY 003 in-process (info): response",
                        f"{answer['bytes']:,} bytes", "-", None))
        peak, before = answer["peak_kb"], answer["rss_before_kb"]
        results.append((
            "executeReport READY 003 in-process (info): peak RSS",
            f"{mb(peak)} (RSS before {mb(before)}, +{mb(peak - (before or 0))})", "-", None,
        ))

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
        print(f"\n{len(missed)} target(s) not met" + (": " + "; ".join(missed) if missed else ""))
        if args.database_url:
            print(f"(shop {seeded.reseller_id} and its data stay in {database_url})")
        return 0
    finally:
        db.dispose()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
