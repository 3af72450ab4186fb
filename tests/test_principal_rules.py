"""Who may change which password, the one password rule of SOAP and the CLI, and SEQR IDs
in any letter case."""

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import payments, shops
from gateway.auth import Credentials, Principal
from gateway.config import Settings
from gateway.errors import SeqrError
from gateway.invoices import Amount, InvoiceData
from gateway.service import Gateway
from storage.database import Database
from storage.models import ResellerUser, Terminal, utcnow
from tests.support.databases import new_database_url
from tests.support.domain import fresh_db, new_shop, new_terminal
from wsdl.resultcodes import ResultCode

USER_1 = Credentials("RESELLERUSER", "shop-1", "9900", "secret-pw")
USER_2 = Credentials("RESELLERUSER", "shop-1", "9901", "second-pw")


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    db = fresh_db(tmp_path)
    new_shop(db)
    with db.write() as session:
        shops.add_reseller(session, "shop-1", "9901", "second-pw")
    return Gateway(db, Settings(database_url=db.url))


def refused(call) -> ResultCode:
    with pytest.raises(SeqrError) as raised:
        call()
    return raised.value.code


def test_a_user_cannot_change_a_sibling_users_password(gateway: Gateway) -> None:
    target = Credentials("RESELLERUSER", "shop-1", "9900")
    assert refused(lambda: gateway.change_principal_password(USER_2, target, "taken-over")) \
        == ResultCode.ACCESS_DENIED
    gateway.request_principal_information(USER_1, None)  # user 1 still logs in as before
    with gateway.db.read() as session:
        hashes = {row.user_id: row.password_hash
                  for row in session.execute(select(ResellerUser.user_id,
                                                    ResellerUser.password_hash))}
    assert len(set(hashes.values())) == 2


def test_a_user_changes_its_own_and_its_terminals_passwords(gateway: Gateway) -> None:
    till = new_terminal(gateway.db, Principal("RESELLERUSER", "shop-1", user_id="9900"))
    gateway.change_principal_password(USER_2, Credentials("RESELLERUSER", "shop-1", "9901"),
                                      "new-second")
    renewed = Credentials("RESELLERUSER", "shop-1", "9901", "new-second")
    gateway.request_principal_information(renewed, None)
    gateway.change_principal_password(renewed, Credentials("TERMINALID", till), "new-till")
    gateway.request_principal_information(Credentials("TERMINALID", till, None, "new-till"), None)
    assert refused(lambda: gateway.change_principal_password(USER_1, None, "abc")) \
        == ResultCode.INVALID_NEW_PASSWORD


def test_the_cli_applies_the_soap_password_rule(tmp_path: Path) -> None:
    url = new_database_url(tmp_path, "cli")
    db = Database(url)
    db.migrate()  # as a deployment does first (the SQLite default would migrate itself)

    def add(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "add-reseller", "--database-url", url,
             "--id", "4711", "--password", password], capture_output=True, text=True)

    short = add("abc")  # SOAP refuses it as a new password (22): so does the CLI
    assert short.returncode == 2 and "at least 4 characters" in short.stderr
    with db.read() as session:
        assert session.scalars(select(ResellerUser)).all() == []
    assert add("abcd").returncode == 0
    with db.read() as session:
        assert [u.reseller_id for u in session.scalars(select(ResellerUser))] == ["4711"]


def test_seqr_ids_compare_in_any_letter_case(tmp_path: Path) -> None:
    db = fresh_db(tmp_path)
    owner = new_shop(db)
    till_a, till_b = new_terminal(db, owner, "A"), new_terminal(db, owner, "B")
    gateway = Gateway(db, Settings(database_url=db.url))
    as_till = lambda till: Credentials("TERMINALID", till, None, "till-pw")  # noqa: E731
    gateway.assign_seqr_id(as_till(till_a), "till7")
    with db.read() as session:
        assert session.get(Terminal, till_a).seqr_id == "TILL7"  # as the sticker prints it
    assert refused(lambda: gateway.assign_seqr_id(as_till(till_b), "TILL7")) \
        == ResultCode.INVALID_SEQR_ID
    assert refused(lambda: gateway.assign_seqr_id(as_till(till_b), "Till7")) \
        == ResultCode.INVALID_SEQR_ID
    gateway.assign_seqr_id(as_till(till_a), "TILL7")  # its own, again: fine
    amount = Amount("SEK", Decimal("5.00"))
    sent = gateway.send_invoice(as_till(till_a), InvoiceData(
        total=amount, acknowledgment_mode="NO_ACKNOWLEDGMENT"))
    with db.write() as session:
        paid = payments.pay_by_seqr_id(session, "tIlL7", gateway.rules, utcnow())
        assert paid.reference == sent.reference
