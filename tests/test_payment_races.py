"""Racing calls against a real gateway with two worker processes.

Every state change is one database transaction, so two racing calls (a poll and a pay, two
refunds of the same payment, a cancel and a pay, two buyers) never produce a double
payment, a refund total above the payment, or a version that skips or repeats. Each race
is started by a `threading.Barrier`; each thread has its own HTTP session. What the
register saw is recorded poll by poll and checked at the end against the +1-per-change rule.

SQLite serialises every write, so it cannot show a missing row lock; the PostgreSQL run of
the suite (SEQR_TEST_DATABASE_URL) races where the row locks do the work.
"""

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
import requests
from lxml import etree

from tests.support.domain import webshop_terminal
from tests.support.envelopes import (
    PERIOD_RE,
    SOAP_PATH,
    TILL_PASSWORD,
    context_xml,
    envelope,
    invoice_xml,
    text_of,
    till_context,
)
from tests.support.servers import GatewayServer, Shop
from tests.support.servers import make_shop as new_shop
from tests.support.wire import check_response, register_terminal, result

TIMEOUT = 30
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


@pytest.fixture(scope="module")
def racer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A gateway of two gunicorn processes, so racing requests really run side by side."""
    gateway = GatewayServer(tmp_path_factory.mktemp("races"), "--workers", "2")
    try:
        yield gateway.start()
    finally:
        gateway.stop()


# --- what the register saw, across the whole module -------------------------------------------


class Observations:
    """Every (status, version) a register's poll returned, per (gateway, invoice)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)

    def record(self, gateway: GatewayServer, reference: str, status: str, version: int) -> None:
        with self.lock:
            self.seen[gateway.base, reference].append((status, version))


OBSERVED = Observations()


@dataclass(frozen=True)
class Poll:
    status: str
    version: int
    ers_reference: str | None


def soap(http: requests.Session, gateway: GatewayServer, operation: str, inner: str) -> Any:
    response = http.post(gateway.base + SOAP_PATH, data=envelope(operation, inner).encode(),
                         headers=SOAP_HEADERS, timeout=TIMEOUT)
    return check_response(response, operation)


def poll(http: requests.Session, gateway: GatewayServer, terminal_id: str,
         reference: str) -> Poll:
    ret = soap(http, gateway, "getPaymentStatus", till_context(terminal_id)
               + f"<invoiceReference>{reference}</invoiceReference>"
               "<invoiceVersion>0</invoiceVersion>")
    assert result(ret) == (0, "SUCCESS")
    seen = Poll(text_of(ret, "status") or "", int(text_of(ret, "version") or "-1"),
                text_of(ret, "ersReference"))
    OBSERVED.record(gateway, reference, seen.status, seen.version)
    return seen


def send(http: requests.Session, gateway: GatewayServer, terminal_id: str,
         amount: str = "10.00") -> str:
    ret = soap(http, gateway, "sendInvoice", till_context(terminal_id) + invoice_xml(amount))
    assert result(ret) == (0, "SUCCESS")
    return text_of(ret, "invoiceReference") or ""


def pay(http: requests.Session, gateway: GatewayServer, reference: str) -> requests.Response:
    return http.post(f"{gateway.base}/simulator/invoices/{reference}/pay", timeout=TIMEOUT)


def race(*actions: Callable[[requests.Session], Any]) -> list[Any]:
    """Run the actions in threads released together by a barrier; their results, in order."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException] = []

    def run(index: int, action: Callable[[requests.Session], Any]) -> None:
        with requests.Session() as http:
            try:
                barrier.wait(timeout=TIMEOUT)
                results[index] = action(http)
            except BaseException as error:  # noqa: BLE001 (re-raised in the main thread)
                errors.append(error)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a racing call hung"
    if errors:
        raise errors[0]
    return results


def report_rows(gateway: GatewayServer, shop: Shop, report_id: str,
                terminal_id: str | None = None) -> list[dict[str, str]]:
    """Close the shop's (or one till's) period, then poll executeReport until it is ready."""
    ctx = context_xml(shop.reseller_id, password=shop.password)
    till = f"<entry><key>TERMINALID</key><value>{terminal_id}</value></entry>" \
        if terminal_id else ""
    with requests.Session() as http:
        marks = f"<parameters><parameter>{till}</parameter></parameters>" if till else ""
        mark = soap(http, gateway, "markTransactionPeriod", ctx + marks)
        assert result(mark) == (0, "SUCCESS")
        period = text_of(mark, "transactionPeriodId") or ""
        assert PERIOD_RE.match(period)
        inner = (ctx + f"<reportId>{report_id}</reportId><language>en</language>"
                 "<parameters><parameter><entry><key>transactionPeriodId</key>"
                 f"<value>{period}</value></entry>{till}</parameter></parameters>")
        deadline = time.monotonic() + 20
        ret = soap(http, gateway, "executeReport", inner)
        while result(ret)[0] == 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            ret = soap(http, gateway, "executeReport", inner)
    assert result(ret) == (0, "SUCCESS"), result(ret)
    root = etree.fromstring((text_of(ret, "report/contentString") or "").encode())
    return [{field.tag: field.text or "" for field in row} for row in root.findall("Row")]


def new_till(gateway: GatewayServer, shop: Shop) -> str:
    """A webshop's terminal: these races keep several of its invoices open at once."""
    return webshop_terminal(gateway.db, shop.reseller_id, TILL_PASSWORD)


