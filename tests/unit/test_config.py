"""Config validation: every mistake names file, line, key path and (for names) the nearest
valid one; good configs become frozen dataclasses with paths resolved and the policy built."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from authsvc import ConfigError
from authsvc.authz import Policy, parse_location
from authsvc.config import (
    Config,
    EnvSource,
    FileSource,
    LiteLLMSource,
    Sha256Source,
    ValueSource,
    default_sources,
    load_config,
    parse_config,
)
from authsvc.keys import KeyMeta

SECRET_VALUE = "sk-inline-config-0123456789abcdef"


def error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ={})
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert SECRET_VALUE not in message
    return message[len(str(path)) :]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown names: line, where, nearest valid name
        (
            "reload: {}\n\nmaster_keys: {}\n",
            ":3: unknown key 'master_keys' under top level; did you mean 'master_key'?",
        ),
        (
            "master_key:\n  sorces: []\n",
            ":2: unknown key 'sorces' under master_key; did you mean 'sources'?",
        ),
        (
            "master_key:\n  sources:\n    - env: A\n    - fiel: /x\n",
            ":4: unknown key 'fiel' under master_key.sources[1]; did you mean 'file'?",
        ),
        (
            "keys:\n  - nmae: ci\n    env: CI\n",
            ":2: unknown key 'nmae' under keys[0]; did you mean 'name'?",
        ),
        (
            "health_check:\n  intervall: 5\n",
            ":2: unknown key 'intervall' under health_check; did you mean 'interval'?",
        ),
        (
            "reload:\n  poll: 1\n",
            ":2: unknown key 'poll' under reload; did you mean 'poll_interval'?",
        ),
        (
            "zzz: 1\n",
            ":1: unknown key 'zzz' under top level; valid keys here: credentials, dry_run, forward_credentials",
        ),
        # misplaced names: where they belong
        (
            "on_conflict: error\n",
            ":1: unknown key 'on_conflict' under top level; it belongs at master_key.on_conflict",
        ),
        (
            "master_key:\n  public_paths: []\n",
            ":2: unknown key 'public_paths' under master_key; it belongs at public_paths",
        ),
        (
            "sources:\n  - env: A\n",
            ":1: unknown key 'sources' under top level; it belongs at master_key.sources",
        ),
        (
            "master_key:\n  sources:\n    - env: A\n      on_conflict: warn\n",
            ":4: unknown key 'on_conflict' under master_key.sources[0]; it belongs at master_key.on_conflict",
        ),
        # structure and types
        ("- a\n", ":1: expected a mapping, got a list"),
        ("master_key: []\n", ":1: master_key: expected a mapping, got a list"),
        ("master_key:\n  sources: {}\n", ":2: master_key.sources: expected a list, got a mapping"),
        ("master_key:\n  sources: []\n", ":2: master_key.sources: needs at least one source"),
        (
            "master_key:\n  sources:\n    - env: A\n      file: B\n",
            ":3: master_key.sources[0]: needs exactly one of env, file, litellm_config, value; got env and file",
        ),
        (
            "master_key:\n  sources:\n    - {}\n",
            ":3: master_key.sources[0]: needs exactly one of env, file, litellm_config, value; got none",
        ),
        (
            "master_key:\n  sources:\n    - env: 1BAD\n",
            ":3: master_key.sources[0].env: '1BAD' is not a valid environment variable name",
        ),
        (
            "master_key:\n  sources:\n    - env: ''\n",
            ":3: master_key.sources[0].env: must not be empty",
        ),
        (
            "master_key:\n  sources:\n    - file: 42\n",
            ":3: master_key.sources[0].file: expected a string (quote it), got an integer",
        ),
        (
            "master_key:\n  sources:\n    - value: 123456789012345678\n",
            ":3: master_key.sources[0].value: expected a string (quote it), got an integer",
        ),
        (
            "master_key:\n  sources:\n    - value: os.environ/bad-name\n",
            ":3: master_key.sources[0].value: 'bad-name' is not a valid environment variable name",
        ),
        (
            "master_key:\n  on_conflict: fail\n",
            ":2: master_key.on_conflict: expected 'warn' or 'error', got 'fail'",
        ),
        (
            "master_key:\n  allow_weak: 'yes'\n",
            ":2: master_key.allow_weak: expected true or false, got a string",
        ),
        (
            "master_key:\n  sources:\n    - env: A\n  sources:\n    - env: B\n",
            ":4: master_key: duplicate key 'sources' (first set on line 2)",
        ),
        ("keys:\n  - env: CI\n", ":2: keys[0]: needs a name"),
        (
            "keys:\n  - name: master\n    env: CI\n",
            ":2: keys[0].name: 'master' is not a valid key name",
        ),
        (
            "keys:\n  - name: a b\n    env: CI\n",
            ":2: keys[0].name: [not shown] is not a valid key name",
        ),
        (
            "keys:\n  - name: ci\n    env: A\n  - name: ci\n    env: B\n",
            ":4: keys[1]: name 'ci' is already used by keys[0]",
        ),
        (
            "keys:\n  - name: ci\n",
            ":2: keys[0]: needs exactly one of sha256, env, file, value, sha256_file, virtual_keys; got none",
        ),
        (
            "keys:\n  - name: ci\n    sha256: abc\n",
            ":3: keys[0].sha256: expected 64 hexadecimal characters",
        ),
        (
            "keys:\n  - name: ci\n    env: CI\n    paths: []\n",
            ":4: keys[0].paths: is empty (it would allow no path); omit it to allow all",
        ),
        (
            "keys:\n  - name: ci\n    env: CI\n    paths: [v1/models]\n",
            ":4: keys[0].paths[0]: pattern 'v1/models' must start with '/' or be '*'",
        ),
        (
            "keys:\n  - name: ci\n    env: CI\n    paths: ['/v1/*/x']\n",
            ":4: keys[0].paths[0]: pattern '/v1/*/x': '*' is only allowed as a last segment",
        ),
        (
            "keys:\n  - name: ci\n    env: CI\n    expires: 2026-01-01\n",
            ":4: keys[0].expires: '2026-01-01' has no timezone",
        ),
        (
            "keys:\n  - name: ci\n    env: CI\n    expires: soon\n",
            ":4: keys[0].expires: 'soon' is not an ISO-8601 timestamp",
        ),
        ("public_paths: /health\n", ":1: public_paths: expected a list, got a string"),
        (
            "public_paths:\n  - /ok\n  - /a/../b\n",
            ":3: public_paths[1]: '/a/../b' is not a path in normal form",
        ),
        (
            "public_paths:\n  - /health\n",
            ":2: public_paths[0]: protected health path '/health' cannot also be a public path",
        ),
        (
            "protected_health_path: /health/liveness\n",
            ":1: protected_health_path: protected health path '/health/liveness' cannot also be a public path",
        ),
        (
            "protected_health_path: health\n",
            ":1: protected_health_path: 'health' is not a path in normal form",
        ),
        ("credentials: []\n", ":1: credentials: needs at least one location"),
        (
            "credentials:\n  - header:x-api-key\n  - cookie:k\n",
            ":3: credentials[1]: 'cookie:k' is not a credential location: expected 'header:NAME' or 'query:NAME'",
        ),
        (
            "max_credential_length: 8\n",
            ":1: max_credential_length: must be between 16 and 65536, got 8",
        ),
        (
            "max_credential_length: 1.5\n",
            ":1: max_credential_length: expected an integer, got a number",
        ),
        (
            "forward_credentials: 1\n",
            ":1: forward_credentials: expected true or false, got an integer",
        ),
        (
            "health_check:\n  interval: 0\n",
            ":2: health_check.interval: must be between 1 and 86400 seconds, got 0",
        ),
        (
            "health_check:\n  url: ftp://x\n",
            ":2: health_check.url: expected an http:// or https:// URL",
        ),
        (
            "health_check:\n  enabled: maybe\n",
            ":2: health_check.enabled: expected true or false, got a string",
        ),
        (
            "reload:\n  poll_interval: .nan\n",
            ":2: reload.poll_interval: must be between 0.1 and 3600 seconds, got nan",
        ),
        ("reload: 5\n", ":1: reload: expected a mapping, got an integer"),
        # YAML itself
        (
            "master_key:\n  sources: [\n",
            ":3: invalid YAML: while parsing a flow node: expected the node content",
        ),
        ("a: 1\n---\nb: 2\n", ":2: invalid YAML: expected a single document in the stream"),
        ("<<: {a: 1}\n", ":1: YAML merge keys ('<<') are not supported"),
        ("? [a]\n: 1\n", ":1: keys must be plain names, got a list"),
        (
            "master_key: !!python/object:os.system {}\n",
            ":1: master_key: unsupported YAML tag '!![not shown]'",
        ),
        ("public_paths: !!set {a}\n", ":1: public_paths: expected a list, got a mapping"),
        (
            "protected_health_path: !custom /x\n",
            ":1: protected_health_path: expected a string (quote it), got a value tagged !custom",
        ),
    ],
)
def test_bad_config_is_a_precise_error(tmp_path: Path, text: str, expected: str) -> None:
    assert error(text, tmp_path).startswith(expected)


def test_invalid_yaml_never_quotes_the_file(tmp_path: Path) -> None:
    message = error(f"master_key:\n  sources:\n    - value: {SECRET_VALUE}\n  x: [\n", tmp_path)
    assert "invalid YAML" in message


def test_full_config(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "authsvc.yaml"
    path.parent.mkdir()
    path.write_text(
        f"""
