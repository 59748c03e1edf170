"""The alert rules and the dashboard, checked by the real promtool (Debian's prometheus
package): `promtool check rules`, `promtool test rules` (a unit test with series for every
alert), and every metric they name is one authsvc really exposes."""

from __future__ import annotations

import subprocess

import yaml

from tests.monitoring._prometheus import (
    ALERT_TESTS,
    ALERTS,
    PENDING,
    dashboard,
    exposed_sample_names,
    metric_names,
    panel_queries,
    tool,
)

EXPECTED_ALERTS = {
    "AuthsvcNoMasterKey",
    "AuthsvcSidecarAppDisagree",
    "AuthsvcKeyReloadFailing",
    "AuthsvcDeepHealthUnreachable",
    "AuthsvcDenyRateSpike",
    "AuthsvcDryRunLeftOn",
}


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in done.stdout


def test_promtool_test_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ALERT_TESTS.parent,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_there_and_has_a_firing_and_a_quiet_unit_test() -> None:
    assert {str(rule["alert"]) for rule in rules()} == EXPECTED_ALERTS
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for name in EXPECTED_ALERTS:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no case where it is quiet"
    for rule in rules():
        labels = rule["labels"]
        assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning")


def test_every_metric_in_rules_and_panels_is_one_authsvc_exposes() -> None:
    exposed = exposed_sample_names()
    exprs = [str(rule["expr"]) for rule in rules()] + [expr for _, expr in panel_queries()]
    unknown = {name for expr in exprs for name in metric_names(expr)} - exposed - set(PENDING)
    assert not unknown, f"not exposed by authsvc: {sorted(unknown)}"


def test_the_dashboard_covers_what_operators_look_at() -> None:
    data = dashboard()
    assert data["uid"] == "authsvc-overview"
    names = {name for _, expr in panel_queries() for name in metric_names(expr)}
    for needed in (
        "authsvc_checks_total",
        "authsvc_check_duration_seconds_bucket",
        "authsvc_master_key_resolved",
        "authsvc_reloads_total",
        "authsvc_key_resolution_timestamp_seconds",
        "authsvc_deep_health_ok",
        "authsvc_app_port_exposed",
        "authsvc_dry_run_would_deny_total",
        "authsvc_dry_run_enabled",
    ):
        assert needed in names, needed
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in data["templating"]["list"]}
    assert variables == {"datasource", "instance"}
