"""Probe pass-through: kubelet probes go straight to the app's own port, never through auth.

Like Istio's probe rewrite, ``authsvc inject`` points an app container's HTTP probes at
``/app-health/<container>/<livez|readyz|startupz>`` on authsvc's status port and records the
original probe in ``AUTHSVC_APP_PROBES`` (a JSON object)::

    {"/app-health/app/readyz": {"port": 4000, "path": "/health/readiness", "scheme": "HTTP",
                                "host": "127.0.0.1", "headers": [{"name": "x", "value": "y"}],
                                "timeout_seconds": 1}}

Parsing is pure and strict (``parse_probes``): every bad entry is a ``ConfigError`` naming the
entry and the field. Forwarding (``ProbeForwarder``) sends one GET to the app and returns the
app's status; this module has no reference to keys or to the decision code.

Logging: a probe that succeeds is logged at debug level only. A change of outcome (the app
starts failing, becomes unreachable, recovers) is logged once, at info level: probes run every
few seconds and must not flood logs (LiteLLM issue #8795).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from authsvc._errors import ConfigError
from authsvc.health._http import HttpAnswer, Target, http_get

__all__ = [
    "PROBES_ENV",
    "PROBE_KINDS",
    "PROBE_PREFIX",
    "ProbeForwarder",
    "ProbeOutcome",
    "ProbeReply",
    "ProbeTarget",
    "parse_probes",
    "probes_from_env",
]

PROBES_ENV = "AUTHSVC_APP_PROBES"
PROBE_PREFIX = "/app-health/"
PROBE_KINDS = ("livez", "readyz", "startupz")
MAX_TIMEOUT_SECONDS = 60.0
REPLY_BODY_LIMIT = 1024

_CONTAINER = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # DNS-1123 label, as k8s names
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_HOST = re.compile(r"[A-Za-z0-9._:-]+")
_FIELDS = frozenset({"port", "path", "scheme", "host", "headers", "timeout_seconds"})

log = logging.getLogger("authsvc.health.probes")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """The app's original HTTP probe: where the pass-through sends the GET."""

    port: int
    path: str
    scheme: str = "HTTP"  # "HTTP" or "HTTPS", as Kubernetes spells it
    host: str = "127.0.0.1"
    headers: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 1.0

    def target(self) -> Target:
        return Target(self.scheme.lower(), self.host, self.port, self.path)


# --------------------------------------------------------------------------- parsing (pure)


def _entry_error(source: str, probe: str, detail: str) -> ConfigError:
    return ConfigError(f"{source}[{probe!r}]: {detail}")


def _parse_headers(raw: Any, fail: Callable[[str], ConfigError]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise fail("headers: expected a list of {name, value} objects")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"name", "value"}:
            raise fail(f"headers[{i}]: expected exactly the fields 'name' and 'value'")
        name, value = item["name"], item["value"]
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise fail(f"headers[{i}].name: {name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or any(ord(c) < 0x20 and c != "\t" for c in value):
            # The value is not echoed: probe headers may hold tokens.
            raise fail(
                f"headers[{i}].value (header {name!r}): expected text without control characters"
            )
        out.append((name, value))
    return tuple(out)


def _parse_entry(source: str, probe: str, raw: Any) -> ProbeTarget:
    def fail(detail: str) -> ConfigError:
        return _entry_error(source, probe, detail)

    prefix, _, rest = probe.partition(PROBE_PREFIX)
    container, _, kind = rest.partition("/")
    if prefix or not _CONTAINER.fullmatch(container) or kind not in PROBE_KINDS:
        raise fail(
            f"the key must be '{PROBE_PREFIX}<container>/<{'|'.join(PROBE_KINDS)}>' "
            "with a DNS-1123 container name"
        )
    if not isinstance(raw, dict):
        raise fail("expected an object with at least 'port' and 'path'")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_FIELDS))})")
    for required in ("port", "path"):
        if required not in raw:
            raise fail(f"missing required field {required!r}")
    port = raw["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise fail(f"port: expected an integer 1..65535, got {port!r}")
    path = raw["path"]
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or any(c.isspace() or ord(c) < 0x20 or c == "#" for c in path)
    ):
        raise fail(f"path: expected an absolute path without spaces or '#', got {path!r}")
    scheme = raw.get("scheme", "HTTP")
    if scheme not in ("HTTP", "HTTPS"):
        raise fail(f"scheme: expected 'HTTP' or 'HTTPS', got {scheme!r}")
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise fail(f"host: expected a host name or IP address, got {host!r}")
    timeout = raw.get("timeout_seconds", 1)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise fail(
            f"timeout_seconds: expected a number in (0, {MAX_TIMEOUT_SECONDS:g}], got {timeout!r}"
        )
    headers = _parse_headers(raw.get("headers", []), fail)
    return ProbeTarget(port, path, scheme, host, headers, float(timeout))


