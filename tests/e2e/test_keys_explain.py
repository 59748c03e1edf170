"""Issue 3 acceptance 5: ``authsvc explain --json`` has the stable shape and never a key, and
``authsvc serve`` logs the same chain (without keys) at start and on every change.

``explain`` runs as a real subprocess (``run_authsvc``: its output goes to the no-key-leak
scan) on several chains: many layers with conflicts, the built-in chain without a config file,
every failing state at once, ``on_conflict: error``, and an invalid config. Each report is
checked against the documented shape field by field (docs/configuration.md) and against the
expected chain. Then a real ``serve`` behind Envoy has its start-up line and each reload line
compared with ``explain --json`` run on the same files at that moment.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from authsvc.keymodel._render import OUTCOMES as _OUTCOMES
from authsvc.keys import fingerprint
from authsvc.stack._children import wait_until
from tests._explain import EXPLAIN_JSON_KEYS
from tests._secretdir import SecretDir
from tests.e2e._harness import Launcher, Stack, new_key, no_key_in, run_authsvc

STATES = {"set", "unset", "empty", "missing", "unreadable", "invalid", "weak"}
FINGERPRINT = re.compile(r"[0-9a-f]{12}\Z")
OUTCOMES = set(_OUTCOMES)
ROLES = {"candidate", "ignored", "misplaced", "app_open"}
LAYERED = """\
master_key:
  sources:
    - file: secret/master
    - env: AUTHSVC_MASTER_KEY
    - value: os.environ/OTHER_KEY
    - litellm_config: litellm.yaml
    - file: secret/backup
keys:
  - name: ci
    file: secret/client-keys
reload:
  poll_interval: 0.2
