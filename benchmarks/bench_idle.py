"""Polling registers beside idle connections: does an attacker's idle socket cost them?

What it measures: the latency (p50, p99, max) of getPaymentStatus as 16 registers poll it
(each a terminal of its own with an ISSUED invoice, each on its own kept-alive HTTP
connection, one poll every `--interval` seconds), through `seqr-gateway serve` started as
users start it (the embedded default: one worker process, SQLite, report worker thread
inside; `--workers N` for more), twice: with no other connection open, then with 100
connections beside them that connect and send nothing. The idle connections reconnect at
once whenever the server drops them (it does after its read deadline,
`--request-read-timeout`), as an attacker would; the script prints how often that happened
and how long the server let them stay. Both phases run on the same server, one after the
other, and the ratio of their p99s is printed: on a shared machine the ratio means more
than either figure.

Then, on the same server: how long a wrong password takes for a principal that exists and
for one that does not (the answers must not tell them apart), median of `--auth-samples`.
The server runs with `--auth-max-failures 0` (the throttle's off switch, for load tests),
else the guesses here would be refused after 10.

    python benchmarks/bench_idle.py [--workers 1] [--registers 16] [--idle 100]
                                    [--duration 10] [--interval 0.25] [--database-url URL]

It prints figures; it asserts nothing about them (every answer is checked, errors counted).
"""

import argparse
import http.client
import os
import platform
import selectors
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_soap import (  # noqa: E402 (after the sys.path line)
    HEADERS,
    HOST,
    INVOICE_RE,
    RESELLER_ID,
    SOAP_PATH,
    STATUS_RE,
    TERMINAL_ID_RE,
    USER_ID,
    Server,
    envelope,
    free_port,
    gateway_ready,
    migrate,
    register_terminal_envelope,
    result_code,
    seed,
    send_invoice_envelope,
    soap_call,
    status_envelope,
)
from tests.support.envelopes import context_xml  # noqa: E402


