"""``serve --no-fast-path``: a gRPC server that stops by itself ends the process (exit 1).

grpcio 1.85 ends its serving loop on a request whose ``:path`` is not UTF-8 (found by
``tests/server/test_fuzz_front.py``; the fast front screens it). Before, ``authsvc serve`` then
kept running with nothing listening: its status port said ready while every check failed.
Now ``AuthzServer.watch()`` notices, and the process exits 1 with one clear line, so the
supervisor or kubelet starts a new one. (Fail-closed either way: a check nobody answers is
Envoy's 503.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from authsvc.h2wire import PREFACE, frame
from authsvc.stack._children import grpc_answers, wait_until
from tests._keys import MASTER
from tests.h2wire._names import SETTINGS
from tests.server._h2wire import END_HEADERS, END_STREAM, check_block, grpc_body

HEADERS, DATA = 1, 0
ROOT = Path(__file__).resolve().parents[2]


def _serve(sock: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
    env["AUTHSVC_MASTER_KEY"] = MASTER
    argv = [sys.executable, "-m", "authsvc", "serve", "--listen", f"unix:{sock}"]
    argv += ["--status-listen", "off", "--no-deep-health", "--log-format", "text", *extra]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert wait_until(lambda: grpc_answers(f"unix:{sock}"), 20, interval=0.05)
    return proc


def _send_a_path_that_is_not_utf8(sock: Path) -> None:
    block = check_block("/\xe8x/y")  # literal() sends latin-1: the single byte 0xE8
    wire = PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, block)
    wire += frame(DATA, END_STREAM, 1, grpc_body(b""))
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
        client.sendall(wire)
        time.sleep(0.3)


def test_a_grpc_server_that_stops_by_itself_ends_serve(short_tmp: Path) -> None:
    sock = short_tmp / "authz.sock"
    proc = _serve(sock, "--no-fast-path")
    try:
        _send_a_path_that_is_not_utf8(sock)
        assert proc.wait(15) == 1
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "the gRPC server stopped by itself (on UnicodeDecodeError)" in err, err[-2000:]
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_fast_front_keeps_serving(short_tmp: Path) -> None:
    sock = short_tmp / "authz.sock"
    proc = _serve(sock)
    try:
        _send_a_path_that_is_not_utf8(sock)
        time.sleep(0.5)
        assert proc.poll() is None and grpc_answers(f"unix:{sock}")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
