"""What a real Envoy sends to the authorizer with the generated bootstrap: the credential headers,
nothing else (``allowed_headers``).

A recording ext_authz server (grpcio, in this process; it allows everything) stands where
authsvc would, behind a real Envoy built by ``build_bootstrap``. Requests carry cookies, a
user agent, an unknown header and every credential header; the CheckRequests Envoy built must
hold exactly the credential headers that were sent (repeated ones too, for the
"repeated with different values" check) and still the method, path with query (``?key=``),
host and request id, which are fields of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.envoy import DEFAULT_CREDENTIAL_HEADERS
from tests.e2e._harness import HOST, Launcher, free_port, new_key, raw_request

SERVICE = "envoy.service.auth.v3.Authorization"


@dataclass
class Recorder:
    address: str
    requests: list[ext.CheckRequest]
    lock: threading.Lock


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder(f"{HOST}:{free_port()}", [], threading.Lock())

    def check(raw: bytes, _ctx: grpc.ServicerContext) -> bytes:
        with rec.lock:
            rec.requests.append(ext.CheckRequest.FromString(raw))
        return ext.CheckResponse().SerializeToString()  # status code 0: allowed

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(rec.address)
    server.start()
    try:
        yield rec
    finally:
        server.stop(None)


def _sent_to_authorizer(rec: Recorder) -> ext.CheckRequest:
    with rec.lock:
        assert len(rec.requests) == 1, f"{len(rec.requests)} checks for one request"
        return rec.requests.pop()


def _header_names(req: ext.CheckRequest) -> list[str]:
    http = req.attributes.request.http
    return [h.key for h in http.header_map.headers] + list(http.headers)


def test_only_credential_headers_reach_the_authorizer(procs: Launcher, recorder: Recorder) -> None:
    key = new_key("allowed-headers")
    demo = procs.demo(key)
    envoy = procs.envoy([recorder.address], demo.port)
    credentials = "".join(f"{h}: Bearer {key}\r\n" for h in DEFAULT_CREDENTIAL_HEADERS)
    request = (
        f"GET /v1/models?key=x&a=b HTTP/1.1\r\nHost: example.test\r\n"
        "Cookie: session=abc\r\nUser-Agent: curl/8\r\nX-Something-Else: 1\r\n"
        f"{credentials}X-Api-Key: second\r\n\r\n"
    )
    assert raw_request(envoy.port, request.encode()).reached_upstream  # the recorder allowed it

    req = _sent_to_authorizer(recorder)
    http = req.attributes.request.http
    names = _header_names(req)
    assert sorted(set(names)) == sorted(DEFAULT_CREDENTIAL_HEADERS), names
    assert names.count("x-api-key") == 2  # a repeated credential header arrives repeated
    assert (http.method, http.path, http.host) == ("GET", "/v1/models?key=x&a=b", "example.test")
    assert http.id  # the request id (decision logs) is a field, not a header


def test_custom_credential_headers_are_the_ones_sent(procs: Launcher, recorder: Recorder) -> None:
    demo = procs.demo(new_key("allowed-headers-custom"))
    envoy = procs.envoy([recorder.address], demo.port, credential_headers=("x-team-key",))
    request = (
        b"GET /v1/models HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\nX-Team-Key: t\r\n\r\n"
    )
    raw_request(envoy.port, request)
    assert _header_names(_sent_to_authorizer(recorder)) == ["x-team-key"]


def test_without_header_credentials_every_header_is_sent(
    procs: Launcher, recorder: Recorder
) -> None:
    demo = procs.demo(new_key("allowed-headers-none"))
    envoy = procs.envoy([recorder.address], demo.port, credential_headers=())
    raw_request(envoy.port, b"GET /v1/models?key=k HTTP/1.1\r\nHost: h\r\nCookie: c=1\r\n\r\n")
    names = _header_names(_sent_to_authorizer(recorder))
    assert "cookie" in names and ":path" in names  # Envoy's default: everything
