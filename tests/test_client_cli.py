"""`seqr-client` as a user runs it: a subprocess talking to the real gateway over HTTP."""

import json
import os
import pty
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.support.clients import (
    CLI,
    BusyProxy,
    Till,
    cli_env,
    once_per_run,
    run_cli,
    shop_args,
    shop_client,
    simulate,
    till_args,
)
from tests.support.envelopes import PERIOD_RE
from tests.support.servers import GatewayServer, Shop, make_shop
from wsdl import report_schema

FAST = ["--first-poll-after", "0", "--poll-interval", "0.2", "--wait", "30"]


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


def test_the_console_script_is_installed_and_documents_itself() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("register-terminal", "assign-seqr-id", "pay", "status", "cancel", "refund",
                    "close-period", "report", "reconcile"):
        assert command in result.stdout
    reconcile_help = run_cli("reconcile", "--help").stdout
    assert "--journal" in reconcile_help and "exit 0 match, 1 discrepancies, 2 errors" in \
        " ".join(reconcile_help.split())


def test_register_and_assign_with_credentials_from_the_environment(server: GatewayServer,
                                                                   shop: Shop) -> None:
    env = cli_env(SEQR_ENDPOINT=server.endpoint, SEQR_PRINCIPAL_ID=shop.reseller_id,
                  SEQR_USER_ID=shop.user_id, SEQR_PASSWORD=shop.password)
    registered = run_cli("register-terminal", "Store 9/Till 1", "--terminal-password",
                         "till-pw", "--name", "Till 1", env=env)
    assert registered.returncode == 0, registered.stderr
    terminal_id = registered.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", terminal_id)

    till_env = cli_env(SEQR_ENDPOINT=server.endpoint, SEQR_PRINCIPAL_TYPE="TERMINALID",
                       SEQR_PRINCIPAL_ID=terminal_id, SEQR_PASSWORD="till-pw")
    sticker = "CLI" + shop.reseller_id[-8:].upper()
    assigned = run_cli("assign-seqr-id", sticker, "--json", env=till_env)
    assert assigned.returncode == 0, assigned.stderr
    assert json.loads(assigned.stdout) == {"terminalId": terminal_id, "seqrId": sticker,
                                           "qrCode": f"HTTP://SEQR.SE/Q{sticker}"}
    # a flag wins over its environment variable
    wrong = run_cli("assign-seqr-id", sticker, "--password", "not-it", env=till_env)
    assert wrong.returncode == 2 and "20 AUTHENTICATION_FAILED" in wrong.stderr


def _pay(server: GatewayServer, till: Till, *args: str,
         buyer: str | None = "pay") -> tuple[subprocess.CompletedProcess[str], str]:
    """`seqr-client pay` in the background; once it has polled the invoice, the buyer acts."""
    process = subprocess.Popen([*CLI, "pay", *args, *till_args(server, till)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env())
    assert process.stderr is not None
    lines = []
    reference = ""
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"invoice (\d{13}) sent", line)
        reference = found.group(1) if found else reference
        if reference and f"invoice {reference}: ISSUED (poll 1," in line:
            break
    if reference and buyer:
        simulate(server, reference, buyer)
    stdout, rest = process.communicate(timeout=60)
    stderr = "".join(lines) + rest
    assert "Traceback" not in stderr, stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), \
        reference


def test_pay_waits_for_the_buyer_then_status_refund_cancel(server: GatewayServer,
                                                           shop: Shop) -> None:
    till = Till(server, shop, "Till P")
    paid, reference = _pay(server, till, "25.50", "--cashier", "anna", "--poll-interval",
                           "0.2")
    assert paid.returncode == 0, paid.stderr
    assert re.search(r"^status\s+PAID$", paid.stdout, re.M)
    assert re.search(r"^amount\s+25.50 SEK$", paid.stdout, re.M)
    assert re.search(rf"^invoiceReference\s+{reference}$", paid.stdout, re.M)
    assert re.search(rf"invoice {reference}: ISSUED \(poll 1, [\d.]+ s elapsed\)", paid.stderr)
    assert re.search(rf"invoice {reference}: PAID \(poll \d+", paid.stderr)

    status = run_cli("status", reference, "--json", *till_args(server, till))
    assert status.returncode == 0
    answer = json.loads(status.stdout)
    assert list(answer) == ["invoiceReference", "status", "version", "ersReference", "receipt"]
    assert (answer["status"], answer["version"]) == ("PAID", 2)
    assert answer["receipt"]["amount"] == "25.50" and answer["receipt"]["cashierId"] == "anna"
    payment = answer["ersReference"]

    refund = run_cli("refund", payment, "5.50", "--cashier", "anna", *till_args(server, till))
    assert refund.returncode == 0 and PERIOD_RE.match(refund.stdout.strip())
    too_much = run_cli("refund", payment, "20.01", *till_args(server, till))
    assert too_much.returncode == 2
    assert "98 SUM_OF_REFUNDS_CAN_NOT_BE_MORE_THAN_ORIGINAL_TRANSACTION" in too_much.stderr

    failed, _ = _pay(server, till, "9.00", "--poll-interval", "0.2", buyer="fail")
    assert failed.returncode == 1 and re.search(r"^status\s+FAILED$", failed.stdout, re.M)

    # nobody pays: after --wait the invoice is canceled, so no one can pay it unseen
    unpaid, unpaid_ref = _pay(server, till, "3.00", "--wait", "0.5", "--poll-interval", "0.2",
                              "--json", buyer=None)
    assert unpaid.returncode == 1 and json.loads(unpaid.stdout)["status"] == "CANCELED"
    assert "canceling it" in unpaid.stderr

    again = run_cli("cancel", unpaid_ref, *till_args(server, till))
    assert again.returncode == 2 and "95 INVOICE_ALREADY_CANCELED" in again.stderr
    unknown = run_cli("status", "1234567890123", *till_args(server, till))
    assert unknown.returncode == 2 and "54 INVALID_INVOICE_REFERENCE" in unknown.stderr


