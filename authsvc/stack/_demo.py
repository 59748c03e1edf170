"""``authsvc demo-upstream``: a small stand-in for a LiteLLM proxy (stdlib HTTP, threaded).

- ``/health/liveliness``, ``/health/liveness``, ``/health/readiness``: public (GET/HEAD);
  LiteLLM's other keyless routes (``/``, ``/ui/``, ``/sso/*``, ``/login``, ``/public/*``...)
  answer 200 without a key, whatever the method.
- ``/health``, ``/v1/models``, ``/v1/chat/completions`` and everything else: the master key,
  checked exactly as LiteLLM checks it (``_litellm.check_key``), else 401 with LiteLLM's body.
- A websocket upgrade (``/v1/realtime``) with the key (LiteLLM's realtime rule) gets 101.
- Every JSON response carries ``authsvc_demo``: the method, target and headers it received
  (credentials replaced by fingerprints), so tests can see what Envoy forwarded.
- ``--request-log F`` appends one JSON line per request (same redaction): the ground truth for
  "did this request reach the upstream?".
- The key file is re-read whenever it changes (stat per request), so it can be rotated live.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc.envoy import parse_address
from authsvc.keys import fingerprint
from authsvc.stack import _litellm as litellm

__all__ = ["DemoUpstream", "MasterKeySource", "configure", "run"]

MAX_BODY = 8 * 1024 * 1024
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B97"
MODEL = "demo-model"


class MasterKeySource:
    """The master key from a file (re-read when its stat changes) or a fixed value."""

    def __init__(self, path: Path | None = None, value: str | None = None) -> None:
        self._path = path
        self._value = value.strip(" \t\r\n") if value else None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def get(self) -> str | None:
        if self._path is None:
            return self._value or None
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._value = self._path.read_text(encoding="utf-8").strip(" \t\r\n")
                except (OSError, UnicodeDecodeError):
                    return None
                self._stamp = stamp
            return self._value or None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    keys: MasterKeySource
    log_path: Path | None
    log_lock: threading.Lock
    count: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the ACK of the
    # headers, which a kept-alive peer (Envoy) delays ~40 ms: every proxied request took 42 ms.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "authsvc-demo"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _route(self, path: str, authorized: bool) -> tuple[int, Any]:
        if path in litellm.PUBLIC_PATHS:
            if self.command not in ("GET", "HEAD"):
                return 405, {"detail": "Method Not Allowed"}
            if path == "/health/readiness":
                return 200, {"status": "healthy", "db": "Not connected", "cache": None}
            return 200, "I'm alive!"
        if litellm.keyless(path):
            return 200, {"detail": "a keyless LiteLLM route", "path": path}
        if not authorized:
            raise AssertionError("unreachable")  # pragma: no cover
        if path == litellm.PROTECTED_HEALTH:
            endpoints = [{"model": MODEL, "api_base": "demo"}]
            return 200, {
                "healthy_endpoints": endpoints,
                "unhealthy_endpoints": [],
                "healthy_count": 1,
                "unhealthy_count": 0,
            }
        if path in ("/v1/models", "/models"):
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "authsvc-demo"}
            return 200, {"object": "list", "data": [model]}
        if path in ("/v1/chat/completions", "/chat/completions"):
            if self.command != "POST":
                return 405, {"detail": "Method Not Allowed"}
            message = {"role": "assistant", "content": "Hello from the authsvc demo upstream."}
            return 200, {
                "id": "chatcmpl-demo",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        return 404, {"detail": "Not Found"}

    def _upgrade(self, auth: litellm.AuthResult) -> None:
        """A websocket upgrade (LiteLLM's realtime API): 101 with the key, then close."""
        accept = base64.b64encode(
            hashlib.sha1((self.headers.get("sec-websocket-key", "") + _WS_GUID).encode()).digest()
        ).decode()
        self._record(101, False, auth.ok, 0)
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def _handle(self) -> None:
        body = self._read_body()
        target = self.path
        path, _, query = target.partition("?")
        public = litellm.keyless(path)
        websocket = self.headers.get("upgrade", "").strip().lower() == "websocket"
        master = None if public else self.server.keys.get()
        auth = litellm.AuthResult(False, "")
        if public:
            status, payload = self._route(path, authorized=False)
        elif master is None:
            status = 503
            payload = litellm.error_body(
                "demo upstream has no master key", 503, "service_unavailable"
            )
        else:
            auth = litellm.check_key(self.headers.get, query, master, path, websocket)
            if auth.ok and websocket:
                return self._upgrade(auth)
            if auth.ok:
                status, payload = self._route(path, authorized=True)
            else:
                status, payload = 401, litellm.error_body(auth.message)
        record = self._record(status, public, auth.ok, len(body))
        if isinstance(payload, dict):
            payload = {**payload, "authsvc_demo": record}
        self._send(status, payload)

    def _record(self, status: int, public: bool, authorized: bool, size: int) -> dict[str, Any]:
        server = self.server
        with server.log_lock:
            server.count += 1
            record = {
                "n": server.count,
                "method": self.command,
                "target": litellm.redact_target(self.path),
                "headers": litellm.redact_headers(self.headers.items()),
                "public": public and self.command in ("GET", "HEAD"),
                "authorized": authorized,
                "status": status,
                "body_bytes": size,
            }
            if server.log_path is not None:
                with server.log_path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(record, sort_keys=True) + "\n")
        return record

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if status == 401:
            self.send_header("www-authenticate", "Bearer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


class DemoUpstream:
    """The demo server, usable in-process (tests) or from the ``demo-upstream`` command."""

    def __init__(self, listen: str, keys: MasterKeySource, request_log: Path | None = None):
        address = parse_address(listen, "--listen", tcp_only=True)
        _Server.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.server = _Server((address.host, address.port), _Handler)
        self.server.keys = keys
        self.server.log_path = request_log
        self.server.log_lock = threading.Lock()
        self.server.count = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> DemoUpstream:
        """Serve in a background thread (for in-process use)."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=f"127.0.0.1:{_defaults.APP_PORT}",
        help="where to listen (default: %(default)s)",
    )
    parser.add_argument(
        "--master-key-file",
        metavar="F",
        help="file holding the master key (re-read when it changes); "
        "default: the LITELLM_MASTER_KEY environment variable",
    )
    parser.add_argument("--request-log", metavar="F", help="append one JSON line per request")


def run(args: argparse.Namespace) -> int:
    if args.master_key_file:
        keys = MasterKeySource(path=Path(args.master_key_file))
    else:
        keys = MasterKeySource(value=os.environ.get("LITELLM_MASTER_KEY"))
    try:
        demo = DemoUpstream(args.listen, keys, Path(args.request_log) if args.request_log else None)
    except (ConfigError, OSError) as exc:
        print(f"authsvc demo-upstream: error: {exc}", file=sys.stderr)
        return 2
    current = keys.get()
    state = f"master key fp={fingerprint(current)}" if current else "NO master key (503)"
    print(f"demo upstream listening on http://{args.listen} ({state})", file=sys.stderr, flush=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=demo.server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        demo.server.serve_forever()
    finally:
        demo.server.server_close()
    return 0