def parse_probes(text: str, *, source: str = PROBES_ENV) -> Mapping[str, ProbeTarget]:
    """Parse the JSON probe map (see the module docstring). Raises ``ConfigError``."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object mapping probe paths to probes")
    return MappingProxyType(
        {probe: _parse_entry(source, probe, entry) for probe, entry in sorted(raw.items())}
    )


def probes_from_env(environ: Mapping[str, str]) -> Mapping[str, ProbeTarget]:
    """The probe map from ``AUTHSVC_APP_PROBES``; empty when unset or blank."""
    text = environ.get(PROBES_ENV, "")
    return parse_probes(text) if text.strip() else MappingProxyType({})


# --------------------------------------------------------------------------- forwarding (I/O)


class ProbeOutcome(StrEnum):
    """How a forwarded probe went; also the transition state that is logged."""

    OK = "ok"  # the app answered 2xx/3xx (kubelet counts 200..399 as success)
    APP_FAILED = "app_failed"  # the app answered another status
    UNREACHABLE = "unreachable"  # nothing answered (closed port, timeout, TLS, bad HTTP)


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """What the status port sends back to kubelet."""

    status: int
    content_type: str
    body: bytes
    outcome: ProbeOutcome


def _reply_from_answer(answer: HttpAnswer) -> ProbeReply:
    status = answer.status if 200 <= answer.status <= 599 else 502
    outcome = ProbeOutcome.OK if status < 400 else ProbeOutcome.APP_FAILED
    content_type = answer.headers.get("content-type", "text/plain; charset=utf-8")
    return ProbeReply(status, content_type, answer.body[:REPLY_BODY_LIMIT], outcome)


class ProbeForwarder:
    """Forwards probes to the app. Thread-safe; one instance per status server."""

    def __init__(self, probes: Mapping[str, ProbeTarget]) -> None:
        self._probes = MappingProxyType(dict(probes))
        self._state: dict[str, ProbeOutcome] = {}
        self._counts: dict[tuple[str, ProbeOutcome], int] = {}
        self._lock = threading.Lock()

    @property
    def probes(self) -> Mapping[str, ProbeTarget]:
        return self._probes

    def counts(self) -> dict[tuple[str, ProbeOutcome], int]:
        """Forwarded probes by (probe path, outcome), for metrics."""
        with self._lock:
            return dict(self._counts)

    def forward(self, probe: str) -> ProbeReply | None:
        """Forward one probe; ``None`` when no probe with that path is configured."""
        target = self._probes.get(probe)
        if target is None:
            return None
        result = http_get(
            target.target(),
            dict(target.headers),
            timeout=target.timeout_seconds,
            verify_tls=False,
        )
        if isinstance(result, HttpAnswer):
            reply = _reply_from_answer(result)
            detail = f"the app answered {reply.status}"
        else:
            detail = f"app probe {target.target()} failed: {result.reason}"
            reply = ProbeReply(
                503,
                "text/plain; charset=utf-8",
                f"{detail}\n".encode(),
                ProbeOutcome.UNREACHABLE,
            )
        self._record(probe, reply.outcome, detail)
        return reply

    def _record(self, probe: str, outcome: ProbeOutcome, detail: str) -> None:
        with self._lock:
            previous = self._state.get(probe)
            self._state[probe] = outcome
            key = (probe, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1
        if previous == outcome or (previous is None and outcome is ProbeOutcome.OK):
            log.debug("probe %s: %s (%s)", probe, outcome.value, detail)
        elif outcome is ProbeOutcome.OK:
            log.info("probe %s recovered: %s", probe, detail)
        else:
            log.info("probe %s now %s: %s", probe, outcome.value, detail)
