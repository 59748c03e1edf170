"""Issue 3 acceptance 2: LiteLLM mode, each case end to end through a real Envoy.

Every case writes a LiteLLM ``config.yaml`` and an authsvc config whose only source is
``litellm_config:`` it, starts the real ``authsvc serve`` with the case's environment, a real
Envoy, and the demo upstream holding the key LiteLLM itself would resolve (written down per
case from LiteLLM's rule, docs/configuration.md "LiteLLM mode": a *present*
``general_settings.master_key`` wins, ``os.environ/NAME`` read from the environment, even when it
resolves to nothing; only an *absent* entry falls back to ``LITELLM_MASTER_KEY``; a
``master_key`` under ``litellm_settings`` is ignored). Then:

- the key LiteLLM would use gets 200 end to end (authsvc allowed it AND the app accepted it:
  the sidecar and the app agree); every other key of the case gets authsvc's 401 and never
  reaches the app;
- where LiteLLM would have no master key, authsvc fails closed: 503 naming the source and its
  state, and nothing reaches the app (no fallback to ``LITELLM_MASTER_KEY``);
- ``authsvc explain --json`` (same config, same environment) gives exactly the expected chain,
  and serve's start-up log line carries the same chain and warnings — without any key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from authsvc.keys import fingerprint
from tests._explain import EXPLAIN_JSON_KEYS
from tests.e2e._harness import Launcher, Stack, new_key, no_key_in, run_authsvc

GS = "general_settings.master_key"
LS = "litellm_settings.master_key"
ENV = "env:LITELLM_MASTER_KEY"


@dataclass(frozen=True)
class Case:
    """``yaml``/``env`` name keys as ``{cfg}``, ``{env}``, ``{mis}``; ``app`` is the key LiteLLM
    would use (``None``: no master key); ``sources``: (label, state, used) in chain order, a
    label starting with ``#`` meaning ``litellm:PATH#...``; ``warnings``: substrings, one per
    expected warning (``{...}`` are fingerprints)."""

    id: str
    yaml: str
    env: dict[str, str]
    app: str | None
    sources: list[tuple[str, str, bool]]
    warnings: list[str] = field(default_factory=list)
    unready: str = ""  # the fail-closed 503 must name the source with this state


CASES = [
    Case(
        "key-only-in-env",
        "model_list: []\ngeneral_settings:\n  database_url: null\n",
        {"LITELLM_MASTER_KEY": "{env}"},
        "env",
        [(f"#{GS}", "unset", False), (ENV, "set", True)],
    ),
    Case(
        "key-only-in-config",
        "general_settings:\n  master_key: {cfg}\n",
        {},
        "cfg",
        [(f"#{GS}", "set", True), (ENV, "unset", False)],
    ),
    Case(
        "config-os-environ-set",
        "general_settings:\n  master_key: os.environ/APP_MASTER_KEY\n",
        {"APP_MASTER_KEY": "{cfg}"},
        "cfg",
        [(f"#{GS}", "set", True), (ENV, "unset", False)],
    ),
    Case(
        "config-os-environ-unset",  # LITELLM_MASTER_KEY is set: LiteLLM still does not use it
        "general_settings:\n  master_key: os.environ/APP_MASTER_KEY\n",
        {"LITELLM_MASTER_KEY": "{env}"},
        None,
        [(f"#{GS}", "unset", False), (ENV, "set", False)],
        unready=f"#{GS} (unset",
    ),
    Case(
        "config-os-environ-empty",
        "general_settings:\n  master_key: os.environ/APP_MASTER_KEY\n",
        {"APP_MASTER_KEY": "", "LITELLM_MASTER_KEY": "{env}"},
        None,
        [(f"#{GS}", "empty", False), (ENV, "set", False)],
        unready=f"#{GS} (empty",
    ),
    Case(
        "env-and-config-differ",  # config wins; the conflict is reported
        "general_settings:\n  master_key: {cfg}\n",
        {"LITELLM_MASTER_KEY": "{env}"},
        "cfg",
        [(f"#{GS}", "set", True), (ENV, "set", False)],
        [f"conflict: {ENV} holds a different key (fingerprint {{env}}) than litellm:"],
    ),
    Case(
        "misplaced-under-litellm-settings",  # never used, reported; the env key is LiteLLM's
        "litellm_settings:\n  master_key: {mis}\n  drop_params: true\n",
        {"LITELLM_MASTER_KEY": "{env}"},
        "env",
        [(f"#{GS}", "unset", False), (ENV, "set", True), (f"#{LS}", "set", False)],
        [f"#{LS}: misplaced: LiteLLM ignores master_key under litellm_settings"],
    ),
    Case(
        "misplaced-only",  # LiteLLM would run WITHOUT a master key: authsvc fails closed
        "litellm_settings:\n  master_key: {mis}\n",
        {},
        None,
        [(f"#{GS}", "unset", False), (ENV, "unset", False), (f"#{LS}", "set", False)],
        [f"#{LS}: misplaced: LiteLLM ignores master_key under litellm_settings"],
        unready=f"#{GS} (unset",
    ),
]


def _projected(report: dict[str, Any]) -> dict[str, Any]:
    """The fields this table pins down (the rest: test_keys_explain, test_litellm_parity)."""
    winner = report["winner"]
    return {
        "resolved": report["resolved"],
        "winner": None if winner is None else {k: winner[k] for k in ("source", "fingerprint")},
        "sources": [
            {k: s[k] for k in ("source", "state", "fingerprint", "used")} for s in report["sources"]
        ],
    }


def _label(label: str, litellm: Path) -> str:
    return f"litellm:{litellm}{label}" if label.startswith("#") else label


def expected_report(case: Case, litellm: Path, keys: dict[str, str]) -> dict[str, Any]:
    sources = [
        {
            "source": _label(label, litellm),
            "state": state,
            "fingerprint": _fingerprint_of(case, label, state, keys),
            "used": used,
        }
        for label, state, used in case.sources
    ]
    winner = next(
        ({"source": s["source"], "fingerprint": s["fingerprint"]} for s in sources if s["used"]),
        None,
    )
    return {"resolved": winner is not None, "winner": winner, "sources": sources}


def _fingerprint_of(case: Case, label: str, state: str, keys: dict[str, str]) -> str | None:
    if state != "set":
        return None
    if label == ENV:
        return fingerprint(keys["env"])
    return fingerprint(keys["mis"] if label.endswith(LS) else keys["cfg"])


def write_configs(tmp: Path, case: Case, keys: dict[str, str]) -> tuple[Path, Path]:
    litellm = tmp / "litellm" / "config.yaml"
    litellm.parent.mkdir()
    litellm.write_text(case.yaml.format(**keys), encoding="utf-8")
    config = tmp / "authsvc.yaml"
    config.write_text("master_key:\n  sources:\n    - litellm_config: litellm/config.yaml\n")
    return config, litellm


def startup_record(stack: Stack) -> dict[str, Any]:
    records = [
        r
        for r in stack.authz.log_records()
        if r.get("event") == "key_resolution" and r.get("phase") == "startup"
    ]
    assert len(records) == 1, stack.authz.proc.log_tail()
    return records[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_litellm_case_end_to_end(procs: Launcher, tmp_path: Path, case: Case) -> None:
    keys = {name: new_key(f"litellm-{name}") for name in ("cfg", "env", "mis", "wrong")}
    env = {name: value.format(**keys) for name, value in case.env.items()}
    config, litellm = write_configs(tmp_path, case, keys)
    app_key = keys[case.app] if case.app is not None else None
    stack = procs.config_stack(config, app_key=app_key, env=env)

    # 1. through Envoy: only LiteLLM's key passes, and the app accepts it
    for name, key in keys.items():
        r = stack.get("/v1/models", {"authorization": f"Bearer {key}"})
        if app_key is None:
            assert r.status == 503 and r.deny_reason == "no_master_key", (name, r)
            message = r.json()["error"]["message"]
            assert message.startswith("authsvc has no usable master key: checked "), message
            assert _label(case.unready, litellm) in message, message
            no_key_in(message, keys, "the 503 message")
        elif key == app_key:
            assert r.status == 200 and r.reached_upstream, (name, r)
            assert r.echo["headers"]["x-authsvc-key-name"] == ["master"]
        else:
            assert r.status == 401 and r.deny_reason == "unknown_key", (name, r)
    no_key = stack.get("/v1/models")
    assert no_key.status == (503 if app_key is None else 401) and not no_key.reached_upstream
    assert stack.get("/health/liveliness").status == 200  # probes never need the key
    protected = [r for r in stack.demo.requests() if not r["public"]]
    assert all(r["authorized"] for r in protected), "the app saw a key it rejects"
    assert len(protected) == (0 if app_key is None else 1)

    # 2. explain --json: exactly the expected chain, the same as serve's start-up line
    run = run_authsvc("explain", "--config", str(config), "--json", env=env)
    assert run.returncode == (0 if app_key is not None else 1), run.stderr
    no_key_in(run.stdout + run.stderr, keys, "explain's output")
    report = json.loads(run.stdout)
    assert list(report) == EXPLAIN_JSON_KEYS
    assert report.pop("dry_run") is False  # explain's addition to the report serve logs
    warnings = report.pop("warnings")
    assert _projected(report) == expected_report(case, litellm, keys)
    assert report["app_open"] is False
    fps = {name: fingerprint(key) for name, key in keys.items()}
    expected = [_label(w, litellm).format(**fps) for w in case.warnings]
    assert len(warnings) == len(expected), warnings
    for want in expected:
        assert sum(want in w for w in warnings) == 1, (want, warnings)

    line = startup_record(stack)
    assert line["chain"] == {**report, "warnings": warnings}
    assert line["warnings"] == warnings and line["resolved"] is (app_key is not None)
    assert line["level"] == ("error" if app_key is None else "warning" if warnings else "info")
    no_key_in(stack.authz.proc.log_path.read_text(), keys, "serve's log")