# --- (1) the register polls while the buyer pays ---------------------------------------------


def test_polls_racing_a_payment(racer: GatewayServer) -> None:
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    with requests.Session() as http:
        invoices = [send(http, racer, terminal_id) for _ in range(4)]

    def poller(reference: str) -> Callable[[requests.Session], list[Poll]]:
        def run(http: requests.Session) -> list[Poll]:
            polls, deadline = [], time.monotonic() + 15
            while time.monotonic() < deadline:
                polls.append(poll(http, racer, terminal_id, reference))
                if sum(p.status == "PAID" for p in polls) >= 3:
                    break
            return polls
        return run

    def payer(reference: str) -> Callable[[requests.Session], dict[str, Any]]:
        def run(http: requests.Session) -> dict[str, Any]:
            time.sleep(random.uniform(0.02, 0.15))  # the registers are polling by now
            answer = pay(http, racer, reference)
            assert answer.status_code == 200, answer.text
            return answer.json()
        return run

    actions: list[Callable[[requests.Session], Any]] = []
    for reference in invoices:  # two pollers per invoice: a register that retries, say
        actions += [poller(reference), poller(reference), payer(reference)]
    outcomes = race(*actions)

    payments = {}
    for index, reference in enumerate(invoices):
        first, second, paid = outcomes[3 * index: 3 * index + 3]
        assert (paid["status"], paid["version"]) == ("PAID", 2)
        payments[reference] = paid["paymentReference"]
        for polls in (first, second):
            versions = [p.version for p in polls]
            assert versions == sorted(versions), versions  # never backwards
            statuses = [p.status for p in polls]
            flips = sum(a != b for a, b in pairwise(statuses))
            assert statuses[-1] == "PAID" and flips <= 1, statuses  # ISSUED -> PAID, once
            assert {(p.status, p.version) for p in polls} <= {("ISSUED", 1), ("PAID", 2)}
            assert {p.ers_reference for p in polls if p.status == "PAID"} == {paid[
                "paymentReference"]}

    rows = report_rows(racer, shop, "Reconciliation/STD_RECON_007.xml", terminal_id)
    sales = [row["ErsReference"] for row in rows]
    for reference, payment in payments.items():
        assert sales.count(payment) == 1, (reference, sales)  # one SALE, however many polls
    assert len(rows) == len(invoices)
    assert {Decimal(row["SalesAmount"]) for row in rows} == {Decimal("10.00")}


def test_first_polls_race_to_settle_a_payment(racer: GatewayServer) -> None:
    """A payment nobody has polled yet; six polls arrive at once, and every one of them may
    be the first to see it: still exactly one SALE."""
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    payments = []
    with requests.Session() as http:
        for _ in range(3):
            reference = send(http, racer, terminal_id)
            payment = pay(http, racer, reference).json()["paymentReference"]
            polls = race(*[lambda h, ref=reference: poll(h, racer, terminal_id, ref)] * 6)
            assert set(polls) == {Poll("PAID", 2, payment)}
            payments.append(payment)
    rows = report_rows(racer, shop, "Reconciliation/STD_RECON_007.xml", terminal_id)
    assert sorted(row["ErsReference"] for row in rows) == sorted(payments)


# --- (2) refunds of the same payment, all at once ---------------------------------------------


def test_refunds_racing_on_one_payment(racer: GatewayServer) -> None:
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    with requests.Session() as http:
        reference = send(http, racer, terminal_id, amount="100.00")
        payment = pay(http, racer, reference).json()["paymentReference"]
        assert poll(http, racer, terminal_id, reference) == Poll("PAID", 2, payment)

    refund = (till_context(terminal_id) + f"<ersReference>{payment}</ersReference>"
              + invoice_xml(amount="30.00"))

    def refunder(http: requests.Session) -> tuple[int, str | None]:
        ret = soap(http, racer, "refundPayment", refund)
        return result(ret)[0], text_of(ret, "ersReference")

    outcomes = race(*[refunder] * 8)
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0] * 3 + [98] * 5, codes
    refunds = {reference for code, reference in outcomes if code == 0}
    assert len(refunds) == 3 and payment not in refunds
    assert all(PERIOD_RE.match(r or "") for r in refunds)

    rows = report_rows(racer, shop, "Reconciliation/STD_RECON_003.xml")
    amounts = {row["ErsReference"]: Decimal(row["SalesAmount"]) for row in rows}
    assert len(amounts) == len(rows) == 4
    assert amounts.pop(payment) == Decimal("100.00")
    assert set(amounts) == refunds
    assert sum(amounts.values()) == Decimal("-90.00")

    with requests.Session() as http:  # the last 10.00 may still go back, and not a cent more
        last = refund.replace("<value>30.00</value>", "<value>10.00</value>")
        assert result(soap(http, racer, "refundPayment", last))[0] == 0
        cent = refund.replace("<value>30.00</value>", "<value>0.01</value>")
        assert result(soap(http, racer, "refundPayment", cent))[0] == 98
        assert poll(http, racer, terminal_id, reference) == Poll("PAID", 2, payment)


