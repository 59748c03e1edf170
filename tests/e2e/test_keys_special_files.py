"""Issue 20 item 5 through a real Envoy: a key file turned into a FIFO at reload.

On the code before the fix the reload worker blocked forever in ``open()``: no log line, no
metric, ``/readyz`` stayed 200, every later rotation was ignored and SIGTERM no longer stopped
``serve``. Now the reload is refused at once (one line naming the FIFO), the last good keys keep
working through Envoy, the next rotation is picked up, and SIGTERM ends the process in its
grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from authsvc.stack._children import http_status, wait_until
from tests.e2e._harness import Launcher, http_request, new_key, no_key_in

POLL = 0.2
CONFIG = f"master_key:\n  sources:\n    - file: keys/master\nreload:\n  poll_interval: {POLL}\n"


def test_a_fifo_swapped_in_at_reload_is_refused_and_sigterm_still_stops(
    procs: Launcher, tmp_path: Path
) -> None:
    keys = {"master": new_key("fifo-master"), "next": new_key("fifo-next")}
    key_file = tmp_path / "keys" / "master"
    key_file.parent.mkdir()
    key_file.write_text(keys["master"] + "\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG)
    stack = procs.config_stack(config, app_key=keys["master"])

    def status(key: str) -> int:
        headers = {"authorization": f"Bearer {key}"}
        return http_request(stack.port, "GET", "/v1/models", headers, timeout=5).status

    def failures() -> list[dict[str, object]]:
        return [r for r in stack.authz.log_records() if r.get("event") == "key_reload"]

    assert status(keys["master"]) == 200
    key_file.unlink()
    os.mkfifo(key_file)  # nobody ever writes to it
    try:
        assert wait_until(lambda: failures(), 5), stack.authz.proc.log_tail()
        line = failures()[0]
        assert "is now unreadable" in str(line["error"])
        assert "FIFO (named pipe), not a regular file" in str(line["error"])
        assert status(keys["master"]) == 200  # the last good key, through Envoy
        assert http_status("127.0.0.1", stack.authz.status_port, "/readyz") == 200
        time.sleep(5 * POLL)
        assert len(failures()) == 1  # one line, not one per poll

        key_file.unlink()
        key_file.write_text(keys["next"] + "\n")  # the next rotation is followed
        stack.demo.key_file.write_text(keys["next"] + "\n")
        assert wait_until(lambda: status(keys["next"]) == 200, 5)
        assert status(keys["master"]) == 401

        os.unlink(key_file)
        os.mkfifo(key_file)  # a FIFO again, then SIGTERM while it is there
        assert wait_until(lambda: len(failures()) == 2, 5)
        start = time.monotonic()
        stack.authz.proc.signal(signal.SIGTERM)
        assert stack.authz.proc.proc is not None
        code = stack.authz.proc.proc.wait(15)
        assert code == 0 and time.monotonic() - start < 10
    finally:
        with contextlib.suppress(OSError):  # release a reader stuck in open() (broken code)
            os.close(os.open(key_file, os.O_WRONLY | os.O_NONBLOCK))
    no_key_in(stack.authz.proc.log_path.read_text(), keys, "the authsvc log")