class IdleCrowd:
    """`count` connections that send nothing, reconnecting when dropped; one thread."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.selector = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.drops: list[float] = []
        self.failed_connects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> None:
        try:
            sock = socket.create_connection((HOST, self.port), timeout=5)
        except OSError:
            self.failed_connects += 1
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, time.monotonic())

    def __enter__(self) -> "IdleCrowd":
        for _ in range(self.count):
            self._open()
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue
                self.drops.append(time.monotonic() - key.data)
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                self._open()

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def poll_loop(port: int, body: bytes, until: float, interval: float,
              latencies: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    next_poll = time.monotonic()
    while next_poll < until:
        pause = next_poll - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        started = time.perf_counter()
        try:
            conn.request("POST", SOAP_PATH, body, HEADERS)
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"{type(error).__name__}: {error}")
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
        else:
            latencies.append(time.perf_counter() - started)
            found = STATUS_RE.search(answer)
            if response.status != 200 or result_code(answer) != 0 or found is None or (
                    found.group(1) != b"ISSUED"):
                errors.append(f"HTTP {response.status}: {answer[:200]!r}")
        next_poll += interval
    conn.close()


def phase(port: int, polls: list[bytes], duration: float, interval: float
          ) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + duration
    threads = [threading.Thread(target=poll_loop, args=(port, body, until, interval, latencies,
                                                        errors)) for body in polls]
    for number, thread in enumerate(threads):  # spread the registers over the interval
        thread.start()
        time.sleep(interval / len(threads) if number < len(threads) - 1 else 0)
    for thread in threads:
        thread.join()
    return latencies, errors


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def describe(name: str, latencies: list[float], errors: list[str]) -> str:
    if not latencies:
        return f"{name}: no answers, {len(errors)} errors"
    ms = [v * 1000 for v in latencies]
    return (f"{name:<28} {len(ms):>6} polls  p50 {percentile(ms, 0.5):7.1f} ms  "
            f"p99 {percentile(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms  errors {len(errors)}")


def wrong_password_seconds(port: int, principal_id: str, samples: int) -> float:
    body = envelope("requestPrincipalInformation",
                    context_xml(principal_id, password="wrong", user_id=USER_ID))
    times = []
    for _ in range(samples):
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        started = time.perf_counter()
        conn.request("POST", SOAP_PATH, body, HEADERS)
        answer = conn.getresponse().read()
        times.append(time.perf_counter() - started)
        conn.close()
        if result_code(answer) not in (20, 37):
            raise RuntimeError(f"unexpected answer: {answer[:300]!r}")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes (1)")
    parser.add_argument("--registers", type=int, default=16, help="polling registers (16)")
    parser.add_argument("--idle", type=int, default=100, help="idle connections (100)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="seconds between one register's polls (0.25)")
    parser.add_argument("--request-read-timeout", type=float, default=5.0,
                        help="the server's read deadline (its default, 5)")
    parser.add_argument("--auth-samples", type=int, default=15,
                        help="wrong-password answers timed per kind of principal (15)")
    parser.add_argument("--database-url", help="a PostgreSQL server to run on (see "
                        "benchmarks/scratch.py); default a temporary SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    from benchmarks.scratch import safe, scratch_database

    tmp = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    try:
        with scratch_database(args.database_url, tmp, "bench_idle", keep=args.keep) as url:
            print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.2f} (other work on the machine skews every figure); "
                  f"database {safe(url)}; {args.workers} worker process(es); "
                  f"{args.registers} registers polling every {args.interval:g} s for "
                  f"{args.duration:g} s per phase", flush=True)
            migrate(url, tmp)
            seed(url, 0)
            port = free_port()
            server = Server("gateway", [
                sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(port),
                "--database-url", url, "--report-delay", "0", "--no-demo",
                "--workers", str(args.workers), "--auth-max-failures", "0",
                "--request-read-timeout", str(args.request_read_timeout),
            ], port, tmp / "gateway.log").start(gateway_ready)
            try:
                return run(args, port)
            finally:
                server.stop()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, port: int) -> int:
    polls = []
    for _ in range(args.registers):  # as registers do it: a terminal, then an invoice
        terminal = soap_call(port, register_terminal_envelope(), "registerTerminal",
                             TERMINAL_ID_RE)
        invoice = soap_call(port, send_invoice_envelope(terminal), "sendInvoice", INVOICE_RE)
        polls.append(status_envelope(terminal, invoice))
    phase(port, polls, 2.0, args.interval)  # warm-up: every thread has seen a request

    quiet, quiet_errors = phase(port, polls, args.duration, args.interval)
    print(describe("0 idle connections", quiet, quiet_errors), flush=True)
    with IdleCrowd(port, args.idle) as crowd:
        time.sleep(0.5)
        crowded, crowded_errors = phase(port, polls, args.duration, args.interval)
    print(describe(f"{args.idle} idle connections", crowded, crowded_errors))
    if crowd.drops:
        print(f"  the server dropped idle connections {len(crowd.drops)} times, each after "
              f"{min(crowd.drops):.2f}-{max(crowd.drops):.2f} s; the crowd reconnected at once"
              f" ({crowd.failed_connects} connects failed)")
    if quiet and crowded:
        ratio = percentile(crowded, 0.99) / percentile(quiet, 0.99)
        print(f"p99 with {args.idle} idle / p99 with none: {ratio:.2f}")

    known = wrong_password_seconds(port, RESELLER_ID, args.auth_samples)
    unknown = wrong_password_seconds(port, "no-such-shop", args.auth_samples)
    print(f"wrong password, median of {args.auth_samples}: existing principal "
          f"{known * 1000:.1f} ms, unknown principal {unknown * 1000:.1f} ms "
          f"(ratio {unknown / known:.2f})")
    for errors in (quiet_errors, crowded_errors):
        for error in sorted(set(errors))[:5]:
            print(f"  error: {error}")
    return 1 if quiet_errors or crowded_errors else 0


if __name__ == "__main__":
    sys.exit(main())
