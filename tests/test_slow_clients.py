"""Clients that connect and stall cannot stall the gateway.

The real `seqr-gateway serve` (the embedded default: one worker process with its report
worker thread inside, and `--workers 2`), with a short read deadline. Beside it, 50
connections that send nothing, 5 that drip a header line at a time and 5 that drip a body
byte at a time, reconnecting as soon as the server drops them, as an attacker would. A
register meanwhile makes a whole sale (terminal, sticker, invoice, the poll loop, the
buyer paying, the receipt): every answer comes within 1 s, and every stalled connection is
closed by the server within the deadline.
"""

import re
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.support.envelopes import SOAP_PATH, context_xml, envelope
from tests.support.servers import GatewayServer, Shop, make_shop

pytestmark = [pytest.mark.server, pytest.mark.once]

DEADLINE = 1.5  # --request-read-timeout of these servers
SLACK = 1.0  # the server's loop and a busy machine
ANSWER_WITHIN = 1.0
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


@pytest.fixture(scope="module", params=["embedded", "workers"])
def gateway(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    extra = ["--request-read-timeout", str(DEADLINE)]
    if request.param == "workers":
        extra += ["--workers", "2"]
    server = GatewayServer(tmp_path_factory.mktemp("slow"), *extra).start()
    booted = time.monotonic() + 30  # every worker up, not only the first that answered
    while server.log_path.read_text().count("Booting worker") < (2 if "--workers" in extra
                                                                 else 1):
        assert time.monotonic() < booted, server.log_path.read_text()
        time.sleep(0.1)
    for _ in range(8):
        requests.post(server.endpoint, data=envelope("benchmarkingNop", ""), headers=HEADERS,
                      timeout=10)
    yield server
    server.stop()


@dataclass
class Staller:
    kind: str  # "idle", "headers" or "body"
    sock: socket.socket
    opened: float
    sent: int = 0


@dataclass
class Attack:
    """Stalling connections, all driven by one thread; each reconnects when dropped."""

    port: int
    counts: dict[str, int]
    drip_every: float = 0.2
    lifetimes: dict[str, list[float]] = field(default_factory=dict)
    refused: int = 0

    def __post_init__(self) -> None:
        self.stop_event = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Attack":
        for kind, count in self.counts.items():
            self.lifetimes[kind] = []
            for _ in range(count):
                self._open(kind)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        self.thread.join(10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()

    def _open(self, kind: str) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            self.refused += 1
            return
        sock.setblocking(False)
        staller = Staller(kind, sock, time.monotonic())
        if kind == "headers":
            self._send(staller, b"POST " + SOAP_PATH.encode() + b" HTTP/1.1\r\n")
        elif kind == "body":
            self._send(staller, b"POST " + SOAP_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: text/xml\r\nContent-Length: 100000\r\n\r\n")
        self.selector.register(sock, selectors.EVENT_READ, staller)

    def _send(self, staller: Staller, data: bytes) -> None:
        try:
            staller.sock.send(data)
            staller.sent += len(data)
        except OSError:
            pass  # the server closed it; the read side says so

    def _run(self) -> None:
        next_drip = time.monotonic()
        while not self.stop_event.is_set():
            for key, _ in self.selector.select(timeout=0.02):
                staller = key.data
                try:
                    data = staller.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:  # an answer (e.g. 408/400) before closing: read on
                    continue
                self.lifetimes[staller.kind].append(time.monotonic() - staller.opened)
                self.selector.unregister(staller.sock)
                staller.sock.close()
                self._open(staller.kind)
            if time.monotonic() >= next_drip:
                next_drip += self.drip_every
                for key in list(self.selector.get_map().values()):
                    staller = key.data
                    if staller.kind == "headers":
                        self._send(staller, b"X-Drip-%d: x\r\n" % staller.sent)
                    elif staller.kind == "body":
                        self._send(staller, b"<")

    def wait_for_drops(self, each: int, timeout: float) -> None:
        """Until every kind of staller was dropped by the server `each` times."""
        deadline = time.monotonic() + timeout
        while any(len(v) < each for v in self.lifetimes.values()):
            assert time.monotonic() < deadline, {k: len(v) for k, v in self.lifetimes.items()}
            time.sleep(0.05)


class Register:
    """A cash register posting raw envelopes, timing every answer."""

    def __init__(self, gateway: GatewayServer, shop: Shop) -> None:
        self.gateway = gateway
        self.shop = shop
        self.http = requests.Session()
        self.timings: list[tuple[str, float]] = []
        self.terminal_id = ""

    def call(self, operation: str, inner: str) -> str:
        started = time.monotonic()
        response = self.http.post(self.gateway.endpoint, data=envelope(operation, inner).encode(),
                                  headers=HEADERS, timeout=10)
        self.timings.append((operation, time.monotonic() - started))
        assert response.status_code == 200, response.text[:300]
        assert "<resultCode>0</resultCode>" in response.text, response.text[:600]
        return response.text

    def till(self) -> str:
        return context_xml(self.terminal_id, "TERMINALID", password="till-pw", user_id=None)

    def full_sale(self) -> None:
        answer = self.call("registerTerminal", context_xml(self.shop.reseller_id)
                           + "<externalTerminalId>Store/Till</externalTerminalId>"
                           "<password>till-pw</password><name>Till</name>")
        self.terminal_id = re.search(r"<terminalId>(\w+)</terminalId>", answer)[1]
        sticker = "S" + self.terminal_id[:12].upper()
        self.call("assignSeqrId", self.till() + f"<seqrId>{sticker}</seqrId>")
        amount = "<currency>SEK</currency><value>25.00</value>"
        answer = self.call("sendInvoice", self.till() + "<invoice><acknowledgmentMode>"
                           "NO_ACKNOWLEDGMENT</acknowledgmentMode><invoiceRows><invoiceRow>"
                           f"<itemDescription>Coffee</itemDescription><itemTotalAmount>{amount}"
                           f"</itemTotalAmount></invoiceRow></invoiceRows><totalAmount>{amount}"
                           "</totalAmount><cashierId>anna</cashierId></invoice>")
        reference = re.search(r"<invoiceReference>(\d+)</invoiceReference>", answer)[1]
        poll = self.till() + (f"<invoiceReference>{reference}</invoiceReference>"
                              "<invoiceVersion>0</invoiceVersion>")
        for _ in range(3):
            assert "<status>ISSUED</status>" in self.call("getPaymentStatus", poll)
            time.sleep(0.1)
        started = time.monotonic()
        paid = self.http.post(f"{self.gateway.base}/simulator/seqr-ids/{sticker.lower()}/pay",
                              timeout=10)
        self.timings.append(("simulator pay", time.monotonic() - started))
        assert paid.status_code == 200, paid.text
        while True:  # the register's poll loop, until it sees the payment
            answer = self.call("getPaymentStatus", poll)
            if "<status>PAID</status>" in answer:
                break
            assert "<status>ISSUED</status>" in answer, answer[:500]
            time.sleep(0.1)
        ers = re.search(r"<ersReference>(\d{25})</ersReference>", answer)[1]
        self.call("submitPaymentReceipt", self.till() + f"<ersReference>{ers}</ersReference>"
                  "<receiptDocument><mimeType>text/plain</mimeType><receiptData>cmVjZWlwdA=="
                  "</receiptData><receiptType>POS</receiptType></receiptDocument>")


def test_a_sale_goes_through_while_60_connections_stall(gateway: GatewayServer) -> None:
    shop = make_shop(gateway.db)
    with Attack(gateway.port, {"idle": 50, "headers": 5, "body": 5}) as attack:
        time.sleep(0.3)  # all of them connected and stalling
        register = Register(gateway, shop)
        register.full_sale()
        attack.wait_for_drops(each=1, timeout=DEADLINE + SLACK + 5)
    slow = [(op, round(seconds, 3)) for op, seconds in register.timings
            if seconds >= ANSWER_WITHIN]
    assert not slow, slow
    assert len(register.timings) >= 9
    for kind, lifetimes in attack.lifetimes.items():
        assert lifetimes and max(lifetimes) <= DEADLINE + SLACK, (kind, lifetimes)
        assert min(lifetimes) >= DEADLINE - 0.1, (kind, lifetimes)  # not before the deadline
    assert attack.refused == 0


def test_a_request_sent_slowly_but_within_the_deadline_is_answered(
        gateway: GatewayServer) -> None:
    body = envelope("benchmarkingNop", "").encode()
    head = (f"POST {SOAP_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        for part in (head[:20], head[20:], body[:50], body[50:]):
            sock.sendall(part)
            time.sleep(DEADLINE / 6)
        answer = b""
        while b"</soap:Envelope>" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"<resultCode>0</resultCode>" in answer


def test_a_huge_request_head_is_refused_without_a_thread(gateway: GatewayServer) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 70_000}\r\n\r\n".encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def test_no_answer_names_the_software(gateway: GatewayServer) -> None:
    answers = [
        requests.get(gateway.base + "/health", timeout=10),
        requests.get(gateway.endpoint + "?wsdl", timeout=10),
        requests.post(gateway.endpoint, data=envelope("benchmarkingNop", ""), headers=HEADERS,
                      timeout=10),
        requests.post(gateway.endpoint, data=b"<not-xml", headers=HEADERS, timeout=10),
        requests.post(gateway.endpoint, data=b"x" * (1024 * 1024 + 1), headers=HEADERS,
                      timeout=10),
        requests.get(gateway.base + "/nowhere", timeout=10),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 500, 413, 404]
    for answer in answers:
        assert "Server" not in answer.headers, answer.headers
        assert "gunicorn" not in answer.text.lower()
