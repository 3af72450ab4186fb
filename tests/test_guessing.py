"""Password guessing: unknown principals cost the same check, failures are throttled per
principal (and address), the owner keeps working, and password checks cannot take every
thread. Most of it through `Gateway` on a real database; one test against the real server.
"""

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from gateway import passwords
from gateway.auth import Credentials, client_address
from gateway.config import Settings
from gateway.errors import SeqrError
from gateway.service import Gateway
from gateway.throttle import TOO_MANY
from tests.support.domain import fresh_db, new_shop, new_terminal
from tests.support.envelopes import context_xml, envelope
from tests.support.servers import GatewayServer, make_shop

pytestmark = pytest.mark.once

OWNER = Credentials("RESELLERUSER", "shop-1", "9900", "secret-pw")


class ScryptCalls:
    """Counts the scrypt computations a call makes (the real ones run as always)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = hashlib.scrypt

        def counting(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(passwords.hashlib, "scrypt", counting)

    @contextmanager
    def exactly(self, expected: int) -> Iterator[None]:
        before = self.count
        yield
        assert self.count - before == expected


@pytest.fixture
def scrypt(monkeypatch: pytest.MonkeyPatch) -> ScryptCalls:
    return ScryptCalls(monkeypatch)


def gateway_on(tmp_path: Path, **settings) -> tuple[Gateway, str]:
    db = fresh_db(tmp_path)
    till = new_terminal(db, new_shop(db))
    return Gateway(db, Settings(database_url=db.url, **settings)), till


def code_of(gateway: Gateway, creds: Credentials, address: str = "10.0.0.1") -> tuple[int, str]:
    client_address.set(address)
    try:
        gateway.request_principal_information(creds, None)
    except SeqrError as error:
        return int(error.code), error.detail or ""
    return 0, ""


def test_an_unknown_principal_costs_the_same_password_check(tmp_path: Path,
                                                            scrypt: ScryptCalls) -> None:
    gateway, till = gateway_on(tmp_path)
    cases = [
        (Credentials("RESELLERUSER", "shop-1", "9900", "wrong"), 20),
        (Credentials("RESELLERUSER", "no-such-shop", "9900", "wrong"), 37),
        (Credentials("RESELLERUSER", "shop-1", "no-such-user", "wrong"), 37),
        (Credentials("TERMINALID", till, None, "wrong"), 20),
        (Credentials("TERMINALID", "f" * 32, None, "wrong"), 29),
        (Credentials("TERMINALID", till, None, None), 20),
    ]
    for creds, expected in cases:
        with scrypt.exactly(1):  # one scrypt of the same parameters, found or not
            assert code_of(gateway, creds)[0] == expected


def test_failures_are_throttled_per_principal_and_the_owner_keeps_working(
        tmp_path: Path, scrypt: ScryptCalls) -> None:
    gateway, _ = gateway_on(tmp_path, auth_max_failures=3, auth_lockout_seconds=60)
    assert code_of(gateway, OWNER, "10.0.0.9") == (0, "")  # the owner's register, earlier
    wrong = Credentials("RESELLERUSER", "shop-1", "9900", "guess")
    for _ in range(3):
        assert code_of(gateway, wrong) == (20, "wrong password")
    with scrypt.exactly(0):  # refused without a password check
        assert code_of(gateway, Credentials("RESELLERUSER", "shop-1", "9900", "guess-2")) == (
            20, TOO_MANY)
    with scrypt.exactly(0):  # the owner's register keeps working, from its own address...
        assert code_of(gateway, OWNER, "10.0.0.9") == (0, "")
    with scrypt.exactly(0):  # ...and from the guesser's: a password this process verified
        assert code_of(gateway, OWNER) == (0, "")
    passwords._cache.clear()  # a process that has not seen the owner's password yet:
    with scrypt.exactly(0):  # from the locked address even the right one is not checked
        assert code_of(gateway, OWNER) == (20, TOO_MANY)
    with scrypt.exactly(1):  # from another address it is checked as usual
        assert code_of(gateway, OWNER, "10.0.0.10") == (0, "")


def test_guesses_from_many_addresses_lock_the_principal_for_everyone(tmp_path: Path) -> None:
    gateway, _ = gateway_on(tmp_path, auth_max_failures=3)
    assert code_of(gateway, OWNER, "10.0.2.2") == (0, "")
    wrong = Credentials("RESELLERUSER", "shop-1", "9900", "guess")
    for number in range(15):  # 2 per address: no address is locked, the principal is
        assert code_of(gateway, wrong, f"10.0.1.{number // 2}")[1] == "wrong password"
    assert code_of(gateway, wrong, "10.0.2.1") == (20, TOO_MANY)
    assert code_of(gateway, OWNER, "10.0.2.2") == (0, "")  # a password this process knows


def test_unknown_principals_are_throttled_alike(tmp_path: Path) -> None:
    """Otherwise the lockout itself would tell which principals exist."""
    gateway, _ = gateway_on(tmp_path, auth_max_failures=2)
    ghost = Credentials("RESELLERUSER", "no-such-shop", "9900", "guess")
    assert [code_of(gateway, ghost)[0] for _ in range(3)] == [37, 37, 20]
    assert code_of(gateway, ghost)[1] == TOO_MANY


def test_a_lockout_ends(tmp_path: Path) -> None:
    gateway, _ = gateway_on(tmp_path, auth_max_failures=1, auth_lockout_seconds=0.3)
    wrong = Credentials("RESELLERUSER", "shop-1", "9900", "guess")
    assert code_of(gateway, wrong)[1] == "wrong password"
    assert code_of(gateway, wrong)[1] == TOO_MANY
    time.sleep(0.35)
    assert code_of(gateway, wrong)[1] == "wrong password"


def test_the_throttle_can_be_switched_off(tmp_path: Path, scrypt: ScryptCalls) -> None:
    gateway, _ = gateway_on(tmp_path, auth_max_failures=0)
    wrong = Credentials("RESELLERUSER", "shop-1", "9900", "guess")
    with scrypt.exactly(12):  # past the default allowance of 10, every guess is checked
        assert {code_of(gateway, wrong)[1] for _ in range(12)} == {"wrong password"}


def test_password_checks_cannot_take_every_thread(tmp_path: Path) -> None:
    """Half the threads (here 1 of 2) at most check passwords; a check that finds none
    free answers 93 instead of waiting for ever, and cached passwords need no slot."""
    gateway, _ = gateway_on(tmp_path, threads=2)
    gateway.guard.slot_wait = 0.1
    assert code_of(gateway, OWNER) == (0, "")  # remembered from now on
    assert gateway.guard._slots.acquire(timeout=1)  # a long check in another thread
    try:
        assert code_of(gateway, Credentials("RESELLERUSER", "shop-1", "9900", "x"))[0] == 93
        assert code_of(gateway, OWNER) == (0, "")
    finally:
        gateway.guard._slots.release()


@pytest.mark.server
def test_a_register_keeps_polling_while_someone_guesses_its_password(
        server: GatewayServer) -> None:
    """Over HTTP, with the server's defaults: 10 failures lock the guesser out."""
    shop = make_shop(server.db)

    def principal_info(password: str) -> str:
        body = envelope("requestPrincipalInformation",
                        context_xml(shop.reseller_id, password=password))
        text = server.post(body).text
        return re.search(r"<resultDescription>([^<]*)</resultDescription>", text)[1]

    assert principal_info(shop.password) == "SUCCESS"
    answers: list[str] = []
    guessing = threading.Thread(target=lambda: answers.extend(
        principal_info(f"guess-{n}") for n in range(14)))
    guessing.start()
    owner = []
    while guessing.is_alive():
        owner.append(principal_info(shop.password))
    guessing.join()
    assert set(owner) == {"SUCCESS"} and owner
    assert answers[:10] == ["AUTHENTICATION_FAILED: wrong password"] * 10
    assert answers[10:] == [f"AUTHENTICATION_FAILED: {TOO_MANY}"] * 4
    assert requests.get(server.base + "/health", timeout=10).status_code == 200
