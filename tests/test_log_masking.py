"""No log line, at any level, shows a password: the gateway at DEBUG, seqr-client -v, the library.

A flow that carries every kind of password the contract has (a shop user's, a new terminal's,
a terminal's own, a changed one, a wrong one) runs with everything logged; then every log is
searched for each password. The logs must show the envelopes (masked), or the test proves
nothing.
"""

import logging
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from client import Invoice, SeqrClient
from tests.support.clients import cli_env, once_per_run, run_cli, simulate
from tests.support.servers import GatewayServer, make_shop
from wsdl.redact import redact

SHOP_PASSWORD = "Shop-Secret-4411"
TILL_PASSWORD = "Till-Secret-5522"
NEW_PASSWORD = "New-Secret-6633"
WRONG_PASSWORD = "Wrong-Secret-7744"
SECRETS = (SHOP_PASSWORD, TILL_PASSWORD, NEW_PASSWORD, WRONG_PASSWORD)


@pytest.fixture(autouse=True)
def _once(database_backend: str) -> None:
    once_per_run(database_backend)


@pytest.fixture(scope="module")
def loud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A gateway logging everything (SEQR_LOG_LEVEL=DEBUG)."""
    server = GatewayServer(tmp_path_factory.mktemp("loud"), "--auto-pay-after", "0.2",
                           env={"SEQR_LOG_LEVEL": "DEBUG"}).start()
    yield server
    server.stop()


def test_no_log_line_shows_a_password(loud: GatewayServer, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    shop = make_shop(loud.db, SHOP_PASSWORD)
    as_shop = ["-v", "--endpoint", loud.endpoint, "--principal-id", shop.reseller_id,
               "--user-id", shop.user_id]
    logs: list[str] = []

    def cli(*args: str, password: str = SHOP_PASSWORD,
            principal: list[str] = as_shop) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, *principal, env=cli_env(SEQR_PASSWORD=password))
        logs.append(result.stderr)
        return result

    registered = cli("register-terminal", "Till M", "--terminal-password", TILL_PASSWORD)
    assert registered.returncode == 0, registered.stderr
    till = registered.stdout.strip()
    as_till = ["-v", "--endpoint", loud.endpoint, "--principal-type", "TERMINALID",
               "--principal-id", till]
    assert cli("pay", "7.00", "--poll-interval", "0.2", "--wait", "30",
               password=TILL_PASSWORD, principal=as_till).returncode == 0  # auto-paid
    assert cli("close-period", password=TILL_PASSWORD, principal=as_till).returncode == 0
    refused = cli("close-period", password=WRONG_PASSWORD)
    assert refused.returncode == 2 and "20 AUTHENTICATION_FAILED" in refused.stderr

    caplog.set_level(logging.DEBUG)  # the library, logging through the program's own handlers
    library = SeqrClient.for_shop(loud.endpoint, shop.reseller_id, shop.user_id, SHOP_PASSWORD)
    library.as_terminal(till, TILL_PASSWORD).change_principal_password(NEW_PASSWORD)
    renamed = SeqrClient.for_terminal(loud.endpoint, till, NEW_PASSWORD)
    simulate(loud, renamed.send_invoice(Invoice(Decimal("2.00"))).invoice_reference, "fail")
    logs.append(caplog.text)
    loud.stop()  # every line of the gateway written out
    logs.append(loud.log_path.read_text())

    everything = "\n".join(logs)
    assert everything.count("<password>***</password>") >= 5  # the envelopes were logged
    assert "<newPassword>***</newPassword>" in everything
    assert "DEBUG" in logs[-1] and "POST /extclientproxy/service/v2" in logs[-1]
    for secret in SECRETS:
        leaks = [line for line in everything.splitlines() if secret in line]
        assert leaks == [], f"{secret} logged: {leaks[:3]}"


def test_redact_masks_the_contracts_password_elements_and_url_passwords() -> None:
    envelope = ('<ns0:ctx><password>a&lt;b</password><ns1:newPassword xml:lang="x">'
                "two\nlines</ns1:newPassword><passwordHint>kept</passwordHint><password/>")
    assert redact(envelope) == (
        '<ns0:ctx><password>***</password><ns1:newPassword xml:lang="x">***</ns1:newPassword>'
        "<passwordHint>kept</passwordHint><password/>")
    assert redact("postgresql+psycopg://seqr:pa55@db:5432/x and http://127.0.0.1:8080/a") == \
        "postgresql+psycopg://seqr:***@db:5432/x and http://127.0.0.1:8080/a"
