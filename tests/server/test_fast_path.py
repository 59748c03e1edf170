"""The fast Check path on a real server: same answers as the grpc.aio path, byte for byte;
connections that do not start with a Check reach the complete gRPC server; the documented
limits of a fast connection."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc.authz import Policy
from authsvc.h2wire import PREFACE, Decoder, frame, literal
from authsvc.keys import KeyRing, KeyStore
from authsvc.server import AUTHZ_SERVICE, AuthzServer
from tests.h2wire._names import DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS
from tests.server.conftest import CHECK, LoopThread, master_ring, request
from tests.unit.test_fuzz_grpc import _ring, malformed, structured

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def _start(loop: LoopThread, store: KeyStore, listen: str, *, fast: bool) -> AuthzServer:
    server = AuthzServer(store, Policy.build(), [listen])
    server.fast_path = fast
    loop.run(server.start())
    return server


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    """(fast, grpc) raw-bytes Check callables on two servers over the same key ring."""
    loop = LoopThread()
    store = KeyStore(_ring())
    servers = [
        _start(loop, store, "127.0.0.1:0", fast=True),
        _start(loop, store, "127.0.0.1:0", fast=False),
    ]
    channels = [grpc.insecure_channel(s.bound_addresses[0]) for s in servers]
    try:
        fast, slow = (ch.unary_unary(CHECK) for ch in channels)
        yield (lambda b: fast(b, timeout=10)), (lambda b: slow(b, timeout=10))
    finally:
        for ch in channels:
            ch.close()
        for s in servers:
            loop.run(s.stop(0))
        loop.close()


PARITY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PARITY
@given(req=structured())
def test_fast_path_answers_exactly_like_the_grpc_path(pair: Any, req: Any) -> None:
    fast, slow = pair
    payload = req.SerializeToString()
    assert fast(payload) == slow(payload)


@PARITY
@given(payload=st.one_of(malformed(), st.binary(max_size=64)))
def test_fast_path_answers_malformed_bytes_like_the_grpc_path(pair: Any, payload: bytes) -> None:
    fast, slow = pair
    assert fast(payload) == slow(payload)


# --- one fast connection ---------------------------------------------------------------------


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return reply.status  # type: ignore[no-any-return]


def test_health_on_a_connection_that_started_with_a_check(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    store = KeyStore(master_ring())
    server = _start(loop_thread, store, f"unix:{short_tmp / 'a.sock'}", fast=True)
    try:
        with grpc.insecure_channel(f"unix:{short_tmp / 'a.sock'}") as ch:
            call = ch.unary_unary(CHECK)
            assert call(request().SerializeToString(), timeout=10)  # the connection is fast now
            assert _health(ch, "") == SERVING and _health(ch, AUTHZ_SERVICE) == SERVING
            with pytest.raises(grpc.RpcError) as info:
                _health(ch, "no.such.Service")
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            store.swap(KeyRing())
            server.refresh_health()
            deadline = time.monotonic() + 5
            while _health(ch, "") != NOT_SERVING:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        loop_thread.run(server.stop(0))


def test_reflection_after_a_check_on_one_connection_is_unimplemented(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    """Documented limit: a fast connection serves Check and Health/Check only."""
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{short_tmp / 'a.sock'}", fast=True)
    try:
        with grpc.insecure_channel(f"unix:{short_tmp / 'a.sock'}") as ch:
            ch.unary_unary(CHECK)(request().SerializeToString(), timeout=10)
            other = ch.unary_unary("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
            with pytest.raises(grpc.RpcError) as info:
                other(b"", timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        loop_thread.run(server.stop(0))


# --- spliced connections, by hand ------------------------------------------------------------


def _frames(
    sock: socket.socket, until: Callable[[int, int, int], bool]
) -> list[tuple[int, int, int, bytes]]:
    """Read frames until ``until(kind, flags, stream)`` is true for one (or the peer closes)."""
    buf, out = b"", []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            head, flags, sid = struct.unpack_from(">IBI", buf)
            if len(buf) < 9 + (head >> 8):
                break
            out.append((head & 0xFF, flags, sid, buf[9 : 9 + (head >> 8)]))
            buf = buf[9 + (head >> 8) :]
            if until(head & 0xFF, flags, sid):
                return out
        chunk = sock.recv(65536)
        if not chunk:
            return out
        buf += chunk
    raise AssertionError(f"no matching frame in {out}")


def _call(sid: int, path: str, message: bytes) -> bytes:
    block = b"\x83\x86" + literal(":path", path) + literal(":authority", "authsvc")
    block += literal("content-type", "application/grpc") + literal("te", "trailers")
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, body)


HEALTH_REQUEST = health_pb2.HealthCheckRequest(service="").SerializeToString()


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["at-once", "after-the-sniff-window"])
def test_spliced_connection_reaches_the_full_grpc_server(
    loop_thread: LoopThread, short_tmp: Path, pause: float
) -> None:
    """A first request the front does not serve hands the connection to the gRPC server
    (started for it): the client gets our empty SETTINGS, then the gRPC server's, and its ACK
    of ours never reaches the gRPC server (which would not expect it). A client that says
    nothing for a while is handed over too."""
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
            first = _frames(sock, lambda k, f, s: k == SETTINGS)
            assert first[0][:2] == (SETTINGS, 0) and first[0][3] == b""  # our empty preface
            sock.sendall(frame(SETTINGS, 1, 0))  # ACK it, as a client must
            time.sleep(pause)
            sock.sendall(_call(1, "/no.such.Service/Method", b""))
            frames = _frames(sock, lambda k, f, s: k == HEADERS and s == 1 and bool(f & 1))
            sock.sendall(_call(3, HEALTH_CHECK, HEALTH_REQUEST))  # the same connection
            frames += _frames(sock, lambda k, f, s: k == HEADERS and s == 3 and bool(f & 1))
        decoder = Decoder()
        headers = {s: dict(decoder.decode(p)) for k, _, s, p in frames if k == HEADERS}
        assert headers[1]["grpc-status"] == "12", headers  # gRPC's own UNIMPLEMENTED
        assert headers[3].get("grpc-status") == "0", headers
        data = b"".join(p for k, _, s, p in frames if k == DATA and s == 3)
        assert health_pb2.HealthCheckResponse.FromString(data[5:]).status == SERVING
        assert not [f for f in frames if f[0] == 7], "the gRPC server hung up (GOAWAY)"
    finally:
        loop_thread.run(server.stop(0))


def test_health_probe_connections_are_answered_by_the_front(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    """A probe's Health/Check never needs the gRPC server, which is then never started."""
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    try:
        for _ in range(3):
            with grpc.insecure_channel(f"unix:{path}") as ch:
                assert _health(ch, "") == SERVING
        assert server._server is None
    finally:
        loop_thread.run(server.stop(0))


