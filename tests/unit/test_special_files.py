"""Issue 20 item 5: a FIFO (or any special file) as a key or config source never blocks.

Every source read refuses anything that is not a regular file with a clear state, without
opening it; a reload whose attempt does not return is reported as stuck (log line, metric,
``/readyz`` detail) and never holds up the stop that SIGTERM triggers.

The attack on today's code: ``open()`` of a FIFO with no writer waits forever. Each test runs
the read in a thread and gives it a few seconds, so a regression fails instead of hanging the
suite (the stuck thread is released afterwards by opening the FIFO's write end).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from authsvc._errors import ConfigError
from authsvc._fileio import FileProblem, Problem, read_regular
from authsvc.config import load_config
from authsvc.keymodel import State
from authsvc.keys import KeyStore, Reloader, Resolution, resolve
from authsvc.observability import Metrics
from authsvc.sources._fileio import read_text
from tests._keys import make_key

T = TypeVar("T")
KEY = make_key("special-files-master")
KEY2 = make_key("special-files-rotated")
DEADLINE = 5.0  # seconds: a read that is not back by then is hanging


def release(fifo: Path) -> None:
    """Unblock a reader stuck in open() on ``fifo`` (there is one only on broken code)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waiting: nothing to release
    os.close(fd)


def within(seconds: float, fn: Callable[[], T], fifo: Path | None = None) -> T:
    """``fn()`` in a thread; fails (instead of hanging) when it does not return in time."""
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:
            release(fifo)
        pytest.fail(f"did not return within {seconds} s: blocked on a special file")
    return box[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "master.key"
    os.mkfifo(path)
    yield path
    release(path)


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield path
    server.close()


# --- the primitive --------------------------------------------------------------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    start = time.monotonic()
    got = within(DEADLINE, lambda: read_regular(str(fifo), 1024), fifo)
    assert got == FileProblem(Problem.NOT_REGULAR, "is a FIFO (named pipe), not a regular file")
    assert time.monotonic() - start < 1.0


def test_every_special_file_is_refused_by_kind(tmp_path: Path, unix_socket: Path) -> None:
    assert read_regular(str(unix_socket), 1024) == FileProblem(
        Problem.NOT_REGULAR, "is a socket, not a regular file"
    )
    assert read_regular("/dev/zero", 1024) == FileProblem(
        Problem.NOT_REGULAR, "is a character device, not a regular file"
    )
    assert read_regular(str(tmp_path), 1024) == FileProblem(
        Problem.NOT_REGULAR, "is a directory, not a regular file"
    )
    assert read_regular(str(tmp_path / "nope"), 1024) == FileProblem(
        Problem.MISSING, "does not exist"
    )


def test_regular_files_and_symlinks_to_them_read_in_full_up_to_the_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"x" * 200_000)  # more than one read() chunk
    link = tmp_path / "link"
    link.symlink_to(data)
    assert read_regular(str(link), 200_000) == b"x" * 200_000
    assert read_regular(str(data), 199_999) == FileProblem(
        Problem.TOO_LARGE, "is larger than 195 KiB"
    )
    link_to_fifo = tmp_path / "link-to-fifo"
    os.mkfifo(tmp_path / "fifo")
    link_to_fifo.symlink_to(tmp_path / "fifo")
    got = within(DEADLINE, lambda: read_regular(str(link_to_fifo), 10), tmp_path / "fifo")
    assert isinstance(got, FileProblem) and got.problem is Problem.NOT_REGULAR


# --- key sources, the config file, explain --------------------------------------------------


def test_a_fifo_key_file_is_unreadable_with_a_clear_detail(fifo: Path) -> None:
    state, detail, text = within(DEADLINE, lambda: read_text(str(fifo)), fifo)
    assert (state, detail, text) == (
        State.UNREADABLE,
        "the file is a FIFO (named pipe), not a regular file",
        None,
    )


def test_a_fifo_config_file_is_a_config_error(fifo: Path) -> None:
    def load() -> str:
        try:
            load_config(str(fifo), environ={})
        except ConfigError as exc:
            return str(exc)
        return "loaded"

    assert within(DEADLINE, load, fifo) == (
        f"config file {fifo} is a FIFO (named pipe), not a regular file"
    )