# --- (3) the register cancels while the buyer pays --------------------------------------------


def test_cancel_racing_pay(racer: GatewayServer) -> None:
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    with requests.Session() as http:
        invoices = [send(http, racer, terminal_id) for _ in range(20)]
    cancel_inner = till_context(terminal_id) + "<invoiceReference>{}</invoiceReference>"

    def cancel(reference: str, delay: float) -> Callable[[requests.Session], int]:
        def run(http: requests.Session) -> int:
            time.sleep(delay)
            return result(soap(http, racer, "cancelInvoice", cancel_inner.format(reference)))[0]
        return run

    def buy(reference: str, delay: float) -> Callable[[requests.Session], requests.Response]:
        def run(http: requests.Session) -> requests.Response:
            time.sleep(delay)
            return pay(http, racer, reference)
        return run

    outcomes = {}
    for reference in invoices:
        # a SOAP cancel takes longer to parse than a simulator pay: a few milliseconds' head
        # start, now for one side and now for the other, makes both outcomes turn up
        head_start = random.uniform(0, 0.015)
        delays = random.choice([(0.0, head_start), (head_start, 0.0)])
        outcomes[reference] = tuple(race(cancel(reference, delays[0]), buy(reference, delays[1])))

    payments = {}
    with requests.Session() as http:
        for reference, (cancel_code, paid) in outcomes.items():
            seen = poll(http, racer, terminal_id, reference)  # settles the paid ones
            if cancel_code == 0:
                assert paid.status_code == 409, paid.text
                assert paid.json()["status"] == "CANCELED"
                assert seen == Poll("CANCELED", 2, None)
            else:
                assert cancel_code == 50, cancel_code  # CANNOT_CANCEL_PAID_INVOICE
                assert paid.status_code == 200, paid.text
                payments[reference] = paid.json()["paymentReference"]
                assert seen == Poll("PAID", 2, payments[reference])
    print(f"cancel vs pay: {len(payments)} paid, {len(invoices) - len(payments)} canceled")

    rows = report_rows(racer, shop, "Reconciliation/STD_RECON_007.xml", terminal_id)
    assert sorted(row["ErsReference"] for row in rows) == sorted(payments.values())


# --- (4) two buyers, one invoice -------------------------------------------------------------


def test_two_buyers_pay_one_invoice(racer: GatewayServer) -> None:
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    with requests.Session() as http:
        invoices = [send(http, racer, terminal_id) for _ in range(10)]

    with requests.Session() as http:
        for reference in invoices:
            answers = race(lambda h, ref=reference: pay(h, racer, ref),
                           lambda h, ref=reference: pay(h, racer, ref))
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [200, 409], [a.text for a in answers]
            winner = next(a.json() for a in answers if a.status_code == 200)
            loser = next(a.json() for a in answers if a.status_code == 409)
            assert loser["status"] == "PAID"
            assert poll(http, racer, terminal_id, reference) == Poll(
                "PAID", 2, winner["paymentReference"])
    rows = report_rows(racer, shop, "Reconciliation/STD_RECON_007.xml", terminal_id)
    assert len({row["ErsReference"] for row in rows}) == len(rows) == len(invoices)


def test_sticker_and_invoice_qr_pay_at_once(racer: GatewayServer) -> None:
    """One buyer scans the till's sticker while another scans the invoice's QR code."""
    shop = new_shop(racer.db)
    terminal_id = new_till(racer, shop)
    sticker = "RACE" + shop.reseller_id[-8:].upper()
    with requests.Session() as http:
        assigned = soap(http, racer, "assignSeqrId",
                        till_context(terminal_id) + f"<seqrId>{sticker}</seqrId>")
        assert result(assigned) == (0, "SUCCESS")
        for _ in range(6):
            reference = send(http, racer, terminal_id)  # the only open invoice of the till
            by_qr, by_sticker = race(
                lambda h, ref=reference: pay(h, racer, ref),
                lambda h: h.post(f"{racer.base}/simulator/seqr-ids/{sticker}/pay",
                                 timeout=TIMEOUT),
            )
            assert sorted([by_qr.status_code, by_sticker.status_code]) == [200, 409]
            winner = by_qr if by_qr.status_code == 200 else by_sticker
            assert winner.json()["invoiceReference"] == reference
            assert poll(http, racer, terminal_id, reference) == Poll(
                "PAID", 2, winner.json()["paymentReference"])


