"""Issue 20 item 6: a config error never quotes a key, wherever the key was pasted.

The attack on the code before the fix: a key pasted as a YAML mapping key, into
``public_paths``, ``credentials``, ``on_conflict``, ``env:`` ... came back verbatim in ``serve``'s
stderr, in ``explain`` (text and JSON) and in the reload log line; only ``sk-``-shaped strings
were redacted, and only in reload logs. Messages are now redacted by construction: they name
the file, line and entry and the kind of problem, and quote a value only when it is provably no
key (``config._yaml.shown``: shorter than any usable key and a plain identifier/path).

The keys below are deliberately NOT ``sk-``-shaped: no pattern can save a message.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from authsvc._errors import ConfigError
from authsvc._yaml import env_name_shown, quoted, shown
from authsvc.config import load_config
from authsvc.keys import KeyStore, Reloader, resolve
from authsvc.observability import Observer
from tests._keys import make_key, register
from tests.e2e._harness import run_authsvc

PASSWORD = register("Sx7kq2Vw9pLm4Rt8Zb3N", "item6-password")  # a password generator's output
DASHED = register("Sx7kq2-Vw9pLm4_Rt8Zb3N-q", "item6-dashed")  # not an env var name
BASE32 = register("MFRGGZDFMZTWQ2LKNNWG23TP", "item6-base32")  # upper case + digits
NUMERIC = register("84736291047382910473829", "item6-numeric")  # digits only
MASTER = make_key("item6-master")
KEYS = (PASSWORD, DASHED, BASE32, NUMERIC)


def assert_no_key_or_fragment(text: str, where: str) -> None:
    """No key, and no run of 8 characters of one, in ``text`` (the failure names no key)."""
    for n, key in enumerate(KEYS):
        for i in range(len(key) - 7):
            if key[i : i + 8] in text:
                pytest.fail(f"key #{n} (or 8 characters of it) found in {where}", pytrace=False)


CASES = {
    "top-level mapping key": f"{PASSWORD}: 1\n",
    "nested mapping key": f"master_key:\n  {PASSWORD}: x\n",
    "key entry mapping key": f"keys:\n  - name: a\n    env: A\n    {DASHED}: b\n",
    "public_paths entry": f"public_paths: [{PASSWORD}]\n",
    "public_paths path": f"public_paths: [/v1/{PASSWORD}/../x]\n",
    "protected_health_path": f"protected_health_path: {DASHED}\n",
    "on_conflict": f"master_key:\n  on_conflict: {PASSWORD}\n",
    "env name": f"master_key:\n  sources:\n    - env: {DASHED}\n",
    "os.environ name": f"master_key:\n  sources:\n    - value: os.environ/{DASHED}\n",
    "key name": f"keys:\n  - name: '{PASSWORD}!'\n    env: A\n",
    "credentials": f"credentials: [{PASSWORD}]\n",
    "paths": f"keys:\n  - name: a\n    env: A\n    paths: [{PASSWORD}]\n",
    "paths star": f"keys:\n  - name: a\n    env: A\n    paths: ['/{PASSWORD}*/x']\n",
    "expires": f"keys:\n  - name: a\n    env: A\n    expires: {PASSWORD}\n",
    "max_credential_length": f"max_credential_length: {NUMERIC}\n",
    "interval": f"health_check: {{interval: {NUMERIC}}}\n",
    "tag": f"master_key:\n  sources:\n    - value: !!{PASSWORD} x\n",
    "mapping tag": f"master_key: !!{PASSWORD} {{sources: [{{env: X}}]}}\n",
    "sha256": f"keys:\n  - name: a\n    sha256: {PASSWORD}\n",
}


def error_of(tmp_path: Path, text: str) -> str:
    config = tmp_path / "authsvc.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(config), environ={})
    return str(info.value)


@pytest.mark.parametrize("case", list(CASES))
def test_the_config_error_names_the_place_not_the_key(tmp_path: Path, case: str) -> None:
    message = error_of(tmp_path, CASES[case])
    assert_no_key_or_fragment(message, f"the error for {case}")
    assert message.startswith(f"{tmp_path / 'authsvc.yaml'}:"), message  # file:line: ...


def test_what_is_still_shown_is_what_helps() -> None:
    """The legitimate result: short plain words, the default paths and conventional
    environment variable names are still quoted."""
    assert quoted("master_keys") == "'master_keys'"
    assert quoted("/a/../b") == "'/a/../b'"
    assert quoted("/health/liveness", ("/health/liveness",)) == "'/health/liveness'"
    assert env_name_shown("LITELLM_MASTER_KEY") == "LITELLM_MASTER_KEY"
    for key in KEYS:
        assert shown(key) == "[not shown]" and quoted(key) == "[not shown]"
        assert env_name_shown(key) == "[not shown]"
    assert shown("a b") == "[not shown]"  # short, but not a plain word


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("master_keys: {}\n", ":1: unknown key 'master_keys' under top level; did you mean"),
        (f"{PASSWORD}: 1\n", ":1: unknown key [not shown] under top level; valid keys here:"),
        (f"public_paths: [{PASSWORD}]\n", ":1: public_paths[0]: [not shown] is not a path"),
        ("public_paths: [/a/../b]\n", ":1: public_paths[0]: '/a/../b' is not a path"),
        (
            f"master_key:\n  on_conflict: {PASSWORD}\n",
            ":2: master_key.on_conflict: expected 'warn' or 'error', got [not shown]",
        ),
        ("master_key:\n  on_conflict: fail\n", "got 'fail'"),
        (f"max_credential_length: {NUMERIC}\n", "between 16 and 65536, got [not shown]"),
        ("max_credential_length: 8\n", "between 16 and 65536, got 8"),
    ],
    ids=["typo", "key", "path-key", "path", "enum-key", "enum", "number-key", "number"],
)
def test_messages_stay_specific(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


@pytest.mark.parametrize("case", ["top-level mapping key", "public_paths entry", "env name"])
def test_serve_and_explain_text_and_json_do_not_quote_it(tmp_path: Path, case: str) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(CASES[case])
    for args in (
        ("explain", "--config", str(config)),
        ("explain", "--json", "--config", str(config)),
    ):
        proc = run_authsvc(*args)
        assert proc.returncode == 2, proc.stderr
        assert_no_key_or_fragment(proc.stdout + proc.stderr, f"{args[:2]} for {case}")
        assert f"{config}:" in proc.stderr
    proc = run_authsvc("serve", "--config", str(config), "--status-listen", "off")
    assert proc.returncode == 2, proc.stderr
    assert_no_key_or_fragment(proc.stdout + proc.stderr, f"serve for {case}")
    assert proc.stderr.startswith(f"authsvc serve: {config}:")


def test_a_litellm_os_environ_name_is_not_echoed_in_explain(tmp_path: Path) -> None:
    litellm = tmp_path / "litellm.yaml"
    litellm.write_text(f"general_settings:\n  master_key: os.environ/{DASHED}\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text(f"master_key:\n  sources:\n    - litellm_config: {litellm}\n")
    for args in (
        ("explain", "--config", str(config)),
        ("explain", "--json", "--config", str(config)),
    ):
        proc = run_authsvc(*args)
        assert proc.returncode == 1, proc.stderr
        assert_no_key_or_fragment(proc.stdout + proc.stderr, str(args[:2]))
        assert "--json" in args or "os.environ/[not shown]" in proc.stdout
    litellm.write_text("general_settings:\n  master_key: os.environ/APP_MASTER_KEY\n")
    proc = run_authsvc("explain", "--config", str(config))
    assert "os.environ/APP_MASTER_KEY and APP_MASTER_KEY is not set" in proc.stdout


@pytest.mark.parametrize("case", ["top-level mapping key", "public_paths entry", "credentials"])
def test_the_reload_log_line_does_not_quote_it(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text("master_key:\n  sources:\n    - env: M\n")
    environ = {"M": MASTER}
    initial = resolve(load_config(str(config), environ=environ), environ)
    store = KeyStore(initial.ring)
    observer = Observer(keys=store)
    reloader = Reloader(str(config), environ, store, initial=initial, on_error=observer.on_error)
    config.write_text("master_key:\n  sources:\n    - env: M\n" + CASES[case])
    with caplog.at_level(logging.INFO):
        assert reloader.reload() is False
    lines = [r.getMessage() + json.dumps(getattr(r, "error", "")) for r in caplog.records]
    assert any("config reload failed" in line for line in lines), lines
    assert_no_key_or_fragment("\n".join(lines), f"the reload log for {case}")