def test_close_period_and_every_report_format(server: GatewayServer, shop: Shop,
                                              tmp_path: Path) -> None:
    till = Till(server, shop, "Till R")
    sale = till.sell("93.31", "anna")
    till.sell("10.00")
    closed = run_cli("close-period", "--json", *shop_args(server, shop))
    assert closed.returncode == 0
    answer = json.loads(closed.stdout)
    assert list(answer) == ["transactionPeriodId", "terminalId", "closedAt"]
    period = answer["transactionPeriodId"]
    assert PERIOD_RE.match(period) and answer["terminalId"] is None

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli("report", "3", "--period", period, *args, *FAST,
                         *shop_args(server, shop))
        assert result.returncode == 0, result.stderr
        return result

    xml = report("--format", "xml", "-q")
    document = etree.fromstring(xml.stdout.encode())
    report_schema("STD_RECON_003").assertValid(document)  # the document as SEQR sent it
    assert xml.stderr == ""  # --quiet: no progress at all

    rows = json.loads(report("--json").stdout)
    assert rows["reportId"] == "STD_RECON_003" and rows["transactionPeriodId"] == period
    assert rows["rows"][0] == {"terminalId": till.id, "cashierId": "anna",
                               "salesAmount": "93.31000", "ersReference": sale}
    assert rows["rows"][1]["cashierId"] is None
    assert rows["totals"] == {"salesCount": 2, "salesTotal": "103.31000", "refundCount": 0,
                              "refundTotal": "0.00000", "netTotal": "103.31000"}

    csv = report("--format", "csv").stdout.splitlines()
    assert csv[0] == "TerminalId,CashierId,SalesAmount,ErsReference"
    assert csv[2].startswith(f"{till.id},NULL,10.00000,")

    table = report().stdout
    assert sale in table and "93.31000" in table and "net 103.31" in table

    out = tmp_path / "summary.json"  # the format from the file's extension
    written = report("-o", str(out))
    assert f"to {out}" in written.stderr and written.stdout == ""
    assert json.loads(out.read_text())["rows"][0]["ersReference"] == sale

    summary = run_cli("report", "STD_RECON_004", "--period", period, "--format", "json",
                      *FAST, *shop_args(server, shop))
    assert {r["cashierId"] for r in json.loads(summary.stdout)["rows"]} == {"anna", None}

    # a till closes its own period (no --terminal needed) and reads its own report
    own = run_cli("close-period", *till_args(server, till))
    assert own.returncode == 0 and f"terminal {till.id}" in own.stderr
    own_report = run_cli("report", "STD_RECON_007", "--period", own.stdout.strip(), "--json",
                         *FAST, *till_args(server, till))
    assert json.loads(own_report.stdout)["terminalId"] == till.id


