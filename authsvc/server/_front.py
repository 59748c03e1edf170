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
  probe), the connection is answered here for its whole life (*fast* mode,
  ``authsvc.h2wire.H2Connection``): Check through the shared ``Checker``, ``Health/Check`` and
  ``Health/List`` natively, any other method ``UNIMPLEMENTED``;
- anything else (grpcurl and reflection, Health/Watch, garbage) is *spliced*: every byte is
  relayed to the private gRPC server, which sees the connection from its first byte — except the client's ACK of our
  empty SETTINGS, which is removed (that server never sent them; its own SETTINGS follow),
  and a request grpc.aio cannot survive (a ``:path`` that is not UTF-8: ``SpliceGuard``),
  which closes the connection instead.

The front accepts connections itself (not ``loop.create_server``), so that a refusal costs an
``accept()`` and a ``close()``: at most ``ACCEPTS_PER_TURN`` per readiness, a connection over
its peer's cap reset before any transport or task exists, and the listeners not read at all
while the global cap is reached (``_admission``). A fast connection's requests are parsed in
fair turns across peers (``_front_turns``).

The private server is started on the first spliced connection. Its address is an abstract
Unix socket on Linux (no file, nothing to clean up), reachable only from this network
namespace — where the public address is reachable anyway.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from authsvc._address import Address
from authsvc.h2wire import FloodLimits, Headers, MemoryBudget
from authsvc.server._admission import (
    CLOSED_REASONS,
    REFUSED_REASONS,
    Admission,
    BurstLog,
    FrontLimits,
    peer_of,
)
from authsvc.server._front_conn import CHECK_PATH, FAST_PATHS, HEALTH_PATH, Answers, Conn
from authsvc.server._front_turns import Turns
from authsvc.server._listen import (
    ListenError,
    describe_bind_failure,
    prepare_unix_socket,
    socket_identity,
)

__all__ = ["CHECK_PATH", "FAST_PATHS", "HEALTH_PATH", "Answers", "Front", "FrontLimits"]

_log = logging.getLogger("authsvc.server")

ACCEPTS_PER_TURN = 64
"""Connections accepted per listener readiness (asyncio's own loop takes up to the backlog,
1,024, and starts a task for each): a reconnect storm gets bounded work per loop turn."""
ACCEPT_RETRY = 1.0
"""Seconds the listeners rest after accept() failed for want of fds or memory (as asyncio)."""
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends RST: no FIN handshake, no TIME_WAIT

