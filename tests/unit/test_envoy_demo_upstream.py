"""The LiteLLM-like demo upstream: LiteLLM's key check (pure) and the server (in-process)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.stack._demo import DemoUpstream, MasterKeySource
from authsvc.stack._litellm import check_key, redact_target
from tests.e2e._harness import Response, free_port, http_request

KEY = "sk-demo-master-key-0123456789"


def _check(
    headers: dict[str, str], query: str = "", path: str = "/v1beta/models/g:generateContent"
) -> tuple[bool, str, str | None]:
    result = check_key(headers.get, query, KEY, path)
    return result.ok, result.message, result.location


@pytest.mark.parametrize(
    ("headers", "query", "ok", "location"),
    [
        ({"x-litellm-api-key": KEY}, "", True, "header:x-litellm-api-key"),
        ({"x-litellm-api-key": f"Bearer {KEY}"}, "", True, "header:x-litellm-api-key"),
        ({"authorization": f"Bearer {KEY}"}, "", True, "header:authorization"),
        ({"authorization": f"bearer {KEY}"}, "", True, "header:authorization"),
        ({"authorization": KEY}, "", False, "header:authorization"),  # prefix required
        ({"authorization": f"Basic {KEY}"}, "", True, "header:authorization"),
        ({"authorization": f"BEARER {KEY}"}, "", False, "header:authorization"),
        ({"authorization": f"Bearer  {KEY}"}, "", False, "header:authorization"),  # untrimmed
        (
            {"authorization": f"AWS4-HMAC-SHA256 Credential=Bearer {KEY}/2026/us/s/aws4_request"},
            "",
            True,
            "header:authorization",
        ),
        ({"x-litellm-api-key": f"Basic {KEY}"}, "", True, "header:x-litellm-api-key"),
        ({"api-key": KEY}, "", True, "header:api-key"),
        ({"x-api-key": KEY}, "", True, "header:x-api-key"),
        ({"x-goog-api-key": KEY}, "", True, "header:x-goog-api-key"),
        ({"ocp-apim-subscription-key": KEY}, "", True, "header:ocp-apim-subscription-key"),
        ({}, f"key={KEY}", True, "query:key"),
        ({}, "a=1&key=nope", False, "query:key"),
        ({}, f"key=nope&key={KEY}", True, "query:key"),  # Starlette: the last value
        # first header present decides, in LiteLLM's order
        ({"x-litellm-api-key": "nope", "authorization": f"Bearer {KEY}"}, "", False, None),
        ({"authorization": f"Bearer {KEY}", "x-api-key": "nope"}, "", True, None),
        ({"x-api-key": "nope"}, f"key={KEY}", False, None),
    ],
)
def test_litellm_key_check(
    headers: dict[str, str], query: str, ok: bool, location: str | None
) -> None:
    got_ok, _, got_location = _check(headers, query)
    assert got_ok is ok
    if location is not None:
        assert got_location == location


def test_missing_and_wrong_key_messages_never_echo_the_key() -> None:
    assert _check({}) == (False, "Authentication Error, No api key passed in.", None)
    ok, message, _ = _check({"x-api-key": "sk-guess"})
    assert not ok and "Invalid proxy server token" in message and "sk-guess" not in message


def test_redact_target() -> None:
    assert redact_target("/p?a=1&key=sk-x&b=2").startswith("/p?a=1&key=<redacted fp=")
    assert "sk-x" not in redact_target("/p?key=sk-x")
    assert redact_target("/p") == "/p"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[DemoUpstream, Path, Path]]:
    key_file, log = tmp_path / "key", tmp_path / "requests.jsonl"
    key_file.write_text(KEY + "\n")
    demo = DemoUpstream(f"127.0.0.1:{free_port()}", MasterKeySource(path=key_file), log).start()
    try:
        yield demo, key_file, log
    finally:
        demo.close()


def _get(demo: DemoUpstream, path: str, headers: dict[str, str] | None = None) -> Response:
    return http_request(demo.port, "GET", path, headers)


@pytest.mark.parametrize("path", ["/health/liveliness", "/health/liveness", "/health/readiness"])
def test_probe_paths_are_public(server: tuple[DemoUpstream, Path, Path], path: str) -> None:
    assert _get(server[0], path).status == 200
    assert http_request(server[0].port, "POST", path).status == 405


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/anything"])
def test_protected_paths_401_like_litellm(
    server: tuple[DemoUpstream, Path, Path], path: str
) -> None:
    r = _get(server[0], path)
    assert r.status == 401 and r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["error"] == {
        "message": "Authentication Error, No api key passed in.",
        "type": "auth_error",
        "param": "None",
        "code": "401",
    }


def test_key_opens_routes_and_echo_is_redacted(server: tuple[DemoUpstream, Path, Path]) -> None:
    demo, _, log = server
    r = _get(demo, "/v1/models", {"authorization": f"Bearer {KEY}", "x-authsvc-key-name": "m"})
    assert r.status == 200 and r.json()["data"][0]["id"] == "demo-model"
    assert r.echo["headers"]["x-authsvc-key-name"] == ["m"]
    assert r.echo["headers"]["authorization"][0].startswith("<redacted fp=")
    assert _get(demo, "/health", {"x-api-key": KEY}).json()["healthy_count"] == 1
    chat = http_request(demo.port, "POST", "/v1/chat/completions", {"x-api-key": KEY}, b"{}")
    assert chat.status == 200 and chat.json()["object"] == "chat.completion"
    assert _get(demo, f"/v1/models?key={KEY}").status == 401  # ?key= only on generateContent
    text = log.read_text()
    assert KEY not in text and KEY not in r.body.decode()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["authorized"] for e in entries] == [True, True, True, False]


def test_key_file_is_reread_when_it_changes(server: tuple[DemoUpstream, Path, Path]) -> None:
    demo, key_file, _ = server
    assert _get(demo, "/v1/models", {"x-api-key": KEY}).status == 200
    new = KEY + "-rotated"
    tmp = key_file.with_suffix(".new")
    tmp.write_text(new)
    os.replace(tmp, key_file)  # atomic swap, like kubelet
    assert _get(demo, "/v1/models", {"x-api-key": KEY}).status == 401
    assert _get(demo, "/v1/models", {"x-api-key": new}).status == 200


def test_no_master_key_is_503(server: tuple[DemoUpstream, Path, Path]) -> None:
    demo, key_file, _ = server
    key_file.unlink()
    r = _get(demo, "/v1/models", {"x-api-key": KEY})
    assert r.status == 503 and r.json()["error"]["code"] == "503"
    assert _get(demo, "/health/liveliness").status == 200


def test_key_query_only_on_generate_content_and_websocket_rule() -> None:
    assert check_key({}.get, f"key={KEY}", KEY, "/v1/models").ok is False
    assert check_key({}.get, f"key={KEY}", KEY, "/v1beta/models/g:streamGenerateContent").ok
    ws = {"sec-websocket-protocol": f"realtime, openai-insecure-api-key.{KEY}"}
    assert check_key(ws.get, "", KEY, "/v1/realtime", websocket=True).ok
    assert not check_key(ws.get, "", KEY, "/v1/realtime", websocket=False).ok
    basic = {"authorization": f"Basic {KEY}"}
    assert not check_key(basic.get, "", KEY, "/v1/realtime", websocket=True).ok


def test_unknown_key_headers_are_redacted_too() -> None:
    from authsvc.stack._litellm import redact_headers

    out = redact_headers(
        [("X-Team-Key", f"Bearer {KEY}"), ("x-custom", f"Basic {KEY}"), ("x-authsvc-key-name", "m")]
    )
    assert KEY not in str(out) and out["x-authsvc-key-name"] == ["m"]


def test_the_cookie_header_is_redacted() -> None:
    """LiteLLM's Admin UI session cookie (``token``) carries a key: the demo never logs it."""
    from authsvc.stack._litellm import redact_headers

    out = redact_headers([("Cookie", f"theme=dark; token={KEY}"), ("accept", "text/html")])
    assert KEY not in str(out) and out["accept"] == ["text/html"]
    assert out["cookie"] != [f"theme=dark; token={KEY}"]
