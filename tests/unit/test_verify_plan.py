"""``verify``'s pure part: the plan, the judging of each answer (with hints), and rendering."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from authsvc.health._http import HttpAnswer, HttpFailure
from authsvc.health._verify_plan import (
    Check,
    Credential,
    Expect,
    KeyInfo,
    Outcome,
    evaluate,
    not_run,
    plan,
    render_json,
    render_table,
)

URL = "http://127.0.0.1:10000"
KEY = KeyInfo("env:LITELLM_MASTER_KEY", "3fa2c1d09b7e")
PLAN = plan(["/health/readiness", "/health/liveliness"], "/health")
PROBE, _, KEYLESS, WRONG, MASTER = PLAN


def answer(status: int, reason: str | None = None) -> HttpAnswer:
    headers = {"x-authsvc-reason": reason} if reason else {}
    return HttpAnswer(status, MappingProxyType(headers))


def judge(check: Check, a: HttpAnswer | HttpFailure) -> Outcome:
    return evaluate(check, a, url=URL, key=KEY)


def test_plan_order_and_expectations() -> None:
    assert [(c.name, c.expect.value) for c in PLAN] == [
        ("GET /health/liveliness without a key", "2xx"),
        ("GET /health/readiness without a key", "2xx"),
        ("GET /health without a key", "401 from authsvc"),
        ("GET /health with a wrong key", "401 from authsvc"),
        ("GET /health with the master key", "2xx"),
    ]
    assert [c.credential for c in PLAN] == [Credential.NONE] * 3 + [
        Credential.WRONG,
        Credential.MASTER,
    ]


def test_all_good() -> None:
    outcomes = [
        judge(PROBE, answer(200)),
        judge(KEYLESS, answer(401, "missing_credential")),
        judge(WRONG, answer(401, "unknown_key")),
        judge(MASTER, answer(200)),
    ]
    assert all(o.ok and o.hint is None for o in outcomes)
    assert [o.got for o in outcomes] == [
        "200",
        "401 from authsvc (missing_credential)",
        "401 from authsvc (unknown_key)",
        "200",
    ]


def test_app_rejects_master_key_names_source_and_fingerprint() -> None:
    outcome = judge(MASTER, answer(401))
    assert not outcome.ok and outcome.got == "401 from app or Envoy"
    assert outcome.hint == (
        "app rejected the master key resolved from env:LITELLM_MASTER_KEY (fp 3fa2c1d09b7e): "
        "the app resolves a different key; run `authsvc explain`"
    )


@pytest.mark.parametrize(
    ("check", "a", "hint_part"),
    [
        (PROBE, answer(401, "missing_credential"), "probe path is not public in authsvc"),
        (PROBE, answer(401), "probe path is not public in the app or Envoy"),
        (PROBE, answer(404), "the app has no route /health/liveliness"),
        (PROBE, answer(503), "unhealthy"),
        (KEYLESS, answer(200), "open to anyone"),
        (KEYLESS, answer(401), "came from the app, not authsvc"),
        (KEYLESS, answer(503, "no_master_key"), "no usable master key"),
        (KEYLESS, answer(404), "without authsvc's x-authsvc-reason header"),
        (WRONG, answer(200), "open to anyone"),
        (
            MASTER,
            answer(401, "unknown_key"),
            "authsvc behind Envoy refused the master key resolved from env:LITELLM_MASTER_KEY (fp 3fa2c1d09b7e)",
        ),
        (MASTER, answer(503, "no_master_key"), "no usable master key"),
        (MASTER, answer(500), "the app is unhealthy (not a key problem)"),
        (
            MASTER,
            HttpFailure("connection refused by 127.0.0.1:10000"),
            "nothing answers at http://127.0.0.1:10000",
        ),
    ],
)
def test_failures_carry_a_fix_hint(
    check: Check, a: HttpAnswer | HttpFailure, hint_part: str
) -> None:
    outcome = judge(check, a)
    assert not outcome.ok
    assert outcome.hint is not None and hint_part in outcome.hint


def test_unreachable_got_column() -> None:
    assert judge(PROBE, HttpFailure("timed out after 5s")).got == "no answer: timed out after 5s"


def test_json_is_a_stable_list_of_check_expected_got_ok() -> None:
    outcomes = [judge(PROBE, answer(200)), judge(MASTER, answer(401))]
    data = json.loads(render_json(outcomes))
    assert data[0] == {
        "check": "GET /health/liveliness without a key",
        "expected": "2xx",
        "got": "200",
        "ok": True,
    }
    assert set(data[1]) == {"check", "expected", "got", "ok", "hint"}
    assert data[1]["ok"] is False


def test_table_shows_rows_hints_and_summary() -> None:
    outcomes = [judge(PROBE, answer(200)), judge(MASTER, answer(401))]
    text = render_table(outcomes, url=URL, key=KEY)
    lines = text.splitlines()
    assert (
        lines[0]
        == f"verify {URL} with the master key resolved from env:LITELLM_MASTER_KEY (fp 3fa2c1d09b7e)"
    )
    assert lines[1].split() == ["CHECK", "EXPECTED", "GOT", "OK"]
    assert lines[2].endswith("ok") and lines[3].endswith("FAIL")
    assert lines[4].startswith("    hint: app rejected the master key")
    assert lines[-1] == "1 of 2 checks failed"
    assert lines[1].index("EXPECTED") == lines[2].index("2xx")  # columns line up
    assert render_table([outcomes[0]], url=URL, key=None).splitlines()[-1] == "all 1 checks passed"


def test_not_run_is_a_failure() -> None:
    outcome = not_run(MASTER, "no usable master key resolved", "run `authsvc explain`")
    assert not outcome.ok and outcome.got == "not run: no usable master key resolved"
    assert Expect.SUCCESS.value == "2xx"
