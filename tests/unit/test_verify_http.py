"""``verify``'s HTTP part against a real local server that behaves like Envoy + authsvc + app:
the authz step is the real ``decide()``/``render()`` (denials carry ``x-authsvc-reason`` as
Envoy passes them), the app behind it checks its own key like LiteLLM does. Through a real
Envoy this runs again in tests/e2e/test_verify_e2e.py."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping

import pytest

from authsvc.authz import Deny, Policy, RequestView, decide, parse_location, render
from authsvc.health._verify import VerifyInputs, run_checks
from authsvc.health._verify_plan import KeyInfo, render_json, render_table
from authsvc.keys import KeyRecord, KeyRing, digest, fingerprint
from tests._keys import make_key
from tests.unit.test_health_http import Reply, closed_port, local_app

SIDECAR_KEY = make_key("verify-sidecar")
APP_KEY = make_key("verify-app")
SOURCE = "env:LITELLM_MASTER_KEY"


class Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value


class EnvoyAuthsvcApp:
    def __init__(self, sidecar_key: str | None, app_key: str, policy: Policy | None = None) -> None:
        master = None
        if sidecar_key is not None:
            master = KeyRecord("master", SOURCE, fingerprint(sidecar_key), digest(sidecar_key))
        self.ring = KeyRing(master=master, unready_reason="env:LITELLM_MASTER_KEY unset")
        self.policy = policy or Policy.build()
        self.app_key = app_key

    def __call__(self, path: str, headers: Mapping[str, str]) -> Reply:
        out = render(
            decide(RequestView("GET", path, headers), self.policy, self.ring, time.time()), headers
        )
        if isinstance(out, Deny):
            return out.status, dict(out.headers), out.body.encode()
        if path in self.policy.public_paths:
            return 200, {}, b"I'm alive!"
        if headers.get("authorization") == f"Bearer {self.app_key}":
            return 200, {}, b"{}"
        return (
            401,
            {"content-type": "application/json"},
            b'{"error":{"message":"Authentication Error"}}',
        )


def inputs(key: str | None, header: str = "authorization") -> VerifyInputs:
    master = (Secret(key), KeyInfo(SOURCE, fingerprint(key))) if key else None
    return VerifyInputs(
        public_paths=("/health/liveliness", "/health/readiness"),
        protected_path="/health",
        header=header,
        master=master,
        default_url="http://127.0.0.1:10000",
    )


def test_shared_key_passes_every_check() -> None:
    with local_app(EnvoyAuthsvcApp(SIDECAR_KEY, SIDECAR_KEY)) as server:
        outcomes = run_checks(inputs(SIDECAR_KEY), server.url, timeout=2)
    assert [o.ok for o in outcomes] == [True] * 5, render_table(outcomes, url=server.url, key=None)
    wrong = server.seen[3].headers["authorization"]
    assert wrong.startswith("Bearer sk-authsvc-verify-wrong-") and SIDECAR_KEY not in wrong
    assert server.seen[4].headers["authorization"] == f"Bearer {SIDECAR_KEY}"
    assert (
        "authorization" not in server.seen[0].headers
        and "authorization" not in server.seen[2].headers
    )


def test_app_with_a_different_key_fails_naming_the_mismatch() -> None:
    with local_app(EnvoyAuthsvcApp(SIDECAR_KEY, APP_KEY)) as server:
        outcomes = run_checks(inputs(SIDECAR_KEY), server.url, timeout=2)
    assert [o.ok for o in outcomes] == [True, True, True, True, False]
    fp = hashlib.sha256(SIDECAR_KEY.encode()).hexdigest()[:12]
    assert outcomes[-1].hint == (
        f"app rejected the master key resolved from {SOURCE} (fp {fp}): "
        "the app resolves a different key; run `authsvc explain`"
    )
    printed = render_table(outcomes, url=server.url, key=inputs(SIDECAR_KEY).master[1])  # type: ignore[index]
    printed += render_json(outcomes)
    assert SIDECAR_KEY not in printed and APP_KEY not in printed


def test_verify_resolving_another_key_than_the_running_authsvc() -> None:
    with local_app(EnvoyAuthsvcApp(APP_KEY, APP_KEY)) as server:
        outcomes = run_checks(inputs(SIDECAR_KEY), server.url, timeout=2)
    assert not outcomes[-1].ok and "authsvc behind Envoy refused" in str(outcomes[-1].hint)


def test_fail_closed_sidecar_and_no_local_key() -> None:
    with local_app(EnvoyAuthsvcApp(None, APP_KEY)) as server:
        outcomes = run_checks(inputs(None), server.url, timeout=2)
    assert [o.ok for o in outcomes] == [True, True, False, False, False]
    assert outcomes[2].got == "503 from authsvc (no_master_key)"
    assert outcomes[4].got == "not run: no usable master key resolved"
    assert len(server.seen) == 4  # the master-key check was never sent


def test_probe_path_not_public_in_authsvc() -> None:
    policy = Policy.build(["/health/liveliness"])
    with local_app(EnvoyAuthsvcApp(SIDECAR_KEY, SIDECAR_KEY, policy)) as server:
        outcomes = run_checks(inputs(SIDECAR_KEY), server.url, timeout=2)
    readiness = outcomes[1]
    assert not readiness.ok and readiness.got == "401 from authsvc (missing_credential)"
    assert "probe path is not public in authsvc" in str(readiness.hint)


def test_nothing_listening() -> None:
    port = closed_port()
    outcomes = run_checks(inputs(SIDECAR_KEY), f"http://127.0.0.1:{port}", timeout=1)
    assert not any(o.ok for o in outcomes)
    assert all("is Envoy running" in str(o.hint) for o in outcomes)


def test_bad_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="URL"):
        run_checks(inputs(SIDECAR_KEY), "127.0.0.1:10000")


def test_custom_header_is_used_for_both_keys() -> None:
    policy = Policy.build(locations=[parse_location("header:x-api-key")])
    app = EnvoyAuthsvcApp(SIDECAR_KEY, SIDECAR_KEY, policy)
    with local_app(app) as server:
        outcomes = run_checks(inputs(SIDECAR_KEY, "x-api-key"), server.url, timeout=2)
    assert server.seen[4].headers["x-api-key"] == SIDECAR_KEY
    # authsvc accepts it; this stand-in app only reads Authorization, so it rejects it: a mismatch
    assert json.loads(render_json(outcomes))[-1]["ok"] is False
