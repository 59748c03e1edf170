"""The outbound HTTP adapter, against real local servers; also home of ``LocalApp``, the small
real HTTP server the other health tests use as "the app" (and as a stand-in Envoy)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from authsvc.health._http import HttpAnswer, HttpFailure, Target, http_get, parse_url

Reply = tuple[int, Mapping[str, str], bytes]
Responder = Callable[[str, Mapping[str, str]], Reply]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class LocalApp:
    """A real HTTP server on 127.0.0.1; ``responder(path, headers)`` decides each answer."""

    responder: Responder
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def local_app(responder: Responder) -> Iterator[LocalApp]:
    app = LocalApp(responder)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            app.seen.append(Seen(self.path, headers))
            if app.delay:
                time.sleep(app.delay)
            status, out_headers, body = app.responder(self.path, headers)
            self.send_response(status)
            for name, value in out_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that time out on purpose hang up mid-answer

    server = Server(("127.0.0.1", 0), Handler)
    app.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fixed(status: int, body: bytes = b"", **headers: str) -> Responder:
    return lambda _path, _headers: (
        status,
        {k.replace("_", "-"): v for k, v in headers.items()},
        body,
    )


# ------------------------------------------------------------------------------------ tests


def test_parse_url_joins_base_and_path() -> None:
    assert parse_url("http://127.0.0.1:10000", "/health") == Target(
        "http", "127.0.0.1", 10000, "/health"
    )
    assert parse_url("https://h.example/base/", "/x") == Target(
        "https", "h.example", 443, "/base/x"
    )
    assert parse_url("http://[::1]:8080") == Target("http", "::1", 8080, "/")
    assert str(parse_url("http://[::1]:8080", "/a")) == "http://[::1]:8080/a"


@pytest.mark.parametrize(
    "url",
    ["ftp://h/", "http://", "http://u:p@h/", "http://h/?q=1", "http://h:99999/", "127.0.0.1:10000"],
)
def test_parse_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        parse_url(url)


def test_get_returns_status_headers_and_bounded_body() -> None:
    with local_app(fixed(207, b"x" * 10_000, x_thing="1")) as app:
        answer = http_get(parse_url(app.url, "/p?q=1"), {"Authorization": "Bearer k"}, timeout=2)
    assert isinstance(answer, HttpAnswer)
    assert answer.status == 207 and answer.headers["x-thing"] == "1"
    assert len(answer.body) == 4096
    assert app.seen[0].path == "/p?q=1" and app.seen[0].headers["authorization"] == "Bearer k"


def test_closed_port_is_a_failure_not_an_exception() -> None:
    port = closed_port()
    answer = http_get(Target("http", "127.0.0.1", port, "/"), timeout=1)
    assert answer == HttpFailure(f"connection refused by 127.0.0.1:{port}")


def test_timeout_is_a_failure_naming_the_timeout() -> None:
    with local_app(fixed(200)) as app:
        app.delay = 1.0
        started = time.monotonic()
        answer = http_get(parse_url(app.url, "/"), timeout=0.2)
    assert isinstance(answer, HttpFailure) and "timed out after 0.2s" in answer.reason
    assert time.monotonic() - started < 0.9


def test_header_injection_is_refused_without_echoing_the_value() -> None:
    with local_app(fixed(200)) as app:
        answer = http_get(parse_url(app.url, "/"), {"x-api-key": "sk-secret\r\nx: y"}, timeout=1)
    assert isinstance(answer, HttpFailure) and "sk-secret" not in answer.reason
    assert not app.seen


def test_garbage_response_is_a_failure() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

        thread = threading.Thread(target=serve)
        thread.start()
        answer = http_get(Target("http", "127.0.0.1", port, "/"), timeout=2)
        thread.join(5)
    assert isinstance(answer, HttpFailure) and "invalid HTTP response" in answer.reason
