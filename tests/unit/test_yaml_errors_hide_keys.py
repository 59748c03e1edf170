"""A YAML error never quotes a key, in the authsvc config or in a LiteLLM config.

PyYAML quotes names and characters from the file in its complaints: ``found undefined alias
'NAME'``, ``found duplicate anchor 'NAME'``, ``could not determine a constructor for the tag
'!NAME'``. A key typed unquoted that starts with ``*``, ``&`` or ``!`` (common in generated
passwords) is parsed as exactly such a name, so those complaints quoted the key into error
messages, ``explain`` output, warnings and reload logs. Text shorter than a usable key
(``MIN_KEY_LENGTH``) is still shown: it helps, and it cannot be a key authsvc would accept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authsvc import ConfigError, _yaml
from authsvc.config import load_config
from authsvc.keys import MIN_KEY_LENGTH, State, resolve
from tests._keys import register
from tests.e2e._harness import no_key_in

KEY = register("Sx7kq2Vw9pLm4Rt8Zb3N", "yaml-error-echo")  # what a password generator gives


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "authsvc.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ={})
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"master_key:\n  sources:\n    - value: *{KEY}\n",
            ":3: invalid YAML: found undefined alias",
        ),
        (
            f"master_key:\n  sources:\n    - value: &{KEY} a\n    - value: &{KEY} b\n",
            ":4: invalid YAML: found duplicate anchor",
        ),
        (
            f"master_key:\n  sources:\n    - value: !{KEY}\n",
            ":3: master_key.sources[0].value: expected a string (quote it), got a value tagged",
        ),
        (
            f"master_key: !{KEY}\n  sources:\n    - env: X\n",
            ":1: master_key: unsupported YAML tag",
        ),
        (f"master_key:\n  sources:\n    - value: !{KEY}!x y\n", ":3: invalid YAML: "),
    ],
    ids=["alias", "anchor", "scalar-tag", "mapping-tag", "tag-handle"],  # ids never hold the key
)
def test_authsvc_config_errors_do_not_quote_a_key(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)
    no_key_in(message, [KEY, KEY[1:]], "the config error")
    assert expected in message, message


def test_short_names_are_still_shown(tmp_path: Path) -> None:
    message = config_error(tmp_path, "master_key:\n  sources:\n    - value: *base\n")
    assert "found undefined alias 'base'" in message


@pytest.mark.parametrize(
    "entry",
    [f"*{KEY}", f"!{KEY} x", f"!{KEY}", f"&{KEY} a\n  database_url: &{KEY} b"],
    ids=["alias", "tag", "empty-tag", "anchor"],
)
def test_litellm_config_errors_do_not_quote_a_key(tmp_path: Path, entry: str) -> None:
    (tmp_path / "litellm.yaml").write_text(f"general_settings:\n  master_key: {entry}\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text("master_key:\n  sources:\n    - litellm_config: litellm.yaml\n")
    res = resolve(load_config(str(config), environ={}), {})
    shown = json.dumps(res.report()) + res.render_table() + res.unready_reason
    no_key_in(shown, [KEY, KEY[1:]], "the LiteLLM reading")
    assert [r.state for r in res.readings] == [State.INVALID]
    assert "not valid YAML" in res.readings[0].detail


def test_the_threshold_is_the_key_length_minimum() -> None:
    assert getattr(_yaml, "SHOWN_BELOW", None) == MIN_KEY_LENGTH
