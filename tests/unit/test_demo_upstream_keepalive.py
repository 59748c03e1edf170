"""The demo upstream answers promptly on a kept-alive connection (as Envoy uses it).

Regression: the handler wrote the status line and headers, then the body, as two small
writes. With Nagle's algorithm on, the second write waits for the peer's ACK of the first,
and a peer in delayed-ACK mode sends it only after ~40 ms: every request through Envoy (which
keeps its upstream connections alive) took ~42 ms instead of ~1 ms.
"""

from __future__ import annotations

import http.client
import statistics
import time
from collections.abc import Iterator

import pytest

from authsvc.stack._demo import DemoUpstream, MasterKeySource
from tests._keys import make_key
from tests.e2e._harness import free_port

KEY = make_key("demo-keepalive")


@pytest.fixture
def demo() -> Iterator[DemoUpstream]:
    server = DemoUpstream(f"127.0.0.1:{free_port()}", MasterKeySource(value=KEY)).start()
    try:
        yield server
    finally:
        server.close()


def test_kept_alive_requests_do_not_wait_for_delayed_acks(demo: DemoUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=5)
    took = []
    try:
        for _ in range(15):
            start = time.monotonic()
            conn.request("GET", "/v1/models", headers={"authorization": f"Bearer {KEY}"})
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            took.append(time.monotonic() - start)
    finally:
        conn.close()
    # ~40 ms per request when the body waits for a delayed ACK; well under 1 ms otherwise
    assert statistics.median(took) < 0.02, [f"{t * 1000:.1f} ms" for t in took]
