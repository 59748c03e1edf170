"""Hot reload: re-load the config, re-resolve, and swap the ``KeyStore`` when the result changed.

The reloader knows no source type: it asks each configured source (``KeySource``, see
``authsvc.sources``) what to watch (``watch()``: files, and/or a poll interval) and whether it
may have changed (``change_token()``), and watches the config file itself.

Triggers: a change in the DIRECTORY of any watched file (key files, LiteLLM configs, the config
file itself) — Kubernetes rotates a Secret by renaming a new ``..data`` symlink over the old
one, and a watch on the file itself dies at the first rotation — and, always, a poll every
``reload.poll_interval`` seconds (or sooner when a source's ``Watch.poll`` asks; the fallback
for directories that do not exist yet, file systems without events, and sources with no files).
Either way the whole resolution is re-run, unless the config file's ``file_signature`` and
every source's change token equal the last attempt's (a ``None`` token: read again): a config
with 10,000 keys is not parsed again every poll. An identical result does nothing.

A reload that fails keeps the last good ring and reports why in one line (never a key):
the config no longer loads; the master key would be lost; or a source that was fine is now
``unreadable``, ``invalid`` or ``weak``. When no master key was ever resolved (fail closed at
start), any new resolution is taken, so a later fix brings the service to ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TypeVar

from authsvc import keymodel
from authsvc._errors import ConfigError
from authsvc.config import ENV_CONFIG, Config, load_config
from authsvc.keymodel import KeyStore, Reading, Role, State
from authsvc.keys._resolver import Resolution, resolve
from authsvc.sources import SETTLED, FileSignature, KeySource, file_signature, offload_parsing

__all__ = ["SETTLED", "FileSignature", "Reloader", "file_signature", "rejection"]

log = logging.getLogger("authsvc.keys.reload")

RELOAD_SWITCH_INTERVAL = 0.0005
"""While an attempt runs on its thread, the interpreter hands the GIL to a waiting thread (the
serving loop) after this long instead of the default 5 ms: a 100,000-key re-read holds the GIL
for ~0.3 s in total, and each of the loop's syscalls would otherwise wait up to 5 ms for it
(issue #14: p99 +28 ms and 250 req/s out of 500 before). Restored when the attempt ends."""
T = TypeVar("T")

_BROKEN = (State.UNREADABLE, State.INVALID, State.WEAK)
WATCH_ROUND = 1000
"""Milliseconds the file watch waits for a change before it answers with none: its first
answer proves the watch runs (``Reloader._watch_loop``); later empty ones are ignored."""
STUCK_AFTER = 10.0
"""A reload attempt running longer than this is reported as stuck (log, metric, /readyz detail).
Reads never block on a file's type (``authsvc._fileio``); this is the backstop for anything
else (a hung network file system)."""


def _candidates(res: keymodel.Resolution) -> list[Reading]:
    readings = [*res.readings, *(r for e in res.extras for r in e.readings)]
    return [r for r in readings if r.role is Role.CANDIDATE]


def rejection(old: keymodel.Resolution | None, new: keymodel.Resolution) -> str | None:
    """Why ``new`` must not replace ``old`` (``None``: take it). Pure."""
    if old is None or old.winner is None:
        return None  # nothing good to protect: fail-closed → anything is at least as good
    keep = (
        f"keeping the last good keys (master from {old.winner.source}, "
        f"fingerprint {old.winner.fingerprint})"
    )
    allow_weak = new.allow_weak
    before = {r.source: r.state for r in _candidates(old)}
    for r in _candidates(new):
        if r.state not in _BROKEN or (r.state is State.WEAK and allow_weak):
            continue
        if before.get(r.source) is not r.state:
            return f"reload rejected: {r.source} is now {r.state} ({r.detail}); {keep}"
    if not new.resolved:
        return f"reload rejected: no usable master key ({new.unready_reason}); {keep}"
    return None


class Reloader:
    """Keeps ``store`` in step with the config and its key sources.

    ``initial`` is the resolution already served (its ring is put in ``store`` at once); with
    ``None`` the store is left alone until the first reload, which ``run`` does at its start. ``on_change(resolution)`` runs after every swap, ``on_error(msg)``
    once per distinct failure; both run on the event loop thread.
    """

    def __init__(
        self,
        config_path: str | None,
        environ: Mapping[str, str],
        store: KeyStore,
        *,
        master_key_file: str | None = None,
        initial: Resolution | None = None,
        on_change: Callable[[Resolution], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        poll_interval: float | None = None,
        watch: bool = True,
        stuck_after: float = STUCK_AFTER,
    ) -> None:
        self._config_path = config_path
        self._environ = environ
        self.store = store
        self._master_key_file = master_key_file
        self._on_change = on_change or _log_change
        self._on_error = on_error or _log_error
        self._poll_override = poll_interval
        self._watch = watch
        self._kick = asyncio.Event()  # replaced in run(): an Event belongs to one loop
        self._current: Resolution | None = None
        self._current_sig: tuple[object, ...] | None = None
        self._rejected_sig: tuple[object, ...] | None = None
        self._last_error: str | None = None
        self._seen: Hashable | None = None  # config file + source tokens at the last attempt
        self._signed: tuple[Resolution, tuple[object, ...]] | None = None  # signed off the loop
        named = config_path if config_path is not None else (environ.get(ENV_CONFIG) or None)
        self._config_files: tuple[str, ...] = (os.path.abspath(named),) if named else ()
        self._sources: tuple[KeySource, ...] = ()  # of the last config loaded
        self._poll = poll_interval or 2.0
        self._stuck_after = stuck_after
        self._running_since: float | None = None  # monotonic start of the running attempt
        if initial is not None:
            self._accept(initial, notify=False)

    @property
    def current(self) -> Resolution | None:
        """The last good resolution (the one the store serves), if any."""
        return self._current

    def running_for(self) -> float:
        """Seconds the running reload attempt has taken so far (0 when none is running)."""
        started = self._running_since
        return 0.0 if started is None else max(0.0, time.monotonic() - started)

    def readiness(self) -> tuple[bool, str]:
        """For ``/readyz``: not ready while a reload attempt is stuck (rotations are not
        followed: a revoked key would stay accepted); a reload that *failed* keeps the last
        good keys and stays ready (it is logged and counted). Cheap: reads state only."""
        running = self.running_for()
        if running >= self._stuck_after:
            return False, (
                f"key reload stuck for {running:.0f} s (a key source read does not return); "
                "the last good keys are still served, key rotations are not followed"
            )
        return True, ""

    def reload(self) -> bool:
        """One synchronous attempt, whether or not a file changed. True when the store was
        swapped."""
        self._seen = None
        return self._apply(self._attempt())

    # -- one attempt -----------------------------------------------------------------------

    def _attempt(self) -> Resolution | str | None:
        """Load + resolve (runs in a worker thread): a resolution, why the config failed, or
        ``None`` when no watched file changed since the last attempt (nothing to do)."""
        seen = self._token()  # before reading: a write during the load shows next time
        if seen is not None and seen == self._seen:
            return None
        self._seen = seen
        try:
            config = load_config(
                self._config_path, environ=self._environ, master_key_file=self._master_key_file
            )
            res = resolve(config, self._environ, previous=self._current)
            self._signed = (res, res.signature())  # here, on the thread: 100,000 keys' worth
            return res
        except ConfigError as exc:
            return f"config reload failed: {exc}; keeping the last good keys"
        except Exception as exc:  # a bug must not end reloading; the type only: no key leaks
            return f"reload failed unexpectedly ({type(exc).__name__}); keeping the last good keys"

    def _token(self) -> Hashable | None:
        """The config file's signature and every source's change token; ``None`` when any
        of them cannot tell (then the attempt reads everything)."""
        config_sig = file_signature(self._config_files)
        if config_sig is None:
            return None
        tokens: list[Hashable] = []
        for source in self._sources:
            try:
                token = source.change_token()
            except Exception:  # the protocol says never raise; a read will show the problem
                return None
            if token is None:
                return None
            tokens.append(token)
        return (config_sig, tuple(tokens))

    def _follow(self, config: Config) -> None:
        """Watch and poll what ``config``'s sources ask for (the sources say, not a list)."""
        self._sources = config.sources()
        if config.path is not None:
            self._config_files = (config.path,)
        polls = [w.poll for w in (s.watch() for s in self._sources) if w.poll is not None]
        self._poll = self._poll_override or min([config.reload.poll_interval, *polls])

    def watched_files(self) -> tuple[str, ...]:
        """The config file and every file a source asks to be watched."""
        files = [*self._config_files, *(f for s in self._sources for f in s.watch().files)]
        return tuple(dict.fromkeys(files))

    def _apply(self, outcome: Resolution | str | None) -> bool:
        if outcome is None:
            return False
        if isinstance(outcome, str):
            self._error(outcome)
            return False
        if outcome.config is not None:
            self._follow(outcome.config)
        sig = self._signature(outcome)
        if self._current is not None and sig == self._current_sig:
            self._last_error = self._rejected_sig = None  # back where we were: nothing to do
            return False
        if sig == self._rejected_sig:
            return False  # already reported
        problem = rejection(self._current, outcome)
        if problem is not None:
            self._rejected_sig = sig
            self._error(problem)
            return False
        self._accept(outcome, notify=True)
        return True

    def _signature(self, res: Resolution) -> tuple[object, ...]:
        signed = self._signed
        return signed[1] if signed is not None and signed[0] is res else res.signature()

    def _accept(self, res: Resolution, *, notify: bool) -> None:
        self.store.swap(res.ring)
        self._current, self._current_sig = res, self._signature(res)
        self._signed = None
        self._rejected_sig = self._last_error = None
        if res.config is not None:
            self._follow(res.config)
        if notify:
            _call(self._on_change, res)

    def _error(self, message: str) -> None:
        if message != self._last_error:
            self._last_error = message
            _call(self._on_error, message)

    # -- the loop --------------------------------------------------------------------------

    def watch_dirs(self) -> frozenset[str]:
        """Existing directories holding a watched file.

        The directory of the path *as configured*: symlinks are not followed, since a
        Secret's ``..data`` target directory is deleted at every rotation. A file that is a
        symlink into some other directory is still seen by the poll.
        """
        parents = {os.path.dirname(p) for p in self.watched_files()}
        return frozenset(parent for parent in parents if os.path.isdir(parent))

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and poll until ``stop`` is set. Starts with one reload (cheap when unchanged)."""
        self._kick = asyncio.Event()
        # big key lists: parsed in a helper process (started now if one is already big)
        await asyncio.to_thread(offload_parsing, self.watched_files())
        await asyncio.to_thread(_trim)  # what the start-up resolution left behind
        watcher: tuple[asyncio.Task[None], asyncio.Event] | None = None
        watched: frozenset[str] = frozenset()
        first = True
        try:
            while not stop.is_set():
                dirs = self.watch_dirs() if self._watch else frozenset()
                if dirs != watched or (watcher is not None and watcher[0].done()):
                    await _stop(watcher)
                    watcher = self._start_watcher(dirs) if dirs else None
                    watched = dirs
                if not first:
                    await self._sleep(stop)
                    if stop.is_set():
                        break
                first = False
                self._kick.clear()
                with _short_switch_interval():
                    applied = self._apply(await self._attempt_in_thread(stop))
                if applied:
                    await asyncio.to_thread(_trim)  # the previous ring is gone: give it back
        finally:
            await _stop(watcher)

    async def _attempt_in_thread(self, stop: asyncio.Event) -> Resolution | str | None:
        """``_attempt`` in a daemon thread that is never joined: an attempt that does not
        return is reported as stuck after ``stuck_after`` seconds and cannot hold up ``stop``
        (SIGTERM): the loop's default executor, which ``asyncio.run`` joins, is not used."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Resolution | str | None] = loop.create_future()

        def deliver(outcome: Resolution | str | None) -> None:
            if not result.done():
                result.set_result(outcome)

        def work() -> None:
            try:
                outcome = self._attempt()
            except BaseException as exc:  # never leave the waiter without an answer
                outcome = (
                    f"reload failed unexpectedly ({type(exc).__name__}); keeping the last good keys"
                )
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, outcome)

        self._running_since = time.monotonic()
        threading.Thread(target=work, name="authsvc-reload", daemon=True).start()
        stopping: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
        waiters: set[asyncio.Future[object]] = {result, stopping}  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=self._stuck_after, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                self._error(
                    f"key reload stuck: no result after {self._stuck_after:g} s (a source "
                    "read does not return); keeping the last good keys"
                )
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            return result.result() if result.done() else None
        finally:
            stopping.cancel()
            if result.done():
                self._running_since = None

    async def _sleep(self, stop: asyncio.Event) -> None:
        waiters = {asyncio.ensure_future(self._kick.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _start_watcher(self, dirs: frozenset[str]) -> tuple[asyncio.Task[None], asyncio.Event]:
        halt = asyncio.Event()
        return asyncio.create_task(self._watch_loop(sorted(dirs), halt)), halt

    async def _watch_loop(self, dirs: list[str], halt: asyncio.Event) -> None:
        """Kick the loop at every change in ``dirs``, and once when the watch is known to run.

        The watch starts some time after this task does (the import, the inotify setup; under
        load that took seconds, issue #14): a change between the last attempt's read and that
        moment makes no event, and was seen only at the next poll. So the first answer of the
        watch, a change or its first empty round (``WATCH_ROUND``), kicks the loop: an attempt
        that reads after the watch runs, and the watch sees everything later."""
        import watchfiles  # imported lazily: 'explain' never needs it

        running = False
        try:
            async for changes in watchfiles.awatch(
                *dirs,
                watch_filter=None,
                debounce=400,
                step=50,
                stop_event=halt,
                recursive=False,
                ignore_permission_denied=True,
                rust_timeout=WATCH_ROUND,
                yield_on_timeout=True,
            ):
                if changes or not running:
                    self._kick.set()
                running = True
        except Exception as exc:  # a directory vanished, inotify limits, ...
            log.debug("file watch on %s stopped (%s); restarting it", dirs, exc)
            await asyncio.sleep(0.5)  # no busy loop if the watch cannot start at all
        finally:
            self._kick.set()  # something happened: re-read now, and restart the watch


def _trim() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``; elsewhere nothing).

    A 100,000-key ring is ~20 MB; without this the heap keeps the previous one's pages, and
    the next reload's peak (old + new ring) starts from there (issue #14: peak RSS)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    """While a reload runs on its thread, a short GIL switch interval
    (``RELOAD_SWITCH_INTERVAL``): the serving loop gets the GIL back quickly."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, RELOAD_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


async def _stop(watcher: tuple[asyncio.Task[None], asyncio.Event] | None) -> None:
    if watcher is None:
        return
    task, halt = watcher
    halt.set()
    done, _ = await asyncio.wait({task}, timeout=2)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _call(callback: Callable[[T], None], arg: T) -> None:
    """Run a wiring callback; its failure is logged, never the end of reloading."""
    try:
        callback(arg)
    except Exception:
        log.exception("reload callback %r failed", getattr(callback, "__name__", callback))


def _log_change(res: Resolution) -> None:
    if res.winner is not None:
        log.info(
            "keys reloaded: master key from %s (fingerprint %s), %d keys in the ring",
            res.winner.source,
            res.winner.fingerprint,
            len(res.ring),
        )
    else:
        log.warning("keys reloaded: NO usable master key (fail closed): %s", res.unready_reason)


def _log_error(message: str) -> None:
    log.warning("%s", message)
