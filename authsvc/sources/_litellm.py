"""LiteLLM mode: the master key exactly as a LiteLLM proxy resolves it from its config.yaml.

What LiteLLM 1.110.2 does (``proxy_server.py``; the loading itself is in ``_litellm_app``):

1. At start-up it takes ``LITELLM_MASTER_KEY`` from its process environment (``.env``
   included), *before* the config's ``environment_variables`` are exported.
2. The config is loaded (``include:`` merged, ``os.environ/NAME`` resolved), then
   ``environment_variables`` are exported.
3. **Only when ``general_settings`` is non-empty**: ``master_key = general_settings.get(
   "master_key", get_secret("LITELLM_MASTER_KEY"))`` — a *present* entry wins even when it
   resolved to nothing; an absent one falls back to ``LITELLM_MASTER_KEY`` *after* the export.
   With an empty ``general_settings`` the key of step 1 stays.
4. ``master_key_boot_check.py``: an unset, empty (after ``strip()``) or ``sk-1234`` key stops
   the proxy, unless ``LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY`` is ``true`` or
   ``general_settings.dangerously_permit_weak_or_unset_master_key`` is ``true``: then it runs,
   and with no key at all it accepts every request unauthenticated.
5. ``litellm_settings`` entries are ``setattr(litellm, ...)``; a ``master_key`` there is ignored.

The readings: ``litellm:PATH#general_settings.master_key``, then the fallback (``env:
LITELLM_MASTER_KEY``, or the ``environment_variables`` / ``.env`` entry that sets it), then any
misplaced ``litellm_settings.master_key``, then — when LiteLLM itself would run open — an
``app_open`` reading that is always warned about.
"""

from __future__ import annotations

from collections.abc import Mapping

from authsvc._yaml import env_name_shown
from authsvc.keymodel import LITELLM_REFUSED, Reading, Role, State
from authsvc.sources._fileio import read_text
from authsvc.sources._litellm_app import (
    LiteLLMApp,
    LoadFailure,
    export_value,
    load_litellm_app,
    read_dotenv,
)

__all__ = [
    "LITELLM_ENV",
    "OPEN_ENV",
    "OPEN_SETTING",
    "litellm_key_header",
    "read_dotenv_source",
    "read_litellm",
]

LITELLM_ENV = "LITELLM_MASTER_KEY"
OPEN_ENV = "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY"
OPEN_SETTING = "dangerously_permit_weak_or_unset_master_key"
_PREFIX = "os.environ/"
_DONE = object()


def _entry(
    value: object,
    label: str,
    what: str,
    environ: Mapping[str, str],
    max_length: int,
    role: Role = Role.CANDIDATE,
    note: str = "",
) -> Reading:
    """A ``master_key`` entry's value (``os.environ/NAME`` already resolved by the loader;
    a value that still starts with it is resolved once more, as LiteLLM does)."""
    if value is None:
        why = (
            f"{what} is present but empty, or points at an environment variable that is not "
            "set: LiteLLM then has no master key"
        )
        return Reading.without_value(label, State.UNSET, why, role=role, note=note)
    if not isinstance(value, str):
        why = f"{what} is a {type(value).__name__}, not a string"
        return Reading.without_value(label, State.INVALID, why, role=role, note=note)
    if value.startswith(_PREFIX):
        name = value.replace(_PREFIX, "")
        resolved = environ.get(name)
        name = env_name_shown(name)  # a key pasted after os.environ/ must not be echoed
        if resolved is None:
            why = f"{what} is os.environ/{name} and {name} is not set"
            return Reading.without_value(label, State.UNSET, why, role=role, note=note)
        value, what = resolved, f"{what} (os.environ/{name})"
    return Reading.of_value(label, value, max_length=max_length, what=what, role=role, note=note)


def _env_label(app: LiteLLMApp, exported: bool) -> str:
    section = app.data.get("environment_variables")
    if exported and isinstance(section, dict) and LITELLM_ENV in section:
        return f"litellm:{app.path}#environment_variables.{LITELLM_ENV}"
    if LITELLM_ENV in app.from_dotenv and app.dotenv is not None:
        return f"dotenv:{app.dotenv}#{LITELLM_ENV}"
    return f"env:{LITELLM_ENV}"


