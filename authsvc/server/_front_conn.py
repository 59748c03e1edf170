"""One client connection of the fast front (``_front``): sniff, then fast or spliced.

The mode is decided by the client's bytes only — its first request's ``:path`` — never by a
timer: a connection that arrives while the event loop is busy with a Check flood must not be
spliced (and so served by the slow gRPC runtime for its whole life) just because its first
HEADERS frame was read late. A client that sends no complete first request within
``handshake_timeout`` is closed by the front's sweep instead (``_admission``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from grpc_health.v1 import health_pb2

from authsvc._errors import PeerProtocolError
from authsvc.h2wire import (
    PREFACE,
    AckFilter,
    ErrorCode,
    FloodLimits,
    FrameType,
    GrpcStatus,
    H2Connection,
    Headers,
    MemoryBudget,
    SpliceGuard,
    WireError,
    frame,
    sniff,
)
from authsvc.server._admission import BurstLog
from authsvc.server._check import Answer, finish, where
from authsvc.server._front_turns import REQUESTS_PER_TURN, SLICE, Turns

__all__ = ["CHECK_PATH", "FAST_PATHS", "HEALTH_PATH", "Answers", "Conn", "Host"]

_log = logging.getLogger("authsvc.server")

CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
HEALTH_PATH = "/grpc.health.v1.Health/Check"
HEALTH_LIST_PATH = "/grpc.health.v1.Health/List"
FAST_PATHS = frozenset({CHECK_PATH, HEALTH_PATH})
"""First requests that make a connection fast: Envoy's checks, and probes' health checks."""
SNIFF_LIMIT = 1 << 16
_GOAWAY_IDLE = frame(FrameType.GOAWAY, 0, 0, b"\x00" * 8)  # last stream 0, NO_ERROR


class Answers(Protocol):
    """What answers a Check (``_check.Checker``): answer bytes (or an awaitable of them: a
    virtual-key lookup), maybe an observer awaitable."""

    def check(self, request: bytes) -> tuple[Answer, Awaitable[None] | None]: ...


class Host(Protocol):
    """What a connection needs from the front that accepted it."""

    checker: Answers
    health: Callable[[str], int | None]
    internal: Callable[[], Awaitable[str]]
    connections: set[Conn]
    budget: MemoryBudget
    flood_limits: FloodLimits
    violations: BurstLog
    turns: Turns

    def request_info(self, headers: Headers) -> tuple[str, bool]: ...

    def refused(self, reason: str, detail: str) -> None:
        """Count (``authsvc_front_refused_total``) and log (once per burst) a refusal."""

    def closed(self, reason: str) -> None:
        """Count a connection the front closed (``authsvc_front_closed_total``)."""

    def release(self, peer: object) -> None:
        """A connection admitted for ``peer`` is gone."""


@contextlib.contextmanager
def _seam() -> Iterator[None]:
    """The wire package's errors become authsvc's at this seam (``PeerProtocolError``)."""
    try:
        yield
    except WireError as exc:
        raise PeerProtocolError(f"client broke the wire protocol: {exc}") from exc


class Conn(asyncio.Protocol):
    """One client connection, already admitted for ``peer``: sniff, then fast or spliced."""

    def __init__(self, front: Host, peer: object) -> None:
        self.front = front
        self.mode = "sniff"
        self.transport: asyncio.Transport | None = None
        self.started = self.active = 0.0
        self._peer = peer
        self._released = False
        self._pending: list[bytes] = []
        self._held = 0  # bytes of _pending taken from the memory budget
        self._h2: H2Connection | None = None
        self._upstream: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._goaway = False
        self._greeted = False
        self._write_paused = False
        self._queued = False  # waiting in the front's Turns with bytes not parsed yet
        self._acks = AckFilter()
        self._guard = SpliceGuard()

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    @property
    def h2(self) -> H2Connection | None:
        return self._h2

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.front.connections.add(self)
        self.started = self.active = asyncio.get_running_loop().time()

    def data_received(self, data: bytes) -> None:
        self.active = asyncio.get_running_loop().time()
        if self.mode == "fast":
            self._feed(data)
            return
        if self.mode == "splice":
            if self._upstream is not None:
                self._relay(data)
            else:
                self._pending.append(data)
            return
        if self.mode != "sniff":
            return
        if not self.front.budget.take(len(data)):
            self.front.refused("memory", "out of memory for connections' first requests")
            self.close()
            return
        self._held += len(data)
        self._pending.append(data)
        buffered = b"".join(self._pending)
        self._pending = [buffered]
        if not self._greeted and buffered.startswith(PREFACE):
            self._greeted = True
            assert self.transport is not None
            self.transport.write(frame(FrameType.SETTINGS, 0, 0))  # empty: every default
        verdict = sniff(buffered, FAST_PATHS)
        if verdict == "fast":
            self._fast()
        elif verdict == "splice" or len(buffered) > SNIFF_LIMIT:
            self._splice()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.release()
        self._give_back()
        if self._h2 is not None:
            self._h2.release()
        if self._upstream is not None:
            self._upstream.close()
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:  # the client does not read: stop reading what feeds it
        self._write_paused = True
        if self._upstream is not None:
            self._upstream.pause_reading()
        elif self.transport is not None:
            self.transport.pause_reading()

    def release(self) -> None:
        """Give the connection's admission back (once)."""
        if not self._released:
            self._released = True
            self.front.release(self._peer)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._upstream is not None:
            self._upstream.resume_reading()
        elif self.transport is not None and not self._queued:
            self.transport.resume_reading()

    # -- fast mode: fair turns (``_front_turns``) ---------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Parse what one turn allows at once, unless this connection or its peer is already
        waiting for a turn; then the bytes wait too."""
        h2, turns = self._h2, self.front.turns
        assert h2 is not None
        if self._queued or turns.busy(self._peer):
            h2.receive(data, max_requests=0)
        else:
            h2.receive(data, max_requests=REQUESTS_PER_TURN, max_bytes=SLICE)
        if h2.closed:
            self._ended_by_protocol()
        elif h2.more and not self._queued:
            self._queued = True
            assert self.transport is not None
            self.transport.pause_reading()
            turns.wait(self._peer, self._turn)

    def _turn(self) -> bool:
        """One turn (called by ``Turns``): whether there is more left for another."""
        h2, transport = self._h2, self.transport
        if h2 is None or transport is None or transport.is_closing() or h2.closed:
            self._queued = False
            return False
        h2.receive(b"", max_requests=REQUESTS_PER_TURN, max_bytes=SLICE)
        if h2.closed:
            self._queued = False
            self._ended_by_protocol()
            return False
        if h2.more:
            return True
        self._queued = False
        if not self._write_paused:
            transport.resume_reading()
        return False

    # -- the front's sweep -------------------------------------------------------------------

    def sweep(self, now: float, idle_timeout: float, handshake_timeout: float) -> None:
        """Close a connection past its handshake or idle time; expire stale requests."""
        if self.mode == "sniff":
            if now - self.started > handshake_timeout:
                self.front.closed("handshake_timeout")
                self._close_quietly()
            return
        h2 = self._h2
        if h2 is not None and h2.open_streams:
            h2.expire(now)
            if h2.closed:
                self._ended_by_protocol()
        elif now - self.active > idle_timeout and not self._tasks and not self._queued:
            self.front.closed("idle_timeout")
            self._close_quietly()

    def _close_quietly(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._h2 is not None:
            self._h2.goaway()
        elif self._greeted and self.mode == "sniff":
            self.transport.write(_GOAWAY_IDLE)
        self.close()

    # -- modes ------------------------------------------------------------------------------

    def _give_back(self) -> None:
        self.front.budget.give(self._held)
        self._held = 0

    def _fast(self) -> None:
        assert self.transport is not None
        self.mode = "fast"
        self._h2 = H2Connection(
            self._request,
            self.transport.write,
            limits=self.front.flood_limits,
            budget=self.front.budget,
            write_buffer=self.transport.get_write_buffer_size,
            clock=asyncio.get_running_loop().time,
        )
        data = b"".join(self._pending)
        self._pending = []
        self._give_back()
        if self._goaway:
            self._h2.goaway()
        self._feed(data)  # up to 64 KiB of pipelined requests: in turns too

    def _splice(self) -> None:
        if self.mode != "sniff" or self.transport is None or self.transport.is_closing():
            return
        self.mode = "splice"
        self._give_back()  # from here on the transports' flow control bounds the bytes
        task = asyncio.ensure_future(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            path = await self.front.internal()
            transport, _ = await loop.create_unix_connection(lambda: _Upstream(self), path)
        except Exception as exc:  # stopping, or the private server is gone: drop this client
            self.front.refused("internal", f"cannot reach the internal gRPC server: {where(exc)}")
            self.close()
            return
        if self.transport is None or self.transport.is_closing():
            transport.close()
            return
        self._upstream = transport
        pending = b"".join(self._pending)
        self._pending = []
        if not self._greeted:
            self._acks.done = True  # we sent nothing: there is no ACK to remove
        self._relay(pending)

    def _relay(self, data: bytes) -> None:
        assert self._upstream is not None
        try:
            with _seam():
                self._upstream.write(self._guard.feed(self._acks.feed(data)))
        except PeerProtocolError as exc:
            self.front.closed("splice_refused")
            self.front.violations.event(f"spliced connection closed: {exc}", logging.INFO)
            self.close()

    def _ended_by_protocol(self) -> None:
        assert self._h2 is not None
        if self._h2.error is not None:
            calm = self._h2.error_code == ErrorCode.ENHANCE_YOUR_CALM
            self.front.closed("flood_limit" if calm else "protocol_error")
            self.front.violations.event(f"connection closed: {self._h2.error}", logging.INFO)
        self.close()

    def goaway(self) -> None:
        self._goaway = True
        if self._h2 is not None:
            self._h2.goaway()

    def close(self) -> None:
        if self._h2 is not None:
            self._h2.flush()
        if self.transport is not None:
            self.transport.close()

    # -- fast mode: one request ---------------------------------------------------------------

    def _request(self, sid: int, headers: Headers, message: bytes | None) -> None:
        h2 = self._h2
        assert h2 is not None
        path, grpc_post = self.front.request_info(headers)
        if not grpc_post:
            h2.respond_status(sid, GrpcStatus.UNIMPLEMENTED, f"unsupported request to {path}")
        elif message is None:
            h2.respond_status(
                sid, GrpcStatus.INTERNAL, "a unary call needs exactly one uncompressed message"
            )
        elif path == CHECK_PATH:
            answer, pending = self.front.checker.check(message)
            if pending is None and isinstance(answer, bytes):
                h2.respond(sid, answer)
            else:
                task = asyncio.ensure_future(self._answer_later(sid, answer, pending))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif path == HEALTH_PATH:
            self._health(sid, message)
        elif path == HEALTH_LIST_PATH:  # reflection advertises it: answer it here too
            statuses = {
                service: health_pb2.HealthCheckResponse(status=status)
                for service in ("", CHECK_PATH.split("/")[1])
                if (status := self.front.health(service)) is not None
            }
            h2.respond(sid, health_pb2.HealthListResponse(statuses=statuses).SerializeToString())
        else:
            h2.respond_status(sid, GrpcStatus.UNIMPLEMENTED, f"Method not found: {path}")

    async def _answer_later(self, sid: int, answer: Answer, pending: object) -> None:
        sent = await finish(answer, pending)  # type: ignore[arg-type]
        if self._h2 is not None and not self._h2.closed:
            self._h2.respond(sid, sent)

    def _health(self, sid: int, message: bytes) -> None:
        h2 = self._h2
        assert h2 is not None
        try:
            service = health_pb2.HealthCheckRequest.FromString(message).service
            status = self.front.health(service)
        except Exception as exc:
            _log.warning("health check failed: %s", where(exc))
            h2.respond_status(sid, GrpcStatus.INTERNAL, "health check failed")
            return
        if status is None:
            h2.respond_status(sid, GrpcStatus.NOT_FOUND, "unknown service")
        else:
            h2.respond(sid, health_pb2.HealthCheckResponse(status=status).SerializeToString())


class _Upstream(asyncio.Protocol):
    """The private gRPC server's side of a spliced connection."""

    def __init__(self, client: Conn) -> None:
        self._client = client
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._client.active = asyncio.get_running_loop().time()
        if self._client.transport is not None:
            self._client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def pause_writing(self) -> None:  # the gRPC server does not read: stop the client
        if self._client.transport is not None:
            self._client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._client.transport is not None:
            self._client.transport.resume_reading()
