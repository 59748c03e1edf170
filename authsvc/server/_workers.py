"""``authsvc serve --workers N``: one supervisor process, N worker processes.

Each worker is a complete ``authsvc serve`` (same config, same key resolution and reloader)
listening on its own address (``authsvc._worker_addresses``); Envoy lists every worker as an
endpoint of the authz cluster. The supervisor serves no checks. It:

- starts the workers and waits until each reports it is serving (a line on a pipe); a worker
  that exits before that fails the whole start (the supervisor exits with its code, e.g. 2 for
  an address that cannot be bound);
- restarts a worker that dies: at once if it had been up for ``STABLE_SECONDS``, else after a
  back-off that doubles from ``BACKOFF_FIRST`` to ``BACKOFF_MAX`` (a crash loop costs little);
  the other workers are never touched;
- on SIGTERM/SIGINT sends SIGTERM to every worker once (each finishes its in-flight checks
  within ``--grace`` and removes its socket), waits, and SIGKILLs stragglers.

Workers run in their own process groups (a terminal's Ctrl-C reaches the supervisor only, which
then stops them gracefully), and die with the supervisor (``PR_SET_PDEATHSIG``), so a killed
supervisor never leaves orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from authsvc._errors import AuthsvcError

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "STABLE_SECONDS",
    "Supervisor",
    "Worker",
    "die_with_parent",
    "report_ready",
]

_log = logging.getLogger("authsvc.server.workers")

STABLE_SECONDS = 5.0
"""A worker that ran this long before dying is restarted at once."""
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
READY_TIMEOUT = 60.0
"""How long a (re)started worker may take to report that it serves."""
KILL_AFTER = 5.0
"""Extra seconds, after ``grace``, before a worker that ignores SIGTERM is SIGKILLed."""


def die_with_parent(parent_pid: int) -> None:
    """In a worker: get SIGTERM when the supervisor dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        raise SystemExit(1)


def report_ready(fd: int, status: str) -> None:
    """In a worker: tell the supervisor we serve (and where our status port is, or ``off``)."""
    try:
        os.write(fd, f"ready {status}\n".encode())
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


ArgvFor = Callable[[int, int], list[str]]
"""``argv_for(index, report_fd)``: the command line of worker ``index``."""


@dataclass
class Worker:
    """One worker slot: the current process (if any) and what the supervisor knows about it."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    status: str | None = None  # "host:port" of its status port once ready ("off" if none)
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    waiter: asyncio.Task[int] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.status is not None


class StartupFailed(AuthsvcError):
    """A worker exited before it served (``serve --workers`` then stops them all, exit 1)."""

    def __init__(self, index: int, code: int) -> None:
        super().__init__(f"worker {index} exited with code {code} before it served")
        self.index = index
        self.code = code


class Supervisor:
    """Runs ``workers`` processes from ``argv_for`` until a signal; see the module docstring."""

    def __init__(
        self,
        argv_for: ArgvFor,
        workers: int,
        *,
        grace: float = 5.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self._argv_for = argv_for
        self._env = env
        self._grace = grace
        self.workers = [Worker(i) for i in range(workers)]
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()

    # -- one worker --------------------------------------------------------------------------

    async def _spawn(self, worker: Worker) -> None:
        """Start ``worker``'s process and wait until it reports it serves (or dies)."""
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv_for(worker.index, write_fd),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(write_fd,),
                env=self._env,
                process_group=0,
            )
        finally:
            os.close(write_fd)
        worker.proc, worker.status, worker.started_at = proc, None, time.monotonic()
        worker.waiter = asyncio.ensure_future(proc.wait())
        try:
            line = await _read_line(read_fd, worker.waiter, READY_TIMEOUT)
        finally:
            os.close(read_fd)
        if line.startswith("ready "):
            worker.status = line[len("ready ") :].strip()
            _log.info("worker %d (pid %d) is serving", worker.index, proc.pid)
        else:
            with contextlib.suppress(TimeoutError):  # it closed the pipe: it is exiting
                await asyncio.wait_for(asyncio.shield(worker.waiter), 1.0)
        if worker.status is None and proc.returncode is None:
            _log.error(
                "worker %d (pid %d) did not report ready; killing it", worker.index, proc.pid
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        self._changed.set()

    async def _start_all(self) -> None:
        await asyncio.gather(*(self._spawn(w) for w in self.workers))
        for worker in self.workers:
            if worker.status is None:
                code = worker.proc.returncode if worker.proc is not None else None
                raise StartupFailed(worker.index, 1 if code is None or code == 0 else abs(code))

    def _restart_delay(self, worker: Worker) -> float:
        if time.monotonic() - worker.started_at >= STABLE_SECONDS:
            worker.backoff = 0.0
        else:
            worker.backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, worker.backoff * 2))
        return worker.backoff

    async def _keep(self, worker: Worker) -> None:
        """Restart ``worker`` whenever it dies, until the supervisor stops."""
        while not self._stopping.is_set():
            assert worker.waiter is not None
            code = await worker.waiter
            worker.status = None
            self._changed.set()
            if self._stopping.is_set():
                return
            delay = self._restart_delay(worker)
            how = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            _log.warning(
                "worker %d (pid %s) %s; restarting it%s",
                worker.index,
                worker.pid,
                how,
                f" in {delay:.1f}s" if delay else "",
            )
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return
            worker.restarts += 1
            await self._spawn(worker)

    # -- the whole lifetime ------------------------------------------------------------------

    async def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Start, supervise, stop on a signal. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig.name)
            self._stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        keepers: list[asyncio.Task[None]] = []
        try:
            start = asyncio.ensure_future(self._start_all())
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not start.done():  # a signal during start-up
                start.cancel()
                await asyncio.gather(start, return_exceptions=True)
                return 0
            try:
                start.result()
            except StartupFailed as exc:
                _log.error("%s; stopping the other workers", exc)
                return exc.code
            _log.info("%d workers serving", len(self.workers))
            if on_started is not None:
                on_started()
            keepers = [asyncio.ensure_future(self._keep(w)) for w in self.workers]
            await self._stopping.wait()
            _log.info("received %s, stopping %d workers", received[0], len(self.workers))
            return 0
        finally:
            self._stopping.set()
            await self._stop_all()
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _stop_all(self) -> None:
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not procs:
            return
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        _, late = await asyncio.wait(waits, timeout=self._grace + KILL_AFTER)
        for proc in procs:
            if proc.returncode is None:
                _log.warning("worker pid %d ignored SIGTERM; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if late:
            await asyncio.wait(late, timeout=5)

    def pids(self) -> Sequence[int | None]:
        return [w.pid for w in self.workers]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


async def _read_line(fd: int, died: asyncio.Future[int], timeout: float) -> str:
    """One line from ``fd`` (non-blocking, on the loop), or "" when the writer dies first."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    got: asyncio.Future[None] = loop.create_future()
    buf = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf.extend(chunk)
        if (not chunk or b"\n" in buf) and not got.done():
            got.set_result(None)

    loop.add_reader(fd, readable)
    try:
        waits: set[asyncio.Future[object]] = {got, died}  # type: ignore[arg-type]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(fd)
    line, _, _ = bytes(buf).partition(b"\n")
    return line.decode("utf-8", "replace") if b"\n" in buf else ""