# --- (4b) the register's first poll racing the 20-second rule -------------------------------


REVERSAL = 0.6


def test_first_poll_racing_the_reversal(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Polled just before, at, or just after the reversal window closes: the register sees
    PAID (and the sale counts) or CANCELED (and it does not), never both, never a
    reversed payment in the reports."""
    gateway = GatewayServer(tmp_path_factory.mktemp("reversal"), "--workers", "2",
                            "--unpolled-reversal-seconds", str(REVERSAL))
    try:
        gateway.start()
        shop = new_shop(gateway.db)
        terminal_id = new_till(gateway, shop)
        with requests.Session() as http:
            invoices = [send(http, gateway, terminal_id) for _ in range(8)]

        def register(reference: str) -> Callable[[requests.Session], tuple[str, list[Poll]]]:
            def run(http: requests.Session) -> tuple[str, list[Poll]]:
                paid = pay(http, gateway, reference).json()
                time.sleep(REVERSAL + random.uniform(-0.15, 0.15))
                polls = race(*[lambda h: poll(h, gateway, terminal_id, reference)] * 2)
                return paid["paymentReference"], polls
            return run

        outcomes = race(*[register(reference) for reference in invoices])
        counted = []
        for reference, (payment, polls) in zip(invoices, outcomes, strict=True):
            assert len(set(polls)) == 1, (reference, polls)  # the two polls agree
            if polls[0].status == "PAID":
                assert polls[0] == Poll("PAID", 2, payment)
                counted.append(payment)
            else:
                assert polls[0] == Poll("CANCELED", 3, None), polls  # paid, then reversed
        print(f"poll vs reversal: {len(counted)} paid, {len(invoices) - len(counted)} reversed")
        time.sleep(REVERSAL + 0.3)  # the polled ones stay paid after the window
        with requests.Session() as http:
            assert sum(poll(http, gateway, terminal_id, ref).status == "PAID"
                       for ref in invoices) == len(counted)
        rows = report_rows(gateway, shop, "Reconciliation/STD_RECON_007.xml", terminal_id)
        assert sorted(row["ErsReference"] for row in rows) == sorted(counted)
    finally:
        gateway.stop()


# --- (5) versions: +1 per state change, as every register saw them ----------------------------


def test_sales_racing_on_one_cash_register(racer: GatewayServer) -> None:
    """A cash register keeps one live invoice: sales sent at once leave exactly one ISSUED,
    every other CANCELED (each by exactly one change)."""
    shop = new_shop(racer.db)
    terminal_id = register_terminal(racer, shop)
    references = race(*[lambda http: send(http, racer, terminal_id) for _ in range(4)])
    with requests.Session() as http:
        seen = [poll(http, racer, terminal_id, reference) for reference in references]
    assert sorted((p.status, p.version) for p in seen) == [
        ("CANCELED", 2), ("CANCELED", 2), ("CANCELED", 2), ("ISSUED", 1)]


def test_versions_seen_in_the_races(racer: GatewayServer) -> None:
    """+1 per state change, in every poll of this module (runs last: it reads their record).

    Each invoice above changed state once (ISSUED 1 -> PAID, CANCELED or RESERVED 2) or was
    paid and then reversed (PAID 2 -> CANCELED 3). No version ever showed two statuses, no
    status showed two versions, and nothing else turned up.
    """
    assert OBSERVED.seen, "run with the races above"
    allowed = {("ISSUED", 1), ("PAID", 2), ("CANCELED", 2), ("CANCELED", 3)}
    for (_, reference), polls in OBSERVED.seen.items():
        pairs = set(polls)
        assert pairs <= allowed, (reference, pairs)
        versions = [version for _, version in pairs]
        statuses = [status for status, _ in pairs]
        assert len(set(versions)) == len(versions), (reference, pairs)  # one status each
        assert len(set(statuses)) == len(statuses), (reference, pairs)  # never repeated
        if ("CANCELED", 3) in pairs:  # reversed: it must have been paid, never canceled
            assert ("CANCELED", 2) not in pairs
    with requests.Session() as http:
        for (base, reference), polls in OBSERVED.seen.items():
            if base != racer.base:  # the reversal race's gateway is gone by now
                continue
            final = http.get(f"{base}/simulator/invoices/{reference}", timeout=TIMEOUT)
            state = final.json()
            assert (state["status"], state["version"]) == polls[-1], (reference, state, polls)
