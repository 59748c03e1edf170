"""Issue 4 acceptance 3 (single worker): SIGKILL authsvc while requests flow.

While it is down every request is refused with 503 (failure_mode_allow: false), after a
restart on the same address unkeyed requests get 401 again, and at no point does a request
without a valid key reach the upstream.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import pytest

from tests.e2e._harness import Launcher, request_flow


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_sigkill_authsvc_while_requests_flow(procs: Launcher, transport: str) -> None:
    stack = procs.stack(transport)
    seen: list[tuple[float, str, int]] = []
    stop = threading.Event()
    flow = threading.Thread(target=request_flow, args=(stack, stop, seen), daemon=True)
    flow.start()
    try:
        time.sleep(0.5)
        stack.authz.proc.signal(signal.SIGKILL)
        assert stack.authz.proc.proc is not None
        stack.authz.proc.proc.wait(5)
        killed_at = time.monotonic()
        time.sleep(1.0)
        relaunched_at = time.monotonic()  # down for sure until here; serving a while before back_at
        restarted = procs.authsvc(
            stack.authz.address, key_file=stack.authz.key_file, args=stack.authz.args
        )
        back_at = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        flow.join(10)
    assert restarted.proc.alive()

    down = Counter((k, s) for t, k, s in seen if killed_at + 0.2 < t < relaunched_at)
    after = Counter((k, s) for t, k, s in seen if t > back_at + 0.5)
    assert down, "no request was sent while authsvc was down"
    assert set(down) <= {("none", 503), ("wrong", 503), ("valid", 503)}, down
    assert after[("none", 401)] > 0 and after[("wrong", 401)] > 0, after
    assert after[("valid", 200)] > 0, after
    assert not [s for _, k, s in seen if k != "valid" and s not in (401, 503)], "unexpected"
    assert stack.demo.unauthorized() == [], "a request reached the upstream without a key"
