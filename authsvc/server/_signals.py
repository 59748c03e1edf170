"""Run the server until SIGTERM/SIGINT, then shut down cleanly.

On the first signal: gRPC health turns NOT_SERVING, the server stops accepting new RPCs,
in-flight checks get up to ``grace`` seconds to finish, Unix socket files are removed, and the
coroutine returns. A second signal during that grace period stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable

from authsvc.server._grpc import AuthzServer

__all__ = ["serve_until_signal"]

_log = logging.getLogger("authsvc.server")
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve_until_signal(
    server: AuthzServer,
    *,
    grace: float = 5.0,
    extra_tasks: Iterable[Awaitable[object]] = (),
    on_serving: Callable[[], None] | None = None,
) -> signal.Signals | None:
    """Serve until a signal arrives (returned), then stop gracefully.

    ``server`` is started here unless it already is. ``extra_tasks`` (e.g. the status port, a
    key-file watcher) run alongside; they are cancelled at shutdown, and if one of them *fails*
    the server is stopped the same graceful way and its exception is raised — a dead reload
    loop must not go unnoticed. One that simply returns is left finished. ``server.watch()``
    is one of them: a gRPC server that stopped by itself raises ``ServerDied`` here.

    ``on_serving`` runs once the server is started and SIGTERM is handled here: a worker
    reports ready there, so a supervisor's SIGTERM can never find it without the handler (it
    would die at once and leave its socket file behind).
    """
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []
    stopping = asyncio.Event()
    hurry: list[asyncio.Task[None]] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if stopping.is_set():  # second signal: no more grace
            _log.warning("second %s: stopping now", sig.name)
            hurry.append(loop.create_task(server.stop(0)))
        stopping.set()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    tasks = [asyncio.ensure_future(t) for t in extra_tasks]
    failure: BaseException | None = None
    try:
        if not server.started:
            await server.start()
        tasks.append(asyncio.ensure_future(server.watch()))
        if on_serving is not None:
            on_serving()
        waiter: asyncio.Future[object] = asyncio.ensure_future(stopping.wait())
        pending: set[asyncio.Future[object]] = {waiter, *tasks}
        while failure is None and not stopping.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                    # type only: the exception itself is re-raised to the caller
                    _log.error(
                        "a background task failed (%s), shutting down", type(failure).__name__
                    )
        waiter.cancel()
        if received:
            _log.info("received %s, shutting down", received[0].name)
        await server.stop(grace)
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server.started:
            await server.stop(0)  # no-op after a graceful stop; immediate on an error path
    if failure is not None:
        raise failure
    return received[0] if received else None
