"""A/B of the wire layer alone: our ``authsvc.h2wire`` against python-hyper ``h2`` (with its
``hpack`` and ``hyperframe``) on the same bytes — Envoy-shaped Check requests (HEADERS encoded
with a dynamic table as Envoy's encoder does, one DATA frame holding a ~180-byte
CheckRequest) — and the same answer (HEADERS, DATA, trailers). Server side only, no sockets:
what each costs per request in this process. ``python -m authsvc.bench._wire_ab``; ``h2`` is
a dev extra (installed by ``make``), not a dependency of authsvc."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.h2wire import PREFACE, FrameType, H2Connection, frame

REQUESTS = 5000
ANSWER = b"\x12\x00" + b"a" * 40


def _check_request() -> bytes:
    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method, http.path, http.host, http.id = "GET", "/v1/models", "app", "1234567890"
    http.headers["authorization"] = "Bearer sk-bench-" + "x" * 32
    req.attributes.source.address.socket_address.address = "10.0.0.1"
    return req.SerializeToString()


def _wire() -> list[bytes]:
    from hpack import Encoder

    encoder = Encoder()
    message = _check_request()
    body = b"\x00" + struct.pack(">I", len(message)) + message
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/envoy.service.auth.v3.Authorization/Check"),
        (":authority", "ext_authz"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "1000m"),
        ("x-envoy-expected-rq-timeout-ms", "1000"),
    ]
    return [
        frame(FrameType.HEADERS, 4, sid, encoder.encode(headers))
        + frame(FrameType.DATA, 1, sid, body)
        for sid in range(1, 2 * REQUESTS, 2)
    ]


def ours(wire: list[bytes]) -> float:
    conn: H2Connection

    def on_request(sid: int, headers: object, message: bytes | None) -> None:
        conn.respond(sid, ANSWER)

    conn = H2Connection(on_request, lambda data: None)
    conn.receive(PREFACE + frame(FrameType.SETTINGS, 0, 0))
    conn.receive(frame(FrameType.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)))
    started = time.perf_counter()
    for data in wire:
        conn.receive(data)
    return (time.perf_counter() - started) / len(wire) * 1e6


def hyper(wire: list[bytes]) -> float:
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.initiate_connection()
    conn.receive_data(PREFACE + frame(FrameType.SETTINGS, 0, 0))
    conn.receive_data(frame(FrameType.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)))
    conn.data_to_send()
    body = b"\x00" + struct.pack(">I", len(ANSWER)) + ANSWER
    started = time.perf_counter()
    for data in wire:
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                conn.send_data(sid, body)
                conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        conn.data_to_send()
    return (time.perf_counter() - started) / len(wire) * 1e6


def best(run: Callable[[list[bytes]], float], rounds: int = 5) -> float:
    return min(run(_wire()) for _ in range(rounds))


def main() -> None:
    try:
        import h2  # noqa: F401
    except ImportError:
        print("python-hyper h2 is not installed: pip install h2")
        return
    for _ in range(2):  # interleaved: a noisy moment hits both
        print(f"h2wire: {best(ours):.1f} µs/request   h2 4.x: {best(hyper):.1f} µs/request")


if __name__ == "__main__":
    main()
