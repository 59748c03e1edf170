"""``serve --workers N``: the address rule, the worker command line, the supervisor, the
aggregated status port (real processes and real HTTP, no Envoy)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from authsvc._errors import ConfigError
from authsvc._worker_addresses import port_clash, worker_address, worker_addresses, worker_listen
from authsvc.envoy import _cli as envoy_cli
from authsvc.health import StatusServer
from authsvc.server import _cli as serve_cli
from authsvc.server._worker_status import WorkerStatus
from authsvc.server._workers import BACKOFF_FIRST, BACKOFF_MAX, Supervisor, Worker

# --- the address rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (
            "unix:/run/authsvc/authz.sock",
            ["unix:/run/authsvc/authz-0.sock", "unix:/run/authsvc/authz-1.sock"],
        ),
        ("unix:/run/authz", ["unix:/run/authz-0", "unix:/run/authz-1"]),
        ("unix:/run/a.b.sock", ["unix:/run/a.b-0.sock", "unix:/run/a.b-1.sock"]),
        ("127.0.0.1:9191", ["127.0.0.1:9191", "127.0.0.1:9192"]),
        ("[::1]:9191", ["[::1]:9191", "[::1]:9192"]),
        ("0.0.0.0:7000", ["0.0.0.0:7000", "0.0.0.0:7001"]),
    ],
)
def test_worker_address_rule(address: str, expected: list[str]) -> None:
    assert [worker_address(address, i, 2) for i in range(2)] == expected
    assert worker_addresses([address], 2) == tuple(expected)


def test_one_worker_keeps_addresses_unchanged() -> None:
    assert worker_addresses(["unix:/x/authz.sock", "127.0.0.1:0"], 1) == (
        "unix:/x/authz.sock",
        "127.0.0.1:0",
    )


def test_several_addresses_per_worker() -> None:
    assert worker_listen(["127.0.0.1:9000", "unix:/s/a.sock"], 2) == (
        ("127.0.0.1:9000", "unix:/s/a-0.sock"),
        ("127.0.0.1:9001", "unix:/s/a-1.sock"),
    )


@pytest.mark.parametrize(
    ("listen", "workers", "message"),
    [
        (["127.0.0.1:0"], 2, "port 0 cannot be used"),
        (["127.0.0.1:65535"], 2, "beyond 65535"),
        (["127.0.0.1:9000"], 0, "between 1 and 64"),
        (["127.0.0.1:9000"], 65, "between 1 and 64"),
        (["nonsense"], 2, "expected HOST:PORT or unix:PATH"),
        (["127.0.0.1:9000", "127.0.0.1:9001"], 2, "two workers would share an address"),
    ],
)
def test_bad_worker_addresses_are_refused(listen: list[str], workers: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        worker_addresses(listen, workers)


def test_port_clash_with_the_status_port() -> None:
    assert port_clash(["127.0.0.1:9191", "127.0.0.1:9192"], "127.0.0.1:9192") == "127.0.0.1:9192"
    assert port_clash(["unix:/x/a-0.sock"], "127.0.0.1:9192") is None
    assert port_clash(["127.0.0.1:9191"], "127.0.0.1:0") is None


def test_envoy_config_lists_exactly_the_worker_addresses(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    envoy_cli.configure(parser)
    out = tmp_path / "envoy.yaml"
    args = parser.parse_args(
        ["--authz", "unix:/run/authsvc/authz.sock", "--workers", "3", "-o", str(out)]
    )
    assert envoy_cli.run(args) == 0
    clusters = yaml.safe_load(out.read_text())["static_resources"]["clusters"]
    (authz,) = [c for c in clusters if c["name"] == "authsvc"]
    endpoints = authz["load_assignment"]["endpoints"][0]["lb_endpoints"]
    paths = [e["endpoint"]["address"]["pipe"]["path"] for e in endpoints]
    assert ["unix:" + p for p in paths] == list(
        worker_addresses(["unix:/run/authsvc/authz.sock"], 3)
    )


# --- the worker command line -----------------------------------------------------------------


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    serve_cli.configure(parser)
    return parser


def test_worker_argv_carries_every_serve_option() -> None:
    """Drift guard: a new ``serve`` option must reach the workers (or be handled here)."""
    parser = _serve_parser()
    given = parser.parse_args(
        [
            "--config", "c.yaml", "--listen", "unix:/s/a.sock", "--master-key-file", "k",
            "--status-listen", "127.0.0.1:9300", "--health-url", "http://127.0.0.1:1",
            "--strict", "--no-fast-path", "--grace", "2.5", "--log-level", "debug", "--log-format", "text",
            "--decision-log-sample-rate", "0.25", "--workers", "2",
        ]
    )  # fmt: skip
    replaced = {"listen", "status_listen", "workers", "no_deep_health"}
    replaced |= {"worker_index", "report_fd", "supervisor_pid", "worker_count"}
    assert set(vars(given)) - replaced, "no options left to compare"
    for index in (0, 1):
        argv = serve_cli.worker_argv(given, index, ("unix:/s/a-1.sock",), 7)
        assert argv[:4] == [sys.executable, "-m", "authsvc", "serve"]
        worker = parser.parse_args(argv[4:])
        for name in set(vars(given)) - replaced:
            assert getattr(worker, name) == getattr(given, name), name
        assert worker.listen == ["unix:/s/a-1.sock"]
        assert worker.status_listen == "127.0.0.1:0"
        assert worker.workers == 1
        assert (worker.worker_index, worker.report_fd) == (index, 7)
        assert worker.supervisor_pid == os.getpid()
        assert worker.worker_count == 2  # the virtual-key lookup budget is shared
        assert worker.no_deep_health is (index > 0), "deep health runs in worker 0 only"


def test_worker_status_port_off_when_the_supervisor_has_none() -> None:
    given = _serve_parser().parse_args(["--status-listen", "off", "--workers", "2"])
    argv = serve_cli.worker_argv(given, 0, ("127.0.0.1:9300",), 3)
    assert argv[argv.index("--status-listen") + 1] == "off"


def test_status_port_clash_is_refused_before_anything_starts() -> None:
    args = _serve_parser().parse_args(["--workers", "2"])  # 9191, 9192 vs status 9192
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:9192, the port of --status-listen"):
        serve_cli._check_status_port(args, worker_listen(["127.0.0.1:9191"], 2))
    args = _serve_parser().parse_args(["--workers", "2", "--status-listen", "127.0.0.1:9300"])
    serve_cli._check_status_port(args, worker_listen(["127.0.0.1:9191"], 2))


# --- the supervisor --------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import os, sys, time, signal
    mode, fd = sys.argv[1], int(sys.argv[2])
    if mode == "fail":
        sys.exit(2)
    os.write(fd, b"ready off\\n"); os.close(fd)
    if mode == "crash":
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.05)
    """
)


