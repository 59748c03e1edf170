"""Check through a real grpc.aio server, over TCP and a Unix socket, as Envoy calls it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import grpc
import pytest
from google.rpc import code_pb2

from authsvc._proto.envoy.config.core.v3.base_pb2 import HeaderValueOption
from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import Decision, Reason, RequestView
from authsvc.keys import KeyRing, KeyStore
from tests.server.conftest import CHECK, MASTER, Running, check, master_ring, request

OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def deny_parts(resp: ext.CheckResponse) -> tuple[int, int, dict[str, str], dict[str, object]]:
    assert resp.WhichOneof("http_response") == "denied_response"
    denied = resp.denied_response
    assert all(h.append_action == OVERWRITE for h in denied.headers)
    headers = {h.header.key: h.header.value for h in denied.headers}
    return resp.status.code, denied.status.code, headers, json.loads(denied.body)["error"]


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_missing_key_is_a_successful_rpc_carrying_a_401(server: Running, transport: str) -> None:
    resp = check(getattr(server, transport), request())
    code, http, headers, error = deny_parts(resp)
    assert code == code_pb2.UNAUTHENTICATED
    assert http == 401  # set explicitly: Envoy would answer 403 otherwise
    assert headers["www-authenticate"].startswith("Bearer ")
    assert headers["content-type"] == "application/json"
    assert error["type"] == "auth_error" and error["code"] == "401"
    assert error["reason"] == "missing_credential"


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_valid_key_allows_sets_key_name_and_strips_client_authsvc_headers(
    server: Running, transport: str
) -> None:
    headers = {
        "authorization": f"Bearer {MASTER}",
        "x-authsvc-key-name": "admin",  # spoofed: overwritten
        "x-authsvc-role": "root",  # spoofed: removed
    }
    resp = check(getattr(server, transport), request(headers=headers))
    assert resp.status.code == code_pb2.OK
    assert resp.WhichOneof("http_response") == "ok_response"
    ok = resp.ok_response
    assert [(h.header.key, h.header.value, h.append_action) for h in ok.headers] == [
        ("x-authsvc-key-name", "master", OVERWRITE)
    ]
    assert list(ok.headers_to_remove) == ["x-authsvc-role"]


def test_wrong_key_401_and_no_master_key_503(start_server: Callable[..., Running]) -> None:
    srv = start_server()
    resp = check(srv.tcp, request(headers={"x-api-key": "sk-wrong-0123456789abcdef"}))
    assert deny_parts(resp)[:2] == (code_pb2.UNAUTHENTICATED, 401)
    srv.store.swap(KeyRing(unready_reason="no source set a master key"))
    code, http, headers, error = deny_parts(check(srv.tcp, request(headers={"x-api-key": MASTER})))
    assert (code, http) == (code_pb2.UNAVAILABLE, 503)
    assert headers["retry-after"] == "5"
    assert "no source set a master key" in str(error["message"])
    assert MASTER not in json.dumps(error)


def test_public_probe_path_allowed_without_key(server: Running) -> None:
    resp = check(server.tcp, request(path="/health/liveliness"))
    assert resp.status.code == code_pb2.OK and resp.WhichOneof("http_response") == "ok_response"


def test_strip_headers_removes_credentials_before_upstream(
    start_server: Callable[..., Running],
) -> None:
    srv = start_server(strip_headers=("Authorization",))
    resp = check(srv.tcp, request(headers={"authorization": f"Bearer {MASTER}"}))
    assert resp.status.code == code_pb2.OK
    assert list(resp.ok_response.headers_to_remove) == ["authorization"]


def test_raw_header_map_is_used_when_envoy_encodes_raw_headers(server: Running) -> None:
    req = request()
    entries = req.attributes.request.http.header_map.headers
    entries.add(key=":path", raw_value=b"/v1/models")
    entries.add(key="X-Api-Key", raw_value=MASTER.encode())
    entries.add(key="x-authsvc-key-name", raw_value=b"spoof")
    resp = check(server.tcp, req)
    assert resp.status.code == code_pb2.OK
    assert resp.ok_response.headers[0].header.value == "master"


def test_raw_header_map_repeated_header_first_value_decides(server: Running) -> None:
    # LiteLLM reads the first value of a header sent twice (Starlette's headers.get)
    req = request()
    entries = req.attributes.request.http.header_map.headers
    entries.add(key="x-api-key", raw_value=MASTER.encode())
    entries.add(key="x-api-key", raw_value=b"sk-other-0123456789abcdef")
    assert check(server.tcp, req).WhichOneof("http_response") == "ok_response"
    req = request()
    entries = req.attributes.request.http.header_map.headers
    entries.add(key="x-api-key", raw_value=b"sk-other-0123456789abcdef")
    entries.add(key="x-api-key", raw_value=MASTER.encode())
    code, http, _, error = deny_parts(check(server.tcp, req))
    assert (code, http) == (code_pb2.UNAUTHENTICATED, 401)
    assert error["reason"] == "unknown_key"


def test_raw_header_map_non_ascii_bytes_never_match(server: Running) -> None:
    req = request()
    req.attributes.request.http.header_map.headers.add(
        key="x-api-key", raw_value=MASTER.encode() + b"\xff"
    )
    _, http, _, error = deny_parts(check(server.tcp, req))
    assert http == 401 and error["reason"] == "malformed_credential"


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x08"])
def test_unparseable_bytes_get_a_well_formed_400_deny(server: Running, garbage: bytes) -> None:
    with grpc.insecure_channel(server.tcp) as ch:
        raw = ch.unary_unary(CHECK)  # no serializer: raw bytes in, raw bytes out
        answer = raw(garbage, timeout=10)
    resp = ext.CheckResponse.FromString(answer)
    code, http, headers, error = deny_parts(resp)
    assert (code, http) == (code_pb2.INVALID_ARGUMENT, 400)
    assert error["reason"] == "malformed_request"
    assert headers["x-authsvc-reason"] == "malformed_request"


def test_empty_request_is_denied_not_allowed(server: Running) -> None:
    # An empty message parses (all defaults): no path → malformed_request, a deny.
    _, http, _, error = deny_parts(check(server.tcp, ext.CheckRequest()))
    assert http == 400 and error["reason"] == "malformed_request"


class ExplodingRing(KeyRing):
    """A ring whose lookup fails, to drive the server's unexpected-exception path."""

    def lookup(self, key_digest: bytes) -> None:
        raise RuntimeError(f"boom while looking up {MASTER}")


