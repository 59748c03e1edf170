"""``authsvc webhook``: the mutating admission webhook (HTTPS, AdmissionReview v1).

``POST /inject`` runs the same transform as ``authsvc inject`` on the Pod in the review and
answers with a JSONPatch (see ``_admission``); ``GET /healthz`` is for its own probes. TLS
comes from ``--tls-cert``/``--tls-key`` (a kubernetes.io/tls Secret mounted as a directory):
the files are re-read when they change, so a rotated certificate is served without a restart.
stdlib only (``http.server`` + ``ssl``), one thread per connection, stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from authsvc._address import parse_address
from authsvc._errors import ConfigError
from authsvc.kube import _options
from authsvc.kube._admission import review

__all__ = ["WebhookServer", "configure", "run"]

log = logging.getLogger("authsvc.webhook")

MAX_BODY = 8 * 1024 * 1024  # the API server caps objects far below this
IO_TIMEOUT = 10.0  # seconds for the TLS handshake and each read


class _Certificates:
    """An SSLContext rebuilt whenever the certificate or key file changes."""

    def __init__(self, cert: str, key: str, every: float = 5.0) -> None:
        self._cert, self._key, self._every = cert, key, every
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()
        self._context = self._load()
        self._checked = time.monotonic()

    def _files_stamp(self) -> tuple[float, ...]:
        try:
            return tuple(os.stat(p).st_mtime for p in (self._cert, self._key))
        except OSError as exc:
            raise ConfigError(f"TLS: cannot read {exc.filename}: {exc.strerror}") from exc

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"TLS: cannot load certificate {self._cert} with key {self._key}: {exc}"
            ) from exc
        return context

    def context(self) -> ssl.SSLContext:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self._every:
                self._checked = now
                try:
                    stamp = self._files_stamp()
                    if stamp != self._stamp:
                        self._context, self._stamp = self._load(), stamp
                        log.info("TLS certificate reloaded from %s", self._cert)
                except ConfigError as exc:  # mid-rotation: keep serving the last good one
                    log.warning("%s; keeping the previous certificate", exc)
            return self._context


class WebhookServer(ThreadingHTTPServer):
    """HTTPS server; the handshake happens in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], certs: _Certificates, options: _options.InjectOptions
    ) -> None:
        self.certs = certs
        self.options = options
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unexpected error serving %s", client_address[0])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(IO_TIMEOUT)
        # One small response per request: send it now (Nagle + delayed ACK cost ~40 ms each).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.certs.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return tls, addr


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)
    server_version = "authsvc-webhook"
    sys_version = ""

    def handle(self) -> None:
        try:
            self.request.do_handshake()
            super().handle()
        except (OSError, ssl.SSLError) as exc:  # includes handshake failures and timeouts
            log.debug("connection from %s ended: %s", self.client_address[0], exc)
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] not in ("/inject", "/mutate"):
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            log.warning("request without a usable Content-Length (%s); refused", length)
            self._send(411 if length < 0 else 413, b"", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        admission = review(body, self.server.options)
        log.log(
            logging.WARNING if admission.level == "warning" else logging.INFO, "%s", admission.log
        )
        self._send(200, admission.body())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8443",
        metavar="HOST:PORT",
        help="where to serve HTTPS (default 127.0.0.1:8443; in a pod: 0.0.0.0:8443)",
    )
    parser.add_argument("--tls-cert", required=True, metavar="FILE", help="PEM certificate chain")
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="PEM private key")
    parser.add_argument(
        "--tls-reload-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="how often to check the certificate files for a rotation (default 5)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    _options.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        options = _options.from_args(args)
        if not 0 < args.tls_reload_seconds <= 3600:
            raise ConfigError("--tls-reload-seconds must be between 0 and 3600")
        certs = _Certificates(args.tls_cert, args.tls_key, args.tls_reload_seconds)
        listen = parse_address(args.listen, "--listen", any_port=True, tcp_only=True)
        server = WebhookServer((listen.host, listen.port), certs, options)
    except ConfigError as exc:
        print(f"authsvc webhook: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"authsvc webhook: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    log.info("serving AdmissionReview v1 on https://%s:%s/inject", host, port)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    log.info("stopped")
    return 0
