"""Throughput and latency of SOAP calls through the real gateway, against the stack's ceiling.

What it measures: requests/s and p50/p99 latency of three SOAP operations sent to
`seqr-gateway serve` (started the way users start it, in a subprocess, on a temporary
SQLite database of its own, report delay 0, no demo shop):

- `benchmarkingNop`: the SOAP stack alone (parse, schema validation, dispatch, serialize);
- `markTransactionPeriod` as the RESELLERUSER of a shop seeded beforehand: a write
  transaction per call (authenticate, close the shop period, open the next);
- `executeReport` on a READY STD_RECON_003 (the period is marked and polled until it answers
  resultCode 0 first): a read transaction returning the stored document.

Beside them, the same gunicorn configuration (worker count, sync worker, timeouts, access
log, control socket off) serves `benchmarks/canned.py`, a WSGI app answering every POST with
a fixed SOAP response: the ceiling of this stack. Each operation's figures are printed with
its ratio to that ceiling. Load: several client processes, each sending requests one after
another (http.client; the sync worker closes the connection after each response, so every
request opens a TCP connection, for the gateway and the ceiling alike) for a fixed duration
after a short warm-up, recording every request's latency. Every response's HTTP status and
resultCode are checked; failures are counted and printed, never timed as successes.

Run from the repository root (only 127.0.0.1 is used; about 30 s with the defaults):

    python benchmarks/bench_soap.py
    python benchmarks/bench_soap.py --workers 4 --clients 8 --duration 10

It prints figures; it asserts nothing about them.
"""

