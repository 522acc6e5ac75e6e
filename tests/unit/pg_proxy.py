"""A TCP proxy in front of PostgreSQL that a test can stop, start, or have lose a commit's
acknowledgement: the database outages of a restart or a failover, on a real server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class PgProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. ``stop()`` closes the listener and every
    connection (clients see their connection dropped, new ones refused); ``start()``
    listens again on the same port. ``lose_next_commit_ack()``: the next ``COMMIT`` a
    client sends reaches the server, which commits, but the client's connection is then
    closed before the server's answer reaches it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._lose_commit = False
        self.commits_lost = 0
        self.start()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # shutdown wakes the thread blocked in accept()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _close(conn)

    def lose_next_commit_ack(self) -> None:
        self._lose_commit = True

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            swallow = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, server, swallow, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, swallow, False), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, swallow: threading.Event, upstream: bool
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream and self._lose_commit and b"COMMIT\x00" in data:
                    self._lose_commit = False
                    swallow.set()  # the server's answer is not passed on
                    dst.sendall(data)
                    time.sleep(0.5)  # the server commits meanwhile
                    self.commits_lost += 1
                    break
                if not upstream and swallow.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
