"""The status port: ``/livez``, ``/readyz``, ``/metrics`` and ``/app-health/...``, not behind Envoy.

An asyncio server in its own daemon thread (``_status_io``), so it never competes with the gRPC
event loop, with a cap on connections, deadlines for slow clients and a bounded thread pool
for the app-probe pass-through.
It knows nothing about keys or the decision code: readiness and metrics come in as callables,
probes as parsed targets. Only ``GET`` and ``HEAD`` are served; anything else is 405, an
unknown path 404. Requests are logged at debug level only (kubelet calls this every few seconds).
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType
from typing import Any

from authsvc._address import parse_address
from authsvc._defaults import STATUS_LISTEN
from authsvc._errors import ConfigError
from authsvc.health._probes import PROBE_PREFIX, ProbeForwarder, ProbeTarget
from authsvc.health._status_io import AsyncHttpServer, Limits, answer

__all__ = ["Metrics", "Readiness", "StatusServer", "all_ready", "parse_listen"]

Readiness = Callable[[], tuple[bool, str]]
"""Returns ``(ready, reason)``; ``reason`` says why not (ignored when ready)."""
Metrics = Callable[[], tuple[bytes, str]]
"""Returns ``(exposition, content_type)``, e.g. prometheus_client's ``generate_latest``."""
"""Extra ``/readyz`` lines (e.g. the bypass detector's finding), whether ready or not."""

log = logging.getLogger("authsvc.health.status")

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → ``(host, port)``, by the grammar every address flag uses
    (``authsvc._address``); TCP only (kubelet probes it). Port 0 picks a free port."""
    address = parse_address(listen, "status listen address", any_port=True, tcp_only=True)
    return address.host, address.port


def all_ready(*checks: Readiness) -> Readiness:
    """Combine readiness checks: ready iff all are; the reason joins every failing reason."""

    def readiness() -> tuple[bool, str]:
        reasons = []
        for check in checks:
            ready, reason = check()
            if not ready:
                reasons.append(reason or "not ready")
        return (not reasons, "; ".join(reasons))

    return readiness


def _default_metrics(readiness: Readiness, forwarder: ProbeForwarder) -> Metrics:
    """A minimal exposition on a private registry (the observability work replaces it)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Collector:
        def collect(self) -> Any:
            ready = GaugeMetricFamily(
                "authsvc_ready", "1 when authsvc reports ready on /readyz, else 0"
            )
            ready.add_metric([], 1.0 if _safe_readiness(readiness)[0] else 0.0)
            yield ready
            probes = CounterMetricFamily(
                "authsvc_app_probes",
                "Probes forwarded to the app by the pass-through, by probe path and outcome",
                labels=["probe", "outcome"],
            )
            for (probe, outcome), count in sorted(forwarder.counts().items()):
                probes.add_metric([probe, outcome.value], float(count))
            yield probes

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    content_type = "text/plain; version=0.0.4; charset=utf-8"
    return lambda: (generate_latest(registry), content_type)


def _safe_readiness(readiness: Readiness) -> tuple[bool, str]:
    try:
        ready, reason = readiness()
    except Exception as exc:  # a broken callable must fail closed, never take the port down
        log.debug("readiness callable failed", exc_info=True)
        return False, f"readiness check failed ({type(exc).__name__})"
    return bool(ready), str(reason)


def _safe_notes(notes: Callable[[], Sequence[str]] | None) -> list[str]:
    try:
        return [str(n) for n in notes()] if notes is not None else []
    except Exception as exc:
        log.debug("readyz notes callable failed", exc_info=True)
        return [f"notes unavailable ({type(exc).__name__})"]