def _fallback(
    app: LiteLLMApp, general_nonempty: bool, present: bool, max_length: int
) -> list[Reading]:
    """``LITELLM_MASTER_KEY`` as LiteLLM reads it, and the exported entry it may ignore."""
    out: list[Reading] = []
    section = app.data.get("environment_variables")
    in_section = isinstance(section, dict) and LITELLM_ENV in section
    role, note = Role.CANDIDATE, ""
    if present:
        role = Role.IGNORED
        note = f"LiteLLM ignores {LITELLM_ENV} when general_settings.master_key is present"
    if general_nonempty:
        label = _env_label(app, exported=True)
        if in_section and export_value(section[LITELLM_ENV]) is None:  # type: ignore[index]
            why = f"environment_variables.{LITELLM_ENV} is a list or a mapping, not a string"
            return [Reading.without_value(label, State.INVALID, why, role=role, note=note)]
        value = app.exported.get(LITELLM_ENV)
    else:
        label = _env_label(app, exported=False)
        value = app.environ.get(LITELLM_ENV)
    if value is None:
        why = f"{LITELLM_ENV} is not set"
        out.append(Reading.without_value(label, State.UNSET, why, role=role, note=note))
    else:
        out.append(
            Reading.of_value(
                label, value, max_length=max_length, what=LITELLM_ENV, role=role, note=note
            )
        )
    if in_section and not general_nonempty:
        exported = app.exported.get(LITELLM_ENV)
        elabel = f"litellm:{app.path}#environment_variables.{LITELLM_ENV}"
        enote = (
            "LiteLLM reads the master key only when general_settings is non-empty; without it "
            f"the {LITELLM_ENV} exported by environment_variables is never used"
        )
        if exported is None:
            why = f"environment_variables.{LITELLM_ENV} is a list or a mapping, not a string"
            out.append(
                Reading.without_value(elabel, State.INVALID, why, role=Role.IGNORED, note=enote)
            )
        else:
            out.append(
                Reading.of_value(
                    elabel,
                    exported,
                    max_length=max_length,
                    what=LITELLM_ENV,
                    role=Role.IGNORED,
                    note=enote,
                )
            )
    return out


def _open_flag(app: LiteLLMApp, general: Mapping[object, object]) -> str | None:
    """Where LiteLLM's permit-unsafe-master-key override is turned on, if it is."""
    if general.get(OPEN_SETTING) is True:
        return f"general_settings.{OPEN_SETTING}"
    value = app.exported.get(OPEN_ENV)
    if value is not None and value.strip().lower() == "true":
        return OPEN_ENV
    return None


def _unsafe_for_litellm(used: Reading) -> bool:
    """LiteLLM's own boot refusal: unset, empty after ``strip()``, or ``sk-1234``."""
    if used.state in (State.UNSET, State.EMPTY):
        return True
    secret = used.secret
    return secret is not None and secret.reveal().strip() in LITELLM_REFUSED


def _app_open(app: LiteLLMApp, general: Mapping[object, object], used: Reading) -> Reading | None:
    """An ``app_open`` reading when LiteLLM would run with no (or an unsafe) master key."""
    flag = _open_flag(app, general)
    if flag is None or not _unsafe_for_litellm(used):
        return None
    label = f"litellm:{app.path}#{flag}" if flag.startswith("general") else f"env:{flag}"
    if used.state is State.UNSET:
        detail = (
            f"THE APP ITSELF IS OPEN: {flag} is on and LiteLLM has no master key, so LiteLLM "
            "accepts every request without authentication"
        )
    else:
        detail = (
            f"{flag} is on: LiteLLM starts with an unsafe master key ({used.state}) it would "
            "otherwise refuse"
        )
    note = "authsvc stays closed: it refuses every protected request until a usable key is set"
    return Reading.without_value(label, State.UNSET, detail, role=Role.APP_OPEN, note=note)


def _load(path: str, environ: Mapping[str, str], dotenv: str) -> LiteLLMApp | LoadFailure:
    return load_litellm_app(path, environ, dotenv=dotenv)


