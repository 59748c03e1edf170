"""The Admin UI session through a real Envoy and a real Postgres holding LiteLLM's tables (#15).

A UI sign-in stores its session key as a virtual key (team ``litellm-dashboard``, a day's
``expires``) and sets the ``token`` cookie (HS256 with the master key, ``key`` = the session
key). The dashboard's API calls carry the session key as ``Authorization: Bearer``; the MCP
OAuth routes read the cookie itself. Which cookies LiteLLM accepts where is measured against the
real LiteLLM in ``make parity`` (setup ``ui-session``); LiteLLM's own sign-in cannot run here
(its Prisma engine is downloaded from outside the package registries: docs/virtual-keys.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests._keys import make_key
from tests._ui_cookie import mint
from tests.e2e._harness import Launcher, Response, Stack, http_request
from tests.vkeys._litellm_db import DDL, LiteLLMDB, now_utc

pytestmark = pytest.mark.e2e

MASTER = make_key("ui-e2e-master")
REFRESH = 1.0
MCP = "/v1/mcp/server/oauth/srv1/authorize?redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb"
BYOK = "/v1/mcp/oauth/authorize"
FORM = b"redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge=abc&api_key=upstream-demo"


def _claims(key: str, exp: float | None) -> dict[str, object]:
    out: dict[str, object] = {
        "user_id": "default_user_id",
        "key": key,
        "user_role": "proxy_admin",
        "login_method": "username_password",
        "premium_user": False,
    }
    if exp is not None:
        out["exp"] = int(exp)
    return out


def _send(stack: Stack, method: str, path: str, **headers: str) -> Response:
    body = FORM if method == "POST" else None
    if body is not None:
        headers["content-type"] = "application/x-www-form-urlencoded"
    return http_request(stack.port, method, path, headers, body=body, timeout=10)


def _within(seconds: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.05)


def test_ui_session_through_envoy(procs: Launcher, pg: Any, tmp_path: Path) -> None:
    db = LiteLLMDB(pg.get_uri())
    db.sql(DDL)
    (tmp_path / "litellm.yaml").write_text(f"general_settings:\n  master_key: {MASTER}\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n    - litellm_config: litellm.yaml\n      dotenv: 'off'\n"
        "keys:\n  - name: litellm\n    virtual_keys:\n"
        f"      database_url_env: DATABASE_URL\n      refresh_interval: {REFRESH}\n"
    )
    # what LiteLLM's /login stores: the session key, team litellm-dashboard (no team row)
    session = db.generate(
        alias=None, team_id="litellm-dashboard", expires=now_utc() + timedelta(days=1)
    )
    stack = procs.config_stack(
        config, app_key=MASTER, env={"DATABASE_URL": db.url}, session_cookie=True
    )
    now = time.time()
    cookie = f"theme=dark; token={mint(_claims(session, now + 86400), MASTER)}"

    # the dashboard's API calls: the session key as a Bearer virtual key
    for path in ("/key/list", "/user/info", "/v2/model/info"):
        r = _send(stack, "GET", path, authorization=f"Bearer {session}")
        assert r.reached_upstream, (path, r.status, r.body)
    # the general routes never read the cookie (LiteLLM neither)
    r = _send(stack, "GET", "/key/list", cookie=cookie)
    assert r.status == 401 and r.deny_reason == "missing_credential"

    # the MCP OAuth routes: the cookie alone
    assert _send(stack, "GET", MCP, cookie=cookie).reached_upstream
    assert _send(stack, "POST", BYOK, cookie=cookie).reached_upstream
    assert _send(stack, "GET", BYOK + "?response_type=code").reached_upstream  # the form

    refused = {
        "forged": mint(_claims(session, now + 86400), make_key("ui-e2e-other")),
        "expired": mint(_claims(session, now - 60), MASTER),
        "alg none": mint(_claims(session, now + 86400), MASTER, {"alg": "none"}),
        "unknown session key": mint(_claims(make_key("ui-e2e-gone"), now + 86400), MASTER),
    }
    for what, token in refused.items():
        for method, path in (("GET", MCP), ("POST", BYOK)):
            r = _send(stack, method, path, cookie=f"token={token}")
            assert r.status == 401 and not r.reached_upstream, (what, path, r.status)
            assert r.deny_reason in ("missing_credential", "unknown_key"), (what, r.deny_reason)
            assert token not in r.body.decode()
    # byok needs exp; the MCP fallback (LiteLLM does not check exp there) does not
    no_exp = f"token={mint(_claims(session, None), MASTER)}"
    assert _send(stack, "GET", MCP, cookie=no_exp).reached_upstream
    assert _send(stack, "POST", BYOK, cookie=no_exp).deny_reason == "missing_credential"

    # the session key blocked in LiteLLM's table: the cookie stops working within the refresh
    db.update_key(session, blocked=True)

    def blocked() -> bool:
        return all(
            _send(stack, m, p, cookie=cookie).deny_reason == "blocked_key"
            for m, p in (("GET", MCP), ("POST", BYOK))
        )

    _within(REFRESH + 4.0, blocked)
