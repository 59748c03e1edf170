"""The status port's I/O: an asyncio server in its own daemon thread, bounded in every way.

Before, a ``ThreadingHTTPServer`` started one thread per connection with no cap and a listen
backlog of 5: 5,000 slow connections made 1,579 threads. Now:

- one event loop in one thread holds every connection (a slow one costs a few KB, no thread);
- at most ``MAX_CONNECTIONS`` at once and ``MAX_PER_PEER`` from one IP address (more are
  closed at once, one log line per burst: so one slow client cannot crowd kubelet out), and
  a listen backlog of ``BACKLOG``;
- a client has ``HEAD_SECONDS`` to send its request head (at most ``MAX_HEAD`` bytes) and
  ``WRITE_SECONDS`` to take the answer, then it is closed;
- the answer is made by ``http.server.BaseHTTPRequestHandler`` over in-memory streams (same
  parsing, same headers as before): on the loop for ``/livez``, ``/readyz``, ``/metrics``
  (cheap, no I/O), in a pool of ``WORKERS`` threads for ``/app-health/...`` (it forwards to
  the app and may wait for it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["AsyncHttpServer", "Limits"]

log = logging.getLogger("authsvc.health.status")

MAX_CONNECTIONS = 256
MAX_PER_PEER = 32
BACKLOG = 1024
HEAD_SECONDS = 5.0
WRITE_SECONDS = 5.0
MAX_HEAD = 64 << 10
WORKERS = 4


class Limits:
    """The bounds above, per server (tests shrink them)."""

    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        max_per_peer: int = MAX_PER_PEER,
        head_seconds: float = HEAD_SECONDS,
        write_seconds: float = WRITE_SECONDS,
        workers: int = WORKERS,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.head_seconds = head_seconds
        self.write_seconds = write_seconds
        self.workers = workers


class _Memory:
    """What ``BaseRequestHandler`` expects of its server: just the attributes it reads."""

    def __init__(self, owner: Any) -> None:
        self.status = owner


def answer(handler: type[BaseHTTPRequestHandler], head: bytes, peer: Any, owner: Any) -> bytes:
    """Run ``handler`` on one request head; returns every byte it wrote."""

    class _InMemory(handler):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            self.rfile = io.BytesIO(head)
            self.wfile = io.BytesIO()

        def finish(self) -> None:
            self.output = self.wfile.getvalue()

    try:
        done = _InMemory(head, peer, _Memory(owner))
    except Exception:
        log.debug("status request from %s failed", peer, exc_info=True)
        return b""
    return bytes(done.output)


def _head_end(data: bytes) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


class AsyncHttpServer:
    """Serves ``make_answer(head, peer) -> bytes`` on a bound socket, in a daemon thread.
    ``offload(head)`` says which requests go to the worker pool."""

    def __init__(
        self,
        sock: socket.socket,
        make_answer: Callable[[bytes, Any], bytes],
        offload: Callable[[bytes], bool],
        limits: Limits | None = None,
    ) -> None:
        self._sock = sock
        self._answer = make_answer
        self._offload = offload
        self.limits = limits or Limits()
        self._loop = asyncio.new_event_loop()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.limits.workers, thread_name_prefix="authsvc-status-probe"
        )
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.open = 0
        self._per_peer: dict[str, int] = {}
        self.refused = 0
        self._refused_logged = 0.0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def serve() -> None:
                self._server = await asyncio.start_server(
                    self._client, sock=self._sock, backlog=BACKLOG, limit=MAX_HEAD
                )
                ready.set()

            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="authsvc-status", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        def halt() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_soon(self._loop.stop)

        if self._thread is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(halt)
            self._thread.join(timeout)
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        from_peer = self._per_peer.get(peer, 0)
        if self.open >= self.limits.max_connections or from_peer >= self.limits.max_per_peer:
            self._refuse(writer)
            return
        self.open += 1
        self._per_peer[peer] = from_peer + 1
        try:
            await self._serve_one(reader, writer)
        except (TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
            pass  # too slow, gone, or the port is stopping: nothing to answer
        finally:
            self.open -= 1
            left = self._per_peer.pop(peer, 1) - 1
            if left:
                self._per_peer[peer] = left
            writer.close()

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.refused += 1
        now = self._loop.time()
        if now - self._refused_logged >= 10.0:
            log.warning(
                "status port: connection refused (%d open, cap %d, %d per peer); %d refused so far",
                self.open,
                self.limits.max_connections,
                self.limits.max_per_peer,
                self.refused,
            )
            self._refused_logged = now
        writer.transport.abort()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        deadline = self._loop.time() + self.limits.head_seconds
        head = b""
        while not _head_end(head):
            left = deadline - self._loop.time()
            if left <= 0 or len(head) > MAX_HEAD:
                return  # too slow or too large: closed without an answer
            chunk = await asyncio.wait_for(reader.read(4096), left)
            if not chunk:
                return
            head += chunk
        if self._offload(head):
            reply = await self._loop.run_in_executor(self._pool, self._answer, head, peer)
        else:
            reply = self._answer(head, peer)
        writer.write(reply)
        await asyncio.wait_for(writer.drain(), self.limits.write_seconds)