class _Handler(BaseHTTPRequestHandler):
    """Runs over in-memory streams (``_status_io.answer``): one request, then done."""

    server: Any  # has ``status``: the StatusServer
    server_version = "authsvc-status"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _method_not_allowed(self) -> None:
        self._send(405, _TEXT, b"only GET and HEAD are served here\n", extra={"allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _serve(self, *, head: bool) -> None:
        status, content_type, body, extra = self.server.status.route(
            self.path, self.headers.get("accept", "")
        )
        self._send(status, content_type, b"" if head else body, extra, length=len(body))

    def _send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        extra: Mapping[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body) if length is None else length))
        self.send_header("cache-control", "no-store")
        self.send_header("x-content-type-options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


_Reply = tuple[int, str, bytes, Mapping[str, str]]


class StatusServer:
    """HTTP status port. ``start()`` binds and serves in a daemon thread; ``stop()`` closes.

    ``readiness`` is called on every ``/readyz`` (keep it cheap: it reads state, no I/O).
    ``metrics`` is called on every ``/metrics``; ``None`` serves a minimal exposition.
    ``probes`` maps ``/app-health/<container>/<probe>`` to the app's original probe.
    """

    def __init__(
        self,
        listen: str = STATUS_LISTEN,
        *,
        readiness: Readiness,
        metrics: Metrics | None = None,
        probes: Mapping[str, ProbeTarget] | None = None,
        notes: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._host, self._port = parse_listen(listen)
        self._readiness = readiness
        self._notes = notes  # extra /readyz lines that do not change readiness (dry-run is on)
        self._forwarder = ProbeForwarder(probes or {})
        self._metrics = metrics or _default_metrics(readiness, self._forwarder)
        self._server: AsyncHttpServer | None = None
        self.limits = Limits()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when started with port 0)."""
        if self._server is None:
            return self._host, self._port
        return self._server.address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def forwarder(self) -> ProbeForwarder:
        return self._forwarder

    def start(self) -> None:
        if self._server is not None:
            return
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(1024)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on status address {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        sock.setblocking(False)

        def make_answer(head: bytes, peer: Any) -> bytes:
            return answer(_Handler, head, peer, self)

        def offload(head: bytes) -> bool:  # only the pass-through does I/O
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            return target.startswith(PROBE_PREFIX.encode())

        self._server = AsyncHttpServer(sock, make_answer, offload, self.limits)
        self._server.start()
        log.info("status port listening on %s (livez, readyz, metrics)", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server
        if server is None:
            return
        server.stop(timeout)
        self._server = None

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------- routing (no sockets)

    def route(self, target: str, accept: str = "") -> _Reply:
        """Answer one GET for ``target``: ``(status, content_type, body, extra_headers)``."""
        path = target.partition("?")[0]
        no_extra: Mapping[str, str] = MappingProxyType({})
        if path == "/livez":
            return 200, _TEXT, b"ok\n", no_extra
        if path == "/readyz":
            ready, reason = _safe_readiness(self._readiness)
            status = 200 if ready else 503
            notes = _safe_notes(self._notes)
            if _JSON in accept:
                doc: dict[str, object] = {"ready": ready, "reason": "" if ready else reason}
                if notes:
                    doc["notes"] = notes
                body = json.dumps(doc)
                return status, _JSON, body.encode() + b"\n", no_extra
            text = "ready\n" if ready else f"not ready: {reason}\n"
            text += "".join(f"{note}\n" for note in notes)
            return status, _TEXT, text.encode(), no_extra
        if path == "/metrics":
            try:
                body_bytes, content_type = self._metrics()
            except Exception:
                log.exception("metrics callable failed")
                return 500, _TEXT, b"metrics are unavailable: see authsvc's log\n", no_extra
            return 200, content_type, body_bytes, no_extra
        if path.startswith(PROBE_PREFIX):
            reply = self._forwarder.forward(path)
            if reply is None:
                return 404, _TEXT, f"no app probe is configured at {path}\n".encode(), no_extra
            extra = {"x-authsvc-probe": reply.outcome.value}
            return reply.status, reply.content_type, reply.body, extra
        return 404, _TEXT, b"not found: try /livez, /readyz, /metrics\n", no_extra
