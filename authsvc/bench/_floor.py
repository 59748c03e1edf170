"""The ext_authz floor: authsvc's HTTP/2 front with a checker that decides nothing.

Every Check gets the same answer an allowed request gets from authsvc (OK, plus the
``x-authsvc-key-name`` header, so Envoy applies the same mutation) without parsing or
deciding anything. Through Envoy this measures what any ext_authz server can reach on this
machine: the cost Envoy's ext_authz filter itself adds. Run as
``python -m authsvc.bench._floor ADDRESS``; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable

from grpc_health.v1 import health_pb2

from authsvc.authz import Decision, Reason, render
from authsvc.server import Front, parse_listen, response_from

__all__ = ["FixedChecker", "main"]


class FixedChecker:
    """``Checker``'s interface, one precomputed answer."""

    def __init__(self) -> None:
        decision = Decision(Reason.KEY_VALID, "key accepted", "master", "0" * 12, "header:x")
        self.answer = response_from(render(decision, {}, ())).SerializeToString()

    def check(self, request: bytes) -> tuple[bytes, Awaitable[None] | None]:
        return self.answer, None


async def _no_grpc() -> str:
    raise ConnectionRefusedError("the floor server serves Check and Health/Check only")


async def _serve(address: str) -> None:
    front = Front(
        [parse_listen(address)],
        FixedChecker(),
        lambda service: health_pb2.HealthCheckResponse.SERVING,
        _no_grpc,
    )
    front.bind()
    await front.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    front.stop_accepting()
    front.close_all()


def main() -> None:
    asyncio.run(_serve(sys.argv[1]))


if __name__ == "__main__":
    main()