"""


def check_shape(report: Any) -> None:
    """The stable JSON shape, exactly: these keys in this order, these types, nothing else."""
    assert isinstance(report, dict)
    assert list(report) == EXPLAIN_JSON_KEYS
    assert isinstance(report["app_open"], bool) and isinstance(report["extra_keys"], list)
    assert isinstance(report["resolved"], bool)
    assert isinstance(report["sources"], list) and report["sources"]
    for source in report["sources"]:
        assert list(source) == [
            "source",
            "state",
            "fingerprint",
            "used",
            "outcome",
            "role",
            "detail",
            "note",
            "caution",
        ], source
        assert source["outcome"] in OUTCOMES and source["role"] in ROLES, source
        assert isinstance(source["detail"], str) and source["detail"], source
        assert isinstance(source["note"], str) and isinstance(source["caution"], str)
        assert isinstance(source["source"], str) and source["source"]
        assert re.match(r"(env|file|litellm|config|dotenv):.", source["source"]), source
        assert source["state"] in STATES, source
        fp = source["fingerprint"]
        assert fp is None or FINGERPRINT.match(fp), source
        if source["state"] in ("set", "weak"):
            assert fp is not None, source
        elif source["state"] != "invalid":  # an invalid value may have one, a bad file not
            assert fp is None, source
        assert isinstance(source["used"], bool)
    used = [s for s in report["sources"] if s["used"]]
    if report["resolved"]:
        assert len(used) == 1 and used[0]["state"] == "set"
        assert report["winner"] == {
            "source": used[0]["source"],
            "fingerprint": used[0]["fingerprint"],
            "caution": used[0]["caution"],
        }
    else:
        assert used == [] and report["winner"] is None
    assert isinstance(report["warnings"], list)
    assert all(isinstance(w, str) and w for w in report["warnings"])


def explain(
    env: dict[str, str], keys: list[str], config: Path | None = None
) -> tuple[int, dict[str, Any]]:
    """``authsvc explain --json`` (and the human table): exit status and the checked report."""
    where = ["--config", str(config)] if config is not None else []
    run = run_authsvc("explain", *where, "--json", env=env)
    table = run_authsvc("explain", *where, env=env)
    assert table.returncode == run.returncode and run.stderr == ""
    no_key_in(run.stdout + table.stdout + table.stderr, keys, "explain's output")
    report = json.loads(run.stdout)
    check_shape(report)
    assert (run.returncode == 0) == report["resolved"], run.returncode
    for source in report["sources"]:
        assert source["source"] in table.stdout  # the table lists the same chain
    return run.returncode, report


def states(report: dict[str, Any]) -> list[tuple[str, str, str | None, bool]]:
    return [(s["source"], s["state"], s["fingerprint"], s["used"]) for s in report["sources"]]


def layered(tmp: Path, master: str, client: str) -> tuple[Path, SecretDir]:
    secret = SecretDir(tmp / "secret", {"master": master + "\n", "client-keys": client + "\n"})
    (tmp / "litellm.yaml").write_text("general_settings:\n  master_key: os.environ/APP_KEY\n")
    config = tmp / "authsvc.yaml"
    config.write_text(LAYERED)
    return config, secret


def test_layered_chain_with_conflicts(tmp_path: Path) -> None:
    k1, k2, k3, ci = (new_key(f"explain-layered-{n}") for n in range(4))
    config, secret = layered(tmp_path, k1, ci)
    env = {"AUTHSVC_MASTER_KEY": k1, "OTHER_KEY": k2, "APP_KEY": k1, "LITELLM_MASTER_KEY": k3}
    rc, report = explain(env, [k1, k2, k3, ci], config)
    fp1, fp2, fp3 = fingerprint(k1), fingerprint(k2), fingerprint(k3)
    assert rc == 0
    assert states(report) == [
        (f"file:{secret.path('master')}", "set", fp1, True),
        ("env:AUTHSVC_MASTER_KEY", "set", fp1, False),
        (f"config:{config}#master_key.sources[2]", "set", fp2, False),
        (f"litellm:{tmp_path / 'litellm.yaml'}#general_settings.master_key", "set", fp1, False),
        ("env:LITELLM_MASTER_KEY", "set", fp3, False),
        (f"file:{secret.path('backup')}", "missing", None, False),
    ]
    conflicts = [w for w in report["warnings"] if w.startswith("conflict: ")]
    assert len(conflicts) == 2 and len(report["warnings"]) == 2, report["warnings"]
    assert f"fingerprint {fp2}" in conflicts[0] and f"fingerprint {fp3}" in conflicts[1]


def test_built_in_chain_without_a_config_file(tmp_path: Path) -> None:
    key = new_key("explain-default-chain")
    (tmp_path / "master.key").write_text(f"  {key}\n")
    env = {
        "AUTHSVC_MASTER_KEY": "",  # empty never shadows
        "AUTHSVC_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "LITELLM_MASTER_KEY": key,
    }
    rc, report = explain(env, [key])
    assert rc == 0 and report["warnings"] == []
    assert states(report) == [
        ("env:AUTHSVC_MASTER_KEY", "empty", None, False),
        (f"file:{tmp_path / 'master.key'}", "set", fingerprint(key), True),
        ("env:LITELLM_MASTER_KEY", "set", fingerprint(key), False),
    ]


def test_every_failing_state_fails_closed(tmp_path: Path) -> None:
    # not registered: the leak scan's own drive presents every registered key as a credential,
    # and one with a line break is no credential; the explain() helper checks it is never shown
    spaced = "sk-has-a\nbreak-" + secrets.token_hex(8)
    (tmp_path / "a-directory").mkdir()
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n"
        "    - env: UNSET_KEY\n    - env: EMPTY_KEY\n    - file: nowhere/master\n"
        "    - file: a-directory\n    - value: os.environ/WEAK_KEY\n    - env: SPACED_KEY\n"
    )
    env = {"EMPTY_KEY": "   ", "WEAK_KEY": "sk-1234", "SPACED_KEY": spaced}
    rc, report = explain(env, [spaced], config)
    assert rc == 1 and not report["resolved"]
    assert [(s, st) for s, st, _, _ in states(report)] == [
        ("env:UNSET_KEY", "unset"),
        ("env:EMPTY_KEY", "empty"),
        (f"file:{tmp_path / 'nowhere/master'}", "missing"),
        (f"file:{tmp_path / 'a-directory'}", "unreadable"),
        (f"config:{config}#master_key.sources[4]", "weak"),
        ("env:SPACED_KEY", "invalid"),
    ]
    assert any("publicly known" in w for w in report["warnings"]), report["warnings"]
    assert "sk-1234" not in json.dumps(report)


def test_on_conflict_error_resolves_nothing(tmp_path: Path) -> None:
    k1, k2 = new_key("explain-conflict-1"), new_key("explain-conflict-2")
    (tmp_path / "master").write_text(k1)
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  on_conflict: error\n  sources:\n    - file: master\n    - env: OTHER\n"
    )
    rc, report = explain({"OTHER": k2}, [k1, k2], config)
    assert rc == 1 and report["winner"] is None
    assert states(report) == [
        (f"file:{tmp_path / 'master'}", "set", fingerprint(k1), False),
        ("env:OTHER", "set", fingerprint(k2), False),
    ]
    assert any("on_conflict is error" in w for w in report["warnings"]), report["warnings"]


def test_invalid_config_is_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    key = new_key("explain-invalid-config")
    config = tmp_path / "authsvc.yaml"
    config.write_text(f"master_key:\n  sources:\n    - value: {key}\n  allow_weak: maybe\n")
    run = run_authsvc("explain", "--config", str(config), "--json", env={})
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"authsvc explain: {config}:4: master_key.allow_weak:")
    no_key_in(run.stderr, [key], "explain's error message")


# --- serve logs the same chain at start and on every change -------------------------------------


def resolution_lines(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.authz.log_records() if r.get("event") == "key_resolution"]


def test_serve_logs_the_chain_at_start_and_on_every_change(procs: Launcher, tmp_path: Path) -> None:
    k1, k2, k3, ci = (new_key(f"explain-serve-{n}") for n in range(4))
    keys = [k1, k2, k3, ci]
    config, secret = layered(tmp_path, k1, ci)
    env = {"AUTHSVC_MASTER_KEY": k1, "OTHER_KEY": k2, "APP_KEY": k1, "LITELLM_MASTER_KEY": k3}
    stack = procs.config_stack(config, app_key=k1, env=env)

    def expect_line(change: Callable[[], object], count: int) -> dict[str, Any]:
        change()
        assert wait_until(lambda: len(resolution_lines(stack)) >= count, 5), count
        lines = resolution_lines(stack)
        assert len(lines) == count, lines  # one line per change, no more
        _, report = explain(env, keys, config)  # explain on the same files, right now
        assert lines[-1]["chain"] == {k: v for k, v in report.items() if k != "dry_run"}
        assert lines[-1]["warnings"] == report["warnings"]
        return lines[-1]

    start = expect_line(lambda: None, 1)
    assert start["phase"] == "startup" and start["fingerprint"] == fingerprint(k1)
    assert start["level"] == "warning" and start["keys_loaded"] == 2  # the conflicts

    # 1. the Secret's master key rotates (the winner changes)
    rotated = expect_line(lambda: secret.rotate({"master": k2, "client-keys": ci}), 2)
    assert rotated["phase"] == "reload" and rotated["fingerprint"] == fingerprint(k2)
    r = stack.get("/v1/models", {"authorization": f"Bearer {k2}"})
    assert r.reached_upstream and r.echo["headers"]["x-authsvc-key-name"] == ["master"]

    # 2. only a shadowed layer changes (missing -> set): still a change, still a line
    files = {"master": k2, "client-keys": ci, "backup": k2}
    shadow = expect_line(lambda: secret.rotate(files), 3)
    assert shadow["fingerprint"] == fingerprint(k2)
    assert shadow["chain"]["sources"][-1]["state"] == "set"

    # 3. kubelet rewrites the same content: no change, no line (the next change is line 4)
    secret.rotate(files)
    time.sleep(0.6)  # three polls: the same content must not produce a line
    assert len(resolution_lines(stack)) == 3
    gone = expect_line(lambda: secret.rotate({"master": k2, "client-keys": ci}), 4)
    assert gone["chain"]["sources"][-1]["state"] == "missing"
    no_key_in(stack.authz.proc.log_path.read_text(), keys, "serve's log")