def explain(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authsvc", "explain", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def test_explain_answers_at_once_for_a_fifo_config_or_key_file(fifo: Path) -> None:
    try:
        start = time.monotonic()
        proc = explain("--config", str(fifo))
        assert proc.returncode == 2, proc
        assert "is a FIFO (named pipe), not a regular file" in proc.stderr
        proc = explain("--master-key-file", str(fifo), "--json", env={"AUTHSVC_MASTER_KEY": KEY})
        assert proc.returncode == 0, proc  # the next layer still resolves
        assert '"state": "unreadable"' in proc.stdout
        assert time.monotonic() - start < 20
    except subprocess.TimeoutExpired:
        release(fifo)
        pytest.fail("authsvc explain hung on a FIFO")


# --- reload ---------------------------------------------------------------------------------


def reloader_for(
    tmp_path: Path, errors: list[str], environ: Mapping[str, str] | None = None, **kw: object
) -> tuple[Reloader, KeyStore, Path]:
    key_file = tmp_path / "keys" / "master"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text("master_key:\n  sources:\n    - file: keys/master\n    - env: SHADOWED\n")
    env = dict(environ or {})
    initial = resolve(load_config(str(config), environ=env), env)
    store = KeyStore(initial.ring)
    changes: list[Resolution] = []
    reloader = Reloader(
        str(config),
        environ if environ is not None else env,
        store,
        initial=initial,
        on_change=changes.append,
        on_error=errors.append,
        **kw,  # type: ignore[arg-type]
    )
    return reloader, store, key_file


def test_a_key_file_swapped_for_a_fifo_is_rejected_and_later_rotations_still_work(
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    reloader, store, key_file = reloader_for(tmp_path, errors)
    good = store.current
    key_file.unlink()
    os.mkfifo(key_file)
    try:
        assert within(DEADLINE, reloader.reload, key_file) is False
    finally:
        release(key_file)
    assert store.current is good
    assert len(errors) == 1 and "is now unreadable" in errors[0]
    assert "FIFO (named pipe), not a regular file" in errors[0]
    assert reloader.readiness() == (True, "")  # failed, not stuck: the last good keys serve
    key_file.unlink()
    key_file.write_text(KEY2 + "\n")  # the next rotation is picked up
    assert within(DEADLINE, reloader.reload) is True
    assert store.current.master is not None and store.current.master.fingerprint != (
        good.master.fingerprint if good.master is not None else None
    )
    assert reloader.readiness() == (True, "")


class BlockingEnviron(Mapping[str, str]):
    """An environment whose lookups wait on ``gate``: a source read that does not return
    (what a hung network file system does to a plain read)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.blocking = False

    def __getitem__(self, name: str) -> str:
        if self.blocking:
            self.gate.wait()
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_a_stuck_reload_is_reported_and_does_not_hold_up_stop(tmp_path: Path) -> None:
    errors: list[str] = []
    environ = BlockingEnviron()
    reloader, store, key_file = reloader_for(
        tmp_path, errors, environ, stuck_after=0.3, poll_interval=0.1, watch=False
    )
    metrics = Metrics(process_metrics=False)
    metrics.watch_reload(reloader.running_for)
    seen: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        environ.blocking = True
        key_file.write_text(KEY2 + "\n")
        os.utime(key_file, (1, 1))  # a new signature: the poll re-reads (and blocks)
        task = asyncio.create_task(reloader.run(stop))
        deadline = time.monotonic() + DEADLINE
        while not errors and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        seen["errors"] = list(errors)
        seen["ready"] = reloader.readiness()
        seen["metrics"] = metrics.render()[0].decode()
        stop.set()  # what SIGTERM does in serve
        start = time.monotonic()
        await asyncio.wait_for(task, 2.0)
        seen["stopped_in"] = time.monotonic() - start

    # asyncio.run joins its default executor at exit: a stuck to_thread() would hang here.
    within(DEADLINE + 5, lambda: asyncio.run(main()))
    environ.gate.set()
    errors_seen = seen["errors"]
    assert isinstance(errors_seen, list) and len(errors_seen) == 1
    assert errors_seen[0].startswith("key reload stuck: no result after 0.3 s")
    ready, detail = seen["ready"]  # type: ignore[misc]
    assert ready is False and str(detail).startswith("key reload stuck for")
    assert "authsvc_key_reload_running_seconds" in str(seen["metrics"])
    running = [
        line
        for line in str(seen["metrics"]).splitlines()
        if line.startswith("authsvc_key_reload_running_seconds ")
    ]
    assert float(running[0].split()[1]) >= 0.3
    assert float(seen["stopped_in"]) < 1.0  # type: ignore[arg-type]
    assert store.current.master is not None  # the last good keys stay


def test_a_reload_that_returns_reports_no_stuck_time(tmp_path: Path) -> None:
    errors: list[str] = []
    reloader, store, key_file = reloader_for(tmp_path, errors, poll_interval=0.1, watch=False)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(reloader.run(stop))
        key_file.write_text(KEY2 + "\n")
        os.utime(key_file, (1, 1))
        deadline = time.monotonic() + DEADLINE
        while store.current.master is not None and time.monotonic() < deadline:
            if store.current.master.fingerprint != resolve_fp(KEY):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 2.0)

    asyncio.run(main())
    assert errors == [] and reloader.running_for() == 0.0 and reloader.readiness() == (True, "")
    assert store.current.master is not None and store.current.master.fingerprint == resolve_fp(KEY2)


def resolve_fp(key: str) -> str:
    from authsvc.keys import fingerprint

    return fingerprint(key)
