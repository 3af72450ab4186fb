"""`TcpProxy`: a TCP proxy between the gateway and PostgreSQL that can drop every connection.
"""

import contextlib
import socket
import threading


class TcpProxy:
    """127.0.0.1:<port> -> the database server, a thread per direction of each connection.

    `drop()` closes every proxied connection and, until `restore()`, accepts and at once
    closes new ones: to the gateway the server has gone away. `silence()` closes them too
    but then holds new ones open without a byte, as a database host that stopped answering
    (a partition, a stuck server) looks to a client."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.silent = False
        self.held: list[socket.socket] = []
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.refused = 0
        self.proxied = 0
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                self.refused += 1
                if self.silent:
                    self.held.append(client)
                else:
                    client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
                self.proxied += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
        sock.close()

    def drop(self) -> None:
        self.up.clear()
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            self._close(sock)

    def silence(self) -> None:
        self.silent = True
        self.drop()

    def restore(self) -> None:
        self.silent = False
        self.up.set()
        held, self.held = self.held, []
        for sock in held:
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.drop()
        self.restore()  # lets the held connections go
        self.listener.close()
