"""Issue 20 item 9: the status port under slow and many connections, over real sockets.

Before: one thread per connection with no cap and a listen backlog of 5; 5,000 slow
connections made 1,579 threads. Now: no thread per connection, a cap, deadlines, and
``/livez`` keeps answering.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator

from authsvc.health import StatusServer
from authsvc.health._status_io import Limits


def _livez(server: StatusServer) -> tuple[int, float]:
    host, port = server.address
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/livez")
        return conn.getresponse().status, time.monotonic() - started
    finally:
        conn.close()


def _closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@contextlib.contextmanager
def _status(limits: Limits | None = None) -> Iterator[StatusServer]:
    """A started status server (always ready), with ``limits`` when given; stopped after."""
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    if limits is not None:
        server.limits = limits
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _slow_clients(
    server: StatusServer, count: int, head: bytes, source: str = "127.0.0.1"
) -> Iterator[list[socket.socket]]:
    """``count`` connections from ``source`` that each send ``head`` (a request head that
    never ends) and then nothing; closed after."""
    host, port = server.address
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
            sock.sendall(head)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_slow_clients_cost_no_threads_are_capped_and_time_out() -> None:
    limits = Limits(max_connections=200, max_per_peer=1000, head_seconds=1.5)
    with _status(limits) as server:
        threads_before = threading.active_count()
        with _slow_clients(server, 300, b"GET /livez HTTP/1.1\r\nHost: x\r\n") as socks:
            time.sleep(0.3)
            assert threading.active_count() - threads_before <= 1, "a thread per connection"
            assert sum(_closed(s, 0.05) for s in socks[200:]) == 100, "over the cap: closed"
            # the legitimate prober: the cap is full of slow clients, yet once they time out
            # it is answered, and every slow client is gone within the head deadline
            assert all(_closed(s, 3.0) for s in socks[:200]), "slow clients time out"
            status, took = _livez(server)
            assert status == 200 and took < 1.0


def test_livez_answers_while_slow_clients_hold_connections_below_the_cap() -> None:
    with (
        _status(Limits(max_per_peer=1000)) as server,
        _slow_clients(server, 200, b"GET /readyz HTTP/1.1\r\n"),
    ):
        for _ in range(20):
            status, took = _livez(server)
            assert status == 200 and took < 1.0


def test_an_oversized_request_head_is_dropped() -> None:
    with _status() as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /livez HTTP/1.1\r\nx-a: " + b"a" * (70 << 10))
            assert _closed(sock, 3.0)
        assert _livez(server)[0] == 200


def test_one_slow_peer_cannot_crowd_out_the_prober() -> None:
    """The attack as found, from one address: 300 slow clients from 127.0.0.2 take only their
    per-peer share; kubelet (127.0.0.1) is answered at once."""
    limits = Limits(max_connections=64, max_per_peer=32, head_seconds=30)
    with (
        _status(limits) as server,
        _slow_clients(server, 300, b"GET /livez HTTP/1.1\r\n", "127.0.0.2") as socks,
    ):
        time.sleep(0.2)
        assert sum(not _closed(s, 0.02) for s in socks) == 32
        for _ in range(10):
            status, took = _livez(server)
            assert status == 200 and took < 1.0
