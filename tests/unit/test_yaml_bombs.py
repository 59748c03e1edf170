"""Issue 20 item 4: YAML alias bombs and deep nesting are refused at load, quickly and boundedly.

The attack on the code before the fix: a "billion laughs" document at
``environment_variables.LITELLM_MASTER_KEY`` of a LiteLLM config was loaded as shared objects
and then expanded by ``str(value)``: ~28 s of CPU and 5 GB of RSS before the reading was
refused, at start, in ``explain`` and at every reload. A few 100,000 ``[`` crashed libyaml's
composer (SIGSEGV). Both the authsvc config and LiteLLM configs now go through
``config._yaml.compose``, which walks the parser's events first and stops at the first value
past ``MAX_VALUES`` (alias expansion counted) or level past ``MAX_DEPTH``.

The full-size attacks run in a child process with a 1 GiB address-space limit and a timeout,
so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from authsvc._errors import ConfigError
from authsvc._yaml import MAX_DEPTH, MAX_VALUES, compose, load_bounded
from authsvc.config import load_config
from authsvc.keymodel import State
from authsvc.keys import KeyStore, Reloader, resolve
from authsvc.sources._litellm import read_litellm
from tests._keys import make_key

KEY = make_key("yaml-bombs-master")
EXPANDS = "the document holds more than 250,000 values"


def laughs(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """Anchors a0..a{levels-1}: each a list of ``width`` aliases of the previous one, so the
    last expands to width**levels values (9**9 = 387,420,489)."""
    lines = [f"{indent}a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def litellm_bomb() -> str:
    return (
        "x-anchors:\n"
        + laughs(indent="  ")
        + "environment_variables:\n  LITELLM_MASTER_KEY: *a8\n"
        + "general_settings: {}\n"
    )


def run_limited(argv: list[str], env: dict[str, str]) -> tuple[int, str, float, float]:
    """``argv`` in a child with RLIMIT_AS = 1 GiB: (exit code, output, seconds, max RSS MiB)."""

    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"PATH": os.environ["PATH"], **env},
        preexec_fn=limit,
    )
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(60, kill)
    timer.start()
    assert proc.stdout is not None
    try:
        with proc.stdout:
            out = proc.stdout.read()
        # wait4: this child's own peak RSS (RUSAGE_CHILDREN would be the largest of every
        # child this test process ever reaped, e.g. an earlier test's 100,000-key authsvc)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    if killed.is_set():
        pytest.fail(f"{argv[3:]} did not finish within 60 s")
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    rss = usage.ru_maxrss / 1024
    return proc.returncode, out.decode(errors="replace"), seconds, rss


# --- the bounds themselves ------------------------------------------------------------------


def test_an_alias_bomb_in_the_config_is_refused_at_its_line_in_milliseconds() -> None:
    text = laughs() + "public_paths: *a8\n"
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        compose(text, "authsvc.yaml")
    elapsed = time.perf_counter() - start
    assert str(info.value) == (
        f"authsvc.yaml:6: invalid YAML: {EXPANDS} (an alias counts as all the values it repeats)"
    )
    assert elapsed < 0.5, elapsed  # measured: ~0.2 ms (stops at the first value too many)


def test_recursive_aliases_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"c.yaml:1: .*an alias refers to a value that contains"):
        compose("a: &a [1, *a]\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml:2: .*an alias refers to a value that contains"):
        compose("a: &a\n  b: *a\n", "c.yaml")
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(ConfigError, match=f"nest deeper than {MAX_DEPTH} levels"):
        compose(deep, "c.yaml")
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert compose(ok, "c.yaml") is not None


def test_a_very_deep_document_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """libyaml's composer recursed once per level: 300,000 levels crashed the process."""
    config = tmp_path / "deep.yaml"
    config.write_text("[" * 300_000 + "]" * 300_000)
    code, out, seconds, _ = run_limited(
        [sys.executable, "-m", "authsvc", "explain", "--config", str(config)], {}
    )
    assert code == 2, (code, out[-500:])  # 2: config invalid (a crash is -11)
    assert f"nest deeper than {MAX_DEPTH} levels" in out
    assert seconds < 30


def test_a_wide_document_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """No alias needed: a 1 MiB flow list of 500,000 values cost 211 MB RSS and 7 s."""
    config = tmp_path / "authsvc.yaml"
    config.write_text("public_paths: [" + ",".join(["/a"] * 300_000) + "]\n")
    code, out, seconds, rss = run_limited(
        [sys.executable, "-m", "authsvc", "explain", "--config", str(config)], {}
    )
    assert code == 2 and EXPANDS in out, (code, out[-300:])
    assert seconds < 30 and rss < 200, (seconds, rss)  # measured: 0.58 s, 28 MB


def test_the_largest_realistic_config_fits(tmp_path: Path) -> None:
    """10,000 sha256 keys (about what fits in the 1 MiB file limit) stay far below the bound."""
    entries = "".join(f"  - name: k{i}\n    sha256: '{i:064x}'\n" for i in range(1, 10_001))
    config = tmp_path / "authsvc.yaml"
    config.write_text("keys:\n" + entries)
    assert config.stat().st_size < 1 << 20
    assert len(load_config(str(config), environ={}).keys) == 10_000


