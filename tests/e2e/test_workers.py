"""Issue 4 acceptance 2 and 3 with ``authsvc serve --workers 3``, through the real Envoy.

- The decision table of ``test_envoy_decisions`` runs unchanged (its tests are imported here
  and pick up this module's ``shared`` fixture) against 3 workers over TCP and over Unix
  sockets, with Envoy listing every worker (the endpoints ``authsvc envoy-config --workers``
  writes); Envoy's per-endpoint stats prove that every worker served checks.
- SIGKILL one worker while requests flow: nothing without a valid key is ever allowed or
  reaches the upstream, the supervisor replaces the worker within 2 s, and no valid request
  fails at all: Envoy retries a check that reached no live worker on another one and takes
  the dead one out of the rotation (the bootstrap's retry policy and outlier detection).

(The single-worker cases are ``test_envoy_decisions`` and ``test_envoy_failover`` themselves.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from authsvc.stack._children import wait_until
from tests.e2e._harness import (
    AUTHSVC,
    Launcher,
    Stack,
    clean_env,
    http_request,
    request_flow,
    worker_pids,
)
from tests.e2e.test_envoy_decisions import (  # noqa: F401 - collected here with our fixture
    test_health_needs_the_key,
    test_no_key_is_401_with_litellm_body_and_www_authenticate,
    test_other_methods_on_probe_path_need_a_key,
    test_probe_paths_open_without_key_and_cost_no_check,
    test_right_key_in_each_header_reaches_upstream_with_key_name,
    test_right_key_in_query_reaches_upstream,
    test_wrong_key_is_401,
)

WORKERS = 3


def worker_stack(procs: Launcher, transport: str, workers: int = WORKERS) -> Stack:
    return procs.stack(transport, workers=workers)


def endpoint_checks(stack: Stack) -> dict[str, int]:
    """Envoy's ``rq_total`` per authz endpoint, from admin ``/clusters``."""
    cluster = stack.envoy.options.authz_cluster
    counts = {}
    for line in stack.envoy.admin("/clusters").splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0] == cluster and parts[2] == "rq_total":
            counts[parts[1]] = int(parts[3])
    return counts


def _endpoint_name(address: str) -> str:
    return address[len("unix:") :] if address.startswith("unix:") else address


@pytest.fixture(scope="module", params=["tcp", "unix"])
def shared(module_procs: Launcher, request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = worker_stack(module_procs, request.param)
    yield stack
    assert stack.demo.unauthorized() == [], "a request reached the upstream without a key"


def test_every_worker_served_checks(shared: Stack) -> None:
    assert shared.key is not None
    for _ in range(20):
        assert shared.get("/v1/models").status == 401
        assert shared.get("/v1/models", {"x-api-key": shared.key}).status == 200
    counts = endpoint_checks(shared)
    assert set(counts) == {_endpoint_name(a) for a in shared.authz.addresses}, counts
    assert all(n > 0 for n in counts.values()), f"a worker served no check: {counts}"


def test_supervisor_status_port_aggregates_the_workers(shared: Stack) -> None:
    port = shared.authz.status_port
    ready = http_request(port, "GET", "/readyz")
    assert (ready.status, ready.body) == (200, b"ready\n")
    metrics = http_request(port, "GET", "/metrics").body.decode()
    for i in range(WORKERS):
        assert f'authsvc_master_key_resolved{{worker="{i}"}} 1.0' in metrics
    assert "authsvc_workers 3.0" in metrics
    assert http_request(port, "GET", "/livez").status == 200


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_sigkill_one_worker_while_requests_flow(procs: Launcher, transport: str) -> None:
    stack = worker_stack(procs, transport)
    supervisor = stack.authz.proc
    before = worker_pids(supervisor)
    assert len(before) == WORKERS
    seen: list[tuple[float, str, int]] = []
    stop = threading.Event()
    flow = threading.Thread(target=request_flow, args=(stack, stop, seen), daemon=True)
    flow.start()
    try:
        time.sleep(0.5)
        victim = before[1]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced = wait_until(
            lambda: len(now := worker_pids(supervisor)) == WORKERS and victim not in now,
            timeout=2,
            interval=0.02,
        )
        replaced_at = time.monotonic()
        time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
    finally:
        stop.set()
        flow.join(10)
    assert replaced, f"worker {victim} was not replaced within 2 s: {worker_pids(supervisor)}"
    assert replaced_at - killed_at <= 2.0
    assert supervisor.alive()
    survivors = [p for p in before if p != victim]
    assert set(survivors) <= set(worker_pids(supervisor)), "the other workers were disturbed"

    unkeyed = Counter(s for _, k, s in seen if k != "valid")
    assert set(unkeyed) <= {401, 503}, f"a request without a valid key was not refused: {unkeyed}"
    valid = Counter(s for _, k, s in seen if k == "valid")
    assert set(valid) == {200}, f"a valid request failed while a worker died: {valid}"
    assert any(t > killed_at + 2.0 for t, k, _ in seen if k == "valid"), "too few requests"
    assert stack.demo.unauthorized() == [], "a request reached the upstream without a key"


def test_sigterm_stops_every_worker_and_removes_sockets(procs: Launcher) -> None:
    stack = worker_stack(procs, "unix")
    supervisor = stack.authz.proc
    workers = worker_pids(supervisor)
    sockets = [a[len("unix:") :] for a in stack.authz.addresses]
    assert all(os.path.exists(s) for s in sockets)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.proc is not None
    assert supervisor.proc.wait(15) == 0
    assert not [p for p in workers if _alive(p)], "a worker outlived the supervisor"
    assert not [s for s in sockets if os.path.exists(s)], "a socket file was left behind"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: its parent (the supervisor) is gone, init reaps it
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_worker_that_cannot_bind_fails_the_start_clearly(procs: Launcher) -> None:
    blocker = procs.socket_path("authz-1.sock")[len("unix:") :]
    with open(blocker, "w") as f:
        f.write("not a socket")
    base = procs.socket_path("authz.sock")
    argv = [*AUTHSVC, "serve", "--listen", base, "--status-listen", "off", "--workers", "3"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=clean_env({"AUTHSVC_MASTER_KEY": ""})
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "is not a socket" in done.stderr and "authz-1.sock" in done.stderr
    assert not os.path.exists(base[len("unix:") :].replace(".sock", "-0.sock"))
