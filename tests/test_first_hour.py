"""A new user's first hour: every message met on the way says what happened and what to do.

The commands run as a user runs them (subprocesses, the real gateway over HTTP); messages are
checked word for word where the wording is the point, exit codes always.
"""

import json
import re
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from client import AccessDeniedError, Invoice, Principal, WaitTimeoutError
from gateway import shops
from tests.support.clients import (
    CLI,
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

GATEWAY = [sys.executable, "-m", "gateway.cli.main"]
FAST = ["--first-poll-after", "0", "--poll-interval", "0.2", "--wait", "30"]


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


def gateway_cli(*args: str, cwd: Path | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*GATEWAY, *args], capture_output=True, text=True, cwd=cwd,
                            timeout=timeout, env=cli_env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines()
            if line.startswith(("seqr-client: error:", "seqr-client: what to do:"))]


# --- the commands describe themselves ------------------------------------------------------

def test_both_commands_tell_their_version_and_their_commands() -> None:
    from importlib import metadata

    version = metadata.version("seqr-emulator")
    client = run_cli("--version")
    assert (client.returncode, client.stdout) == (0, f"seqr-client {version}\n")
    gateway = gateway_cli("--version")
    assert (gateway.returncode, gateway.stdout) == (0, f"seqr-gateway {version}\n")

    helped = " ".join(gateway_cli("--help").stdout.split())
    assert "act as the buyer (simulate)" in helped
    assert "--log-level {DEBUG,INFO,WARNING,ERROR,CRITICAL} least level logged" in helped
    assert "simulate act as the buyer on a running gateway" in helped
    wrong = gateway_cli("--log-level", "LOUD", "migrate")
    assert wrong.returncode == 2 and "invalid choice: 'LOUD'" in wrong.stderr


def test_an_endpoint_without_its_scheme_is_named(server: GatewayServer, shop: Shop) -> None:
    bare = server.endpoint.removeprefix("http://")
    result = run_cli("close-period", *shop_args(bare, shop))
    assert result.returncode == 2
    assert error_lines(result) == [
        f"seqr-client: error: endpoint {bare!r} has no http:// or https://",
        f"seqr-client: what to do: write the URL in full, e.g. --endpoint http://{bare}"]
    other = run_cli("close-period", *shop_args("ftp://127.0.0.1/x", shop))
    assert other.returncode == 2 and "is not an http(s) URL" in other.stderr


# --- hints that match the cause the gateway gave ------------------------------------------

def test_each_access_denied_gets_the_hint_of_its_cause(server: GatewayServer,
                                                       shop: Shop) -> None:
    short = run_cli("register-terminal", "Till S", "--terminal-password", "abc",
                    *shop_args(server, shop))
    assert short.returncode == 2
    assert error_lines(short) == [
        "seqr-client: error: registerTerminal: 21 ACCESS_DENIED (terminal password refused: a "
        "password needs at least 4 characters)",
        "seqr-client: what to do: choose a terminal password of at least 4 characters "
        "(--terminal-password)"]

    other_shop = make_shop(server.db)
    period = shop_client(server, other_shop).close_period().period_id
    foreign = run_cli("report", "3", "--period", period, *FAST, *shop_args(server, shop))
    assert foreign.returncode == 2
    assert error_lines(foreign) == [
        f"seqr-client: error: executeReport: 21 ACCESS_DENIED (transaction period {period} is "
        "not yours)",
        f"seqr-client: what to do: transaction period {period} belongs to another shop (or, "
        "for a till, to another terminal): check the id, and that you call with the "
        "credentials of the shop or till it belongs to"]

    till = Till(server, shop, "Till H")
    shop_work = run_cli("register-terminal", "Till X", "--terminal-password", "till-pw",
                        *till_args(server, till))
    assert shop_work.returncode == 2
    assert error_lines(shop_work)[1] == (
        "seqr-client: what to do: this is the shop's work: call it with the shop user's "
        "credentials (--principal-id SHOP --user-id USER, principal type RESELLERUSER)")
    with server.db.write() as session:
        shops.add_reseller(session, shop.reseller_id, "9901", "other-pw-1")
    with pytest.raises(AccessDeniedError) as sibling:
        shop_client(server, shop).change_principal_password(
            "new-pw-1", Principal("RESELLERUSER", shop.reseller_id, "9901"))
    assert sibling.value.hint == ("a shop's user changes its own password and its "
                                  "terminals', not user 9901's: call as user 9901")
    hints = {line for r in (short, foreign, shop_work) for line in error_lines(r)[1:]}
    assert len(hints) == 3  # three causes, three hints


