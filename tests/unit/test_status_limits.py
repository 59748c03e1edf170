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


def test_slow_clients_cost_no_threads_are_capped_and_time_out() -> None:
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    server.limits = Limits(max_connections=200, max_per_peer=1000, head_seconds=1.5)
    server.start()
    socks: list[socket.socket] = []
    try:
        threads_before = threading.active_count()
        host, port = server.address
        for _ in range(300):  # slowloris: a request head that never ends
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        time.sleep(0.3)
        assert threading.active_count() - threads_before <= 1, "a thread per connection"
        assert sum(_closed(s, 0.05) for s in socks[200:]) == 100, "over the cap: closed"
        # the legitimate prober: the cap is full of slow clients, yet once they time out
        # it is answered, and every slow client is gone within the head deadline
        assert all(_closed(s, 3.0) for s in socks[:200]), "slow clients time out"
        status, took = _livez(server)
        assert status == 200 and took < 1.0
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_livez_answers_while_slow_clients_hold_connections_below_the_cap() -> None:
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    server.limits = Limits(max_per_peer=1000)
    server.start()
    socks = []
    try:
        host, port = server.address
        for _ in range(200):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /readyz HTTP/1.1\r\n")
            socks.append(sock)
        for _ in range(20):
            status, took = _livez(server)
            assert status == 200 and took < 1.0
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_an_oversized_request_head_is_dropped() -> None:
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    server.start()
    try:
        host, port = server.address
        with socket.create_connection((host, port), timeout=5) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /livez HTTP/1.1\r\nx-a: " + b"a" * (70 << 10))
            assert _closed(sock, 3.0)
        assert _livez(server)[0] == 200
    finally:
        server.stop()


def test_one_slow_peer_cannot_crowd_out_the_prober() -> None:
    """The attack as found, from one address: 300 slow clients from 127.0.0.2 take only their
    per-peer share; kubelet (127.0.0.1) is answered at once."""
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    server.limits = Limits(max_connections=64, max_per_peer=32, head_seconds=30)
    server.start()
    socks = []
    try:
        host, port = server.address
        for _ in range(300):
            sock = socket.create_connection(
                (host, port), timeout=5, source_address=("127.0.0.2", 0)
            )
            sock.sendall(b"GET /livez HTTP/1.1\r\n")
            socks.append(sock)
        time.sleep(0.2)
        assert sum(not _closed(s, 0.02) for s in socks) == 32
        for _ in range(10):
            status, took = _livez(server)
            assert status == 200 and took < 1.0
    finally:
        for sock in socks:
            sock.close()
        server.stop()
