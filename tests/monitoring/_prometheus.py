"""Where the monitoring tests find Debian's prometheus/promtool (installed by `make prometheus`,
which `make test` runs first)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc.observability._metrics import Metrics
from tests._resolution_stub import resolution

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

PENDING: dict[str, str] = {
    "authsvc_app_port_exposed": "the bypass detector's gauge, added by issue #16 (branch kube)",
}
"""Metrics the dashboard shows that this build does not expose yet (a panel, no data)."""

_METRIC = re.compile(r"\b(authsvc_[a-z0-9_]+)")


def tool(name: str) -> str:
    """The path of ``prometheus``/``promtool``; skip (or, as root, fail) when missing."""
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} not found: `make prometheus` installs Debian's prometheus package"
    if os.geteuid() == 0:  # CI runs `make test` as root, which installs it: never skip there
        pytest.fail(message)
    pytest.skip(message)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panel_queries() -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def instant(expr: str, rate_interval: str = "1m") -> str:
    """A panel's query as Prometheus runs it: Grafana's variables filled in."""
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*")


def metric_names(expr: str) -> set[str]:
    """The metric names in ``expr`` (label values such as ``"authsvc_denied"`` are not)."""
    return set(_METRIC.findall(re.sub(r'"[^"]*"', '""', expr)))


def exposed_sample_names() -> set[str]:
    """Every sample name authsvc's /metrics can carry (conditional families switched on)."""
    m = Metrics()
    m.on_resolution(resolution("sk-monitoring-0123456789"))
    m.on_deep_health(True, "agree")
    m.set_dry_run(True)
    text = m.render()[0].decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names