def test_invalid_invoice_hint_names_the_gateways_limit(server: GatewayServer,
                                                       shop: Shop) -> None:
    till = Till(server, shop, "Till D")
    precise = run_cli("pay", "1.123456", "--wait", "0", *till_args(server, till))
    assert precise.returncode == 2
    assert error_lines(precise) == [
        "seqr-client: error: sendInvoice: 49 INVALID_INVOICE_DATA (totalAmount 1.123456 has "
        "more than 5 decimals)",
        "seqr-client: what to do: round the amount to at most 5 decimals"]
    payment = till.sell("10.00")
    currency = run_cli("refund", payment, "1.00", "--currency", "EUR", *till_args(server, till))
    assert currency.returncode == 2
    assert error_lines(currency)[1] == \
        "seqr-client: what to do: refund in the payment's currency: --currency SEK"


# --- waiting for the buyer -----------------------------------------------------------------

def test_pay_says_how_to_pay_and_logs_only_changes(server: GatewayServer, shop: Shop) -> None:
    till = Till(server, shop, "Till W")
    unpaid = run_cli("pay", "4.00", "--wait", "1.5", "--poll-interval", "0.1",
                     *till_args(server, till))
    assert unpaid.returncode == 1
    lines = unpaid.stderr.splitlines()
    reference = lines[0].split()[2]
    assert lines[0] == (
        f"seqr-client: invoice {reference} sent for 4.00 SEK (HTTP://SEQR.SE/R{reference}); "
        f"waiting for the buyer (on the emulator: seqr-gateway simulate pay {reference})")
    # ~15 polls, one state: one progress line, then the timeout and the cancel
    progress = [line for line in lines if "(poll " in line]
    assert len(progress) == 1 and f"invoice {reference}: ISSUED (poll 1, " in progress[0]
    assert re.fullmatch(rf"seqr-client: invoice {reference} still ISSUED after \d s; "
                        "canceling it", lines[2])


def test_the_payment_wait_lasts_as_long_as_asked(server: GatewayServer, shop: Shop) -> None:
    till = Till(server, shop, "Till T")
    sent = till.client.send_invoice(Invoice(Decimal("3.00")))
    polls = []
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        till.client.wait_for_payment(sent.invoice_reference, timeout=1.0, poll_interval=0.4,
                                     on_poll=polls.append)
    assert polls[-1].elapsed >= 1.0  # a last poll when the wait runs out, not 0.4 s before
    assert time.monotonic() - started < 3


# --- reconcile twice -----------------------------------------------------------------------

