"""LiteLLM mode: the master key exactly as a LiteLLM proxy resolves it from its config.yaml.

What LiteLLM does (``proxy_server.py``, ``ProxyConfig``; see docs/configuration.md):

1. ``get_config`` loads the YAML and replaces every ``os.environ/NAME`` string, at any depth,
   with the environment variable ``NAME`` (``None`` when unset).
2. ``_load_environment_variables`` exports the config's ``environment_variables`` mapping.
3. ``master_key = general_settings.get("master_key", get_secret("LITELLM_MASTER_KEY"))``:
   a ``master_key`` entry that is *present* wins, even when it resolved to nothing; only an
   absent entry falls back to ``LITELLM_MASTER_KEY``.
4. ``litellm_settings`` entries are ``setattr(litellm, ...)``; nothing reads
   ``litellm.master_key``, so a ``master_key`` there is silently ignored.

The readings: ``litellm:PATH#general_settings.master_key`` (a candidate), then the fallback
``env:LITELLM_MASTER_KEY`` (a candidate only when the entry is absent; otherwise reported as
ignored), then any misplaced ``litellm:PATH#litellm_settings.master_key`` (never used, always
warned about).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from authsvc._yaml import YamlError, env_name_shown, load_bounded
from authsvc.keymodel import Reading, Role, State
from authsvc.sources._fileio import read_text

__all__ = ["LITELLM_ENV", "read_litellm"]

LITELLM_ENV = "LITELLM_MASTER_KEY"
_PREFIX = "os.environ/"
_NOT_A_SCALAR = object()  # environment_variables.LITELLM_MASTER_KEY is a list or a mapping


def _parse(path: str, label: str) -> dict[object, object] | Reading:
    state, detail, text = read_text(path, "the LiteLLM config")
    if text is None:
        return Reading.without_value(label, state, detail)
    try:  # bounded: an alias bomb or a 1,000-level nesting is refused before it is built
        data = load_bounded(text, path)
    except YamlError as exc:  # no snippet, no quoted name: either could be a key
        where = f"line {exc.line}: " if exc.line is not None else ""
        why = f"the LiteLLM config is not valid YAML ({where}{exc.problem})"
        return Reading.without_value(label, State.INVALID, why)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Reading.without_value(label, State.INVALID, "the LiteLLM config is not a mapping")
    return data


def _section(data: dict[object, object], name: str, label: str) -> dict[object, object] | Reading:
    section = data.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        return Reading.without_value(label, State.INVALID, f"{name} is not a mapping")
    return section


def _entry(
    value: object,
    label: str,
    what: str,
    environ: Mapping[str, str],
    max_length: int,
    role: Role = Role.CANDIDATE,
    note: str = "",
) -> Reading:
    """A ``master_key`` entry's value, ``os.environ/NAME`` resolved as LiteLLM does."""
    if value is None:
        why = f"{what} is present but empty: LiteLLM then runs with no master key"
        return Reading.without_value(label, State.UNSET, why, role=role, note=note)
    if not isinstance(value, str):
        why = f"{what} is a {type(value).__name__}, not a string"
        return Reading.without_value(label, State.INVALID, why, role=role, note=note)
    if value.startswith(_PREFIX):
        name = value[len(_PREFIX) :]
        resolved = environ.get(name)
        name = env_name_shown(name)  # a key pasted after os.environ/ must not be echoed
        if resolved is None:
            why = f"{what} is os.environ/{name} and {name} is not set"
            return Reading.without_value(label, State.UNSET, why, role=role, note=note)
        return Reading.of_value(
            label,
            resolved,
            max_length=max_length,
            what=f"{what} (os.environ/{name})",
            role=role,
            note=note,
        )
    return Reading.of_value(label, value, max_length=max_length, what=what, role=role, note=note)


def _fallback(
    data: dict[object, object], path: str, environ: Mapping[str, str]
) -> tuple[str, str | object | None]:
    """``LITELLM_MASTER_KEY`` as LiteLLM sees it after exporting ``environment_variables``."""
    exported = data.get("environment_variables")
    if isinstance(exported, dict) and LITELLM_ENV in exported:
        value = exported[LITELLM_ENV]
        label = f"litellm:{path}#environment_variables.{LITELLM_ENV}"
        if isinstance(value, str) and value.startswith(_PREFIX):
            resolved = environ.get(value[len(_PREFIX) :])
            if resolved is not None:
                return label, resolved
        elif isinstance(value, str | bytes | int | float | bool | date) or value is None:
            return label, str(value)  # LiteLLM exports str(value), even of a number or null
        else:  # a list or mapping: its str() is no key a client sends (and may be an alias bomb)
            return label, _NOT_A_SCALAR
    return f"env:{LITELLM_ENV}", environ.get(LITELLM_ENV)


def read_litellm(path: str, environ: Mapping[str, str], *, max_length: int) -> list[Reading]:
    """The master key a LiteLLM proxy started with ``--config PATH`` would use, as readings."""
    label = f"litellm:{path}#general_settings.master_key"
    data = _parse(path, label)
    if isinstance(data, Reading):
        return [data]  # LiteLLM itself would not start without its config
    general = _section(data, "general_settings", label)
    if isinstance(general, Reading):
        return [general]
    readings: list[Reading] = []
    present = "master_key" in general
    if present:
        readings.append(
            _entry(general["master_key"], label, "general_settings.master_key", environ, max_length)
        )
    else:
        why = f"general_settings.master_key is not set: LiteLLM falls back to {LITELLM_ENV}"
        readings.append(Reading.without_value(label, State.UNSET, why))

    env_label, env_value = _fallback(data, path, environ)
    role, note = Role.CANDIDATE, ""
    if present:
        role = Role.IGNORED
        note = f"LiteLLM ignores {LITELLM_ENV} when general_settings.master_key is present"
    if env_value is None:
        why = f"{LITELLM_ENV} is not set"
        readings.append(Reading.without_value(env_label, State.UNSET, why, role=role, note=note))
    elif not isinstance(env_value, str):
        why = f"environment_variables.{LITELLM_ENV} is a list or a mapping, not a string"
        readings.append(Reading.without_value(env_label, State.INVALID, why, role=role, note=note))
    else:
        readings.append(
            Reading.of_value(
                env_label, env_value, max_length=max_length, what=LITELLM_ENV, role=role, note=note
            )
        )

    settings = data.get("litellm_settings")
    if isinstance(settings, dict) and "master_key" in settings:
        readings.append(
            _entry(
                settings["master_key"],
                f"litellm:{path}#litellm_settings.master_key",
                "litellm_settings.master_key",
                environ,
                max_length,
                Role.MISPLACED,
                "misplaced: LiteLLM ignores master_key under litellm_settings; "
                "move it to general_settings",
            )
        )
    return readings
