"""Dry-run (shadow) mode, the pure parts and the in-process wiring: ``authz.shadow``, the answer
the Checker builds from real CheckRequest bytes, the metrics, the decision log line, /readyz
and the periodic warning. Through a real Envoy: ``tests/e2e/test_dry_run_e2e.py``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

import pytest
from google.rpc import code_pb2

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import (
    DRY_RUN_HEADER,
    SHADOWED,
    STATUS,
    Decision,
    Policy,
    Reason,
    RequestView,
    decide,
    render,
    shadow,
)
from authsvc.health import StatusServer
from authsvc.keymodel import Standing
from authsvc.keys import KeyRecord, KeyRing, KeyStore, PathRule, digest, fingerprint
from authsvc.observability import Observer
from authsvc.observability._metrics import Metrics
from authsvc.server._check import Checker
from authsvc.server._cli import DRY_RUN_NOTE, _remind_dry_run
from tests._keys import make_key

MASTER = make_key("dry-master")
SCOPED = make_key("dry-scoped")
WRONG = make_key("dry-wrong")


def ring() -> KeyRing:
    scoped = KeyRecord(
        "ci", "test", fingerprint(SCOPED), digest(SCOPED), paths=PathRule.from_patterns(["/v1/*"])
    )
    master = KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER))
    return KeyRing([scoped], master=master)


def view(path: str = "/v1/models", **headers: str) -> RequestView:
    return RequestView(method="GET", target=path, headers=headers)


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method, http.path = "GET", path
    for name, value in headers.items():
        http.headers[name] = value
    return req.SerializeToString()


# -- the pure step ---------------------------------------------------------------------------

CASES = {
    Reason.MISSING_CREDENTIAL: view(),
    Reason.MALFORMED_CREDENTIAL: view(authorization="Token abc"),  # LiteLLM: no scheme it knows
    Reason.UNKNOWN_KEY: view(authorization=f"Bearer {WRONG}"),
    Reason.PATH_NOT_ALLOWED: view("/admin", authorization=f"Bearer {SCOPED}"),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_every_policy_denial_becomes_an_allow_that_remembers_it(reason: Reason) -> None:
    denied = decide(CASES[reason], Policy.build(), ring(), 0.0)
    assert denied.reason is reason and not denied.allowed  # decide() itself still denies
    out = shadow(denied)
    assert out.allowed and out.reason is Reason.DRY_RUN and out.would_deny is reason
    assert out.key_name == denied.key_name and out.credential_location == denied.credential_location
    assert reason.value in out.message


def test_a_shadowed_scoped_key_keeps_its_identity() -> None:
    """A known key outside its paths is let through under its own name and fingerprint (the
    metrics and the log attribute the would-be denial to it), not as an anonymous caller."""
    denied = decide(CASES[Reason.PATH_NOT_ALLOWED], Policy.build(), ring(), 0.0)
    out = shadow(denied)
    expected_fp = hashlib.sha256(SCOPED.encode()).hexdigest()[:12]
    assert (out.key_name, out.key_fingerprint) == ("ci", expected_fp)
    assert out.credential_location == denied.credential_location is not None


def test_the_shadowed_set_is_exactly_the_client_policy_denials() -> None:
    assert {
        Reason.MISSING_CREDENTIAL,
        Reason.MALFORMED_CREDENTIAL,
        Reason.UNKNOWN_KEY,
        Reason.EXPIRED_KEY,
        Reason.PATH_NOT_ALLOWED,
        Reason.BLOCKED_KEY,
        Reason.TEAM_BLOCKED,
        Reason.TEAM_NOT_FOUND,
    } == SHADOWED
    assert all(STATUS[r] in (401, 403, 404) for r in SHADOWED)
    # every denial decide() can give is either shadowed or one of the three kept on purpose
    kept = {Reason.NO_MASTER_KEY, Reason.MALFORMED_REQUEST, Reason.INTERNAL_ERROR}
    denials = {r for r in Reason if STATUS[r] != 200}
    assert denials == SHADOWED | kept and not SHADOWED & kept


# A LiteLLM virtual key (read from LiteLLM's database) that LiteLLM's own rules refuse: dry-run
# shows it as a would-deny like any other client policy outcome. The request then reaches
# LiteLLM, which refuses the same key itself from the same table: nothing opens.
VIRTUAL = make_key("dry-virtual")
VIRTUAL_CASES = {
    Reason.BLOCKED_KEY: (Standing(blocked=True), 401),
    Reason.TEAM_BLOCKED: (Standing(team_id="team-a", team_blocked=True), 401),
    Reason.TEAM_NOT_FOUND: (Standing(team_id="team-gone", team_missing=True), 404),
}


def virtual_ring(standing: Standing) -> KeyRing:
    record = KeyRecord(
        "alice",
        "virtual_keys:$DATABASE_URL",
        fingerprint(VIRTUAL),
        digest(VIRTUAL),
        litellm=standing,
    )
    master = KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER))
    return KeyRing([record], master=master)


@pytest.mark.parametrize("reason", sorted(VIRTUAL_CASES))
def test_a_virtual_key_litellm_refuses_is_let_through_and_recorded(reason: Reason) -> None:
    standing, status = VIRTUAL_CASES[reason]
    request = view(authorization=f"Bearer {VIRTUAL}")
    denied = decide(request, Policy.build(), virtual_ring(standing), 0.0)
    assert (denied.reason, denied.status) == (reason, status)  # decide() itself still refuses
    out = shadow(denied)
    assert out.allowed and out.reason is Reason.DRY_RUN and out.would_deny is reason
    expected_fp = hashlib.sha256(VIRTUAL.encode()).hexdigest()[:12]
    assert (out.key_name, out.key_fingerprint) == ("alice", expected_fp)
    assert out.credential_location == "header:authorization"
    assert out.message.startswith(f"dry-run: would deny {status} {reason.value}: ")
    assert VIRTUAL not in out.message
    answer = render(out, request.headers)
    assert answer.set_headers == ((DRY_RUN_HEADER, reason.value),)  # no key name upstream
    assert answer.response_headers == ((DRY_RUN_HEADER, reason.value),)


@pytest.mark.parametrize(
    "reason", [Reason.NO_MASTER_KEY, Reason.MALFORMED_REQUEST, Reason.INTERNAL_ERROR]
)
def test_no_master_key_and_adapter_failures_stay_denials(reason: Reason) -> None:
    decision = Decision(reason, "x")
    assert shadow(decision) is decision and not shadow(decision).allowed


def test_no_master_key_from_decide_is_still_a_503() -> None:
    denied = decide(view(authorization=f"Bearer {WRONG}"), Policy.build(), KeyRing(), 0.0)
    assert denied.reason is Reason.NO_MASTER_KEY
    assert shadow(denied).status == 503


@pytest.mark.parametrize("reason", [Reason.KEY_VALID, Reason.PUBLIC_PATH])
def test_allows_pass_unchanged(reason: Reason) -> None:
    decision = Decision(reason, "ok", key_name="master")
    assert shadow(decision) is decision


def test_render_marks_upstream_and_client_and_never_names_a_key() -> None:
    denied = decide(view("/admin", authorization=f"Bearer {SCOPED}"), Policy.build(), ring(), 0)
    client = {"x-authsvc-key-name": "admin", "x-authsvc-dry-run": "forged", "x-authsvc-x": "1"}
    out = render(shadow(denied), client)
    assert out.set_headers == ((DRY_RUN_HEADER, "path_not_allowed"),)
    assert out.response_headers == ((DRY_RUN_HEADER, "path_not_allowed"),)
    # the client's x-authsvc-* go; the dry-run header is overwritten (removing it would undo it)
    assert set(out.remove_headers) == {"x-authsvc-key-name", "x-authsvc-x"}


# -- the Checker: real request bytes in, real response bytes out ----------------------------


def answer(checker: Checker, path: str, headers: dict[str, str]) -> ext.CheckResponse:
    data, _ = checker.check(request_bytes(path, headers))
    return ext.CheckResponse.FromString(data)


def test_checker_answers_allow_with_the_header_only_when_dry_run_is_on() -> None:
    checker = Checker(KeyStore(ring()), Policy.build())
    wrong = {"authorization": f"Bearer {WRONG}"}
    assert answer(checker, "/v1/models", wrong).status.code == code_pb2.UNAUTHENTICATED
    checker.dry_run = True
    resp = answer(checker, "/v1/models", wrong)
    assert resp.status.code == code_pb2.OK
    upstream = {h.header.key: h.header.value for h in resp.ok_response.headers}
    client = {h.header.key: h.header.value for h in resp.ok_response.response_headers_to_add}
    assert upstream == {DRY_RUN_HEADER: "unknown_key"} == client
    # no master key: still a 503 deny in dry-run
    empty = Checker(KeyStore(KeyRing()), Policy.build())
    empty.dry_run = True
    resp = answer(empty, "/v1/models", wrong)
    assert resp.status.code == code_pb2.UNAVAILABLE and resp.denied_response.status.code == 503


def test_checker_cache_keeps_a_dry_run_answer_apart_from_a_real_allow_of_the_same_key() -> None:
    checker = Checker(KeyStore(ring()), Policy.build())
    checker.dry_run = True
    scoped = {"authorization": f"Bearer {SCOPED}"}
    inside = answer(checker, "/v1/models", scoped)  # allowed: key name "ci"
    outside = answer(checker, "/admin", scoped)  # would deny path_not_allowed, same key name
    inside_again = answer(checker, "/v1/models", scoped)
    assert {h.header.key: h.header.value for h in inside.ok_response.headers} == {
        "x-authsvc-key-name": "ci"
    }
    assert {h.header.key: h.header.value for h in outside.ok_response.headers} == {
        DRY_RUN_HEADER: "path_not_allowed"
    }
    assert inside_again == inside


# -- metrics, decision log, /readyz, reminders ----------------------------------------------


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_metrics_count_the_would_deny_by_reason_and_the_answer_as_dry_run() -> None:
    observer = Observer()
    m = observer.prometheus
    assert sample(m, "authsvc_dry_run_enabled") == 0
    observer.on_dry_run(True, "--dry-run")
    assert sample(m, "authsvc_dry_run_enabled") == 1
    denied = decide(view(authorization=f"Bearer {WRONG}"), Policy.build(), ring(), 0)
    for _ in range(3):
        observer.on_decision(view(), shadow(denied), 0.0001)
    assert sample(m, "authsvc_dry_run_would_deny_total", reason="unknown_key") == 3
    assert sample(m, "authsvc_checks_total", decision="allow", reason="dry_run") == 3
    assert sample(m, "authsvc_checks_total", decision="deny", reason="unknown_key") == 0
    for reason in SHADOWED:  # pre-created, so rate() works from the first scrape
        assert (
            m.registry.get_sample_value(
                "authsvc_dry_run_would_deny_total", {"reason": reason.value}
            )
            is not None
        )
    assert m.would_deny_counts()["unknown_key"] == 3
    observer.on_dry_run(False, "config reload")
    assert sample(m, "authsvc_dry_run_enabled") == 0


def test_the_decision_log_line_says_would_deny(caplog: pytest.LogCaptureFixture) -> None:
    observer = Observer()
    denied = decide(view(authorization=f"Bearer {WRONG}"), Policy.build(), ring(), 0)
    with caplog.at_level(logging.INFO, logger="authsvc.decisions"):
        observer.on_decision(view(authorization=f"Bearer {WRONG}"), shadow(denied), 0.0001)
    [record] = [r for r in caplog.records if r.name == "authsvc.decisions"]
    assert record.levelno == logging.INFO  # like the denial it was, not a debug-level allow
    fields = record.__dict__
    assert fields["decision"] == "allow" and fields["reason"] == "dry_run"
    assert fields["would_deny"] == "unknown_key" and fields["would_status"] == 401


def test_readyz_says_dry_run_is_on_without_changing_readiness() -> None:
    on = [True]
    status = StatusServer(
        "127.0.0.1:0",
        readiness=lambda: (True, ""),
        notes=lambda: [DRY_RUN_NOTE] if on[0] else [],
    )
    code, _, body, _ = status.route("/readyz")
    assert code == 200 and body.decode() == f"ready\n{DRY_RUN_NOTE}\n"
    code, _, body, _ = status.route("/readyz", "application/json")
    assert code == 200 and json.loads(body) == {
        "ready": True,
        "reason": "",
        "notes": [DRY_RUN_NOTE],
    }
    on[0] = False
    assert status.route("/readyz")[2] == b"ready\n"
    assert json.loads(status.route("/readyz", "application/json")[2]) == {
        "ready": True,
        "reason": "",
    }


def test_a_warning_at_start_and_again_while_dry_run_stays_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = Observer()

    class Server:
        dry_run = True

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(_remind_dry_run(Server(), observer, stop, every=0.05))  # type: ignore[arg-type]
        await asyncio.sleep(0.18)
        Server.dry_run = False
        await asyncio.sleep(0.12)
        stop.set()
        await task

    with caplog.at_level(logging.WARNING, logger="authsvc.observability"):
        observer.on_dry_run(True, "--dry-run")
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if "DRY-RUN IS ON" in r.getMessage()]
    assert 3 <= len(warnings) <= 5  # the start-up one plus a reminder every 0.05 s while on
    assert all(r.levelno == logging.WARNING for r in warnings)


# -- verify ----------------------------------------------------------------------------------


def test_verify_reports_a_dry_run_pass_through_as_such() -> None:
    from authsvc.health._http import HttpAnswer
    from authsvc.health._verify_plan import (
        DRY_RUN_BANNER,
        evaluate,
        plan,
        render_json,
        render_table,
    )

    checks = plan(["/health/readiness"], "/health")
    wrong = next(c for c in checks if "wrong key" in c.name)
    through = HttpAnswer(200, {DRY_RUN_HEADER: "unknown_key"})
    outcome = evaluate(wrong, through, url="http://x", key=None)
    assert outcome.ok and outcome.dry_run == "unknown_key"
    assert outcome.got == "200 let through by dry-run (would deny: unknown_key)"
    assert json.loads(render_json([outcome]))[0]["dry_run"] == "unknown_key"
    assert DRY_RUN_BANNER in render_table([outcome], url="http://x", key=None)
    # the app may refuse it itself: still authsvc's dry-run pass (the header says so)
    assert evaluate(wrong, HttpAnswer(401, {DRY_RUN_HEADER: "unknown_key"}), url="u", key=None).ok
    # the same 200 without the header is an open route: a failure, no banner
    plain = evaluate(wrong, HttpAnswer(200), url="http://x", key=None)
    assert not plain.ok and plain.dry_run is None
    assert DRY_RUN_BANNER not in render_table([plain], url="http://x", key=None)


def test_every_worker_of_a_supervisor_gets_dry_run() -> None:
    import argparse

    from authsvc.server._cli import configure, worker_argv

    parser = argparse.ArgumentParser()
    configure(parser)
    on = worker_argv(parser.parse_args(["--dry-run", "--workers", "2"]), 1, ("127.0.0.1:1",), 3)
    off = worker_argv(parser.parse_args(["--workers", "2"]), 1, ("127.0.0.1:1",), 3)
    assert "--dry-run" in on and "--dry-run" not in off
