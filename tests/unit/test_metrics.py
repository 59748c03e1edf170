"""Metrics: names, labels, pre-created children, key state, and nothing secret in the output."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from authsvc.authz import STATUS, Decision, Policy, Reason, RequestView, decide
from authsvc.keys import KeyRing, fingerprint
from authsvc.observability import LATENCY_BUCKETS, Metrics
from tests._keys import ALT, MASTER, WRONG
from tests._resolution_stub import Resolution, Winner, resolution

VIEW = RequestView("GET", "/v1/models")
ALLOWED_LABELS = {
    "decision",
    "reason",
    "result",
    "source",
    "key_id",
    "le",
    "version",
    "python",
}


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def test_every_reason_is_precreated_at_zero_with_its_decision() -> None:
    m = Metrics(process_metrics=False)
    for reason in Reason:
        decision = "allow" if STATUS[reason] == 200 else "deny"
        assert value(m, "authsvc_checks_total", decision=decision, reason=reason.value) == 0.0
    checks = [k for k in samples(m) if k[0] == "authsvc_checks_total"]
    assert len(checks) == len(Reason)  # no (allow, unknown_key)-style impossible pairs


def test_decisions_move_exactly_their_counter_and_the_histogram() -> None:
    m = Metrics(process_metrics=False)
    m.observe_decision(VIEW, Decision(Reason.UNKNOWN_KEY, "x"), 0.0004)
    m.observe_decision(VIEW, Decision(Reason.UNKNOWN_KEY, "x"), 0.003)
    m.observe_decision(VIEW, Decision(Reason.KEY_VALID, "ok", "master", "abc"), 0.00002)
    s = samples(m)
    assert s[("authsvc_checks_total", (("decision", "deny"), ("reason", "unknown_key")))] == 2
    assert s[("authsvc_checks_total", (("decision", "allow"), ("reason", "key_valid")))] == 1
    assert s[("authsvc_check_duration_seconds_count", ())] == 3
    assert s[("authsvc_check_duration_seconds_sum", ())] == pytest.approx(0.00342)
    assert s[("authsvc_check_duration_seconds_bucket", (("le", "5e-05"),))] == 1
    assert s[("authsvc_check_duration_seconds_bucket", (("le", "0.0005"),))] == 2
    assert s[("authsvc_check_duration_seconds_bucket", (("le", "+Inf"),))] == 3


def test_buckets_span_sub_millisecond_to_envoy_timeout() -> None:
    assert LATENCY_BUCKETS[0] <= 0.0001 and LATENCY_BUCKETS[-1] >= 0.1
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf])
def test_a_broken_clock_counts_the_check_but_not_its_duration(bad: float) -> None:
    m = Metrics(process_metrics=False)
    m.observe_decision(VIEW, Decision(Reason.MISSING_CREDENTIAL, "x"), bad)
    assert value(m, "authsvc_checks_total", decision="deny", reason="missing_credential") == 1
    assert value(m, "authsvc_check_duration_seconds_count") == 0
    assert value(m, "authsvc_check_duration_seconds_sum") == 0


def test_adapter_failures_are_counted_under_their_reason() -> None:
    m = Metrics(process_metrics=False)
    m.observe_failure(Reason.MALFORMED_REQUEST)
    m.observe_failure(Reason.INTERNAL_ERROR, 0.001)
    assert value(m, "authsvc_checks_total", decision="deny", reason="malformed_request") == 1
    assert value(m, "authsvc_checks_total", decision="deny", reason="internal_error") == 1
    assert value(m, "authsvc_check_duration_seconds_count") == 1


def test_key_state_before_any_resolution_is_fail_closed() -> None:
    m = Metrics(process_metrics=False)
    assert value(m, "authsvc_keys_loaded") == 0
    assert value(m, "authsvc_master_key_resolved") == 0
    assert not [k for k in samples(m) if k[0] == "authsvc_master_key_info"]


def key_ids(m: Metrics) -> list[tuple[str, str]]:
    return [
        (dict(k[1])["source"], dict(k[1])["key_id"])
        for k in samples(m)
        if k[0] == "authsvc_master_key_info"
    ]


def test_resolution_publishes_count_source_and_key_id_then_swaps_them() -> None:
    m = Metrics(process_metrics=False)
    m.on_resolution(resolution(MASTER, ALT, source="env:LITELLM_MASTER_KEY", warnings=["w"]))
    assert value(m, "authsvc_keys_loaded") == 2
    assert value(m, "authsvc_master_key_resolved") == 1
    assert value(m, "authsvc_key_resolution_warnings") == 1
    ((source, first),) = key_ids(m)
    assert source == "env:LITELLM_MASTER_KEY" and re.fullmatch(r"[0-9a-f]{12}", first)
    assert value(m, "authsvc_master_key_changes_total") == 0
    m.on_resolution(resolution(MASTER, source="env:LITELLM_MASTER_KEY"))  # same key again
    assert key_ids(m) == [("env:LITELLM_MASTER_KEY", first)]
    assert value(m, "authsvc_master_key_changes_total") == 0
    m.on_resolution(resolution(ALT, source="file:/run/secrets/master"))
    ((source, second),) = key_ids(m)  # the old series disappears
    assert source == "file:/run/secrets/master" and second != first
    assert value(m, "authsvc_master_key_changes_total") == 1
    m.on_resolution(resolution(None))
    assert value(m, "authsvc_master_key_resolved") == 0
    assert value(m, "authsvc_keys_loaded") == 0
    assert key_ids(m) == []
    m.on_resolution(resolution(MASTER))  # back to the first key: a change, same id as before
    assert key_ids(m) == [("env:AUTHSVC_MASTER_KEY", first)]
    assert value(m, "authsvc_master_key_changes_total") == 2


def test_metrics_carry_no_bits_of_the_keys_public_hash() -> None:
    """Issue 20 item 11: /metrics (an unauthenticated port) published the first 48 bits of
    the master key's unsalted SHA-256, an offline guessing aid for human-chosen keys. The
    key_id is an HMAC under a per-process random salt: two processes with the same key show
    different ids, and no prefix of any unsalted hash of the key appears."""
    one, two = Metrics(process_metrics=False), Metrics(process_metrics=False)
    for m in (one, two):
        m.on_resolution(resolution(MASTER))
    body = one.render()[0].decode()
    digest_hex = hashlib.sha256(MASTER.encode()).hexdigest()
    for i in range(len(digest_hex) - 5):
        assert digest_hex[i : i + 6] not in body  # no 24-bit run of the public hash
    assert fingerprint(MASTER) not in body and MASTER not in body
    assert key_ids(one)[0][1] != key_ids(two)[0][1]


def test_a_source_label_that_is_a_key_is_redacted() -> None:
    m = Metrics(process_metrics=False)
    good = resolution(MASTER)
    # A (buggy) resolution naming the key itself as its source, and not a hex fingerprint.
    bad = Resolution(True, Winner(MASTER, MASTER), good.ring)
    m.on_resolution(bad)
    body = m.render()[0].decode()
    assert MASTER not in body
    assert 'source="[REDACTED]"' in body and "fingerprint" not in body


def test_reloads_and_deep_health() -> None:
    m = Metrics(process_metrics=False)
    for result in ("success", "failure", "unchanged"):
        assert value(m, "authsvc_reloads_total", result=result) == 0
    m.on_reload("failure")
    m.on_reload("failure")
    m.on_reload("success")
    assert value(m, "authsvc_reloads_total", result="failure") == 2
    assert value(m, "authsvc_reloads_total", result="success") == 1
    with pytest.raises(ValueError, match="not one of"):
        m.on_reload("maybe")  # type: ignore[arg-type]

    assert value(m, "authsvc_deep_health_ok") is None, "absent until the first check"
    m.on_deep_health(False)
    assert value(m, "authsvc_deep_health_ok") == 0
    m.on_deep_health(True)
    assert value(m, "authsvc_deep_health_ok") == 1
    assert value(m, "authsvc_deep_health_checks_total", result="ok") == 1
    assert value(m, "authsvc_deep_health_checks_total", result="fail") == 1
    # A resolution afterwards keeps the deep-health state (one snapshot, two writers).
    m.on_resolution(resolution(MASTER))
    assert value(m, "authsvc_deep_health_ok") == 1


def test_build_info_and_process_metrics() -> None:
    m = Metrics()
    s = samples(m)
    assert any(k[0] == "authsvc_build_info" and ("version", "0.1.0") in k[1] for k in s)
    assert any(k[0].startswith("process_") for k in s)


def test_registry_is_private() -> None:
    a, b = Metrics(), Metrics()  # a second instance must not collide with the first
    a.observe_decision(VIEW, Decision(Reason.KEY_VALID, "ok"), 0.001)
    assert value(b, "authsvc_checks_total", decision="allow", reason="key_valid") == 0
    assert (
        REGISTRY.get_sample_value(
            "authsvc_checks_total", {"decision": "allow", "reason": "key_valid"}
        )
        is None
    )


def test_no_label_carries_request_data_or_keys() -> None:
    """Feed real decisions for hostile requests; every label name and value stays in a fixed set."""
    m = Metrics(process_metrics=False)
    res = resolution(MASTER, ALT)
    m.on_resolution(res)
    policy = Policy.build()
    for view in [
        RequestView("GET", f"/v1/models?key={MASTER}&x=1"),
        RequestView("POST", f"/{MASTER}/x", {"x-api-key": WRONG}),
        RequestView("GET\n", "/v1/chat?key=" + WRONG, {"authorization": f"Bearer {ALT}"}),
        RequestView("PUT", "/evil\x00path", {"x-api-key": "a" * 5000}),
    ]:
        m.observe_decision(view, decide(view, policy, res.ring, 0.0), 0.001)
    body = m.render()[0].decode()
    for key in (MASTER, ALT, WRONG):
        assert key not in body
    assert "/v1/" not in body and "evil" not in body
    reasons = {r.value for r in Reason}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, s
            if "reason" in s.labels:
                assert s.labels["reason"] in reasons


def test_counting_is_exact_under_threads() -> None:
    m = Metrics(process_metrics=False)
    decision = Decision(Reason.KEY_VALID, "ok")

    def work() -> None:
        for _ in range(2000):
            m.observe_decision(VIEW, decision, 0.0001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(m, "authsvc_checks_total", decision="allow", reason="key_valid") == 8000
    assert value(m, "authsvc_check_duration_seconds_count") == 8000


def test_empty_ring_resolution_is_not_ready_even_if_it_claims_resolved() -> None:
    m = Metrics(process_metrics=False)
    m.on_resolution(Resolution(True, Winner("env:X", "0123456789ab"), KeyRing()))
    assert value(m, "authsvc_master_key_resolved") == 0


def test_openmetrics_on_request() -> None:
    m = Metrics(process_metrics=False)
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_every_metric_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    m = Metrics(process_metrics=False)
    m.on_deep_health(True)  # make the lazily-present gauge appear
    for family in text_string_to_metric_families(m.render()[0].decode()):
        if family.name.endswith("_created"):
            continue  # the standard companion series of counters and histograms
        name = family.name + ("_total" if family.type == "counter" else "")
        name = name + "_info" if family.type == "info" else name
        assert f"`{name}`" in doc, f"{name} is missing from docs/observability.md"


def test_weak_master_key_in_use_and_app_open_are_gauges(tmp_path: Path) -> None:
    from authsvc.config import parse_config
    from authsvc.keys import resolve

    m = Metrics(process_metrics=False)
    weak = parse_config(
        "master_key:\n  sources:\n    - env: K\n", str(tmp_path / "a.yaml"), environ={}
    )
    m.on_resolution(resolve(weak, {"K": "sk-short-1"}))  # LiteLLM runs with it: served, warned
    assert value(m, "authsvc_master_key_resolved") == 1
    assert value(m, "authsvc_master_key_weak") == 1 and value(m, "authsvc_app_open") == 0
    m.on_resolution(resolve(weak, {"K": "sk-a-strong-key-0123456789abcdef"}))
    assert value(m, "authsvc_master_key_weak") == 0
    (tmp_path / "litellm.yaml").write_text(
        "general_settings:\n  dangerously_permit_weak_or_unset_master_key: true\n"
    )
    lite = parse_config(
        "master_key:\n  sources:\n    - litellm_config: litellm.yaml\n      dotenv: 'off'\n",
        str(tmp_path / "b.yaml"),
        environ={},
    )
    m.on_resolution(resolve(lite, {}))  # LiteLLM would accept every request; authsvc closed
    assert value(m, "authsvc_app_open") == 1 and value(m, "authsvc_master_key_resolved") == 0


class _Front:
    """A front's counters as ``FrontStats`` describes them (plain values, as the real one)."""

    def __init__(self) -> None:
        self.refused_counts = {"peer_cap": 3, "memory": 0, "Not A Word!": 7}
        self.closed_counts = {"flood_limit": 2, 'x"}\n': 1}
        self.accept_errors = 1
        self.open_connections = 4
        self.accepting = True


def test_front_counters_by_reason_and_only_word_reasons() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.watch_front(lambda: _Front())
    got = samples(metrics)
    assert got[("authsvc_front_refused_total", (("reason", "peer_cap"),))] == 3
    assert got[("authsvc_front_refused_total", (("reason", "memory"),))] == 0
    assert got[("authsvc_front_closed_total", (("reason", "flood_limit"),))] == 2
    reasons = {
        dict(labels).get("reason") for name, labels in got if name.startswith("authsvc_front_")
    }
    assert reasons == {"peer_cap", "memory", "flood_limit", None}
    assert got[("authsvc_front_connections", ())] == 4
