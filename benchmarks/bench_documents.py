"""The back-office outputs of a large period: time, size and pages of each format.

A synthetic STD_RECON_003 of N transactions (default 10,000: sales and every tenth a
refund, over 8 terminals and 20 cashiers), parsed by the client as it parses SEQR's, and
two journals: one that matches it (a clean period: the settlement report is short) and an
empty one (every transaction "missing in the register": the settlement report lists all N
rows, the longest it gets). For each, every `--format` of `seqr-client reconcile` is made
in-process (`client.backoffice.render`) and timed; the PDF's pages are counted. No server
and no network: this measures the documents, not SEQR.

    python benchmarks/bench_documents.py [-n 10000]
"""

import argparse
import re
import resource
import time
from decimal import Decimal

from client import parse_journal, parse_report, reconcile
from client.backoffice import FORMATS, PDF, DocumentOptions, period_facts, render

PERIOD = "2026052118000000000000009"


def report_xml(n: int) -> bytes:
    rows = []
    for i in range(n):
        amount = Decimal(i % 500 + 1) + Decimal("0.25")
        if i % 10 == 9:
            amount = -amount
        rows.append(f"<Row><TerminalId>{i % 8 + 1:032x}</TerminalId><CashierId>c{i % 20}"
                    f"</CashierId><SalesAmount>{amount:.5f}</SalesAmount><ErsReference>"
                    f"202605210900{i % 60:02d}{i % 1000:03d}{i:08d}</ErsReference></Row>")
    return (f"<TransactionDetails><Meta><ResellerId>4711</ResellerId><TransactionPeriodId>"
            f"{PERIOD}</TransactionPeriodId><GeneratedAt>2026-05-21 18:00</GeneratedAt></Meta>"
            + "".join(rows) + "</TransactionDetails>").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--transactions", type=int, default=10_000)
    n = parser.parse_args().transactions
    report = parse_report(report_xml(n), "STD_RECON_003")
    matching = parse_journal([
        "ersReference,terminalId,cashierId,amount,type\n",
        *(f"{r.ers_reference},{r.terminal_id},{r.cashier_id},{abs(r.amount)},"
          f"{'refund' if r.is_refund else 'sale'}\n" for r in report.details)])
    options = DocumentOptions(tenant_id="bench", notes=("benchmark",))
    print(f"{n:,} transactions; times in seconds (this machine, other work on it may "
          "inflate them)")
    print(f"{'journal':<10} {'format':<22} {'time':>7} {'size':>10}  pages")
    for name, journal in (("matching", matching), ("empty", [])):
        started = time.perf_counter()
        period = period_facts(report, reconcile(journal, report))
        print(f"{name:<10} {'(compare)':<22} {time.perf_counter() - started:7.2f}")
        for fmt in FORMATS:
            started = time.perf_counter()
            data = render(fmt, period, options)
            took = time.perf_counter() - started
            pages = len(re.findall(rb"/Type /Page\b", data)) if fmt == PDF else ""
            print(f"{name:<10} {fmt:<22} {took:7.2f} {len(data) / 1024:8.0f} KiB  {pages}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run: {peak:.0f} MB")


if __name__ == "__main__":
    main()
