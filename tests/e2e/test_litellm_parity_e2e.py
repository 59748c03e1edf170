"""Issue #13 through the real Envoy: credential formats, keyless routes and websockets as
LiteLLM 1.110.2 has them (the demo upstream re-checks each request with LiteLLM's rule).

Every "accepted" row must reach the upstream *authorized*; every refused row must not reach it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.envoy._cli import policy_options
from tests.e2e._harness import Launcher, Stack, new_key

SIGV4 = "AWS4-HMAC-SHA256 Credential=Bearer {key}/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc"


def _raw(target: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: app.example", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _upgrade(*headers: str, target: str = "/v1/realtime?model=gpt-4o-realtime") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return _raw(
        target,
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
        *headers,
    )


@pytest.fixture(scope="module")
def shared(module_procs: Launcher) -> Iterator[Stack]:
    stack = module_procs.stack("tcp")
    yield stack
    assert stack.demo.unauthorized() == [] or all(
        e["public"] or e["status"] != 200 for e in stack.demo.unauthorized()
    )


@pytest.mark.parametrize(
    ("header", "template"),
    [
        ("authorization", "Basic {key}"),
        ("authorization", SIGV4),
        ("x-litellm-api-key", "Basic {key}"),
        ("ocp-apim-subscription-key", "{key}"),
    ],
)
def test_litellm_credential_formats_reach_the_app(
    shared: Stack, header: str, template: str
) -> None:
    assert shared.key is not None
    r = shared.get("/v1/models", {header: template.format(key=shared.key)})
    assert r.status == 200 and r.echo["authorized"] is True, r.body[:300]


@pytest.mark.parametrize(
    "template", ["BEARER {key}", "Bearer  {key}", "Token {key}", "Bearer {key}\xa0"]
)
def test_forms_litellm_refuses_are_refused(shared: Stack, template: str) -> None:
    assert shared.key is not None
    r = shared.raw(_raw("/v1/models", "Authorization: " + template.format(key=shared.key)))
    assert r.status == 401 and not r.reached_upstream


def test_repeated_header_first_value_decides(shared: Stack) -> None:
    assert shared.key is not None
    right = shared.raw(_raw("/v1/models", f"x-api-key: {shared.key}", "x-api-key: sk-other"))
    assert right.status == 200 and right.echo["authorized"] is True
    wrong = shared.raw(_raw("/v1/models", "x-api-key: sk-other", f"x-api-key: {shared.key}"))
    assert wrong.status == 401 and not wrong.reached_upstream
    # Envoy joins a repeated Authorization into one value ("Bearer K,Bearer X"): the first
    # value decides at authsvc, and authsvc passes only that value on to the app
    twice = shared.raw(
        _raw("/v1/models", f"Authorization: Bearer {shared.key}", "Authorization: Bearer sk-x")
    )
    assert twice.reached_upstream and twice.echo["authorized"] is True  # app got the first


def test_query_key_only_on_generate_content(shared: Stack) -> None:
    assert shared.key is not None
    ok = shared.raw(_raw(f"/v1beta/models/gemini:generateContent?key={shared.key}", method="POST"))
    assert ok.reached_upstream and ok.echo["authorized"] is True
    elsewhere = shared.get(f"/v1/models?key={shared.key}")
    assert elsewhere.status == 401 and elsewhere.deny_reason == "missing_credential"


def test_websocket_upgrade_with_key_reaches_the_app(shared: Stack) -> None:
    assert shared.key is not None
    before = len(shared.demo.requests())
    r = shared.raw(
        _upgrade(f"Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.{shared.key}")
    )
    assert r.status == 101, r.body[:300]
    arrived = shared.demo.requests()[before:]
    assert [(e["status"], e["authorized"]) for e in arrived] == [(101, True)]
    bearer = shared.raw(_upgrade(f"Authorization: Bearer {shared.key}"))
    assert bearer.status == 101


def test_websocket_upgrade_without_key_is_401(shared: Stack) -> None:
    before = len(shared.demo.requests())
    r = shared.raw(_upgrade("Sec-WebSocket-Protocol: realtime"))
    assert r.status == 401 and r.deny_reason == "missing_credential"
    wrong = shared.raw(_upgrade("Sec-WebSocket-Protocol: openai-insecure-api-key.sk-wrong-000"))
    assert wrong.status == 401 and wrong.deny_reason == "unknown_key"
    assert shared.demo.requests()[before:] == []


def _litellm_stack(procs: Launcher, tmp_path: Path, extra: str = "") -> Stack:
    key = new_key("litellm-mode")
    (tmp_path / "litellm.yaml").write_text(
        "general_settings:\n"
        "  master_key: os.environ/APP_MASTER\n"
        "  litellm_key_header_name: X-Team-Key\n",
        encoding="utf-8",
    )
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n    - litellm_config: litellm.yaml\n      dotenv: off\n" + extra,
        encoding="utf-8",
    )
    env = {"APP_MASTER": key}
    envoy = policy_options(str(config), env)
    return procs.config_stack(
        config,
        app_key=key,
        env=env,
        credential_headers=envoy["credential_headers"],
        public_paths=envoy["public_paths"],
    )


def test_litellm_mode_keyless_routes_and_custom_header(procs: Launcher, tmp_path: Path) -> None:
    stack = _litellm_stack(procs, tmp_path)
    assert stack.key is not None
    for method, path in [
        ("GET", "/"),
        ("GET", "/ui/"),
        ("GET", "/sso/key/generate"),
        ("GET", "/.well-known/litellm-ui-config"),
        ("GET", "/public/model_hub"),
        ("GET", "/openapi.json"),
        ("POST", "/login"),
    ]:
        r = stack.request(method, path)
        assert r.reached_upstream and r.status == 200, (method, path, r.status, r.body[:200])
    assert stack.get("/health").status == 401  # /health stays protected, as in LiteLLM
    # litellm_key_header_name: overrides every other location and needs "Bearer K"
    custom = stack.get("/v1/models", {"x-team-key": f"Bearer {stack.key}"})
    assert custom.reached_upstream, custom.body[:300]
    raw = stack.get("/v1/models", {"x-team-key": stack.key, "authorization": f"Bearer {stack.key}"})
    assert raw.status == 401 and raw.deny_reason == "malformed_credential"


def test_litellm_ui_closed_at_the_edge(procs: Launcher, tmp_path: Path) -> None:
    stack = _litellm_stack(procs, tmp_path, "litellm_ui: closed\n")
    assert stack.key is not None
    for method, path in [("GET", "/ui/"), ("GET", "/sso/key/generate"), ("POST", "/login")]:
        r = stack.request(method, path, headers={"authorization": f"Bearer {stack.key}"})
        assert r.status == 403 and not r.reached_upstream, (path, r.status)
        assert "closed at the edge" in r.json()["error"]["message"]
    assert stack.get("/").reached_upstream  # the rest of LiteLLM's keyless routes stay open
