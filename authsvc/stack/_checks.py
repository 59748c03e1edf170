"""The checks ``authsvc up --check`` runs through Envoy after ``authsvc verify``, and their table.

``verify`` (the command users run against their own Envoy) already proves the probe paths open
without a key and ``/health`` refused without / with a wrong key and 2xx with it. These are
the checks it does not make, each one HTTP request to Envoy's listener and an expected status:
an API route with the key, without and with a wrong key, a POST with the key, a POST to a probe
path refused (GET/HEAD only), and a forged ``x-authsvc-key-name`` replaced before the app.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from dataclasses import dataclass

from authsvc.authz import KEY_NAME_HEADER

__all__ = ["Check", "CheckResult", "default_checks", "format_table", "run_checks"]

SPOOF = "spoofed-by-client"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    method: str
    path: str
    expected: int
    with_key: bool = False
    wrong_key: bool = False
    spoof: bool = False  # send a forged x-authsvc-key-name; the upstream must not see it


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    got: str
    ok: bool


def default_checks(public_paths: Sequence[str]) -> tuple[Check, ...]:
    checks = [
        Check("protected route with the key", "GET", "/v1/models", 200, with_key=True),
        Check("protected route without a key", "GET", "/v1/models", 401),
        Check("protected route with a wrong key", "GET", "/v1/models", 401, wrong_key=True),
        Check("chat completion with the key", "POST", "/v1/chat/completions", 200, with_key=True),
    ]
    if public_paths:
        probe = sorted(public_paths)[0]
        checks.append(Check(f"POST {probe} without a key", "POST", probe, 401))
    checks.append(
        Check(
            "forged x-authsvc-key-name is replaced",
            "GET",
            "/v1/models",
            200,
            with_key=True,
            spoof=True,
        )
    )
    return tuple(checks)


def _one(host: str, port: int, check: Check, key: str) -> CheckResult:
    headers = {"connection": "close"}
    if check.with_key:
        headers["authorization"] = f"Bearer {key}"
    if check.wrong_key:
        headers["authorization"] = "Bearer sk-not-the-right-key"
    if check.spoof:
        headers[KEY_NAME_HEADER] = SPOOF
    body = b"{}" if check.method == "POST" else None
    if body is not None:
        headers["content-type"] = "application/json"
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(check.method, check.path, body=body, headers=headers)
        response = conn.getresponse()
        status, data = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        return CheckResult(check, f"error: {type(exc).__name__}", False)
    finally:
        conn.close()
    ok = status == check.expected
    got = str(status)
    if ok and check.spoof:
        try:
            seen = json.loads(data)["authsvc_demo"]["headers"].get(KEY_NAME_HEADER, [])
        except (ValueError, KeyError, TypeError):
            seen = ["<no echo>"]
        ok = bool(seen) and SPOOF not in seen
        got = f"{status}, upstream saw {KEY_NAME_HEADER}={','.join(seen) or '-'}"
    return CheckResult(check, got, ok)


def run_checks(host: str, port: int, key: str, checks: Sequence[Check]) -> list[CheckResult]:
    """Run every check against Envoy at ``host:port``. ``key`` is sent, never printed."""
    return [_one(host, port, check, key) for check in checks]


def format_table(results: Sequence[CheckResult]) -> str:
    rows = [("check", "expected", "got", "ok")]
    for r in results:
        expected = str(r.check.expected)
        if r.check.spoof:
            expected += f", not {SPOOF}"
        rows.append((r.check.name, expected, r.got, "ok" if r.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