def test_errors_name_the_code_and_what_to_do(server: GatewayServer, shop: Shop) -> None:
    args = shop_args(server, shop)
    wrong = run_cli("close-period", *args, "--password", "wrong")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "20 AUTHENTICATION_FAILED" in wrong.stderr
    assert "what to do:" in wrong.stderr and "--password" in wrong.stderr

    nobody = run_cli("close-period", *args, "--principal-id", "no-such-shop", "--json")
    assert nobody.returncode == 2 and "37 INITIATOR_PRINCIPAL_NOT_FOUND" in nobody.stderr
    error = json.loads(nobody.stdout)["error"]
    assert (error["code"], error["name"]) == (37, "INITIATOR_PRINCIPAL_NOT_FOUND")
    assert "--principal-id" in error["hint"]

    period = run_cli("report", "STD_RECON_001", "--period", "2" * 25, *args, *FAST)
    assert period.returncode == 2 and "23 INVALID_ERS_REFERENCE" in period.stderr
    assert "--period" in period.stderr and "close-period" in period.stderr

    unreachable = run_cli("close-period", *args, "--endpoint",
                          "http://127.0.0.1:9/extclientproxy/service/v2")
    assert unreachable.returncode == 2
    assert "cannot reach http://127.0.0.1:9/" in unreachable.stderr
    assert "--endpoint" in unreachable.stderr and "SEQR_ENDPOINT" in unreachable.stderr

    wrong_path = run_cli("close-period", *args, "--endpoint", server.base + "/nothing")
    assert wrong_path.returncode == 2 and "HTTP 404" in wrong_path.stderr

    unset = run_cli("close-period")
    assert unset.returncode == 2 and "no endpoint" in unset.stderr
    assert "SEQR_ENDPOINT" in unset.stderr
    bad_env = run_cli("close-period", *args, env=cli_env(SEQR_TIMEOUT="soon"))
    assert bad_env.returncode == 2 and "SEQR_TIMEOUT='soon'" in bad_env.stderr
    bad_report = run_cli("report", "STD_RECON_005", "--period", "1", *args)
    assert bad_report.returncode == 2 and "unknown report id" in bad_report.stderr


@pytest.fixture
def proxy(server: GatewayServer) -> Iterator[BusyProxy]:
    proxy = BusyProxy(server).start()
    yield proxy
    proxy.stop()


def test_busy_answers_are_retried_then_given_up(proxy: BusyProxy, shop: Shop) -> None:
    args = [*shop_args(proxy.endpoint, shop), "--retry-backoff", "0.01"]
    proxy.busy = 2
    retried = run_cli("close-period", *args)
    assert retried.returncode == 0, retried.stderr
    assert PERIOD_RE.match(retried.stdout.strip())
    assert proxy.requests == 3
    assert "93 SYSTEM_BUSY: try again later; retry 1 of 3" in retried.stderr
    assert "retry 2 of 3" in retried.stderr

    proxy.busy, proxy.busy_answers, proxy.requests = 10, 0, 0
    gave_up = run_cli("close-period", *args, "--retries", "1")
    assert gave_up.returncode == 2 and proxy.requests == 2
    assert "93 SYSTEM_BUSY" in gave_up.stderr and "after 1 retries" in gave_up.stderr
    assert "try again in a minute" in gave_up.stderr


# --- waiting for a report the server is slow to make ----------------------------------------

@pytest.fixture(scope="module")
def slow_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer(tmp_path_factory.mktemp("slow-cli"), "--report-delay", "1").start()
    yield server
    server.stop()


def test_report_not_ready_shows_plain_progress_lines(slow_reports: GatewayServer) -> None:
    """Not a terminal (CI, a log file): a line when the state changes, not one per poll."""
    shop = make_shop(slow_reports.db)
    period = shop_client(slow_reports, shop).close_period().period_id
    waited = run_cli("report", "1", "--period", period, "--poll-interval", "0.2",
                     *shop_args(slow_reports, shop))
    assert waited.returncode == 0, waited.stderr
    lines = waited.stderr.splitlines()
    assert len(lines) == 2, lines  # ~5 polls in the report's second: two states
    assert lines[0].startswith(
        f"seqr-client: STD_RECON_001 of period {period}: REPORT_NOT_READY (poll 1, ")
    assert re.search(r": ready \(poll ([3-9]|\d\d+), [\d.]+ s elapsed\)$", lines[-1])
    assert "SalesCount" in waited.stdout

    quiet = run_cli("report", "1", "--period", shop_client(slow_reports, shop).close_period()
                    .period_id, "--poll-interval", "0.2", "-q", "--json",
                    *shop_args(slow_reports, shop))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["totals"]["salesCount"] == 0


def test_report_not_ready_shows_a_live_spinner_on_a_terminal(slow_reports: GatewayServer
                                                             ) -> None:
    shop = make_shop(slow_reports.db)
    period = shop_client(slow_reports, shop).close_period().period_id
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [*CLI, "report", "1", "--period", period, "--poll-interval", "0.2", "--format", "json",
         *shop_args(slow_reports, shop)],
        stdout=subprocess.PIPE, stderr=slave, text=True,
        env=cli_env(TERM="xterm-256color", COLUMNS="120"))
    os.close(slave)
    chunks: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=60)
    reader.join(10)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, screen
    assert json.loads(stdout)["reportId"] == "STD_RECON_001"  # results stay plain on stdout
    assert "REPORT_NOT_READY" in screen and re.search(r"poll [1-9]", screen)
    assert re.search(r"0:00:0\d", screen)  # the elapsed time, as the spinner shows it
    assert "\x1b[" in screen  # redrawn in place, not printed line by line
    assert "(poll 1," not in screen and "Traceback" not in screen

