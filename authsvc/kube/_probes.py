"""Probe rewrite (like Istio's): app HTTP probes go to authsvc's status port, never through auth.

An app container's ``httpGet`` liveness/readiness/startup probe becomes
``GET /app-health/<container>/<livez|readyz|startupz>`` on the status port; authsvc forwards
it to the app's original port and path (``AUTHSVC_APP_PROBES``). Named ports are resolved to
numbers here, from the container's own ports. tcpSocket/exec/grpc probes are left alone.
Pure: plain dicts in, plain dicts out.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from authsvc import _defaults
from authsvc.kube._errors import InjectError

__all__ = ["PROBES", "probe_path", "rewrite_probes"]

PROBES = {"livenessProbe": "livez", "readinessProbe": "readyz", "startupProbe": "startupz"}
MAX_TIMEOUT_SECONDS = 60  # the longest authsvc waits for the app on a probe
_BAD_PATH = re.compile(r"[\s#\x00-\x1f\x7f]")
_HOST = re.compile(r"[A-Za-z0-9._:-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def probe_path(container: str, probe_field: str) -> str:
    return f"/app-health/{container}/{PROBES[probe_field]}"


def _port(container: Mapping[str, Any], port: object, field: str) -> int:
    if isinstance(port, bool):
        raise InjectError(field, f"{port!r} is not a port")
    if isinstance(port, int):
        if 1 <= port <= 65535:
            return port
        raise InjectError(field, f"{port} is not a port number (1-65535)")
    if isinstance(port, str) and port.isdigit():
        return _port(container, int(port), field)
    if not isinstance(port, str) or not port:
        raise InjectError(field, f"{port!r} is not a port number or name")
    for item in container.get("ports") or []:
        if isinstance(item, Mapping) and item.get("name") == port:
            return _port(container, item.get("containerPort"), f"{field} (port {port!r})")
    names = [p.get("name") for p in container.get("ports") or [] if isinstance(p, Mapping)]
    raise InjectError(
        field,
        f"named port {port!r} is not among the container's ports "
        f"({', '.join(repr(n) for n in names if n) or 'none named'}); "
        "authsvc needs the number to forward the probe",
    )


def _record(
    container: Mapping[str, Any], get: Mapping[str, Any], probe: Mapping[str, Any], field: str
) -> dict[str, Any]:
    """The pass-through target, in the ``AUTHSVC_APP_PROBES`` shape.

    Checked here as strictly as authsvc parses it, so a pod authsvc would refuse to start
    with is refused at injection, naming the field.
    """
    scheme = get.get("scheme", "HTTP")
    if scheme not in ("HTTP", "HTTPS"):
        raise InjectError(f"{field}.scheme", f"{scheme!r} must be HTTP or HTTPS")
    path = get.get("path") or "/"
    if not isinstance(path, str) or not path.startswith("/") or _BAD_PATH.search(path):
        raise InjectError(
            f"{field}.path", f"{path!r} must be an absolute path without spaces or '#'"
        )
    record: dict[str, Any] = {
        "port": _port(container, get.get("port"), f"{field}.port"),
        "path": path,
        "scheme": scheme,
    }
    host = get.get("host")
    if host:
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise InjectError(f"{field}.host", f"{host!r} is not a host name or IP address")
        record["host"] = host
    headers = get.get("httpHeaders")
    if headers:
        record["headers"] = _headers(headers, f"{field}.httpHeaders")
    timeout = probe.get("timeoutSeconds")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InjectError(
                f"{field.rsplit('.', 1)[0]}.timeoutSeconds", f"{timeout!r} is not a positive number"
            )
        # authsvc waits at most MAX_TIMEOUT_SECONDS for the app; kubelet keeps its own timeout.
        record["timeout_seconds"] = min(timeout, MAX_TIMEOUT_SECONDS)
    return record


def _headers(headers: object, field: str) -> list[dict[str, str]]:
    if not isinstance(headers, list):
        raise InjectError(field, "must be a list of {name, value}")
    out = []
    for i, h in enumerate(headers):
        if not isinstance(h, Mapping) or not isinstance(h.get("name"), str):
            raise InjectError(f"{field}[{i}]", "must be a mapping with a name and a value")
        name, value = h["name"], h.get("value", "")
        if not _HEADER_NAME.fullmatch(name):
            raise InjectError(f"{field}[{i}].name", f"{name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or any(ord(c) < 0x20 and c != "\t" for c in value):
            # The value is not echoed: probe headers may carry tokens.
            raise InjectError(f"{field}[{i}].value", "must be text without control characters")
        out.append({"name": name, "value": value})
    return out


def rewrite_probes(
    containers: list[dict[str, Any]], field_prefix: str
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Rewrite the HTTP probes of ``containers``.

    Returns (new containers, the ``AUTHSVC_APP_PROBES`` mapping, the verbatim original
    ``httpGet`` of each rewritten probe keyed the same way). ``field_prefix`` is where the
    containers list sits in the document, for error messages.
    """
    out: list[dict[str, Any]] = []
    targets: dict[str, Any] = {}
    originals: dict[str, Any] = {}
    for i, container in enumerate(containers):
        new = copy.deepcopy(container)
        name = container.get("name")
        for probe_field in PROBES:
            probe = container.get(probe_field)
            field = f"{field_prefix}[{i}].{probe_field}"
            if probe is None:
                continue
            if not isinstance(probe, Mapping):
                raise InjectError(field, "must be a mapping")
            get = probe.get("httpGet")
            if get is None:
                continue  # tcpSocket / exec / grpc: left as they are
            if not isinstance(get, Mapping):
                raise InjectError(f"{field}.httpGet", "must be a mapping")
            key = probe_path(str(name), probe_field)
            targets[key] = _record(container, get, probe, f"{field}.httpGet")
            originals[key] = copy.deepcopy(dict(get))
            new[probe_field]["httpGet"] = {
                "path": key,
                "port": _defaults.STATUS_PORT,
                "scheme": "HTTP",
            }
        out.append(new)
    return out, targets, originals


def to_json(value: Mapping[str, Any]) -> str:
    """Compact, key-sorted JSON: deterministic annotation and env values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
