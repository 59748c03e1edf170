"""Deep health: classification and readiness (pure), then the periodic checker against a real
local HTTP server standing in for "Envoy + app" that accepts key A, is switched to key B, and
back."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import pytest

from authsvc import ConfigError
from authsvc.authz import Policy, parse_location
from authsvc.health import (
    DeepHealth,
    DeepResult,
    Verdict,
    classify,
    deep_readiness,
    key_header,
    key_header_name,
)
from authsvc.health._http import HttpAnswer, HttpFailure
from tests._keys import make_key
from tests.unit.test_health_http import Reply, closed_port, local_app

KEY_A = make_key("deep-health-a")
KEY_B = make_key("deep-health-b")
SOURCE = "env:LITELLM_MASTER_KEY"


def fp(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class FakeSecret:
    """Stands in for authsvc.keys' Secret: the value only via reveal()."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "FakeSecret(...)"


def provider(key: str | None) -> Callable[[], tuple[FakeSecret, str, str] | None]:
    return lambda: None if key is None else (FakeSecret(key), SOURCE, fp(key))


def answer(status: int, **headers: str) -> HttpAnswer:
    return HttpAnswer(
        status, MappingProxyType({k.replace("_", "-"): v for k, v in headers.items()})
    )


# ----------------------------------------------------------------------------------- pure


def _classify(a: HttpAnswer | HttpFailure) -> DeepResult:
    return classify(
        a, where="http://127.0.0.1:10000/health", source=SOURCE, fingerprint="3fa2c1d09b7e"
    )


def test_2xx_is_agreement() -> None:
    assert _classify(answer(200)).verdict is Verdict.AGREE
    assert _classify(answer(204)).verdict is Verdict.AGREE


@pytest.mark.parametrize("status", [401, 403])
def test_app_401_403_is_disagreement_naming_source_and_fingerprint(status: int) -> None:
    result = _classify(answer(status))
    assert result.verdict is Verdict.DISAGREE and result.status == status
    assert result.message.startswith(
        "app rejected the master key resolved from env:LITELLM_MASTER_KEY (fp 3fa2c1d09b7e): "
        "sidecar and app disagree on the key; run `authsvc explain`"
    )


@pytest.mark.parametrize(("status", "reason"), [(503, "no_master_key"), (401, "unknown_key")])
def test_authsvc_own_denial_is_not_an_app_verdict(status: int, reason: str) -> None:
    result = _classify(answer(status, x_authsvc_reason=reason))
    assert result.verdict is Verdict.AUTHSVC_DENIED and result.authsvc_reason == reason
    assert reason in result.message and "fp 3fa2c1d09b7e" in result.message


@pytest.mark.parametrize("status", [500, 502, 503, 404, 302])
def test_other_statuses_are_app_unhealthy_not_a_key_problem(status: int) -> None:
    result = _classify(answer(status))
    assert result.verdict is Verdict.APP_UNHEALTHY and "not a key problem" in result.message
    assert "disagree" not in result.message


def test_no_answer_is_unreachable() -> None:
    result = _classify(HttpFailure("connection refused by 127.0.0.1:10000"))
    assert result.verdict is Verdict.UNREACHABLE and "connection refused" in result.message


def test_readiness_rules() -> None:
    agree, disagree = _classify(answer(200)), _classify(answer(401))
    sick = _classify(answer(500))
    assert deep_readiness(None, None) == (False, "waiting for the first deep health verdict")
    ready, reason = deep_readiness(sick, None)
    assert not ready and "waiting for the first deep health verdict" in reason and "500" in reason
    assert deep_readiness(agree, agree) == (True, "")
    assert deep_readiness(sick, agree) == (True, "")  # an unhealthy app keeps the key verdict
    unkeyed = disagree.message.replace(" (fp 3fa2c1d09b7e)", "")
    assert "(fp " in disagree.message and "(fp " not in unkeyed  # the log line keeps it
    assert deep_readiness(disagree, disagree) == (False, unkeyed)
    assert deep_readiness(sick, disagree) == (False, unkeyed)


def test_a_verdict_only_counts_for_the_key_it_was_made_with() -> None:
    agree = _classify(answer(200))  # fp 3fa2c1d09b7e
    assert deep_readiness(agree, agree, "3fa2c1d09b7e") == (True, "")
    ready, reason = deep_readiness(agree, agree, "0123456789ab")
    assert not ready
    assert reason == "waiting for the first deep health verdict on the current master key"


def test_key_header_name_follows_credential_locations() -> None:
    assert key_header_name(Policy.build().locations) == "authorization"
    assert (
        key_header_name([parse_location("query:key"), parse_location("header:X-Api-Key")])
        == "x-api-key"
    )
    with pytest.raises(ConfigError, match="no header credential location"):
        key_header_name([parse_location("query:key")])


def test_key_header() -> None:
    assert key_header("k") == {"authorization": "Bearer k"}
    assert key_header("k", "X-API-Key") == {"x-api-key": "k"}


# ------------------------------------------------------------------- against a real server