import argparse
import http.client
import multiprocessing as mp
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_soap.py` without installing
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
SOAP_PATH = "/extclientproxy/service/v2"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "http://external.interfaces.ers.seamless.com/"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}

RESELLER_ID = "bench-shop"
USER_ID = "9900"
PASSWORD = "bench-password"

RESULT_CODE_RE = re.compile(rb"<resultCode>(-?\d+)</resultCode>")
DESCRIPTION_RE = re.compile(rb"<resultDescription>(.*?)</resultDescription>", re.DOTALL)
PERIOD_RE = re.compile(rb"<transactionPeriodId>(\d{25})</transactionPeriodId>")


# --- envelopes, shaped like ../shared/seqr/samples (unqualified children, ext: prefix) ------


def envelope(operation: str, inner: str = "") -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:ext="{NS}">\n'
        "  <soapenv:Header/>\n"
        "  <soapenv:Body>\n"
        f"    <ext:{operation}>{inner}</ext:{operation}>\n"
        "  </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    ).encode()


def context_xml(reseller_id: str, user_id: str, password: str) -> str:
    return (
        "<context>"
        "<channel>WS</channel>"
        "<clientComment>comment</clientComment>"
        "<clientId>testClient</clientId>"
        "<clientReference>12345</clientReference>"
        "<clientRequestTimeout>0</clientRequestTimeout>"
        "<initiatorPrincipalId>"
        f"<id>{reseller_id}</id><type>RESELLERUSER</type><userId>{user_id}</userId>"
        "</initiatorPrincipalId>"
        f"<password>{password}</password>"
        "</context>"
    )


def nop_envelope() -> bytes:
    return envelope("benchmarkingNop")


def mark_envelope() -> bytes:
    return envelope("markTransactionPeriod", context_xml(RESELLER_ID, USER_ID, PASSWORD))


def report_envelope(period_id: str, report: str = "Reconciliation/STD_RECON_003.xml") -> bytes:
    return envelope(
        "executeReport",
        context_xml(RESELLER_ID, USER_ID, PASSWORD)
        + f"<reportId>{report}</reportId><language>en</language>"
        "<parameters><parameter><entry>"
        f"<key>transactionPeriodId</key><value>{period_id}</value>"
        "</entry></parameter></parameters>",
    )


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def post(port: int, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", SOAP_PATH, body, HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(port: int, path: str, timeout: float = 2) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def result_code(body: bytes) -> int | None:
    match = RESULT_CODE_RE.search(body)
    return int(match.group(1)) if match else None


def describe(status: int, body: bytes) -> str:
    code = result_code(body)
    found = DESCRIPTION_RE.search(body)
    text = found.group(1).decode(errors="replace")[:160] if found else body[:160].decode(
        errors="replace"
    )
    return f"HTTP {status} resultCode {code}: {text}"


def control_socket_flags() -> list[str]:
    """gunicorn >= 23 opens a control socket shared per user: off, as gateway.server does."""
    from gunicorn.config import KNOWN_SETTINGS

    for setting in KNOWN_SETTINGS:
        if setting.name == "control_socket_disable":
            return [flag for flag in setting.cli if flag.startswith("--")][:1]
    return []


class Server:
    def __init__(self, name: str, args: list[str], port: int, log_path: Path) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Any, timeout: float = 60) -> "Server":
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if ready(self.port):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # the gunicorn master: graceful stop of its workers
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def gateway_server(tmp: Path, db_url: str, workers: int) -> Server:
    port = free_port()
    args = [
        sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
        "--database-url", db_url, "--report-delay", "0", "--no-demo", "--workers", str(workers),
    ]
    return Server("gateway", args, port, tmp / "gateway.log")


def canned_server(tmp: Path, workers: int) -> Server:
    """benchmarks.canned:app under the gunicorn settings of gateway.server.run_gunicorn."""
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn",
        "--config", os.devnull,  # no gunicorn.conf.py: the gateway reads none either
        "--bind", f"{HOST}:{port}",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--timeout", "120",
        "--graceful-timeout", "10",
        "--access-logfile", "-",
        *control_socket_flags(),
        "benchmarks.canned:app",
    ]
    return Server("canned", args, port, tmp / "canned.log")


def gateway_ready(port: int) -> bool:
    return get(port, "/health") == 200


def canned_ready(port: int) -> bool:
    return post(port, nop_envelope(), timeout=2)[0] == 200


# --- seeding and preparation -----------------------------------------------------------------


def seed(db_url: str, report_rows: int) -> None:
    """The benchmark's shop, one terminal and `report_rows` transactions in its open period."""
    from gateway import ledger, shops, terminals
    from gateway.auth import RESELLERUSER, Principal
    from storage.database import Database
    from storage.models import Terminal

    db = Database(db_url)
    db.create_schema()
    with db.write() as session:
        shops.add_reseller(session, RESELLER_ID, USER_ID, PASSWORD, "Benchmark shop")
        principal = Principal(RESELLERUSER, RESELLER_ID, user_id=USER_ID)
        terminal_id = terminals.register_terminal(
            session, principal, "Bench/Till 1", "till-password", "Till 1"
        )
        terminal = session.get(Terminal, terminal_id)
        assert terminal is not None
        for i in range(report_rows):
            kind = "REFUND" if i % 20 == 19 else "SALE"
            cashier = None if i % 10 == 0 else f"cashier-{i % 4}"
            amount = Decimal(100 + 37 * i) / 100
            ledger.record_transaction(session, terminal, kind, amount, "SEK", cashier)
    db.dispose()


def ready_report(port: int, timeout: float = 60) -> tuple[str, int]:
    """Mark the shop period, then ask for its STD_RECON_003 until it is READY (resultCode 0)."""
    status, body = post(port, mark_envelope())
    found = PERIOD_RE.search(body)
    if status != 200 or result_code(body) != 0 or found is None:
        raise RuntimeError(f"markTransactionPeriod failed: {describe(status, body)}")
    period_id = found.group(1).decode()
    request = report_envelope(period_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = post(port, request)
        code = result_code(body)
        if status == 200 and code == 0:
            return period_id, len(body)
        if status != 200 or code != 2:  # 2 REPORT_NOT_READY: ask again
            raise RuntimeError(f"executeReport failed: {describe(status, body)}")
        time.sleep(0.1)
    raise RuntimeError("executeReport did not become READY in time")


# --- load generation -------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    duration: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    response_bytes: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.duration

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]  # nearest rank


def client(port: int, body: bytes, expected: int, warmup: float, duration: float,
           barrier: Any, results: Any) -> None:
    """One sequential client: warm up, then send requests for `duration` seconds."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    size = 0
    barrier.wait()
    measure_from = time.perf_counter() + warmup
    end = measure_from + duration
    while True:
        start = time.perf_counter()
        if start >= end:
            break
        try:
            conn.request("POST", SOAP_PATH, body, HEADERS)
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            problem: str | None = f"{type(error).__name__}: {error}"
        else:
            problem = None
            if status != 200 or result_code(data) != expected:
                problem = describe(status, data)
        stop = time.perf_counter()
        if start < measure_from:
            continue
        if problem is None:
            latencies.append(stop - start)
            size = len(data)
        else:
            errors[problem] += 1
    conn.close()
    results.put((latencies, dict(errors), size))


def measure(name: str, port: int, body: bytes, expected: int, clients: int, warmup: float,
            duration: float) -> Measurement:
    context = mp.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=client, args=(port, body, expected, warmup, duration, barrier, results)
        )
        for _ in range(clients)
    ]
    outcome = Measurement(name, duration)
    try:
        for process in processes:
            process.start()
        barrier.wait(timeout=60)  # every client started and imported: go
        for _ in processes:
            latencies, errors, size = results.get(timeout=warmup + duration + 120)
            outcome.latencies += latencies
            outcome.errors.update(errors)
            outcome.response_bytes = max(outcome.response_bytes, size)
        for process in processes:
            process.join(30)
    finally:
        for process in processes:  # only on failure: a client that is still there
            if process.is_alive():
                process.terminate()
                process.join()
    return outcome


def merge(rounds: list[Measurement]) -> Measurement:
    """Several rounds of one operation as one measurement (all requests, all seconds)."""
    total = Measurement(rounds[0].name, sum(r.duration for r in rounds))
    for r in rounds:
        total.latencies += r.latencies
        total.errors.update(r.errors)
        total.response_bytes = max(total.response_bytes, r.response_bytes)
    return total


# --- report ----------------------------------------------------------------------------------


def print_table(rows: list[Measurement], ceiling: Measurement) -> None:
    header = (
        f"{'operation':<32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ok':>7} "
        f"{'errors':>6} {'resp B':>7} {'req/s vs canned':>16} {'p50 vs canned':>14}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        share = row.rate / ceiling.rate if ceiling.rate else float("nan")
        slower = row.percentile(50) / ceiling.percentile(50) if ceiling.ok else float("nan")
        print(
            f"{row.name:<32} {row.rate:>8.1f} {row.percentile(50) * 1000:>8.2f} "
            f"{row.percentile(99) * 1000:>8.2f} {row.ok:>7} {row.failed:>6} "
            f"{row.response_bytes:>7} {share:>15.1%} {slower:>13.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=4,
                        help="client processes sending requests (default 4)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="measured seconds per operation (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured seconds of load before each measurement (default 1)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every operation this many times, interleaved, and pool "
                        "the results (default 1)")
    parser.add_argument("--report-rows", type=int, default=100,
                        help="transactions in the reported period (default 100)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (database, server logs)")
    args = parser.parse_args(argv)

    import gunicorn

    tmp = Path(tempfile.mkdtemp(prefix="bench-soap-"))
    db_url = f"sqlite:///{tmp / 'x.sqlite3'}"
    servers: list[Server] = []
    try:
        print(
            f"python {platform.python_version()}, gunicorn {gunicorn.__version__}, "
            f"{os.cpu_count()} CPUs; {args.workers} gunicorn workers (sync), "
            f"{args.clients} client processes, {args.warmup:g} s warm-up + "
            f"{args.duration:g} s per measurement; database {db_url}; load average "
            f"{os.getloadavg()[0]:.2f} (other work on the machine skews every figure)",
            flush=True,
        )
        started = time.perf_counter()
        seed(db_url, args.report_rows)
        print(f"seeded shop {RESELLER_ID} with {args.report_rows} transactions "
              f"in {time.perf_counter() - started:.2f} s", flush=True)

        gateway = gateway_server(tmp, db_url, args.workers)
        canned = canned_server(tmp, args.workers)
        servers += [gateway, canned]
        gateway.start(gateway_ready)
        canned.start(canned_ready)
        print(f"gateway on port {gateway.port}, canned app on port {canned.port}", flush=True)

        period_id, report_size = ready_report(gateway.port)
        print(f"STD_RECON_003 of period {period_id} is READY ({report_size} byte response)",
              flush=True)

        plan = [
            ("canned app (ceiling)", canned.port, nop_envelope(), 0),
            ("benchmarkingNop", gateway.port, nop_envelope(), 0),
            ("markTransactionPeriod", gateway.port, mark_envelope(), 0),
            ("executeReport 003 (READY)", gateway.port, report_envelope(period_id), 0),
        ]
        rounds: dict[str, list[Measurement]] = {name: [] for name, *_ in plan}
        for round_number in range(1, args.rounds + 1):
            for name, port, body, expected in plan:
                result = measure(
                    name, port, body, expected, args.clients, args.warmup, args.duration
                )
                rounds[name].append(result)
                print(f"  round {round_number} {name}: {result.rate:.1f} req/s, "
                      f"p50 {result.percentile(50) * 1000:.2f} ms, {result.failed} errors",
                      flush=True)
        results = [merge(rounds[name]) for name, *_ in plan]

        print()
        print_table(results, results[0])
        print(f"(load average {os.getloadavg()[0]:.2f} at the end)")
        failures = [row for row in results if row.failed]
        if failures:
            print("\nERRORS (these calls did not answer as expected; their figures are suspect):")
            for row in failures:
                for problem, count in row.errors.most_common(5):
                    print(f"  {row.name}: {count} x {problem}")
        else:
            print("\nno errors: every measured response was HTTP 200 with the expected resultCode")
        return 1 if failures else 0
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
