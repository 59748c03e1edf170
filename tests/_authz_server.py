"""A real ``AuthzServer`` on a private event-loop thread, listening on a Unix socket.

Shared by the tests that need the production server with an ``Observer`` attached. Import it
only after checking that ``authsvc.server`` exists.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import grpc

from authsvc.authz import Policy
from authsvc.keys import KeyRing, KeyStore
from authsvc.observability import Observer
from authsvc.server import AuthzServer

CHECK = "/envoy.service.auth.v3.Authorization/Check"


class Server:
    """The production server on a private event-loop thread, listening on a Unix socket."""

    def __init__(self, observer: Observer, ring: KeyRing) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="authsvc-fz-", dir="/tmp"))
        self.socket = self.dir / "authz.sock"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = AuthzServer(
            KeyStore(ring),
            Policy.build(),
            [f"unix:{self.socket}"],
            on_decision=observer.on_decision,
        )
        try:
            self._run(self.server.start())
        except BaseException:
            self._stop_loop()
            raise
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        self.check = self.channel.unary_unary(CHECK)  # raw bytes in, raw bytes out

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        try:
            self.channel.close()
            self._run(self.server.stop(1.0))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)
