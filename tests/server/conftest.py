"""A real AuthzServer on its own event-loop thread, and real (sync) gRPC clients against it.

The server runs exactly as in production (grpc.aio on an asyncio loop); the tests talk to it
the way Envoy and grpcurl do, over real channels — TCP on 127.0.0.1 or a Unix socket.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import Policy
from authsvc.keys import KeyRecord, KeyRing, KeyStore, digest, fingerprint
from authsvc.server import AuthzServer

MASTER = "sk-master-0123456789abcdef"
CHECK = "/envoy.service.auth.v3.Authorization/Check"
T = TypeVar("T")


def master_ring() -> KeyRing:
    return KeyRing(master=KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER)))


class LoopThread:
    """An asyncio loop running in a daemon thread; ``run(coro)`` waits for a result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Running:
    """A started server plus the loop it runs on."""

    def __init__(self, server: AuthzServer, loop: LoopThread, store: KeyStore) -> None:
        self.server = server
        self.loop = loop
        self.store = store

    @property
    def tcp(self) -> str:
        return next(a for a in self.server.bound_addresses if not a.startswith("unix:"))

    @property
    def unix(self) -> str:
        return next(a for a in self.server.bound_addresses if a.startswith("unix:"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir under /tmp: pytest's tmp_path can exceed the 107-byte socket path limit."""
    path = Path(tempfile.mkdtemp(prefix="authsvc-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


@pytest.fixture
def start_server(loop_thread: LoopThread) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(
        listen: list[str] | None = None,
        *,
        store: KeyStore | None = None,
        policy: Policy | None = None,
        **kwargs: Any,
    ) -> Running:
        store = store if store is not None else KeyStore(master_ring())

        async def build() -> AuthzServer:
            server = AuthzServer(
                store, policy or Policy.build(), listen or ["127.0.0.1:0"], **kwargs
            )
            await server.start()
            return server

        running = Running(loop_thread.run(build()), loop_thread, store)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            loop_thread.run(running.server.stop(0))


@pytest.fixture
def server(start_server: Callable[..., Running], short_tmp: Path) -> Running:
    return start_server(["127.0.0.1:0", f"unix:{short_tmp / 'authz.sock'}"])


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address)


def check(address: str, req: ext.CheckRequest) -> ext.CheckResponse:
    with channel(address) as ch:
        call = ch.unary_unary(
            CHECK,
            request_serializer=ext.CheckRequest.SerializeToString,
            response_deserializer=ext.CheckResponse.FromString,
        )
        return call(req, timeout=10)  # type: ignore[no-any-return]


def request(
    method: str = "GET", path: str = "/v1/models", headers: dict[str, str] | None = None
) -> ext.CheckRequest:
    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method = method
    http.path = path
    http.id = "req-1"
    for name, value in (headers or {}).items():
        http.headers[name] = value
    sock = req.attributes.source.address.socket_address
    sock.address = "10.0.0.7"
    sock.port_value = 51234
    return req