def _argv(mode: str):  # type: ignore[no-untyped-def]
    return lambda index, fd: [sys.executable, "-c", WORKER, mode, str(fd)]


async def _with_supervisor(supervisor: Supervisor, body):  # type: ignore[no-untyped-def]
    task = asyncio.ensure_future(supervisor.run())
    try:
        deadline = time.monotonic() + 20
        while not all(w.running for w in supervisor.workers):
            assert not task.done(), task.result()
            assert time.monotonic() < deadline, "workers never became ready"
            await asyncio.sleep(0.02)
        return await body(supervisor)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's own handler stops it
        assert await asyncio.wait_for(task, 20) == 0


def test_a_killed_worker_is_replaced_and_the_others_are_untouched() -> None:
    async def body(sup: Supervisor) -> float:
        before = [w.pid for w in sup.workers]
        assert all(before)
        os.kill(before[1], signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        while not (sup.workers[1].running and sup.workers[1].pid != before[1]):
            assert time.monotonic() - killed < 5
            await asyncio.sleep(0.01)
        assert [sup.workers[0].pid, sup.workers[2].pid] == [before[0], before[2]]
        assert sup.workers[1].restarts == 1
        return time.monotonic() - killed

    took = asyncio.run(_with_supervisor(Supervisor(_argv("serve"), 3, grace=1), body))
    assert took < 1.0


def test_a_worker_failing_at_start_fails_the_supervisor_with_its_code() -> None:
    async def main() -> int:
        return await Supervisor(_argv("fail"), 2, grace=1).run()

    assert asyncio.run(main()) == 2


def test_sigterm_stops_workers() -> None:
    async def body(sup: Supervisor) -> list[int]:
        return [w.pid for w in sup.workers if w.pid is not None]

    pids = asyncio.run(_with_supervisor(Supervisor(_argv("serve"), 2, grace=1), body))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_crash_loop_backs_off() -> None:
    worker = Worker(0, started_at=time.monotonic())
    sup = Supervisor(_argv("serve"), 1)
    delays = [sup._restart_delay(worker) for _ in range(10)]
    assert delays[0] == BACKOFF_FIRST
    assert delays == sorted(delays) and delays[-1] == BACKOFF_MAX
    worker.started_at = time.monotonic() - 60  # it had been stable: restart at once
    assert sup._restart_delay(worker) == 0.0


# --- the aggregated status port --------------------------------------------------------------


def _worker_with_status(index: int, ready: bool, metrics: bytes) -> tuple[Worker, StatusServer]:
    server = StatusServer(
        "127.0.0.1:0",
        readiness=lambda: (ready, "" if ready else "no master key"),
        metrics=lambda: (metrics, "text/plain; version=0.0.4"),
    )
    server.start()
    host, port = server.address
    worker = Worker(index, status=f"{host}:{port}")
    worker.proc = _Alive()  # type: ignore[assignment]
    return worker, server


class _Alive:
    returncode = None
    pid = 1


def test_readiness_and_metrics_aggregate_every_worker() -> None:
    text = (
        b"# HELP authsvc_checks_total Checks.\n# TYPE authsvc_checks_total counter\n"
        b'authsvc_checks_total{decision="allow",reason="key_valid"} 3.0\n'
    )
    w0, s0 = _worker_with_status(0, True, text)
    w1, s1 = _worker_with_status(1, False, text)
    w2 = Worker(2)  # restarting
    try:
        status = WorkerStatus([w0, w1, w2])
        ready, reason = status.readiness()
        assert not ready
        assert "worker 1: no master key" in reason and "worker 2 is not running" in reason
        body = status.metrics()[0].decode()
        assert 'authsvc_checks_total{decision="allow",reason="key_valid",worker="0"} 3.0' in body
        assert 'authsvc_checks_total{decision="allow",reason="key_valid",worker="1"} 3.0' in body
        assert "authsvc_workers 3.0" in body and "authsvc_workers_serving 2.0" in body
        assert WorkerStatus([w0]).readiness() == (True, "")
    finally:
        s0.stop()
        s1.stop()