master_key:
  sources:
    - env: MY_KEY
    - file: secrets/master          # relative: against the config's directory
    - litellm_config: /app/config.yaml
    - value: "{SECRET_VALUE}"
    - value: os.environ/OTHER
  on_conflict: error
  allow_weak: false
keys:
  - name: ci
    file: ci.keys
    paths: [/v1/models, /v1/chat/*]
    expires: 2027-01-31T00:00:00+01:00
  - name: ops
    sha256: "{"AB" * 32}"
  - name: dev
    value: os.environ/DEV_KEY
public_paths: [/health/liveliness, /metrics]
protected_health_path: /health
credentials: [header:Authorization, header:x-api-key, query:key]
max_credential_length: 256
forward_credentials: false
health_check: {{enabled: false, interval: 10, url: "http://127.0.0.1:4000"}}
reload: {{poll_interval: 0.5}}
"""
    )
    c = load_config(str(path), environ={})
    base = str(path.parent)
    assert c.path == str(path)
    assert c.master_key.sources == (
        EnvSource("MY_KEY", "master_key.sources[0]"),
        FileSource(f"{base}/secrets/master", "master_key.sources[1]"),
        LiteLLMSource("/app/config.yaml", "master_key.sources[2]"),
        c.master_key.sources[3],
        ValueSource(str(path), "master_key.sources[4]", env="OTHER"),
    )
    literal = c.master_key.sources[3]
    assert isinstance(literal, ValueSource) and literal.literal is not None
    assert literal.literal.reveal() == SECRET_VALUE
    assert literal.label == f"config:{path}#master_key.sources[3]"
    assert c.master_key.on_conflict == "error" and c.master_key.allow_weak is False
    ci, ops, dev = c.keys
    meta = KeyMeta("ci", "keys[0]", ci.paths, 1801350000.0)  # the record its keys carry
    assert ci.source == FileSource(f"{base}/ci.keys", "keys[0]", meta)
    assert (
        ci.paths is not None
        and ci.paths.allows("/v1/chat/completions")
        and not ci.paths.allows("/v1/x")
    )
    assert ci.expires_at == 1801350000.0
    assert isinstance(ops.source, Sha256Source) and ops.source.digest == bytes.fromhex("AB" * 32)
    assert isinstance(dev.source, ValueSource) and dev.source.env == "DEV_KEY"
    assert c.public_paths == ("/health/liveliness", "/metrics")
    assert c.credentials == tuple(
        parse_location(s) for s in ("header:authorization", "header:x-api-key", "query:key")
    )
    assert c.max_credential_length == 256 and c.forward_credentials is False
    assert (c.health_check.enabled, c.health_check.interval, c.health_check.url) == (
        False,
        10.0,
        "http://127.0.0.1:4000",
    )
    assert c.reload.poll_interval == 0.5
    assert c.policy == Policy.build(
        c.public_paths,
        locations=c.credentials,
        max_credential_length=256,
        protected_health_path="/health",
        forward_credentials=False,
    )
    assert c.policy.strip_headers == tuple(
        loc.name for loc in c.credentials if loc.kind == "header"
    )
    assert c.policy.strip_query == ("key",)
    assert c.watched_files() == (
        f"{base}/secrets/master",
        "/app/config.yaml",
        f"{base}/ci.keys",
        str(path),
    )
    assert SECRET_VALUE not in repr(c)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.forward_credentials = True  # type: ignore[misc]


def test_defaults_without_a_config_file() -> None:
    c = load_config(None, environ={})
    assert c.path is None
    assert [s.label for s in c.master_key.sources] == [
        "env:AUTHSVC_MASTER_KEY",
        "env:LITELLM_MASTER_KEY",
    ]
    assert c.master_key.on_conflict == "warn" and c.master_key.allow_weak is False
    assert c.protected_health_path == "/health" and c.forward_credentials is True
    assert (c.health_check.enabled, c.health_check.interval, c.health_check.url) == (
        True,
        30.0,
        "http://127.0.0.1:10000",
    )
    assert c.reload.poll_interval == 2.0
    assert c.policy == Policy.build()
    assert c == Config(path=None, master_key=c.master_key)


def test_default_chain_includes_the_named_file_only_when_set(tmp_path: Path) -> None:
    assert len(default_sources({"AUTHSVC_MASTER_KEY_FILE": ""})) == 2
    chain = default_sources({"AUTHSVC_MASTER_KEY_FILE": "/run/secrets/master"})
    assert [s.label for s in chain] == [
        "env:AUTHSVC_MASTER_KEY",
        "file:/run/secrets/master",
        "env:LITELLM_MASTER_KEY",
    ]


def test_master_key_file_flag_goes_first(tmp_path: Path) -> None:
    c = load_config(None, environ={"AUTHSVC_MASTER_KEY_FILE": "/a"}, master_key_file="/flag/key")
    assert [s.label for s in c.master_key.sources] == [
        "file:/flag/key",
        "env:AUTHSVC_MASTER_KEY",
        "file:/a",
        "env:LITELLM_MASTER_KEY",
    ]
    path = tmp_path / "c.yaml"
    path.write_text("master_key:\n  sources:\n    - env: ONLY\n")
    c = load_config(str(path), environ={}, master_key_file="rel/key")
    labels = [s.label for s in c.master_key.sources]
    assert labels == [f"file:{Path.cwd() / 'rel/key'}", "env:ONLY"]
    with pytest.raises(ConfigError, match="--master-key-file"):
        load_config(None, environ={}, master_key_file=" ")


def test_config_without_master_key_section_uses_the_default_chain(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("forward_credentials: false\n")
    c = load_config(str(path), environ={})
    assert [s.label for s in c.master_key.sources] == [
        "env:AUTHSVC_MASTER_KEY",
        "env:LITELLM_MASTER_KEY",
    ]
    path.write_text("")
    assert load_config(str(path), environ={}).path == str(path)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_credential_length: 64\n")
    assert load_config(None, environ={"AUTHSVC_CONFIG": str(path)}).max_credential_length == 64
    assert load_config(None, environ={"AUTHSVC_CONFIG": ""}).path is None
    with pytest.raises(ConfigError, match=r"nope.yaml \(from \$AUTHSVC_CONFIG\) does not exist"):
        load_config(None, environ={"AUTHSVC_CONFIG": str(tmp_path / "nope.yaml")})


def test_unreadable_and_non_utf8_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        load_config(str(tmp_path), environ={})
    path = tmp_path / "c.yaml"
    path.write_bytes(b"reload: {}\n\xff\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(str(path), environ={})


def test_parse_config_uses_the_given_name_for_paths(tmp_path: Path) -> None:
    c = parse_config("master_key:\n  sources:\n    - file: k\n", "/etc/authsvc/c.yaml", environ={})
    assert c.master_key.sources[0] == FileSource("/etc/authsvc/k", "master_key.sources[0]")


DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_documented_example_is_valid_and_every_field_is_documented() -> None:
    from authsvc.config._parse import SCHEMA

    text = DOC.read_text()
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    c = parse_config(example, "/etc/authsvc/authsvc.yaml", environ={})
    assert [k.name for k in c.keys] == ["ci", "dashboards"]
    for section, names in SCHEMA.items():
        prefix = section.replace("[]", "[i]")
        for name in names:
            field = f"{prefix}.{name}" if prefix else name
            if field in SCHEMA:
                continue  # a section: its fields are the rows
            assert f"`{field}`" in text or f"/ `{name}`" in text, field