def test_garbage_goes_to_grpc_and_the_server_keeps_serving(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            with pytest.raises((ConnectionError, TimeoutError, OSError)):
                while sock.recv(4096):
                    pass
                raise ConnectionError("closed")
        with grpc.insecure_channel(f"unix:{path}") as ch:
            assert ch.unary_unary(CHECK)(request().SerializeToString(), timeout=10)
    finally:
        loop_thread.run(server.stop(0))


def test_stop_sends_goaway_to_fast_connections(loop_thread: LoopThread, short_tmp: Path) -> None:
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        block = b"\x83\x86" + literal(":path", CHECK) + literal("content-type", "application/grpc")
        body = request().SerializeToString()
        sock.sendall(
            PREFACE
            + frame(SETTINGS, 0, 0)
            + frame(HEADERS, END_HEADERS, 1, block)
            + frame(DATA, END_STREAM, 1, b"\x00" + struct.pack(">I", len(body)) + body)
        )
        _frames(sock, lambda k, f, s: k == HEADERS and s == 1 and bool(f & 1))
        future = asyncio.run_coroutine_threadsafe(server.stop(1), loop_thread.loop)
        frames = _frames(sock, lambda k, f, s: k == 7)
        assert frames[-1][0] == 7 and struct.unpack(">II", frames[-1][3][:8]) == (1, 0)
        future.result(10)


@pytest.mark.parametrize("later", [False, True], ids=["first-request", "later-request"])
def test_a_path_that_is_not_utf8_never_reaches_the_grpc_server(
    loop_thread: LoopThread, short_tmp: Path, later: bool
) -> None:
    """Regression: grpc.aio decodes a method as UTF-8 in its serving loop; one such request
    (with the ``:authority`` and ``te`` every client sends) ended the private server, and
    every spliced connection after it was dropped. The front now closes that connection
    before the request is relayed, whether it is the first request or a later one."""
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    errors: list[dict[str, Any]] = []
    loop_thread.call(lambda: loop_thread.loop.set_exception_handler(lambda _, c: errors.append(c)))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
            if later:  # a spliced connection first, then the request on it
                sock.sendall(_call(1, "/no.such.Service/Method", b""))
                _frames(sock, lambda k, f, s: k == HEADERS and s == 1 and bool(f & 1))
            sock.sendall(_call(3, "/\xe8x/y", b""))  # literal() sends latin-1: one byte 0xE8
            _frames(sock, lambda k, f, s: False)  # until the front hangs up
        time.sleep(0.2)  # the gRPC server would have died by now
        with socket.socket(socket.AF_UNIX) as sock:  # a new spliced connection still works
            sock.connect(str(path))
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + _call(1, "/no.such.Service/M", b""))
            frames = _frames(sock, lambda k, f, s: k == HEADERS and s == 1 and bool(f & 1))
        fields = dict(Decoder().decode(frames[-1][3]))
        assert fields["grpc-status"] == "12", fields  # gRPC's own UNIMPLEMENTED
        assert not errors, [c.get("message") for c in errors]
    finally:
        loop_thread.run(server.stop(0))


def test_unimplemented_for_a_huge_path_fits_one_frame(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    """Regression: the front's "Method not found: <path>" carried the whole path, so a 16 KiB
    ``:path`` on a fast connection got a HEADERS frame over the maximum frame size."""
    path = short_tmp / "a.sock"
    server = _start(loop_thread, KeyStore(master_ring()), f"unix:{path}", fast=True)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            block = b"\x83\x86" + literal(":path", "/" + "a" * 16_400)
            block += literal("content-type", "application/grpc")
            sock.sendall(
                PREFACE
                + _call(1, CHECK, request().SerializeToString())  # the connection is fast
                + frame(HEADERS, 0, 3, block[:16_000])
                + frame(9, END_HEADERS, 3, block[16_000:])  # CONTINUATION
                + frame(DATA, END_STREAM, 3, b"\x00" * 5)  # one empty message
            )
            frames = _frames(sock, lambda k, f, s: k == HEADERS and s == 3 and bool(f & 1))
        assert all(len(payload) <= 16384 for *_, payload in frames)
        assert dict(Decoder().decode(frames[-1][3]))["grpc-status"] == "12"
    finally:
        loop_thread.run(server.stop(0))
