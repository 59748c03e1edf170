"""The one module that converts between protobuf and our own types.

``CheckRequest`` → ``RequestView`` on the way in, ``Allow | Deny`` → ``CheckResponse`` on the
way out. Nothing else in authsvc reads the fields of a ``CheckRequest`` or fills a
``CheckResponse``: ``_check`` only parses the request bytes (``CheckRequest.FromString``) and
serialises what ``response_from`` built, and ``bench`` reuses ``response_from``.

Headers. Envoy sends them one of two ways:

- ``attributes.request.http.headers`` (the default): a map with lower-cased names, repeated
  headers joined with ``,``, and non-UTF-8 bytes already replaced by ``!`` by Envoy.
- ``attributes.request.http.header_map`` (filter option ``encode_raw_headers: true``): one
  entry per header line with the value as raw bytes in ``raw_value``. We lower-case names and
  join repeated names with ``,`` so the decision sees the same shape as in the map case, and
  keep each name's first value apart (``first_values``): LiteLLM reads the first one.

Raw values are decoded as **latin-1** (ISO-8859-1), not UTF-8 with replacement: latin-1 maps
every byte to exactly one character, so decoding never fails, never merges two different byte
strings into the same text (replacement turns every invalid sequence into U+FFFD), and keeps
what the client sent visible. Any byte ≥ 0x80 becomes a non-ASCII character, which the
credential rules refuse — so odd bytes can only ever deny, never match a key.

Denials are **successful RPCs** carrying a non-OK ``google.rpc.Status`` *and* an explicit
``denied_response.status``: Envoy does not turn UNAUTHENTICATED into 401 by itself (it answers
403 when the HTTP status is missing), and an aborted RPC would take Envoy's error path, which
``failure_mode_allow`` may turn into an allow.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.rpc import code_pb2

from authsvc._proto.envoy.config.core.v3.address_pb2 import Address
from authsvc._proto.envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from authsvc._proto.envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from authsvc.authz import Allow, Deny, RequestView

__all__ = ["GRPC_CODE_FOR_HTTP", "address_text", "response_from", "view_from_request"]

GRPC_CODE_FOR_HTTP: dict[int, int] = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}
"""google.rpc.Code for a denial's HTTP status (any other status: PERMISSION_DENIED)."""

_OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def _raw_headers(entries: Iterable[HeaderValue]) -> tuple[dict[str, str], dict[str, str]]:
    """``(joined, first)``: repeats joined with ``,``, and each name's first value."""
    headers: dict[str, str] = {}
    first: dict[str, str] = {}
    for entry in entries:
        name = entry.key.lower()
        raw = entry.raw_value
        value = raw.decode("latin-1") if raw else entry.value
        previous = headers.get(name)
        if previous is None:
            headers[name] = first[name] = value
        else:
            headers[name] = f"{previous},{value}"
    return headers, first


def address_text(address: Address) -> str:
    """``ip:port``, ``[v6]:port``, ``unix:/path`` or ``internal:listener``; "" when unset."""
    kind = address.WhichOneof("address")
    if kind == "socket_address":
        sock = address.socket_address
        host = f"[{sock.address}]" if ":" in sock.address else sock.address
        port = (
            sock.named_port
            if sock.WhichOneof("port_specifier") == "named_port"
            else sock.port_value
        )
        return f"{host}:{port}"
    if kind == "pipe":
        return f"unix:{address.pipe.path}"
    if kind == "envoy_internal_address":
        return f"internal:{address.envoy_internal_address.server_listener_name}"
    return ""


def view_from_request(req: CheckRequest) -> RequestView:
    """The request as the decision sees it. Never raises for any parsed ``CheckRequest``."""
    attributes = req.attributes
    http = attributes.request.http
    raw = http.header_map.headers
    first: dict[str, str] | None = None
    if raw:
        headers, first = _raw_headers(raw)
    else:
        headers = dict(http.headers)
    return RequestView(
        method=http.method,
        target=http.path,
        headers=headers,
        first_values=first,
        request_id=http.id,
        source=address_text(attributes.source.address),
    )


def _options(headers: Iterable[tuple[str, str]]) -> list[HeaderValueOption]:
    return [
        HeaderValueOption(header=HeaderValue(key=name, value=value), append_action=_OVERWRITE)
        for name, value in headers
    ]


def response_from(out: Allow | Deny) -> CheckResponse:
    """The ``CheckResponse`` for an allow (status OK) or a deny (non-OK, explicit HTTP status)."""
    resp = CheckResponse()
    if isinstance(out, Allow):
        resp.status.code = code_pb2.OK
        ok = resp.ok_response
        ok.SetInParent()
        ok.headers.extend(_options(out.set_headers))
        ok.headers_to_remove.extend(out.remove_headers)
        ok.query_parameters_to_remove.extend(out.remove_query)
        ok.response_headers_to_add.extend(_options(out.response_headers))
        return resp
    resp.status.code = GRPC_CODE_FOR_HTTP.get(out.status, code_pb2.PERMISSION_DENIED)
    denied = resp.denied_response
    # type.v3.StatusCode is an open enum: its values are the HTTP codes themselves
    denied.status.code = out.status  # type: ignore[assignment]
    denied.headers.extend(_options(out.headers))
    denied.body = out.body
    return resp
