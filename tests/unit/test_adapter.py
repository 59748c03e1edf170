"""protobuf ↔ our types, both directions, on real generated messages."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2

from authsvc._proto.envoy.config.core.v3.address_pb2 import Address
from authsvc._proto.envoy.config.core.v3.base_pb2 import HeaderValueOption
from authsvc._proto.envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from authsvc.authz import Allow, Deny
from authsvc.server._adapter import address_text, response_from, view_from_request

OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def test_view_from_header_map_field() -> None:
    req = CheckRequest()
    http = req.attributes.request.http
    http.method, http.path, http.id = "POST", "/v1/chat/completions?key=a%2Fb", "rid-9"
    http.headers["authorization"] = "Bearer x"
    http.headers["x-api-key"] = "a,b"
    view = view_from_request(req)
    assert (view.method, view.target, view.request_id) == (
        "POST",
        "/v1/chat/completions?key=a%2Fb",
        "rid-9",
    )
    assert dict(view.headers) == {"authorization": "Bearer x", "x-api-key": "a,b"}
    assert type(view.headers) is dict  # a copy, not a live protobuf map


def test_view_from_raw_header_map_lowercases_joins_and_decodes_latin1() -> None:
    req = CheckRequest()
    http = req.attributes.request.http
    http.headers["ignored"] = "map is not used when header_map is present"
    entries = http.header_map.headers
    entries.add(key="X-Api-Key", raw_value=b"one")
    entries.add(key="x-api-key", raw_value=b"two")
    entries.add(key="X-Odd", raw_value=b"caf\xe9\xff")
    entries.add(key="x-text", value="plain")  # value instead of raw_value: still read
    headers = view_from_request(req).headers
    assert dict(headers) == {
        "x-api-key": "one,two",
        "x-odd": "caf\u00e9\u00ff",  # one character per byte, nothing lost or merged
        "x-text": "plain",
    }


def test_view_carries_the_source_address() -> None:
    req = CheckRequest()
    sock = req.attributes.source.address.socket_address
    sock.address, sock.port_value = "192.0.2.7", 51234
    assert view_from_request(req).source == "192.0.2.7:51234"


def test_view_of_an_empty_request_is_empty_not_an_error() -> None:
    view = view_from_request(CheckRequest())
    assert (view.method, view.target, dict(view.headers), view.source) == ("", "", {}, "")


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (lambda a: (setattr(a.socket_address, "address", "10.1.2.3"),
                    setattr(a.socket_address, "port_value", 443)), "10.1.2.3:443"),
        (lambda a: (setattr(a.socket_address, "address", "fd00::1"),
                    setattr(a.socket_address, "port_value", 80)), "[fd00::1]:80"),
        (lambda a: (setattr(a.socket_address, "address", "10.1.2.3"),
                    setattr(a.socket_address, "named_port", "https")), "10.1.2.3:https"),
        (lambda a: setattr(a.pipe, "path", "/run/envoy.sock"), "unix:/run/envoy.sock"),
        (lambda a: setattr(a.envoy_internal_address, "server_listener_name", "l1"), "internal:l1"),
        (lambda a: None, ""),
    ],
)  # fmt: skip
def test_address_text(build: object, text: str) -> None:
    address = Address()
    build(address)  # type: ignore[operator]
    assert address_text(address) == text


def test_allow_response() -> None:
    resp = response_from(
        Allow((("x-authsvc-key-name", "master"),), ("x-authsvc-role", "authorization"))
    )
    assert resp.HasField("status") and resp.status.code == code_pb2.OK
    assert resp.WhichOneof("http_response") == "ok_response"
    (option,) = resp.ok_response.headers
    assert (option.header.key, option.header.value, option.append_action) == (
        "x-authsvc-key-name",
        "master",
        OVERWRITE,
    )
    assert not option.header.raw_value  # Envoy reads `value` for mutations
    assert list(resp.ok_response.headers_to_remove) == ["x-authsvc-role", "authorization"]


def test_allow_without_mutations_still_says_ok_response() -> None:
    resp = CheckResponse.FromString(response_from(Allow((), ())).SerializeToString())
    assert resp.status.code == code_pb2.OK
    assert resp.WhichOneof("http_response") == "ok_response"


@pytest.mark.parametrize(
    ("http", "grpc_code"),
    [
        (401, code_pb2.UNAUTHENTICATED),
        (403, code_pb2.PERMISSION_DENIED),
        (503, code_pb2.UNAVAILABLE),
        (400, code_pb2.INVALID_ARGUMENT),
        (500, code_pb2.INTERNAL),
        (429, code_pb2.PERMISSION_DENIED),  # anything else: still a deny
    ],
)
def test_deny_response_sets_rpc_code_and_explicit_http_status(http: int, grpc_code: int) -> None:
    out = Deny(http, (("content-type", "application/json"), ("www-authenticate", "Bearer")), "{}")
    resp = CheckResponse.FromString(response_from(out).SerializeToString())
    assert resp.status.code == grpc_code != code_pb2.OK
    assert resp.WhichOneof("http_response") == "denied_response"
    assert resp.denied_response.status.code == http
    assert [
        (h.header.key, h.header.value, h.append_action) for h in resp.denied_response.headers
    ] == [
        ("content-type", "application/json", OVERWRITE),
        ("www-authenticate", "Bearer", OVERWRITE),
    ]
    assert resp.denied_response.body == "{}"