class Backend:
    """Envoy + app, in one small server: it accepts exactly one key on /health."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.status_override: int | None = None

    def __call__(self, path: str, headers: Mapping[str, str]) -> Reply:
        if self.status_override is not None:
            return self.status_override, {}, b"broken"
        if path != "/health":
            return 404, {}, b""
        if headers.get("authorization") == f"Bearer {self.key}":
            return 200, {"content-type": "application/json"}, b'{"healthy_count": 1}'
        return 401, {"content-type": "application/json"}, b'{"error": "invalid key"}'


def _wait_for(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - started


def test_key_switch_flips_readiness_within_one_interval_and_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authsvc.health")
    backend = Backend(KEY_A)
    results: list[DeepResult] = []
    interval = 0.4
    with local_app(backend) as app:
        deep = DeepHealth(
            app.url,
            "/health",
            key_provider=provider(KEY_A),
            interval=interval,
            on_result=results.append,
        )
        deep.start()
        try:
            _wait_for(lambda: deep.readiness()[0], 2)
            assert app.seen[0].headers["authorization"] == f"Bearer {KEY_A}"

            backend.key = KEY_B  # the app now resolves a different key
            took = _wait_for(lambda: not deep.readiness()[0], interval + 0.5)
            assert took <= interval + 0.3
            reason = deep.readiness()[1]
            assert reason.startswith(f"app rejected the master key resolved from {SOURCE}: ")
            assert fp(KEY_A) not in reason  # /readyz carries no key-derived bits

            time.sleep(interval * 2.5)  # several more failing checks: still only one error line
            backend.key = KEY_A
            _wait_for(lambda: deep.readiness()[0], interval + 0.5)
        finally:
            deep.stop()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert f"app rejected the master key resolved from {SOURCE} (fp {fp(KEY_A)})" in line
    assert "sidecar and app disagree on the key; run `authsvc explain`" in line
    assert sum(r.verdict is Verdict.DISAGREE for r in results) >= 3
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("app accepts the master key" in m for m in infos)
    everything = caplog.text + "".join(r.message for r in results)
    assert KEY_A not in everything and KEY_B not in everything


def test_fixing_authsvc_side_key_brings_readiness_back() -> None:
    """The key authsvc holds changes (a reload), the app already had the new one."""
    current = {"key": KEY_A}
    backend = Backend(KEY_B)
    with local_app(backend) as app:
        deep = DeepHealth(
            app.url,
            key_provider=lambda: (FakeSecret(current["key"]), SOURCE, fp(current["key"])),
            interval=30,
        )
        assert deep.check_once().verdict is Verdict.DISAGREE
        current["key"] = KEY_B
        deep.start()  # the first check in the thread runs at once
        try:
            _wait_for(lambda: deep.readiness()[0], 2)
            current["key"] = KEY_A
            deep.trigger()  # e.g. after a reload: no need to wait 30 s
            _wait_for(lambda: not deep.readiness()[0], 2)
        finally:
            deep.stop()


def test_unhealthy_app_keeps_the_verdict_and_logs_a_warning_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authsvc.health")
    backend = Backend(KEY_A)
    with local_app(backend) as app:
        deep = DeepHealth(app.url, key_provider=provider(KEY_A), interval=30)
        assert deep.check_once().verdict is Verdict.AGREE
        backend.status_override = 500
        for _ in range(3):
            assert deep.check_once().verdict is Verdict.APP_UNHEALTHY
        assert deep.readiness() == (True, "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "app unhealthy" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unreachable_before_any_verdict_is_not_ready_and_retries_fast(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authsvc.health")
    port = closed_port()
    deep = DeepHealth(
        f"http://127.0.0.1:{port}", key_provider=provider(KEY_A), interval=30, first_retry=0.05
    )
    deep.start()
    try:
        _wait_for(lambda: deep.last is not None, 2)
        ready, reason = deep.readiness()
        assert not ready and "connection refused" in reason
        first = deep.last
        _wait_for(lambda: deep.last is not first, 1)  # retried long before the 30 s interval
    finally:
        deep.stop()
    # at start-up an app that does not answer yet is routine: info, not warning
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (
        len(
            [
                r
                for r in caplog.records
                if "connection refused" in r.getMessage() and r.levelno == logging.INFO
            ]
        )
        == 1
    )


def test_authsvc_denial_through_envoy_is_reported_as_such() -> None:
    def envoy(path: str, headers: Mapping[str, str]) -> Reply:
        return 503, {"x-authsvc-reason": "no_master_key", "retry-after": "5"}, b"{}"

    with local_app(envoy) as app:
        deep = DeepHealth(app.url, key_provider=provider(KEY_A), interval=30)
        result = deep.check_once()
    assert result.verdict is Verdict.AUTHSVC_DENIED
    assert deep.readiness()[0] is False and "no_master_key" in deep.readiness()[1]


def test_no_key_sends_nothing() -> None:
    with local_app(Backend(KEY_A)) as app:
        deep = DeepHealth(app.url, key_provider=provider(None), interval=30)
        assert deep.check_once().verdict is Verdict.NO_KEY
    assert not app.seen
    assert deep.readiness()[0] is False


def test_custom_key_header() -> None:
    with local_app(Backend(KEY_A)) as app:
        deep = DeepHealth(app.url, key_provider=provider(KEY_A), interval=30, header="x-api-key")
        deep.check_once()
    assert app.seen[0].headers["x-api-key"] == KEY_A and "authorization" not in app.seen[0].headers


def test_on_result_errors_do_not_kill_the_checker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: DeepResult) -> None:
        raise RuntimeError("metrics down")

    with local_app(Backend(KEY_A)) as app:
        deep = DeepHealth(app.url, key_provider=provider(KEY_A), interval=30, on_result=broken)
        assert deep.check_once().verdict is Verdict.AGREE
    assert "on_result callback failed" in caplog.text


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval"):
        DeepHealth("http://127.0.0.1:1", key_provider=provider(KEY_A), interval=0)
    with pytest.raises(ValueError, match="URL"):
        DeepHealth("127.0.0.1:10000", key_provider=provider(KEY_A))


def test_reason_header_is_the_one_authsvc_sets_on_denials() -> None:
    from authsvc.authz._respond import REASON_HEADER
    from authsvc.health import AUTHSVC_REASON_HEADER

    assert AUTHSVC_REASON_HEADER == REASON_HEADER
