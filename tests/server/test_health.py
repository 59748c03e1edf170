"""grpc.health.v1.Health follows the key ring: SERVING iff a master key is loaded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authsvc.keys import KeyRing, KeyStore
from authsvc.server import AUTHZ_SERVICE
from tests.server.conftest import Running, master_ring

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def status(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        return reply.status  # type: ignore[no-any-return]


def eventually(address: str, want: int, services: tuple[str, ...] = ("", AUTHZ_SERVICE)) -> None:
    deadline = time.monotonic() + 5
    while True:
        got = [status(address, s) for s in services]
        if got == [want] * len(services):
            return
        assert time.monotonic() < deadline, f"health stayed {got}, wanted {want}"
        time.sleep(0.02)


def test_serving_when_ready_and_follows_swaps(server: Running) -> None:
    for address in (server.tcp, server.unix):
        assert status(address, "") == SERVING
        assert status(address, AUTHZ_SERVICE) == SERVING
    server.store.swap(KeyRing(unready_reason="LITELLM_MASTER_KEY is empty"))
    server.server.refresh_health()  # from a foreign thread
    eventually(server.tcp, NOT_SERVING)
    server.store.swap(master_ring())
    server.loop.call(server.server.refresh_health)  # from the server's own loop
    eventually(server.tcp, SERVING)


def test_not_serving_from_the_start_without_master_key(
    start_server: Callable[..., Running],
) -> None:
    srv = start_server(store=KeyStore(KeyRing()))
    assert status(srv.tcp, "") == NOT_SERVING
    assert status(srv.tcp, AUTHZ_SERVICE) == NOT_SERVING


def test_unknown_service_is_not_found(server: Running) -> None:
    with pytest.raises(grpc.RpcError) as info:
        status(server.tcp, "no.such.Service")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_sees_swaps_and_shutdown(server: Running) -> None:
    with grpc.insecure_channel(server.tcp) as ch:
        stream: Iterator[health_pb2.HealthCheckResponse] = health_pb2_grpc.HealthStub(ch).Watch(
            health_pb2.HealthCheckRequest(service=AUTHZ_SERVICE), timeout=20
        )
        assert next(stream).status == SERVING
        server.store.swap(KeyRing())
        server.server.refresh_health()
        assert next(stream).status == NOT_SERVING
        server.store.swap(master_ring())
        server.server.refresh_health()
        assert next(stream).status == SERVING
        # shutdown starts: health turns NOT_SERVING before the server goes away
        future = asyncio.run_coroutine_threadsafe(server.server.stop(0.5), server.loop.loop)
        assert next(stream).status == NOT_SERVING
        future.result(10)


def listed(address: str, *, after_check: bool = False) -> dict[str, int]:
    """Health/List on a connection of its own: first on it (spliced to the gRPC server), or
    after a Health/Check (the fast front answers that connection)."""
    options = [("grpc.use_local_subchannel_pool", 1)]  # a fresh connection, not a shared one
    with grpc.insecure_channel(address, options=options) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        if after_check:
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        reply = stub.List(health_pb2.HealthListRequest(), timeout=10)
        return {name: resp.status for name, resp in reply.statuses.items()}


@pytest.mark.parametrize("after_check", [False, True], ids=["first", "after-check"])
def test_list_names_every_service_with_its_status(server: Running, after_check: bool) -> None:
    """Reflection advertises Health/List: it answers (it used to be UNIMPLEMENTED)."""
    for address in (server.tcp, server.unix):
        assert listed(address, after_check=after_check) == {"": SERVING, AUTHZ_SERVICE: SERVING}
    server.store.swap(KeyRing(unready_reason="LITELLM_MASTER_KEY is empty"))
    server.server.refresh_health()
    eventually(server.tcp, NOT_SERVING)
    assert listed(server.tcp, after_check=after_check) == {
        "": NOT_SERVING,
        AUTHZ_SERVICE: NOT_SERVING,
    }
