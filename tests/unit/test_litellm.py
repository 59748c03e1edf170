"""LiteLLM mode over real temp files and environ dicts: the sidecar resolves exactly the key
LiteLLM would (general_settings.master_key when present, else LITELLM_MASTER_KEY)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authsvc.config import parse_config
from authsvc.keys import Resolution, Role, State, fingerprint, resolve

ENV_KEY = "sk-env-litellm-0123456789abcdef"
CFG_KEY = "sk-cfg-litellm-0123456789abcdef"
MISPLACED = "sk-misplaced-0123456789abcdef"


def run(tmp_path: Path, litellm_yaml: str, environ: dict[str, str], extra: str = "") -> Resolution:
    (tmp_path / "litellm.yaml").write_text(litellm_yaml)
    config = parse_config(
        f"master_key:\n  sources:\n    - litellm_config: litellm.yaml\n{extra}",
        str(tmp_path / "authsvc.yaml"),
        environ=environ,
    )
    res = resolve(config, environ)
    blob = json.dumps(res.report()) + res.render_table() + res.unready_reason
    for key in (ENV_KEY, CFG_KEY, MISPLACED):
        assert key not in blob
    return res


def states(res: Resolution) -> list[tuple[str, str, str]]:
    return [(r.source.split("#")[-1], r.state.value, r.role.value) for r in res.readings]


def test_key_only_in_env(tmp_path: Path) -> None:
    res = run(tmp_path, "model_list: []\n", {"LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None and res.winner.source == "env:LITELLM_MASTER_KEY"
    assert res.winner.fingerprint == fingerprint(ENV_KEY)
    assert states(res) == [
        ("general_settings.master_key", "unset", "candidate"),
        ("env:LITELLM_MASTER_KEY", "set", "candidate"),
    ]
    assert "keeps LITELLM_MASTER_KEY from its process environment" in res.readings[0].detail
    assert res.warnings == ()


def test_key_only_in_config(tmp_path: Path) -> None:
    res = run(tmp_path, f"general_settings:\n  master_key: {CFG_KEY}\n", {})
    assert res.winner is not None
    assert res.winner.source == f"litellm:{tmp_path / 'litellm.yaml'}#general_settings.master_key"
    assert res.winner.fingerprint == fingerprint(CFG_KEY)
    assert res.readings[1].state is State.UNSET and res.readings[1].role is Role.IGNORED


def test_os_environ_indirection_to_a_set_variable(tmp_path: Path) -> None:
    res = run(
        tmp_path, "general_settings:\n  master_key: os.environ/MY_MASTER\n", {"MY_MASTER": CFG_KEY}
    )
    assert res.winner is not None and res.winner.fingerprint == fingerprint(CFG_KEY)
    assert "os.environ/MY_MASTER" in res.winner.detail


def test_os_environ_indirection_to_an_unset_variable_does_not_fall_back(tmp_path: Path) -> None:
    # LiteLLM: general_settings.get("master_key", <env fallback>) returns the present entry,
    # which resolved to None -> no master key. The sidecar must not accept LITELLM_MASTER_KEY.
    res = run(
        tmp_path,
        "general_settings:\n  master_key: os.environ/MY_MASTER\n",
        {"LITELLM_MASTER_KEY": ENV_KEY},
    )
    assert not res.resolved and not res.ring.ready
    assert states(res) == [
        ("general_settings.master_key", "unset", "candidate"),
        ("env:LITELLM_MASTER_KEY", "set", "ignored"),
    ]
    assert "MY_MASTER is not set" in res.readings[0].detail
    assert "general_settings.master_key (unset)" in res.unready_reason


def test_os_environ_indirection_to_an_empty_variable(tmp_path: Path) -> None:
    res = run(
        tmp_path, "general_settings:\n  master_key: os.environ/MY_MASTER\n", {"MY_MASTER": ""}
    )
    assert not res.resolved
    assert res.readings[0].state is State.EMPTY
    assert "os.environ/MY_MASTER" in res.readings[0].detail


def test_env_and_config_both_set_and_different_config_wins_conflict_reported(
    tmp_path: Path,
) -> None:
    yaml_text = f"general_settings:\n  master_key: {CFG_KEY}\n"
    res = run(tmp_path, yaml_text, {"LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None and res.winner.fingerprint == fingerprint(CFG_KEY)
    assert [r.source for r in res.conflicts] == ["env:LITELLM_MASTER_KEY"]
    (warning,) = res.warnings
    assert (
        warning.startswith("conflict: env:LITELLM_MASTER_KEY") and fingerprint(ENV_KEY) in warning
    )
    report = res.report()
    assert [s["used"] for s in report["sources"]] == [True, False]  # type: ignore[index]
    # the same, under on_conflict: error -> no key, fail closed
    strict = run(tmp_path, yaml_text, {"LITELLM_MASTER_KEY": ENV_KEY}, "  on_conflict: error\n")
    assert not strict.resolved and "disagree" in strict.unready_reason


def test_env_and_config_equal_is_no_conflict(tmp_path: Path) -> None:
    res = run(
        tmp_path, f"general_settings:\n  master_key: {CFG_KEY}\n", {"LITELLM_MASTER_KEY": CFG_KEY}
    )
    assert res.resolved and res.conflicts == () and res.warnings == ()


def test_master_key_under_litellm_settings_is_reported_not_used(tmp_path: Path) -> None:
    yaml_text = f"litellm_settings:\n  drop_params: true\n  master_key: {MISPLACED}\n"
    res = run(tmp_path, yaml_text, {})
    assert not res.resolved  # LiteLLM would run without a master key: we fail closed
    misplaced = res.readings[-1]
    assert misplaced.source.endswith("#litellm_settings.master_key")
    assert misplaced.role is Role.MISPLACED and misplaced.state is State.SET
    assert misplaced.fingerprint == fingerprint(MISPLACED)
    assert any("ignores master_key under litellm_settings" in w for w in res.warnings)
    # with LITELLM_MASTER_KEY set, LiteLLM falls back to it: so do we, still warning
    res = run(tmp_path, yaml_text, {"LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None and res.winner.source == "env:LITELLM_MASTER_KEY"
    assert any("litellm_settings" in w for w in res.warnings)
    assert res.conflicts == ()  # misplaced layers are warned about, never conflicts


def test_misplaced_os_environ_is_resolved_too(tmp_path: Path) -> None:
    res = run(tmp_path, "litellm_settings:\n  master_key: os.environ/X\n", {"X": MISPLACED})
    assert res.readings[-1].fingerprint == fingerprint(MISPLACED)


def test_publicly_known_key_in_config_is_weak_and_refused(tmp_path: Path) -> None:
    res = run(
        tmp_path, "general_settings:\n  master_key: sk-1234\n", {"LITELLM_MASTER_KEY": ENV_KEY}
    )
    assert not res.resolved  # the env var is ignored by LiteLLM: no fallback
    assert res.readings[0].state is State.WEAK
    assert any("weak key refused" in w and "general_settings.master_key" in w for w in res.warnings)
    dev = run(tmp_path, "general_settings:\n  master_key: sk-1234\n", {}, "  allow_weak: true\n")
    assert dev.resolved


def test_present_but_null_master_key(tmp_path: Path) -> None:
    res = run(tmp_path, "general_settings:\n  master_key:\n", {"LITELLM_MASTER_KEY": ENV_KEY})
    assert not res.resolved
    assert res.readings[0].state is State.UNSET and "present but empty" in res.readings[0].detail


def test_environment_variables_section_feeds_the_fallback(tmp_path: Path) -> None:
    yaml_text = (
        f"general_settings:\n  store_model_in_db: false\n"
        f"environment_variables:\n  LITELLM_MASTER_KEY: {CFG_KEY}\n"
    )
    res = run(tmp_path, yaml_text, {"LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None
    assert res.winner.source.endswith("#environment_variables.LITELLM_MASTER_KEY")
    assert res.winner.fingerprint == fingerprint(CFG_KEY)


def test_environment_variables_key_is_ignored_without_general_settings(tmp_path: Path) -> None:
    # LiteLLM reads its master key from the config only when general_settings is non-empty;
    # otherwise the key it took from its process environment at start-up stays.
    yaml_text = f"environment_variables:\n  LITELLM_MASTER_KEY: {CFG_KEY}\n"
    res = run(tmp_path, yaml_text, {"LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None and res.winner.source == "env:LITELLM_MASTER_KEY"
    assert res.winner.fingerprint == fingerprint(ENV_KEY)
    ignored = res.readings[2]
    assert ignored.role is Role.IGNORED and "general_settings is non-empty" in ignored.note
    # ... and with nothing exported, LiteLLM refuses to start: so does authsvc (fail closed)
    alone = run(tmp_path, yaml_text, {})
    assert not alone.resolved
    assert [r.state for r in alone.readings] == [State.UNSET, State.UNSET, State.SET]


def test_unset_os_environ_in_environment_variables_exports_the_string_none(
    tmp_path: Path,
) -> None:
    # LiteLLM resolves os.environ/ before exporting, then exports str(None): it really accepts
    # "Bearer None". authsvc reports that key and refuses it as publicly guessable.
    yaml_text = (
        "general_settings:\n  store_model_in_db: false\n"
        "environment_variables:\n  LITELLM_MASTER_KEY: os.environ/NOT_SET_ANYWHERE\n"
    )
    res = run(tmp_path, yaml_text, {})
    assert not res.resolved
    reading = res.readings[1]
    assert reading.source.endswith("#environment_variables.LITELLM_MASTER_KEY")
    assert reading.state is State.WEAK and reading.fingerprint == fingerprint("None")
    assert "literal string 'None', which is publicly guessable" in reading.detail
    assert "publicly guessable" in res.unready_reason


@pytest.mark.parametrize(
    ("text", "state", "words"),
    [
        ("general_settings: [1, 2\n", State.INVALID, "not valid YAML (line"),
        ("- a\n- b\n", State.INVALID, "not a mapping"),
        ("general_settings: 3\n", State.INVALID, "general_settings is not a mapping"),
        (
            "general_settings:\n  master_key: 12345678901234567890\n",
            State.INVALID,
            "int, not a string",
        ),
        ("general_settings:\n  master_key: true\n", State.INVALID, "bool, not a string"),
        ("", State.INVALID, "is empty (LiteLLM refuses to start)"),
    ],
)
def test_bad_litellm_configs(tmp_path: Path, text: str, state: State, words: str) -> None:
    res = run(tmp_path, text, {})
    assert res.readings[0].state is state and words in res.readings[0].detail
    assert not res.resolved


def test_missing_litellm_config(tmp_path: Path) -> None:
    config = parse_config(
        "master_key:\n  sources:\n    - litellm_config: nope.yaml\n",
        str(tmp_path / "authsvc.yaml"),
        environ={},
    )
    res = resolve(config, {"LITELLM_MASTER_KEY": ENV_KEY})
    (reading,) = res.readings  # LiteLLM would not start: no fallback either
    assert reading.state is State.MISSING and not res.resolved


def test_litellm_source_in_a_longer_chain(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text("general_settings:\n  master_key: os.environ/NOPE\n")
    config = parse_config(
        "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n    - litellm_config: litellm.yaml\n",
        str(tmp_path / "authsvc.yaml"),
        environ={},
    )
    res = resolve(config, {"AUTHSVC_MASTER_KEY": ENV_KEY, "LITELLM_MASTER_KEY": ENV_KEY})
    assert res.winner is not None and res.winner.source == "env:AUTHSVC_MASTER_KEY"
    assert res.conflicts == ()
