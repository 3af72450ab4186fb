"""A ready executeReport answer written to the socket from the stored chunks.

The answer is written as any other (`envelope.response`), except that the report's
`content` and `contentString` hold two placeholders (`Placeholders`). The envelope written
around them is therefore the one and only text of the answer's envelope; here the
placeholders are replaced, while the answer is sent, by the document read chunk by chunk
from the database:

- `content`: base64, the chunks' bytes carried over to the next chunk so that every piece
  encodes a multiple of 3 bytes (1 MiB chunks are not), the same text as encoding it whole;
- `contentString`: when the placeholder stands in a CDATA section (the manual's shape, as
  `envelope` writes it), the document as it is with any `]]>` split across two sections, one
  across two chunks too; otherwise the document as element text, escaped as lxml escapes it
  (`&`, `<`, `>`, a carriage return).

Each pass reads the chunks in a thread of its own, a chunk or two ahead (`prefetched`). So
nothing holds the whole document, and the body is byte for byte the one `envelope` writes
with the document in it (tests/test_report_streaming.py compares them). The length is not
known before the document has been read, so the answer goes without a Content-Length:
chunked on HTTP/1.1, delimited by closing the connection on HTTP/1.0.
"""

import base64
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pybase64

#: the environ key under which the SOAP layer leaves a document to stream
ENVIRON_KEY = "seqr.streamed_report"

_CDATA_OPEN = b"<![CDATA["
_CDATA_CLOSE = b"]]>"
_CDATA_SPLIT = b"]]]]><![CDATA[>"  # "]]>" inside a CDATA section: close, reopen, go on


@dataclass(frozen=True)
class Placeholders:
    """Stand-ins for the document, unique to this process: random bytes whose base64 has no
    padding, and a text nothing in an envelope escapes."""

    content: bytes = field(default_factory=lambda: os.urandom(24))
    text: str = field(default_factory=lambda: "seqr-streamed-document-" + os.urandom(16).hex())

    @property
    def content_token(self) -> bytes:
        return base64.b64encode(self.content)

    @property
    def text_token(self) -> bytes:
        return self.text.encode()


PLACEHOLDERS = Placeholders()


@dataclass(frozen=True)
class StreamedReport:
    """A stored document to put in place of the placeholders: `chunks()` reads it (again)
    from the database, a chunk at a time."""

    chunks: Callable[[], Iterator[bytes]]
    size: int
    placeholders: Placeholders = PLACEHOLDERS


def outline(envelope: bytes, report: StreamedReport) -> bytes:
    """The answer as the request journal keeps it: the envelope, each placeholder replaced
    by a note of what was streamed there."""
    marks = report.placeholders
    return (envelope
            .replace(marks.content_token,
                     f"(base64 of the {report.size}-byte document, streamed)".encode())
            .replace(marks.text_token, f"(the {report.size}-byte document, streamed)".encode()))


def prefetched(chunks: Callable[[], Iterator[bytes]], depth: int = 2) -> Iterator[bytes]:
    """`chunks()` run in a thread of its own, up to `depth` chunks ahead: the next chunks
    come from the database while this one is encoded and written to the socket (the
    driver's wait and the socket's both release the GIL). The reader's session opens and
    closes in its thread; a consumer that stops early (the client went away) stops it."""
    ready: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: tuple[bytes | None, BaseException | None]) -> bool:
        """Queue `item` unless the consumer has stopped; whether it was queued."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        source = chunks()
        try:
            for chunk in source:
                if not offer((chunk, None)):
                    return
            offer((None, None))
        except BaseException as error:  # noqa: BLE001 (handed to the consumer, raised there)
            offer((None, error))
        finally:
            close = getattr(source, "close", None)  # a generator: its session ends here
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="report chunks", daemon=True)
    reader.start()
    try:
        while True:
            chunk, error = ready.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        reader.join()


def base64_pieces(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """base64 of the concatenated chunks, in pieces. pybase64 (SIMD) writes the same text
    as the standard library about ten times as fast: for a million-row report, 245 MB of
    base64 in a few hundredths of a second instead of a quarter to half a second."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        whole = len(data) - len(data) % 3
        carry = data[whole:]
        if whole:
            yield pybase64.b64encode(data[:whole] if carry else data)
    if carry:
        yield pybase64.b64encode(carry)


def escaped_pieces(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The UTF-8 text of the chunks as XML element content. Byte by byte is enough: the
    escaped characters are ASCII, and no byte of a multi-byte UTF-8 sequence is."""
    for chunk in chunks:
        yield (chunk.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
               .replace(b"\r", b"&#13;"))


def cdata_pieces(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks as the inside of a CDATA section. A `]` or `]]` at the end of a chunk
    waits for the next one, so a `]]>` across two chunks is split too."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        if b"]" not in data:  # memchr: most documents hold no "]" at all, nothing to split
            carry = b""
            yield data
            continue
        keep = 2 if data.endswith(b"]]") else 1 if data.endswith(b"]") else 0
        carry = data[len(data) - keep:] if keep else b""
        ready = data[:len(data) - keep] if keep else data
        if ready:
            yield ready.replace(_CDATA_CLOSE, _CDATA_SPLIT)
    if carry:
        yield carry


def splice(envelope: bytes, report: StreamedReport) -> Iterator[bytes]:
    """The serializer's answer with the document streamed in place of the placeholders."""
    marks = report.placeholders
    content_at = envelope.index(marks.content_token)
    text_at = envelope.index(marks.text_token)
    in_cdata = envelope[text_at - len(_CDATA_OPEN):text_at] == _CDATA_OPEN
    text_pieces = cdata_pieces if in_cdata else escaped_pieces
    parts: list[tuple[int, int, Callable[[Iterable[bytes]], Iterator[bytes]]]] = sorted([
        (content_at, len(marks.content_token), base64_pieces),
        (text_at, len(marks.text_token), text_pieces),
    ])
    position = 0
    for at, length, pieces in parts:
        yield envelope[position:at]
        yield from pieces(prefetched(report.chunks))
        position = at + length
    yield envelope[position:]