def test_unexpected_exception_is_a_500_deny_logged_without_key_material(
    start_server: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    srv = start_server(store=KeyStore(ExplodingRing(master=master_ring().master)))
    with caplog.at_level(logging.ERROR, logger="authsvc.server"):
        code, http, _, error = deny_parts(check(srv.tcp, request(headers={"x-api-key": MASTER})))
    assert (code, http) == (code_pb2.INTERNAL, 500)
    assert error["reason"] == "internal_error"
    assert "RuntimeError" in caplog.text
    assert MASTER not in caplog.text


def test_on_decision_sees_every_check_and_cannot_change_answers(
    start_server: Callable[..., Running],
) -> None:
    seen: list[tuple[RequestView, Decision, float]] = []
    lock = threading.Lock()

    def observe(view: RequestView, decision: Decision, seconds: float) -> None:
        with lock:
            seen.append((view, decision, seconds))
        raise ValueError("observer bug")

    srv = start_server(on_decision=observe)
    assert check(srv.tcp, request(headers={"x-api-key": MASTER})).status.code == code_pb2.OK
    with grpc.insecure_channel(srv.tcp) as ch:
        ch.unary_unary(CHECK)(b"\xff", timeout=10)
    assert [d.reason for _, d, _ in seen] == [Reason.KEY_VALID, Reason.MALFORMED_REQUEST]
    view, decision, seconds = seen[0]
    assert (view.method, view.target, view.request_id) == ("GET", "/v1/models", "req-1")
    assert view.source == "10.0.0.7:51234"
    assert decision.key_name == "master"
    assert 0 <= seconds < 5
