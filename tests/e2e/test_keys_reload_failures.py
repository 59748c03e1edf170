"""Issue 3 acceptance 4: a broken reload keeps serving the last good keys, through a real Envoy.

Each case starts ``authsvc serve`` on a config file next to a Secret-style directory
(``tests/_secretdir.py``), breaks one thing, and checks that:

- through Envoy the last good keys still work (the master key 200 end to end, the extra key
  reaches the app) and everything else is still refused (401), ``/readyz`` stays 200;
- the authsvc log has exactly ONE line saying why (naming the file and what is wrong), not one
  per poll, and no key;
- fixing it is picked up (a new key that only the fix brings is accepted).

Breakages: garbage YAML over the config file; the key file turned into a directory (unreadable:
root ignores file modes, so no chmod); a weak key rotated into the Secret.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authsvc.keys import fingerprint
from authsvc.stack._children import http_status, wait_until
from tests._secretdir import DIRECTORY, SecretDir
from tests.e2e._harness import Launcher, Response, Stack, http_request, new_key, no_key_in

POLL = 0.2
CONFIG = f"""\
master_key:
  sources:
    - file: secret/master
keys:
  - name: ci
    file: secret/client-keys
reload:
  poll_interval: {POLL}
"""
LATE = "  - name: late\n    env: LATE_KEY\n"  # inserted after the 'ci' entry by the config fix
WEAK = "sk-1234"  # LiteLLM's documented example key: publicly known


@dataclass
class World:
    tmp: Path
    config: Path
    secret: SecretDir
    stack: Stack
    keys: dict[str, str]


def call(stack: Stack, key: str | None, header: str = "x-api-key") -> Response:
    headers = {} if key is None else {header: f"Bearer {key}" if header == "authorization" else key}
    return http_request(stack.port, "GET", "/v1/models", headers, timeout=5)


def assert_serving(w: World, master: str, extra: dict[str, str], refused: list[str]) -> None:
    """The master key passes end to end; each extra key (name → key) reaches the app with its
    name; every key in ``refused`` (and no key at all) gets authsvc's 401."""
    r = call(w.stack, master, "authorization")
    assert r.status == 200 and r.echo["headers"]["x-authsvc-key-name"] == ["master"], r
    for name, key in extra.items():
        r = call(w.stack, key)
        assert r.reached_upstream and r.echo["headers"]["x-authsvc-key-name"] == [name], r
    for key in [*refused, None]:
        r = call(w.stack, key)
        assert r.status == 401 and not r.reached_upstream, r
    assert http_status("127.0.0.1", w.stack.authz.status_port, "/readyz") == 200


def failures(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.authz.log_records() if r.get("event") == "key_reload"]


def write_atomically(path: Path, text: str) -> None:
    """Replace a file's content in one step (write a sibling, rename it over)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@pytest.fixture
def world(procs: Launcher, tmp_path: Path) -> World:
    keys = {
        name: new_key(f"reload-failure-{name}")
        for name in ("master", "master2", "ci", "late", "wrong")
    }
    secret = SecretDir(tmp_path / "secret", secret_files(keys["master"], keys["ci"]))
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    stack = procs.config_stack(config, app_key=keys["master"], env={"LATE_KEY": keys["late"]})
    return World(tmp_path, config, secret, stack, keys)


def secret_files(master: str | object, ci: str) -> dict[str, Any]:
    return {"master": master if master is DIRECTORY else f"{master}\n", "client-keys": f"{ci}\n"}


# --- the breakages: (break it, what the one log line must say, fix it, the key the fix adds) ---


def garbage_config(w: World) -> tuple[list[str], Callable[[], None], str]:
    write_atomically(w.config, CONFIG.replace("  sources:\n", "  sources: [\n") + "{{ nope")
    why = ["config reload failed", f"{w.config}:", "invalid YAML", "keeping the last good keys"]

    def fix() -> None:
        write_atomically(w.config, CONFIG.replace("reload:", LATE + "reload:"))

    return why, fix, "late"


def unreadable_key_file(w: World) -> tuple[list[str], Callable[[], None], str]:
    w.secret.rotate(secret_files(DIRECTORY, w.keys["ci"]))
    why = [
        f"reload rejected: file:{w.secret.path('master')} is now unreadable",
        "is a directory",
        f"keeping the last good keys (master from file:{w.secret.path('master')}, "
        f"fingerprint {fingerprint(w.keys['master'])})",
    ]

    def fix() -> None:
        w.secret.rotate(secret_files(w.keys["master2"], w.keys["ci"]))

    return why, fix, "master2"


def weak_key(w: World) -> tuple[list[str], Callable[[], None], str]:
    w.secret.rotate(secret_files(WEAK, w.keys["ci"]))
    why = [
        f"reload rejected: file:{w.secret.path('master')} is now weak",
        "publicly known default key",
        "keeping the last good keys",
    ]

    def fix() -> None:
        w.secret.rotate(secret_files(w.keys["master2"], w.keys["ci"]))

    return why, fix, "master2"


@pytest.mark.parametrize("breakage", [garbage_config, unreadable_key_file, weak_key])
def test_broken_reload_keeps_the_last_good_keys(
    world: World, breakage: Callable[[World], tuple[list[str], Callable[[], None], str]]
) -> None:
    w, keys = world, world.keys
    extra = {"ci": keys["ci"]}
    assert_serving(w, keys["master"], extra, [keys["wrong"], keys["late"], keys["master2"]])
    assert failures(w.stack) == []

    why, fix, added = breakage(w)
    assert wait_until(lambda: failures(w.stack), 5), w.stack.authz.proc.log_tail()
    assert_serving(w, keys["master"], extra, [keys["wrong"], keys["late"], keys["master2"], WEAK])
    time.sleep(5 * POLL)  # five more polls re-read the same broken state: no new line
    lines = failures(w.stack)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "warning" and line["result"] == "failure"
    for part in why:
        assert part in line["error"], (part, line["error"])
    assert line["message"] == f"key reload failed: {line['error']}"
    assert WEAK not in line["message"]
    print(f"\n{breakage.__name__}: {line['message']}")

    fix()
    probe_header = "authorization" if added.startswith("master") else "x-api-key"
    assert wait_until(lambda: call(w.stack, keys[added], probe_header).reached_upstream, 5)
    if added == "master2":  # the master key moved on: the old one is refused from now on
        w.stack.demo.key_file.write_text(keys["master2"] + "\n")
        assert_serving(w, keys["master2"], extra, [keys["wrong"], keys["master"], WEAK])
    else:
        assert_serving(w, keys["master"], {**extra, "late": keys["late"]}, [keys["wrong"]])
    assert len(failures(w.stack)) == 1
    reloads = [r for r in w.stack.authz.log_records() if r.get("phase") == "reload"]
    assert len(reloads) == 1, reloads  # the fix, logged once with its chain

    log = w.stack.authz.proc.log_path.read_text()
    no_key_in(log, keys, "the authsvc log")
    assert WEAK not in log  # not a secret (publicly known): a plain assert may print it