def test_reconciling_the_same_journal_again_refuses_the_new_empty_period(
        server: GatewayServer, shop: Shop, tmp_path: Path) -> None:
    till = Till(server, shop, "Till R")
    till.refund(till.sell("20.00", "anna"), "5.00", "anna")
    journal = write_journal(tmp_path / "journal.csv", till.journal)
    first = run_cli("reconcile", "--journal", str(journal), "--json", *FAST,
                    *till_args(server, till))
    assert first.returncode == 0, first.stderr
    period = json.loads(first.stdout)["transactionPeriodId"]

    again = run_cli("reconcile", "--journal", str(journal), "--json", *FAST,
                    *till_args(server, till))
    assert again.returncode == 2
    error = json.loads(again.stdout)["error"]
    new_period = error["hint"].rsplit("--period ", 1)[1].rstrip(")")
    assert new_period != period
    assert error["name"] == "PERIOD_MISMATCH"
    assert error["message"] == (
        f"none of the journal's 2 transaction(s) is in the terminal {till.id} period "
        f"{new_period} that this run just closed (it holds no transactions); nothing compared")
    assert error["hint"] == (
        "the journal's transactions are in an earlier period, most likely closed by an "
        "earlier reconcile, which printed \"closed the ... period ID\": run again with "
        f"--period ID (to compare with the new period anyway: --period {new_period})")

    by_id = run_cli("reconcile", "--journal", str(journal), "--period", period, *FAST,
                    *till_args(server, till))
    assert by_id.returncode == 0, by_id.stdout
    forced = run_cli("reconcile", "--journal", str(journal), "--period", new_period, *FAST,
                     *till_args(server, till))
    assert forced.returncode == 1  # compared as asked: everything missing in SEQR


# --- a closed pipe -------------------------------------------------------------------------

def _closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with a reader that went away before it wrote (`| head -0`)."""
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=cli_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(60)
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


def test_a_closed_stdout_ends_quietly_with_the_commands_own_code(
        server: GatewayServer, shop: Shop, tmp_path: Path) -> None:
    till = Till(server, shop, "Till C")
    till.sell("12.00", "anna")
    journal = write_journal(tmp_path / "journal.csv", till.journal)
    clean = _closed_stdout("reconcile", "--journal", str(journal), "-q", *FAST,
                           *till_args(server, till))
    assert (clean.returncode, clean.stderr) == (0, "")
    period = shop_client(server, shop).close_period().period_id
    report = _closed_stdout("report", "3", "--period", period, "--format", "json", "-q", *FAST,
                            *shop_args(server, shop))
    assert (report.returncode, report.stderr) == (0, "")
    wrong = write_journal(tmp_path / "wrong.csv", [(*till.journal[0][:3], "13.00", "sale")])
    discrepancies = _closed_stdout("reconcile", "--journal", str(wrong), "--period", period,
                                   "-q", *FAST, *shop_args(server, shop))
    assert (discrepancies.returncode, discrepancies.stderr) == (1, "")
    helped = _closed_stdout("--help")
    assert (helped.returncode, helped.stderr) == (0, "")


# --- the gateway's own commands ------------------------------------------------------------

def test_serve_on_a_taken_port_says_so_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = gateway_cli("serve", "--port", str(port), "--database-url",
                             f"sqlite:///{tmp_path / 'gw.sqlite3'}", timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""  # no banner, no credentials
    assert result.stderr == (
        f"seqr-gateway: port {port} on 127.0.0.1 is taken: another program (another "
        "gateway?) listens there; stop it, or choose another port with --port (SEQR_PORT)\n")
    assert time.monotonic() - started < 15  # not gunicorn's retries


def test_add_reseller_refuses_to_replace_a_password_without_update(tmp_path: Path) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'shops.sqlite3'}"]
    first = gateway_cli("add-reseller", "--id", "4711", "--password", "s3cret", *database)
    assert (first.returncode, first.stdout) == (0, "reseller 4711 user 9900 ready\n")
    again = gateway_cli("add-reseller", "--id", "4711", "--password", "other", *database)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == (
        "seqr-gateway: reseller 4711 user 9900 exists already: nothing changed (--update "
        "sets its password and the shop's name)\n")
    updated = gateway_cli("add-reseller", "--id", "4711", "--password", "other", "--name",
                          "Store 111", "--update", *database)
    assert (updated.returncode, updated.stdout) == (
        0, "reseller 4711 user 9900 updated (new password, shop name)\n")
    second_user = gateway_cli("add-reseller", "--id", "4711", "--user-id", "9901",
                              "--password", "pw-two", *database)
    assert second_user.returncode == 0  # a new user of an existing shop is no replacement