Health = Callable[[str], int | None]
"""gRPC health status for a service name, ``None`` for an unknown service."""
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
        limits: FrontLimits | None = None,
        flood_limits: FloodLimits | None = None,
    ) -> None:
        self._addresses = addresses
        self.checker = checker
        self.health = health
        self.internal = internal
        self.limits = limits or FrontLimits()
        self.flood_limits = flood_limits or FloodLimits()
        self.admission = Admission(self.limits)
        self.budget = MemoryBudget(self.limits.memory_budget)
        self.refusals = BurstLog(_log, "connection refused")
        self.violations = BurstLog(_log, "client broke the HTTP/2 rules")
        self._accept_errors = BurstLog(_log, "cannot accept connections")
        self.refused_counts = dict.fromkeys(REFUSED_REASONS, 0)
        self.closed_counts = dict.fromkeys(CLOSED_REASONS, 0)
        self.accept_errors = 0
        self.turns = Turns(self._call_soon)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._sockets: list[socket.socket] = []
        self._listening: list[socket.socket] = []  # sockets the loop watches for accept()
        self._accepting = False
        self._stopped = False
        self._resting: asyncio.TimerHandle | None = None
        self._starting: set[asyncio.Task[None]] = set()
        self.unix_sockets: dict[str, tuple[int, int] | None] = {}
        self.connections: set[Conn] = set()
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
        self._loop = loop
        self._watch_accept_errors(loop)
        for sock in self._sockets:
            sock.setblocking(False)
            sock.listen(1024)
        self._listening = list(self._sockets)
        self._resume_accepting()
        self._sweeper = loop.call_later(self.limits.sweep_interval, self._sweep)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        (self._loop or asyncio.get_running_loop()).call_soon(callback)

    # -- accepting: refusals cost an accept() and a close(), nothing more -------------------

    def _resume_accepting(self) -> None:
        self._resting = None
        if self._accepting or self._stopped or self._loop is None:
            return
        if self.admission.total >= self.limits.max_connections:
            return  # a connection's release resumes
        self._accepting = True
        for sock in self._listening:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause_accepting(self) -> None:
        """Stop reading the listeners (new clients wait in the kernel's backlog)."""
        if self._accepting and self._loop is not None:
            for sock in self._listening:
                self._loop.remove_reader(sock.fileno())
        self._accepting = False

    def _accept(self, listener: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(ACCEPTS_PER_TURN):
            if self.admission.total >= self.limits.max_connections:
                # At the global cap, refusing costs CPU for every attempt and gains nothing:
                # stop accepting until a connection goes (Conn.connection_lost -> release).
                self._pause_accepting()
                self.refusals.event(
                    f"{self.admission.total} connections open (the cap); not accepting until "
                    "one closes"
                )
                return
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    continue  # ECONNABORTED and the like: that client is gone
                self.accept_errors += 1
                self._accept_errors.event(f"{exc}; retrying in {ACCEPT_RETRY:g} s")
                self._pause_accepting()
                self._resting = loop.call_later(ACCEPT_RETRY, self._resume_accepting)
                return
            peer = peer_of(sock, address)
            refused = self.admission.admit(peer)
            if refused is not None:
                self.refused("peer_cap", refused)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                finally:
                    sock.close()
                continue
            task = loop.create_task(self._serve(sock, peer))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _serve(self, sock: socket.socket, peer: object) -> None:
        conn = Conn(self, peer)
        try:
            sock.setblocking(False)
            assert self._loop is not None
            await self._loop.connect_accepted_socket(lambda: conn, sock)
        except BaseException:
            sock.close()
            conn.release()
            raise

    def refused(self, reason: str, detail: str) -> None:
        self.refused_counts[reason] += 1
        self.refusals.event(detail)

    def closed(self, reason: str) -> None:
        self.closed_counts[reason] += 1

    @property
    def open_connections(self) -> int:
        return self.admission.total

    @property
    def accepting(self) -> bool:
        """False while the listeners rest (at the global cap, after an fd shortage, stopped)."""
        return self._accepting

    def release(self, peer: object) -> None:
        self.admission.release(peer)
        if not self._accepting and self._resting is None:
            self._resume_accepting()

    def _sweep(self) -> None:
        """Once per ``sweep_interval``: handshake and idle timeouts, request deadlines."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle, handshake = self.limits.idle_timeout, self.limits.handshake_timeout
        if self.admission.under_pressure:  # near the cap, clients that say nothing go first
            idle = min(idle, self.limits.pressure_idle_timeout)
            handshake = min(handshake, self.limits.pressure_idle_timeout)
        for conn in list(self.connections):
            conn.sweep(now, idle, handshake)
        self._sweeper = loop.call_later(self.limits.sweep_interval, self._sweep)

    def _watch_accept_errors(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio reports every failed accept() (EMFILE, ENFILE, ENOBUFS...) with a traceback;
        one line per burst is enough (the listener retries by itself)."""
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            message = str(context.get("message", ""))
            if message.startswith("socket.accept() out of system resource"):
                exc = context.get("exception")
                self._accept_errors.event(f"{exc or message}; retrying")
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)

    def stop_accepting(self) -> None:
        """Close the listeners and tell every fast connection to open no new streams."""
        self._close_listeners()
        for conn in list(self.connections):
            conn.goaway()

    def _close_listeners(self) -> None:
        self._pause_accepting()
        self._stopped = True
        if self._resting is not None:
            self._resting.cancel()
            self._resting = None
        for sock in self._listening:
            sock.close()
        self._listening.clear()

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
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.connections):
            conn.close()
        for task in self._starting:
            task.cancel()
        self._close_listeners()
        self._sockets.clear()  # closed with the listeners

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
