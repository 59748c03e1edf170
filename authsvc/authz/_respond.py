"""What Envoy should do with a decision, as plain data (the gRPC adapter turns it into protobuf).

Denials carry a LiteLLM-shaped JSON body, so clients that parse LiteLLM's errors keep working.
Allows add ``x-authsvc-key-name`` and strip every client-sent ``x-authsvc-*`` header, so the
upstream can trust those headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from authsvc.authz._decide import Decision, Reason
from authsvc.authz._dry_run import DRY_RUN_HEADER

__all__ = ["HEADER_PREFIX", "KEY_NAME_HEADER", "Allow", "Deny", "render"]

HEADER_PREFIX = "x-authsvc-"
KEY_NAME_HEADER = "x-authsvc-key-name"
REASON_HEADER = "x-authsvc-reason"

_ERROR_TYPE = {
    400: "bad_request",
    401: "auth_error",
    403: "auth_error",
    500: "internal_error",
    503: "service_unavailable",
}


@dataclass(frozen=True, slots=True)
class Allow:
    set_headers: tuple[tuple[str, str], ...]  # overwrite-or-add on the upstream request
    remove_headers: tuple[str, ...]
    remove_query: tuple[str, ...] = ()  # query parameters removed before the upstream
    response_headers: tuple[tuple[str, str], ...] = ()  # added to the response to the client


@dataclass(frozen=True, slots=True)
class Deny:
    status: int
    headers: tuple[tuple[str, str], ...]  # sent to the client
    body: str


def _client_authsvc_headers(headers: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(name for name in headers if name.startswith(HEADER_PREFIX))


def render(
    decision: Decision,
    headers: Mapping[str, str],
    strip_headers: tuple[str, ...] = (),
    strip_query: tuple[str, ...] = (),
) -> Allow | Deny:
    """Turn a decision into header mutations (allow) or a client response (deny).

    ``strip_headers`` and ``strip_query`` are removed from allowed requests too (credential
    headers and query parameters, when the upstream must not see keys: ``Policy.strip_*``).
    """
    if decision.would_deny is not None:  # dry-run: no key name, the unenforced reason instead
        mark = ((DRY_RUN_HEADER, decision.would_deny.value),)
        remove = tuple(h for h in _client_authsvc_headers(headers) if h != DRY_RUN_HEADER)
        return Allow(mark, remove + strip_headers, strip_query, mark)
    if decision.allowed:
        remove = _client_authsvc_headers(headers)
        if decision.key_name is not None:
            remove = tuple(h for h in remove if h != KEY_NAME_HEADER)
            set_headers: tuple[tuple[str, str], ...] = ((KEY_NAME_HEADER, decision.key_name),)
        else:
            set_headers = ()
        name = decision.first_value_of
        if name is not None and name not in strip_headers and name in headers:
            # the upstream gets the first value only, as LiteLLM reads a header sent twice
            first = headers[name].split(",", 1)[0].strip(" \t")
            set_headers = (*set_headers, (name, first))
        return Allow(set_headers, remove + strip_headers, strip_query)
    status = decision.status
    body = json.dumps(
        {
            "error": {
                "message": decision.message,
                "type": _ERROR_TYPE.get(status, "auth_error"),
                "param": decision.credential_location,
                "code": str(status),
                "reason": decision.reason.value,
            }
        },
        separators=(",", ":"),
    )
    out: list[tuple[str, str]] = [
        ("content-type", "application/json"),
        (REASON_HEADER, decision.reason.value),
    ]
    if status == 401:
        error = (
            "invalid_request" if decision.reason is Reason.MISSING_CREDENTIAL else "invalid_token"
        )
        out.append(("www-authenticate", f'Bearer realm="authsvc", error="{error}"'))
    if status == 503:
        out.append(("retry-after", "5"))
    return Deny(status, tuple(out), body)
