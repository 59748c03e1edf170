"""Send one request three ways: raw HTTP/1.1 (to LiteLLM or to Envoy, byte for byte, headers
repeated and cased as the table says), and as an ext_authz v3 ``Check`` to authsvc, built the
way Envoy builds it (lower-cased names, repeated headers joined with ``,``, the raw path with
its query, pseudo-headers included).
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import grpc

from parity._table import Request

HOST = "127.0.0.1"
MAX_RESPONSE = 256 * 1024  # enough to classify; the rest is not read
CHECK = "/envoy.service.auth.v3.Authorization/Check"


@dataclass(frozen=True)
class HttpAnswer:
    status: int  # 0: no HTTP answer (connection refused / closed)
    headers: dict[str, str]  # lower-cased names, repeated ones joined with ","
    body: bytes
    error: str = ""

    def json_error(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` object of a JSON body (LiteLLM's and authsvc's), or {}."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        error = data.get("error") if isinstance(data, dict) else None
        return error if isinstance(error, dict) else {}


@dataclass(frozen=True)
class CheckAnswer:
    allowed: bool | None  # None: the RPC failed
    status: int  # the denied HTTP status (0 when allowed or failed)
    reason: str  # authsvc's reason code, or the RPC error's code


def _request_bytes(req: Request, port: int) -> bytes:
    lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if req.websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13"]
        lines.append(f"Sec-WebSocket-Key: {key}")
    else:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in req.headers]
    if req.body is not None:
        lines += [f"Content-Type: {req.content_type}", f"Content-Length: {len(req.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (req.body or b"")


def _parse(received: bytes) -> HttpAnswer:
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return HttpAnswer(0, {}, received[:200], "no HTTP status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        low = name.strip().lower()
        headers[low] = f"{headers[low]},{value.strip()}" if low in headers else value.strip()
    return HttpAnswer(int(parts[1]), headers, body)


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head[9:12] in (b"101", b"204", b"304"):
        return True  # an accepted websocket: its frames are not ours to read
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False  # chunked or close-delimited: read until the peer closes


def send_http(req: Request, port: int, timeout: float = 20.0) -> HttpAnswer:
    """Send ``req`` to ``127.0.0.1:port`` and read the answer (at most ``MAX_RESPONSE``)."""
    received = b""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_request_bytes(req, port))
            while not _complete(received) and len(received) < MAX_RESPONSE:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    except ConnectionRefusedError:
        return HttpAnswer(0, {}, b"", "connection refused")
    except (TimeoutError, ConnectionResetError) as exc:
        if not received:
            return HttpAnswer(0, {}, b"", type(exc).__name__)
    return _parse(received)


# --- ext_authz Check ----------------------------------------------------------------------------


def check_request(req: Request, port: int) -> Any:
    """The CheckRequest Envoy would send for ``req`` (all headers: no allowed_headers filter)."""
    from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2

    headers: dict[str, str] = {
        ":authority": f"{HOST}:{port}",
        ":method": req.method,
        ":path": req.path,
        ":scheme": "http",
    }
    sent = list(req.headers)
    if req.websocket:
        sent += [("connection", "Upgrade"), ("upgrade", "websocket")]
    if req.body is not None:
        sent += [("content-type", req.content_type), ("content-length", str(len(req.body)))]
    for name, value in sent:
        low = name.lower()
        headers[low] = f"{headers[low]},{value}" if low in headers else value
    out = external_auth_pb2.CheckRequest()
    http = out.attributes.request.http
    http.id = "parity"
    http.method = req.method
    http.path = req.path
    http.host = f"{HOST}:{port}"
    http.scheme = "http"
    http.protocol = "HTTP/1.1"
    http.headers.update(headers)
    out.attributes.source.address.socket_address.address = HOST
    out.attributes.source.address.socket_address.port_value = 40000
    return out


def send_check(
    req: Request, authz_port: int, envoy_port: int, timeout: float = 10.0
) -> CheckAnswer:
    from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2

    with grpc.insecure_channel(f"{HOST}:{authz_port}") as channel:
        call = channel.unary_unary(
            CHECK,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=external_auth_pb2.CheckResponse.FromString,
        )
        try:
            resp = call(check_request(req, envoy_port), timeout=timeout)
        except grpc.RpcError as exc:
            return CheckAnswer(None, 0, f"rpc {exc.code().name}")
    if resp.status.code == 0:
        return CheckAnswer(True, 0, "")
    status = int(resp.denied_response.status.code) if resp.HasField("denied_response") else 403
    reason = ""
    try:
        error = json.loads(resp.denied_response.body).get("error", {})
        reason = str(error.get("reason", "")) if isinstance(error, dict) else ""
    except (ValueError, AttributeError):
        pass
    return CheckAnswer(False, status, reason)
