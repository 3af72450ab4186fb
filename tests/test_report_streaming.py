"""A ready executeReport answer streamed from the stored chunks, byte for byte the answer the
SOAP serializer makes with the whole document in memory."""

import base64
import itertools
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

import pytest
import requests
from lxml import etree

from gateway import terminals
from gateway.auth import Principal
from gateway.config import Settings
from gateway.periods import close_open_period
from gateway.wire.app import create_app
from gateway.wire.streaming import base64_pieces, cdata_pieces, escaped_pieces, prefetched
from storage.jobs import CHUNK_BYTES
from storage.models import PeriodScope
from tests.support.domain import add_transactions
from tests.support.envelopes import context_xml, envelope
from tests.support.servers import InProcess, make_shop

ROWS = 10_000


def _splits(data: bytes, rng: random.Random) -> list[bytes]:
    """`data` cut at random places, including pieces of 0, 1 and 2 bytes."""
    cuts = sorted({0, len(data), *(rng.randrange(len(data) + 1) for _ in range(40))})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    return [b"", *pieces[:3], b"", *pieces[3:]]


@pytest.mark.parametrize("seed", range(5))
def test_base64_in_pieces_is_base64_of_the_whole(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(1, 5000))
    assert b"".join(base64_pieces(_splits(data, rng))) == base64.b64encode(data)


def test_base64_of_chunks_of_the_stored_size_needs_the_carry() -> None:
    """1 MiB is not a multiple of 3: encoding each chunk alone would put padding inside."""
    data = random.Random(1).randbytes(2 * CHUNK_BYTES + 5)
    chunks = [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    assert b"".join(base64_pieces(chunks)) == base64.b64encode(data)


TEXT = ("<?xml version=\"1.0\"?>\n<R><C>Ånna &amp; &lt;Co&gt;</C>\r<C>x]]>y]]]>z]]</C>"
        "😀 ]]>]]>]] ]>").encode()


@pytest.mark.parametrize("seed", range(5))
def test_escaped_text_in_pieces_is_what_lxml_writes(seed: int) -> None:
    element = etree.Element("contentString")
    element.text = TEXT.decode()
    whole = etree.tostring(element, encoding="UTF-8")
    pieces = escaped_pieces(_splits(TEXT, random.Random(seed)))
    assert b"<contentString>" + b"".join(pieces) + b"</contentString>" == whole


@pytest.mark.parametrize("seed", range(5))
def test_cdata_in_pieces_splits_every_end_marker(seed: int) -> None:
    pieces = b"".join(cdata_pieces(_splits(TEXT, random.Random(seed))))
    assert pieces == TEXT.replace(b"]]>", b"]]]]><![CDATA[>")
    section = b"<t><![CDATA[" + pieces + b"]]></t>"
    assert etree.fromstring(section).text.encode() == TEXT.replace(b"\r", b"\n")


def test_every_end_marker_across_a_chunk_boundary_is_split() -> None:
    for cut in range(len(TEXT) + 1):
        pieces = b"".join(cdata_pieces([TEXT[:cut], TEXT[cut:]]))
        assert pieces == TEXT.replace(b"]]>", b"]]]]><![CDATA[>"), cut


@pytest.mark.server
def test_a_ready_answer_streams_byte_for_byte_as_the_whole_one(server, tmp_path) -> None:
    """10,000 transactions (a two-chunk document) fetched from the running gateway, which
    streams it, and from the same database by an app that serializes the answer whole."""
    shop = make_shop(server.db)
    owner = Principal("RESELLERUSER", shop.reseller_id, user_id=shop.user_id)
    with server.db.write() as session:
        tills = [terminals.register_terminal(session, owner, f"Till {i}", "till-pw", None)
                 for i in range(3)]
    rng = random.Random(15)
    rows = [(rng.choice(tills), rng.choice([None, "anna", "Ånna & <Co>"]),
             Decimal(rng.randint(-5000, 500_000)).scaleb(-2) or Decimal(1))
            for _ in range(ROWS)]
    add_transactions(server.db, shop.reseller_id, rows, datetime(2024, 3, 9, tzinfo=UTC), 1)
    with server.db.write() as session:
        period = close_open_period(session, PeriodScope.shop_key(shop.reseller_id))
    request = envelope("executeReport", (
        context_xml(escape(shop.reseller_id), password=shop.password)
        + "<reportId>Reconciliation/STD_RECON_003.xml</reportId><language>en</language>"
        "<parameters><parameter><entry><key>transactionPeriodId</key>"
        f"<value>{period.transaction_period_id}</value></entry></parameter></parameters>"
    )).encode()
    for _ in range(200):
        streamed = server.post(request)
        if b"<resultCode>2</resultCode>" not in streamed.content:
            break
    assert b"<resultCode>0</resultCode>" in streamed.content, streamed.content[:500]
    assert streamed.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in streamed.headers

    whole_app = create_app(Settings(database_url=server.db_url, report_delay=0),
                           stream_reports=False)
    status, whole = InProcess(whole_app).post(request)
    whole_app.db.dispose()
    assert status == 200
    assert streamed.content == whole
    document = base64.b64decode(re.search(rb"<content>([^<]*)</content>", whole).group(1))
    assert len(document) > CHUNK_BYTES  # the answer was streamed from more than one chunk
    assert document.count(b"<Row>") == ROWS
    assert b"<contentString><![CDATA[" + document[:60] in whole  # the manual's shape
    assert _http_1_0(server.port, request) == whole
    # the journal keeps the envelope, saying what was streamed
    journaled = _journaled_answer(server.base, period.transaction_period_id)
    assert f"(the {len(document)}-byte document, streamed)" in journaled
    assert f"(base64 of the {len(document)}-byte document, streamed)" in journaled


def _journaled_answer(base: str, period_id: str) -> str:
    """A ready executeReport answer of the period in the request journal (which is written
    in the background)."""
    for _ in range(100):
        found = [entry["response"] for entry in requests.get(
            base + "/admin/requests", params={"limit": 20}, timeout=10).json()
            if entry["operation"] == "executeReport" and "<resultCode>0<" in entry["response"]
            and period_id in entry["response"]]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("no journal entry of the answer")


def _http_1_0(port: int, body: bytes) -> bytes:
    """An HTTP/1.0 request by hand: no chunked answer then, it ends when the connection does."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /extclientproxy/service/v2 HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: text/xml; charset=utf-8\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b"".join(iter(lambda: sock.recv(1 << 16), b""))
    head, _, answer = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    assert b"chunked" not in head.lower()
    return answer


def test_prefetching_stops_and_closes_the_reader_when_the_answer_is_abandoned() -> None:
    """A client that goes away mid-answer: the reading thread ends and its session closes."""
    closed = threading.Event()

    def chunks() -> Iterator[bytes]:
        try:
            for i in range(1000):
                yield bytes([i % 256]) * 10
        finally:
            closed.set()

    pieces = prefetched(chunks)
    assert [next(pieces) for _ in range(3)] == [b"\0" * 10, b"\1" * 10, b"\2" * 10]
    pieces.close()
    assert closed.is_set()
    assert [t for t in threading.enumerate() if t.name == "report chunks"] == []


def test_prefetching_hands_a_reading_error_to_the_answer() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first"
        raise ConnectionError("database went away")

    pieces = prefetched(chunks)
    assert next(pieces) == b"first"
    with pytest.raises(ConnectionError, match="went away"):
        next(pieces)