def test_legitimate_anchors_still_load(tmp_path: Path) -> None:
    """Anchors used as intended: one path list shared by 2,000 keys (~10,000 values)."""
    entries = "".join(
        f"  - name: k{i}\n    sha256: '{i:064x}'\n    paths: *scope\n" for i in range(1, 2001)
    )
    config = tmp_path / "authsvc.yaml"
    first = (
        "  - name: k0\n    sha256: '" + "f" * 64 + "'\n    paths: &scope [/v1/models, /v1/chat/*]\n"
    )
    config.write_text("keys:\n" + first + entries)
    loaded = load_config(str(config), environ={})
    assert len(loaded.keys) == 2001
    assert loaded.keys[2000].paths == loaded.keys[0].paths
    assert load_bounded("a: &x [1, 2]\nb: *x\n", "f.yaml") == {"a": [1, 2], "b": [1, 2]}
    assert MAX_VALUES == 250_000


# --- LiteLLM configs ------------------------------------------------------------------------


def test_a_litellm_bomb_is_an_invalid_reading_in_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(litellm_bomb())
    start = time.perf_counter()
    (reading,) = read_litellm(str(path), {}, max_length=1024)
    elapsed = time.perf_counter() - start
    assert reading.state is State.INVALID
    assert reading.detail.startswith(f"the LiteLLM config is not valid YAML (line 7: {EXPANDS}")
    assert elapsed < 0.5, elapsed


def test_a_list_where_the_fallback_key_belongs_is_invalid_not_its_str(tmp_path: Path) -> None:
    """Type-checked before it is converted: today's ``str(value)`` turned ``[KEY]`` into the
    header-safe string ``['KEY']``, a usable key no operator meant."""
    path = tmp_path / "config.yaml"
    gs = "general_settings:\n  store_model_in_db: false\n"  # else LiteLLM ignores the entry
    path.write_text(f"{gs}environment_variables:\n  LITELLM_MASTER_KEY: [{KEY}]\n")
    readings = read_litellm(str(path), {}, max_length=1024)
    fallback = readings[1]
    assert fallback.source.endswith("#environment_variables.LITELLM_MASTER_KEY")
    assert (fallback.state, fallback.fingerprint) == (State.INVALID, None)
    assert fallback.detail == (
        "environment_variables.LITELLM_MASTER_KEY is a list or a mapping, not a string"
    )
    path.write_text(f"{gs}environment_variables:\n  LITELLM_MASTER_KEY: {KEY}\n")  # legit
    assert read_litellm(str(path), {}, max_length=1024)[1].state is State.SET


def test_explain_refuses_the_full_litellm_bomb_quickly_and_small(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(litellm_bomb())
    authsvc_config = tmp_path / "authsvc.yaml"
    authsvc_config.write_text(f"master_key:\n  sources:\n    - litellm_config: {path}\n")
    code, out, seconds, rss = run_limited(
        [sys.executable, "-m", "authsvc", "explain", "--config", str(authsvc_config)], {}
    )
    assert code == 1, (code, out[-500:])  # 1: no usable master key (the layer is invalid)
    assert EXPANDS in out
    assert seconds < 30 and rss < 200, (seconds, rss)  # measured: ~0.4 s, ~40 MiB


def test_a_reload_to_a_bomb_keeps_the_last_good_keys_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"general_settings:\n  master_key: {KEY}\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text(f"master_key:\n  sources:\n    - litellm_config: {path}\n")
    initial = resolve(load_config(str(config), environ={}), {})
    store = KeyStore(initial.ring)
    errors: list[str] = []
    reloader = Reloader(str(config), {}, store, initial=initial, on_error=errors.append)
    good = store.current
    path.write_text(litellm_bomb() + f"  master_key: {KEY}\n")
    start = time.perf_counter()
    assert reloader.reload() is False
    elapsed = time.perf_counter() - start
    assert store.current is good and len(errors) == 1
    assert "is now invalid" in errors[0] and EXPANDS in errors[0]
    assert elapsed < 0.5, elapsed
    config.write_text(laughs() + "public_paths: *a8\n")  # the authsvc config itself, too
    assert reloader.reload() is False and store.current is good
    assert errors[-1].startswith("config reload failed: ") and EXPANDS in errors[-1]


@pytest.mark.parametrize(
    "text",
    ["max_credential_length: " + "9" * 5000, "health_check: {interval: " + "9" * 5000 + "}"],
    ids=["integer", "seconds"],
)
def test_a_huge_number_is_refused_before_it_is_converted(tmp_path: Path, text: str) -> None:
    """Type-checked (and size-checked) before conversion: int() of 5,000 digits raised a
    ValueError (Python's digit limit) that escaped as a traceback."""
    config = tmp_path / "authsvc.yaml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=r"authsvc.yaml:1: .*got a number of 5000 characters"):
        load_config(str(config), environ={})
