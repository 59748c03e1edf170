"""The ext_authz server: Check, gRPC health and reflection, on TCP and Unix sockets.

Check is registered with a *raw-bytes* handler: the server parses ``CheckRequest`` itself, so a
request that does not parse is answered with a well-formed deny (400, ``malformed_request``)
instead of a gRPC error, and any unexpected failure becomes a well-formed deny (500,
``internal_error``). No code path aborts the RPC: an aborted Check would reach Envoy's error
path, which ``failure_mode_allow`` may turn into an allow.

Two transports answer, with the same ``Checker`` (``_check``): by default the public addresses
are served by the fast HTTP/2 front (``_front``), which answers connections that start with a
Check or a Health/Check itself and relays every other connection to a complete ``grpc.aio``
server on a private address — started, and grpcio imported, only when the first such
connection arrives (Envoy and health probes never need it: ~20 MB less memory, a faster
start). With ``fast_path = False`` (``serve --no-fast-path``) the ``grpc.aio`` server listens
on the public addresses itself. Nothing is logged per check; observers (metrics, decision
logs) attach through ``on_decision``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from grpc_health.v1 import health_pb2

from authsvc._address import Address
from authsvc._errors import ServerDied
from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2
from authsvc.authz import Policy
from authsvc.keys import KeyStore
from authsvc.server._check import Checker, DecisionObserver, finish
from authsvc.server._front import Front, FrontLimits
from authsvc.server._listen import (
    ListenError,
    describe_bind_failure,
    internal_address,
    parse_listen,
    prepare_unix_socket,
    remove_unix_socket,
    socket_identity,
)

if TYPE_CHECKING:  # grpcio is imported when a gRPC server is first needed
    import grpc

__all__ = ["AUTHZ_SERVICE", "AuthzServer", "DecisionObserver"]

_log = logging.getLogger("authsvc.server")

AUTHZ_SERVICE: str = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
HEALTH_SERVICE: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

UNIX_SOCKET_MODE = 0o660
"""Owner and group only (``serve --socket-mode`` changes it). In a pod Envoy and authsvc share
uid and gid 10001 (and the pod's fsGroup, if any, as a supplementary group); outside a pod,
put the users allowed to connect in the socket's group, never open it to every local user."""

_GRPC_OPTIONS: tuple[tuple[str, Any], ...] = (
    # gRPC enables SO_REUSEPORT by default: a second server on a busy port would then "bind"
    # silently and share the traffic. Binding must fail instead.
    ("grpc.so_reuseport", 0),
)


def _listing_health(base: Any, statuses: Callable[[], dict[str, int]]) -> Any:
    """grpc_health's aio servicer with ``List`` implemented (it answers UNIMPLEMENTED with a
    Python exception text otherwise, while reflection advertises the method): every service
    this server reports, with its status."""

    class ListingHealth(base):  # type: ignore[misc]
        async def List(self, request: Any, context: Any) -> Any:
            return health_pb2.HealthListResponse(
                statuses={
                    name: health_pb2.HealthCheckResponse(status=status)
                    for name, status in statuses().items()
                }
            )

    return ListingHealth()


class AuthzServer:
    """Envoy ext_authz v3 ``Check``, ``grpc.health.v1.Health`` and reflection (v1 + v1alpha).

    Health for "" and ``envoy.service.auth.v3.Authorization`` is SERVING exactly when the
    current key ring is ready; call ``refresh_health()`` after every ``store.swap``.
    ``fast_path`` (default on) puts the HTTP/2 front on the public addresses; set it before
    ``start()``.
    """

    fast_path: bool = True
    front_limits: FrontLimits | None = None  # the front's caps and timeouts (None: defaults)

    def __init__(
        self,
        store: KeyStore,
        policy: Policy,
        listen: Sequence[str],
        *,
        strip_headers: tuple[str, ...] = (),
        on_decision: DecisionObserver | None = None,
    ) -> None:
        if not listen:
            raise ListenError("at least one --listen address is required")
        self._addresses: tuple[Address, ...] = tuple(parse_listen(a) for a in listen)
        self._store = store
        self._checker = Checker(store, policy, tuple(h.lower() for h in strip_headers), on_decision)
        self._server: grpc.aio.Server | None = None
        self.socket_mode = UNIX_SOCKET_MODE  # chmod of every Unix socket once bound
        self._health: Any = None  # grpc_health's aio HealthServicer, with the gRPC server
        self._front: Front | None = None
        self._internal_path: str | None = None
        self._internal_dir: str | None = None
        self._internal_lock = asyncio.Lock()
        self._status = _NOT_SERVING
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound: list[str] = []
        self._sockets: dict[str, tuple[int, int] | None] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._running = False
        self._stopped = False
        self._terminated = asyncio.Event()

    @property
    def on_decision(self) -> DecisionObserver | None:
        return self._checker.observer

    @on_decision.setter
    def on_decision(self, observer: DecisionObserver | None) -> None:
        self._checker.observer = observer

    @property
    def dry_run(self) -> bool:
        """Dry-run (``authz.shadow``): policy denials are answered allow and recorded."""
        return bool(self._checker.dry_run)

    @dry_run.setter
    def dry_run(self, on: bool) -> None:
        self._checker.dry_run = bool(on)

    def update_policy(self, policy: Policy) -> None:
        """Use ``policy`` from the next request on (a config reload changed it)."""
        self._checker.policy = policy

    # -- lifecycle ---------------------------------------------------------------------------

    def front(self) -> Front | None:
        """The fast HTTP/2 front once started (its connection counters feed ``/metrics``)."""
        return self._front

    @property
    def bound_addresses(self) -> tuple[str, ...]:
        """Where the server listens, real ports filled in (``127.0.0.1:43125``, ``unix:/p``)."""
        return tuple(self._bound)

    @property
    def started(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Bind every address and start serving. Raises ``ListenError`` naming a bad address."""
        if self._running:
            raise RuntimeError("AuthzServer.start() called twice")
        self._loop = asyncio.get_running_loop()
        self._status = _SERVING if self._store.current.ready else _NOT_SERVING
        try:
            if self.fast_path:
                front = Front(
                    self._addresses,
                    self._checker,
                    self._health_of,
                    self._internal,
                    self.front_limits,
                )
                self._front = front
                self._bound.extend(front.bind())
                self._sockets.update(front.unix_sockets)
                await front.start()
            else:
                server = self._grpc_server()
                self._server = server
                await self._apply_health()
                self._bind_all(server)
                await server.start()
        except BaseException:
            await self._abort_start()
            raise
        for path in self._sockets:
            try:
                os.chmod(path, self.socket_mode)
            except OSError as exc:
                _log.warning("cannot chmod %s: %s", path, exc.strerror)
        self._running = True
        _log.info("ext_authz gRPC server listening on %s", ", ".join(self._bound))

    async def _abort_start(self) -> None:
        front, server = self._front, self._server
        if front is not None:
            front.close_all()
            front.close_sockets()
            self._sockets.update(front.unix_sockets)
        if server is not None:
            await server.stop(None)
        self._remove_sockets()  # gRPC only unlinks the sockets of a started server
        self._bound.clear()
        self._front = self._server = None

    def _grpc_server(self) -> grpc.aio.Server:
        """A grpc.aio server with Check, Health and reflection (no address bound yet)."""
        import grpc
        from grpc_health.v1 import health, health_pb2_grpc

        from authsvc.server._reflection import add_reflection

        server = grpc.aio.server(options=_GRPC_OPTIONS)
        handlers = {"Check": grpc.unary_unary_rpc_method_handler(self._check)}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(AUTHZ_SERVICE, handlers),)
        )
        server.add_registered_method_handlers(AUTHZ_SERVICE, handlers)
        self._health = _listing_health(health.aio.HealthServicer, self._health_statuses)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        add_reflection(server, (AUTHZ_SERVICE, HEALTH_SERVICE))
        return server

    async def _internal(self) -> str:
        """The private gRPC server behind the front (its connect path), started on first use."""
        async with self._internal_lock:
            if self._stopped:
                raise ConnectionRefusedError("the server is stopping")
            if self._internal_path is None:
                server = self._grpc_server()
                target, path, self._internal_dir = internal_address()
                server.add_insecure_port(target)
                await self._apply_health()
                await server.start()
                self._server, self._internal_path = server, path
                _log.info("internal gRPC server started (health, reflection, other clients)")
            return self._internal_path

    def _health_statuses(self) -> dict[str, int]:
        return {"": self._status, AUTHZ_SERVICE: self._status}

    def _health_of(self, service: str) -> int | None:
        return self._status if service in ("", AUTHZ_SERVICE) else None

    def _bind_all(self, server: grpc.aio.Server) -> None:
        for addr in self._addresses:
            if addr.is_unix:
                prepare_unix_socket(addr)
            try:
                port = server.add_insecure_port(addr.grpc_target)
            except RuntimeError as exc:
                raise ListenError(
                    f"--listen {addr.spec!r}: cannot bind {addr.grpc_target}: "
                    f"{describe_bind_failure(addr)}"
                ) from exc
            if addr.is_unix:  # gRPC binds (creates the file) here, before start()
                self._sockets[addr.path] = socket_identity(addr.path)
            self._bound.append(addr.bound(port))

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, stop accepting, let in-flight checks finish (up to ``grace``
        seconds), then remove the Unix socket files. Safe to call more than once."""
        if not self._running:
            return
        front = self._front
        async with self._internal_lock:  # no private server starts from now on
            if not self._stopped:
                self._stopped = True
                self._status = _NOT_SERVING
                if self._health is not None:
                    await self._health.enter_graceful_shutdown()
                _log.info("ext_authz gRPC server stopping (grace %.1fs)", grace)
                if front is not None:
                    front.stop_accepting()
        server = self._server
        waits = [] if server is None else [server.stop(grace)]
        if front is not None:
            waits.append(front.drain(grace))
        await asyncio.gather(*waits)
        if front is not None:
            front.close_all()
        self._remove_sockets()
        self._terminated.set()

    def _remove_sockets(self) -> None:
        for path, identity in self._sockets.items():
            remove_unix_socket(path, identity)
        if self._internal_dir is not None:  # the private socket, where there are no abstract ones
            shutil.rmtree(self._internal_dir, ignore_errors=True)
            self._internal_dir = None

    async def wait_for_termination(self) -> None:
        if self._running:
            await self._terminated.wait()

    async def watch(self) -> None:
        """Returns when the server is stopped; raises ``ServerDied`` if the grpc.aio server on
        the public addresses (``fast_path`` off) ends without ``stop()``.

        grpcio 1.85 ends its serving loop on a request whose ``:path`` is not UTF-8 (the front
        screens those on the fast path). The process would then listen on nothing while its
        status port still answered: every check fails closed until someone restarts it.
        """
        server = None if self.fast_path else self._server
        if server is None:
            await self.wait_for_termination()
            return
        try:
            await server.wait_for_termination()
            cause = "without an error"
        except Exception as exc:  # grpcio re-raises what ended its loop
            cause = f"on {type(exc).__name__}"  # the type only: its text quotes request bytes
        if not self._stopped:
            raise ServerDied(
                f"the gRPC server stopped by itself ({cause}); exiting to be restarted"
            )

    # -- health ------------------------------------------------------------------------------

    def refresh_health(self) -> None:
        """Re-read ``store.current.ready`` into gRPC health. Call after every key swap.

        Thread-safe and non-blocking: the update runs on the server's event loop shortly
        after. Health is SERVING iff the current ring has a master key.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(self._apply_health())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            asyncio.run_coroutine_threadsafe(self._apply_health(), loop)

    async def _apply_health(self) -> None:
        if self._stopped:
            return
        status = _SERVING if self._store.current.ready else _NOT_SERVING
        self._status = status
        if self._health is not None:
            for service in ("", AUTHZ_SERVICE):
                await self._health.set(service, status)

    # -- the hot path of the gRPC server (spliced connections, --no-fast-path) -----------------

    async def _check(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        answer, pending = self._checker.check(request)
        if pending is None and isinstance(answer, bytes):
            return answer
        return await finish(answer, pending)
