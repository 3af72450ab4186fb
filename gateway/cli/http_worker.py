"""gunicorn's threaded worker, made safe against slow and idle clients.

gunicorn's `gthread` worker hands a new connection to a thread at once: the thread waits up
to 5 s for the first byte, then reads the request with blocking calls for as long as the
client takes. With one worker process (the embedded default), a few clients that connect
and send nothing, or drip a header line or a body byte a second, hold every thread, and
every register waits. `sync` workers are worse: one such client stops the process.

`BufferingWorker` reads each request in the worker's event loop instead, without a
thread, and hands a connection to a thread only once its whole request (headers and body)
is in memory. A client that has not sent a whole request within the read deadline
(`Settings.request_read_timeout`, counted from the connection, or on a kept-alive
connection from the first byte of its next request) is disconnected, however it drips; a
kept-alive connection with no new request closes after the keep-alive time. Idle
connections cost a file descriptor and a few bytes each, never a thread, up to
`max_connections` per process. Socket-level send and receive timeouts of the same length
bound a thread's blocking reads and writes too (a client that stops reading its answer).

It keeps everything else of gunicorn's: the thread pool (so SQLite and psycopg calls block
only their own thread), keep-alive, graceful stops, worker restarts. It also leaves out
gunicorn's `Server` header: the answers do not name the software.
"""

import contextlib
import selectors
import socket
import struct
import time
from functools import partial
from typing import Any

from gunicorn.http import wsgi
from gunicorn.workers.gthread import TConn, ThreadWorker

#: request line and headers larger than this are refused (431) without a thread
MAX_HEAD_BYTES = 64 * 1024
INCOMPLETE, COMPLETE, HEAD_TOO_LARGE = "incomplete", "complete", "head too large"
_CRLF = b"\r\n"
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
              b"Content-Length: 0\r\n\r\n")


def request_state(data: bytes, body_limit: int) -> str:
    """Whether `data` holds a whole HTTP/1.x request, as far as the gateway will read it.

    A body over `body_limit` counts as whole once the application can tell (its declared
    length, or `body_limit + 1` bytes of chunks): the application refuses it (413) without
    reading more. Anything the parser will refuse (a malformed length, a bad chunk size)
    counts as whole too, so that gunicorn answers 400 at once.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return HEAD_TOO_LARGE if len(data) > MAX_HEAD_BYTES else INCOMPLETE
    if end > MAX_HEAD_BYTES:
        return HEAD_TOO_LARGE
    length: bytes | None = None
    chunked = False
    for line in data[:end].split(_CRLF)[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = value.strip()
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    body = data[end + 4:]
    if chunked:
        return _chunked_state(body, body_limit)
    if length is None or not length.isdigit() or int(length) > body_limit:
        return COMPLETE
    return COMPLETE if len(body) >= int(length) else INCOMPLETE


def _chunked_state(body: bytes, body_limit: int) -> str:
    position = received = 0
    while True:
        line_end = body.find(_CRLF, position)
        if line_end < 0:
            return INCOMPLETE if len(body) - position <= 1024 else COMPLETE
        try:
            size = int(body[position:line_end].split(b";", 1)[0].strip(), 16)
        except ValueError:
            return COMPLETE  # not a chunk size: the parser says 400
        start = line_end + 2
        if size == 0:  # the last chunk; then trailers up to an empty line
            return COMPLETE if body.startswith(_CRLF, start) or (
                body.find(b"\r\n\r\n", start) >= 0) else INCOMPLETE
        available = min(size, len(body) - start)
        received += available
        if received > body_limit:
            return COMPLETE
        if available < size or len(body) < start + size + 2:
            return INCOMPLETE
        position = start + size + 2


class _QuietResponse(wsgi.Response):  # type: ignore[misc]
    """gunicorn's response without its `Server: gunicorn` header."""

    def default_headers(self) -> list[str]:
        return [line for line in super().default_headers() if not line.startswith("Server:")]


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class BufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with whole requests gathered in the event loop under a read deadline."""

    def init_process(self) -> None:
        settings = self.app.settings
        self.read_timeout: float = settings.request_read_timeout
        self.body_limit: int = settings.max_body_bytes
        #: connections whose request is still arriving, by deadline (insertion order)
        self.arriving: dict[TConn, float] = {}
        wsgi.Response = _QuietResponse  # gunicorn builds every answer from this name
        super().init_process()  # runs the worker's loop

    # --- the event loop (main thread) ---

    def enqueue_req(self, conn: TConn) -> None:
        """Every road to a thread passes here: a new connection, a kept-alive one that
        became readable, bytes read ahead behind a previous request."""
        if getattr(conn, "request_ready", False):
            conn.request_ready = False
            conn.data_ready = True  # gthread must not wait for data in the thread
            super().enqueue_req(conn)
            return
        if not hasattr(conn, "request_ready"):  # new: bound blocking calls in threads too
            timeout = _timeval(self.read_timeout)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        conn.sock.setblocking(False)
        conn.inbox = bytearray(conn.parser.unreader.take_buffered() if conn.parser else b"")
        if request_state(bytes(conn.inbox), self.body_limit) != INCOMPLETE:
            self._dispatch(conn)
            return
        self.arriving[conn] = time.monotonic() + self.read_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._receive, conn))

    def _receive(self, conn: TConn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._forget(conn)
            return
        conn.inbox += data
        state = request_state(bytes(conn.inbox), self.body_limit)
        if state == INCOMPLETE:
            return
        self.poller.unregister(conn.sock)
        del self.arriving[conn]
        if state == HEAD_TOO_LARGE:
            with contextlib.suppress(OSError):
                conn.sock.send(_TOO_LARGE)
            self.nr_conns -= 1
            conn.close()
            return
        self._dispatch(conn)

    def _dispatch(self, conn: TConn) -> None:
        conn.request_ready = True
        self.enqueue_req(conn)

    def _forget(self, conn: TConn) -> None:
        self.arriving.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Called by the loop about once a second: also disconnect every client whose
        request did not arrive in time."""
        super().murder_pending()
        now = time.monotonic()
        while self.arriving:
            conn, deadline = next(iter(self.arriving.items()))
            if deadline > now:
                break
            self._forget(conn)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # wake in time for the next read deadline, not only once a second
        if self.arriving:
            first = next(iter(self.arriving.values()))
            timeout = max(0.0, min(timeout, first - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)  # then the loop calls murder_pending

    # --- a thread ---

    def handle(self, conn: TConn) -> Any:
        inbox = getattr(conn, "inbox", None)
        conn.inbox = None
        conn.sock.setblocking(True)
        conn.init()
        if inbox:
            conn.parser.unreader.unread(bytes(inbox))
        return super().handle(conn)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """Keep a connection only when its request was read whole: a body the application
        refused unread (413) is not drained from a slow client; the connection closes."""
        if not keepalive:
            return False
        return bool(conn.parser.finish_body(deadline=time.monotonic() + 0.05))
