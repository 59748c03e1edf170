"""The fast Check path: our own HTTP/2 front on the public addresses, the gRPC server behind it.

Python's gRPC runtime costs ~200-300 µs of CPU per unary call before any of our code runs
(docs/performance.md); answering Envoy's Check stream ourselves costs a fraction of that. So
every public address (``--listen``) is served by this front, and the complete ``grpc.aio``
server (Check, Health, reflection) listens on a private address behind it:

- a connection starts in *sniff* mode: once the client preface is in, an empty SETTINGS frame
  (our server preface: every setting at its default) is sent — gRPC clients wait for it
  before their first request — and frames are buffered until the first request's header
  block is complete;
- if that first request is ``Authorization/Check`` (what Envoy sends) or ``Health/Check`` (a
  probe), the connection is answered here for its whole life (*fast* mode, ``_h2``): Check
  through the shared ``Checker``, ``Health/Check`` and ``Health/List`` natively, any other
  method ``UNIMPLEMENTED``;
- anything else (grpcurl and reflection, Health/Watch, garbage, or a client that sends no
  request within ``SNIFF_SECONDS``) is *spliced*: every byte is relayed to the private gRPC
  server, which sees the connection from its first byte — except the client's ACK of our
  empty SETTINGS, which is removed (that server never sent them; its own SETTINGS follow),
  and a request grpc.aio cannot survive (a ``:path`` that is not UTF-8: ``SpliceGuard``),
  which closes the connection instead.

The private server is started on the first spliced connection. Its address is an abstract
Unix socket on Linux (no file, nothing to clean up), reachable only from this network
namespace — where the public address is reachable anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from grpc_health.v1 import health_pb2

from authsvc._address import Address
from authsvc.server._check import settle, where
from authsvc.server._h2 import PREFACE, SETTINGS, H2Connection, frame
from authsvc.server._hpack import Headers
from authsvc.server._listen import (
    ListenError,
    describe_bind_failure,
    prepare_unix_socket,
    socket_identity,
)
from authsvc.server._sniff import (
    CHECK_PATH,
    HEALTH_PATH,
    AckFilter,
    SpliceGuard,
    SpliceRefused,
    sniff,
)

__all__ = ["Answers", "Front"]

_log = logging.getLogger("authsvc.server")

SNIFF_SECONDS = 0.1
SNIFF_LIMIT = 1 << 16

Health = Callable[[str], int | None]
"""gRPC health status for a service name, ``None`` for an unknown service."""


HEALTH_LIST_PATH = "/grpc.health.v1.Health/List"


class Answers(Protocol):
    """What answers a Check (``_check.Checker``): answer bytes, maybe an observer awaitable."""

    def check(self, request: bytes) -> tuple[bytes, Awaitable[None] | None]: ...


Internal = Callable[[], Awaitable[str]]
"""Starts the private gRPC server if needed; returns the path to connect to."""


class Front:
    """The public listeners. ``bind()`` (may raise ``ListenError``), ``start()``, ``stop()``."""

    def __init__(
        self,
        addresses: Sequence[Address],
        checker: Answers,
        health: Health,
        internal: Internal,
    ) -> None:
        self._addresses = addresses
        self.checker = checker
        self.health = health
        self.internal = internal
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self.unix_sockets: dict[str, tuple[int, int] | None] = {}
        self.connections: set[_Conn] = set()
        self.info: dict[Headers, tuple[str, bool]] = {}  # header block → (path, is gRPC POST)

    def bind(self) -> list[str]:
        """Bind every address (nothing is served yet). Returns them as bound."""
        bound = []
        try:
            for addr in self._addresses:
                bound.append(self._bind(addr))
        except BaseException:
            self.close_sockets()
            raise
        return bound

    def _bind(self, addr: Address) -> str:
        if addr.is_unix:
            prepare_unix_socket(addr)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(addr.path)
            except OSError as exc:
                sock.close()
                raise self._bind_error(addr) from exc
            self._sockets.append(sock)
            self.unix_sockets[addr.path] = socket_identity(addr.path)
            return addr.bound(0)
        try:
            infos = socket.getaddrinfo(
                addr.host, addr.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise self._bind_error(addr) from exc
        port = addr.port
        dual = addr.host in ("::", "0:0:0:0:0:0:0:0")
        seen: set[tuple[int, object]] = set()
        for family, kind, proto, _, sockaddr in infos:
            if (family, sockaddr[0]) in seen or family not in (socket.AF_INET, socket.AF_INET6):
                continue
            seen.add((family, sockaddr[0]))
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
            except OSError as exc:
                sock.close()
                raise self._bind_error(addr) from exc
            self._sockets.append(sock)
            port = port or sock.getsockname()[1]
            if dual:
                break
        return addr.bound(port)

    def _bind_error(self, addr: Address) -> ListenError:
        self.close_sockets()  # so that the diagnosis does not trip over our own sockets
        return ListenError(
            f"--listen {addr.spec!r}: cannot bind {addr.grpc_target}: {describe_bind_failure(addr)}"
        )

    def close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            self._servers.append(
                await loop.create_server(lambda: _Conn(self), sock=sock, backlog=1024)
            )

    def stop_accepting(self) -> None:
        """Close the listeners and tell every fast connection to open no new streams."""
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.goaway()

    async def drain(self, grace: float) -> None:
        """Wait (up to ``grace``) for answers still being prepared on fast connections."""
        deadline = asyncio.get_running_loop().time() + grace
        while any(c.busy for c in self.connections):
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            if conn.mode == "fast":
                conn.close()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()
        for server in self._servers:
            server.close()
        self._servers.clear()
        self._sockets.clear()  # closed by their servers

    def request_info(self, headers: Headers) -> tuple[str, bool]:
        info = self.info.get(headers)
        if info is None:
            fields = dict(headers)
            info = (
                fields.get(":path", ""),
                fields.get(":method") == "POST"
                and fields.get("content-type", "").startswith("application/grpc"),
            )
            if len(self.info) >= 256:
                self.info.clear()
            self.info[headers] = info
        return info


class _Conn(asyncio.Protocol):
    """One client connection: sniff, then fast or spliced."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.mode = "sniff"
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._h2: H2Connection | None = None
        self._upstream: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._goaway = False
        self._greeted = False
        self._acks = AckFilter()
        self._guard = SpliceGuard()

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.front.connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(SNIFF_SECONDS, self._splice)

    def data_received(self, data: bytes) -> None:
        if self.mode == "fast":
            assert self._h2 is not None
            self._h2.receive(data)
            if self._h2.closed:
                self.close()
            return
        if self.mode == "splice" and self._upstream is not None:
            self._relay(data)
            return
        self._pending.append(data)
        if self.mode == "sniff":
            buffered = b"".join(self._pending)
            self._pending = [buffered]
            if not self._greeted and buffered.startswith(PREFACE):
                self._greeted = True
                assert self.transport is not None
                self.transport.write(frame(SETTINGS, 0, 0))  # empty: every setting default
            verdict = sniff(buffered)
            if verdict == "fast":
                self._fast()
            elif verdict == "splice" or len(buffered) > SNIFF_LIMIT:
                self._splice()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._upstream is not None:
            self._upstream.close()
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:  # the client does not read: stop reading what feeds it
        if self._upstream is not None:
            self._upstream.pause_reading()
        elif self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()
        elif self.transport is not None:
            self.transport.resume_reading()

    # -- modes ------------------------------------------------------------------------------

    def _fast(self) -> None:
        assert self.transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self.mode = "fast"
        self._h2 = H2Connection(self._request, self.transport.write)
        data = b"".join(self._pending)
        self._pending = []
        if self._goaway:
            self._h2.goaway()
        self._h2.receive(data)
        if self._h2.closed:
            self.close()

    def _splice(self) -> None:
        if self.mode != "sniff" or self.transport is None or self.transport.is_closing():
            return
        if self._timer is not None:
            self._timer.cancel()
        self.mode = "splice"
        task = asyncio.ensure_future(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            path = await self.front.internal()
            transport, _ = await loop.create_unix_connection(lambda: _Upstream(self), path)
        except Exception as exc:  # stopping, or the private server is gone: drop this client
            _log.warning("cannot reach the internal gRPC server: %s", where(exc))
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
            self._upstream.write(self._guard.feed(self._acks.feed(data)))
        except SpliceRefused as exc:
            _log.info("spliced connection closed: %s", exc)
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
            h2.respond_status(sid, 12, f"unsupported request to {path}")
        elif message is None:
            h2.respond_status(sid, 13, "a unary call needs exactly one uncompressed message")
        elif path == CHECK_PATH:
            answer, pending = self.front.checker.check(message)
            if pending is None:
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
            h2.respond_status(sid, 12, f"Method not found: {path}")

    async def _answer_later(self, sid: int, answer: bytes, pending: object) -> None:
        await settle(pending)  # type: ignore[arg-type]
        if self._h2 is not None and not self._h2.closed:
            self._h2.respond(sid, answer)

    def _health(self, sid: int, message: bytes) -> None:
        h2 = self._h2
        assert h2 is not None
        try:
            service = health_pb2.HealthCheckRequest.FromString(message).service
            status = self.front.health(service)
        except Exception as exc:
            _log.warning("health check failed: %s", where(exc))
            h2.respond_status(sid, 13, "health check failed")
            return
        if status is None:
            h2.respond_status(sid, 5, "unknown service")
        else:
            h2.respond(sid, health_pb2.HealthCheckResponse(status=status).SerializeToString())


class _Upstream(asyncio.Protocol):
    """The private gRPC server's side of a spliced connection."""

    def __init__(self, client: _Conn) -> None:
        self._client = client
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
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