def read_litellm(
    path: str,
    environ: Mapping[str, str],
    *,
    max_length: int,
    dotenv: str = "auto",
) -> list[Reading]:
    """The master key a LiteLLM proxy started with ``--config PATH`` would use, as readings.

    ``dotenv``: the ``.env`` LiteLLM loads — ``auto`` (walk up from LiteLLM's package directory,
    when authsvc can see it), ``off``, or a path.
    """
    label = f"litellm:{path}#general_settings.master_key"
    app = _load(path, environ, dotenv)
    if isinstance(app, LoadFailure):
        return [Reading.without_value(label, app.state, app.detail)]  # LiteLLM would not start
    general_raw = app.data.get("general_settings")
    if general_raw is not None and not isinstance(general_raw, dict):
        return [Reading.without_value(label, State.INVALID, "general_settings is not a mapping")]
    general: Mapping[object, object] = general_raw or {}
    nonempty = bool(general)
    present = nonempty and "master_key" in general
    readings: list[Reading] = []
    if present:
        what = "general_settings.master_key"
        raw = app.raw.get("general_settings")
        pointer = raw.get("master_key") if isinstance(raw, dict) else None
        value = general["master_key"]
        if isinstance(pointer, str) and pointer.startswith(_PREFIX):
            name = env_name_shown(pointer.replace(_PREFIX, ""))
            if value is None:
                why = f"general_settings.master_key is os.environ/{name} and {name} is not set"
                readings.append(Reading.without_value(label, State.UNSET, why))
                value = _DONE
            what = f"{what} (os.environ/{name})"
        if value is not _DONE:
            readings.append(_entry(value, label, what, app.exported, max_length))
    elif nonempty:
        why = f"general_settings.master_key is not set: LiteLLM falls back to {LITELLM_ENV}"
        readings.append(Reading.without_value(label, State.UNSET, why))
    else:
        why = (
            "general_settings is empty or absent: LiteLLM does not read the config for its "
            f"master key and keeps {LITELLM_ENV} from its process environment"
        )
        role = Role.CANDIDATE
        if "master_key" in general:  # pragma: no cover - an empty mapping has no entries
            role = Role.IGNORED
        readings.append(Reading.without_value(label, State.UNSET, why, role=role))
    readings.extend(_fallback(app, nonempty, present, max_length))

    settings = app.data.get("litellm_settings")
    if isinstance(settings, dict) and "master_key" in settings:
        readings.append(
            _entry(
                settings["master_key"],
                f"litellm:{path}#litellm_settings.master_key",
                "litellm_settings.master_key",
                app.exported,
                max_length,
                Role.MISPLACED,
                "misplaced: LiteLLM ignores master_key under litellm_settings; "
                "move it to general_settings",
            )
        )
    opened = _app_open(app, general, readings[0] if present else readings[1])
    if opened is not None:
        readings.append(opened)
    if app.dotenv_note:
        readings[0] = _with_note(readings[0], app.dotenv_note)
    return readings


def _with_note(reading: Reading, note: str) -> Reading:
    joined = f"{reading.note}; {note}" if reading.note else note
    return Reading(
        reading.source,
        reading.state,
        reading.fingerprint,
        reading.detail,
        reading.role,
        joined,
        reading.caution,
        reading.secret,
        reading.key_digest,
    )


def litellm_key_header(
    path: str, environ: Mapping[str, str], *, dotenv: str = "auto"
) -> tuple[str | None, tuple[str, ...]]:
    """``general_settings.litellm_key_header_name`` (``None`` when unset or unreadable) and every
    file LiteLLM reads for its config (the main one and its includes, to watch)."""
    app = _load(path, environ, dotenv)
    if isinstance(app, LoadFailure):
        return None, app.files or (path,)
    general = app.data.get("general_settings")
    name = general.get("litellm_key_header_name") if isinstance(general, dict) else None
    files = app.files + ((app.dotenv,) if app.dotenv else ())
    if isinstance(name, str) and name.strip(" \t"):
        return name.strip(" \t"), files
    return None, files


def read_dotenv_source(
    path: str, name: str, label: str, environ: Mapping[str, str], *, max_length: int
) -> Reading:
    """``dotenv: PATH``: the variable ``name`` of a ``.env`` file; an exported ``name`` wins
    (``load_dotenv()`` never overrides), so the layer is then reported as ignored."""
    state, detail, text = read_text(path, "the .env file")
    if text is None:
        return Reading.without_value(label, state, detail)
    values, problem = read_dotenv(path, environ)
    if problem:
        return Reading.without_value(label, State.INVALID, problem)
    role, note = Role.CANDIDATE, ""
    if name in environ:
        role = Role.IGNORED
        note = f"{name} is exported, and an exported variable wins over .env"
    value = values.get(name)
    if value is None:
        return Reading.without_value(
            label, State.UNSET, f"{name} is not set in the .env file", role=role, note=note
        )
    return Reading.of_value(label, value, max_length=max_length, what=name, role=role, note=note)
