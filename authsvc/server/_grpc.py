"""The ext_authz gRPC server: Check, gRPC health and reflection on one grpc.aio server.

Check is registered with a *raw-bytes* handler: the server parses ``CheckRequest`` itself, so a
request that does not parse is answered with a well-formed deny (400, ``malformed_request``)
instead of a gRPC error, and any unexpected failure becomes a well-formed deny (500,
``internal_error``). No code path aborts the RPC: an aborted Check would reach Envoy's error
path, which ``failure_mode_allow`` may turn into an allow.

The hot path, per request: parse → ``view_from_request`` → read ``store.current`` once →
``decide`` → ``render`` → ``response_from`` → serialise. Nothing is logged for it; observers
(metrics, decision logs) attach through ``on_decision``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2
from authsvc.authz import Decision, Policy, Reason, RequestView, decide, render
from authsvc.keys import KeyStore
from authsvc.server._adapter import response_from, view_from_request
from authsvc.server._listen import (
    ListenAddress,
    ListenError,
    describe_bind_failure,
    parse_listen,
    prepare_unix_socket,
    remove_unix_socket,
    socket_identity,
)
from authsvc.server._reflection import add_reflection

__all__ = ["AUTHZ_SERVICE", "AuthzServer", "DecisionObserver"]

_log = logging.getLogger("authsvc.server")

AUTHZ_SERVICE: str = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
HEALTH_SERVICE: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

DecisionObserver = Callable[[RequestView, Decision, float], Awaitable[None] | None]
"""Called after every Check with (view, decision, seconds spent). May be ``async``.

It runs before the response is sent, so keep it quick. An exception in it is logged (type
only) and never changes the answer.
"""

UNIX_SOCKET_MODE = 0o666
"""Envoy usually runs as another user in another container; access is governed by the
directory the socket lives in (a pod-private emptyDir)."""

_GRPC_OPTIONS: tuple[tuple[str, Any], ...] = (
    # gRPC enables SO_REUSEPORT by default: a second server on a busy port would then "bind"
    # silently and share the traffic. Binding must fail instead.
    ("grpc.so_reuseport", 0),
)
_EMPTY_VIEW = RequestView(method="", target="")


class AuthzServer:
    """Envoy ext_authz v3 ``Check``, ``grpc.health.v1.Health`` and reflection (v1 + v1alpha).

    Health for "" and ``envoy.service.auth.v3.Authorization`` is SERVING exactly when the
    current key ring is ready; call ``refresh_health()`` after every ``store.swap``.
    """

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
        self._addresses: tuple[ListenAddress, ...] = tuple(parse_listen(a) for a in listen)
        self._store = store
        self._extra_strip = tuple(h.lower() for h in strip_headers)
        self._apply_policy(policy)
        self.on_decision = on_decision
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bound: list[str] = []
        self._sockets: dict[str, tuple[int, int] | None] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._stopped = False
        self._malformed = self._fixed_answer(
            Decision(Reason.MALFORMED_REQUEST, "the CheckRequest could not be parsed")
        )
        self._internal = self._fixed_answer(
            Decision(Reason.INTERNAL_ERROR, "authsvc failed to evaluate the request")
        )

    def _fixed_answer(self, decision: Decision) -> tuple[Decision, bytes]:
        return decision, response_from(render(decision, {}, self._strip)).SerializeToString()

    def update_policy(self, policy: Policy) -> None:
        """Use ``policy`` from the next request on (a config reload changed it)."""
        self._apply_policy(policy)

    def _apply_policy(self, policy: Policy) -> None:
        self._policy = policy
        self._strip = self._extra_strip + policy.strip_headers
        self._strip_query = policy.strip_query

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def bound_addresses(self) -> tuple[str, ...]:
        """Where the server listens, real ports filled in (``127.0.0.1:43125``, ``unix:/p``)."""
        return tuple(self._bound)

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind every address and start serving. Raises ``ListenError`` naming a bad address."""
        if self._server is not None:
            raise RuntimeError("AuthzServer.start() called twice")
        self._loop = asyncio.get_running_loop()
        server = grpc.aio.server(options=_GRPC_OPTIONS)
        handlers = {"Check": grpc.unary_unary_rpc_method_handler(self._check)}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(AUTHZ_SERVICE, handlers),)
        )
        server.add_registered_method_handlers(AUTHZ_SERVICE, handlers)
        self._health = health.aio.HealthServicer()
        await self._apply_health()  # before the first RPC can ask
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        add_reflection(server, (AUTHZ_SERVICE, HEALTH_SERVICE))
        try:
            self._bind_all(server)
            await server.start()
        except BaseException:
            await server.stop(None)
            self._remove_sockets()  # gRPC only unlinks the sockets of a started server
            self._bound.clear()
            raise
        for path in self._sockets:
            try:
                os.chmod(path, UNIX_SOCKET_MODE)
            except OSError as exc:
                _log.warning("cannot chmod %s: %s", path, exc.strerror)
        self._server = server
        _log.info("ext_authz gRPC server listening on %s", ", ".join(self._bound))

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
        server = self._server
        if server is None:
            return
        if not self._stopped:
            self._stopped = True
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
            _log.info("ext_authz gRPC server stopping (grace %.1fs)", grace)
        await server.stop(grace)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        for path, identity in self._sockets.items():
            remove_unix_socket(path, identity)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    # -- health ------------------------------------------------------------------------------

    def refresh_health(self) -> None:
        """Re-read ``store.current.ready`` into gRPC health. Call after every key swap.

        Thread-safe and non-blocking: the update runs on the server's event loop shortly
        after. Health is SERVING iff the current ring has a master key.
        """
        loop = self._loop
        if loop is None or self._health is None or loop.is_closed():
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
        if self._health is None:
            return
        status = _SERVING if self._store.current.ready else _NOT_SERVING
        for service in ("", AUTHZ_SERVICE):
            await self._health.set(service, status)

    # -- the hot path ------------------------------------------------------------------------

    async def _check(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        observer = self.on_decision
        started = time.perf_counter() if observer is not None else 0.0
        view = _EMPTY_VIEW
        try:
            try:
                req = external_auth_pb2.CheckRequest.FromString(request)
            except DecodeError:
                decision, answer = self._malformed
            else:
                view = view_from_request(req)
                ring = self._store.current  # read once: one snapshot for the whole request
                decision = decide(view, self._policy, ring, time.time())
                out = render(decision, view.headers, self._strip, self._strip_query)
                answer = response_from(out).SerializeToString()
        except Exception as exc:
            _log.error("Check failed, answering 500 deny: %s", _where(exc))
            decision, answer = self._internal
        if observer is not None:
            try:
                pending = observer(view, decision, time.perf_counter() - started)
                if pending is not None:
                    await pending
            except Exception as exc:
                _log.warning("decision observer failed: %s", _where(exc))
        return answer


def _where(exc: BaseException) -> str:
    """Exception type and innermost frame — never the message, which may quote request data."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
