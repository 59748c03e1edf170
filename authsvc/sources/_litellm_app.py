"""What a LiteLLM proxy started with ``--config PATH`` sees, before it picks its master key.

Facts from LiteLLM 1.110.2's source (read for this module; no code taken):

- ``.env`` (``litellm/_process_defaults.py``): with ``LITELLM_MODE`` unset or ``DEV``, importing
  litellm calls python-dotenv's ``load_dotenv()``, whose ``find_dotenv()`` starts in the directory
  of the calling file — LiteLLM's own package directory — and walks up to ``/``; the first
  ``.env`` found is loaded. Variables already exported win (``override`` only when
  ``LITELLM_DEV_ENV_HOT_RELOAD=True``). ``PYTHON_DOTENV_DISABLED`` turns it off.
- ``include:`` (``proxy/common_utils/config_includes.py``): a list of file names, each
  resolved next to the file that declares it (or, if only that exists, next to the main
  config); included files are merged in order, breadth first, each at most once: a list value
  is appended to, any other top-level value **replaces** the main file's.
- ``os.environ/NAME`` strings (``ProxyConfig._check_for_os_environ_vars``) are replaced by the
  variable's value (``None`` when unset) in every mapping at any depth, and in mappings inside
  lists — not in plain list items.
- ``environment_variables`` (``_load_environment_variables``) are exported after that
  resolution, as ``str(value)``: an unset ``os.environ/X`` there becomes the string ``None``.
  ``PATH``, ``HOME`` and a few others are never exported.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from authsvc._yaml import YamlError, load_bounded
from authsvc.keymodel import State
from authsvc.sources._fileio import read_text

__all__ = ["LiteLLMApp", "LoadFailure", "find_dotenv", "load_litellm_app", "read_dotenv"]

PREFIX = "os.environ/"
MAX_INCLUDES = 64
MAX_DEPTH = 100  # LiteLLM's DEFAULT_MAX_RECURSE_DEPTH
BLOCKED_EXPORTS = frozenset(
    {
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "HOME",
        "USER",
        "SHELL",
        "LOGNAME",
        "NO_PROXY",
        "no_proxy",
    }
)


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """LiteLLM would not start with this config: why, and the files read so far (to watch)."""

    state: State
    detail: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LiteLLMApp:
    """The config after includes and ``os.environ/`` resolution, and the environments."""

    path: str
    data: Mapping[object, object]  # merged and resolved; no "include"
    raw: Mapping[object, object]  # merged, before os.environ/ resolution
    files: tuple[str, ...]  # the main config and every included file read
    environ: Mapping[str, str]  # LiteLLM's process environment (exported + .env)
    exported: Mapping[str, str]  # ... after environment_variables are exported
    dotenv: str | None = None  # the .env LiteLLM loads
    from_dotenv: frozenset[str] = field(default_factory=frozenset)
    dotenv_note: str = ""  # why no .env is modelled, or what went wrong reading it


# -- .env ---------------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def find_dotenv(start: str) -> str | None:
    """python-dotenv's ``find_dotenv`` from ``start``: the first ``.env`` walking up to ``/``."""
    current = os.path.abspath(start)
    while True:
        candidate = os.path.join(current, ".env")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _litellm_package_dir() -> str | None:
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return os.path.dirname(os.path.abspath(spec.origin))


def read_dotenv(path: str, environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The variables a ``.env`` file sets, parsed by python-dotenv as LiteLLM does."""
    from dotenv.main import DotEnv  # the parser LiteLLM itself uses

    state, detail, text = read_text(path, "the .env file")
    if text is None:
        return {}, f"{path}: {detail} ({state})"
    override = environ.get("LITELLM_DEV_ENV_HOT_RELOAD") == "True"
    values = DotEnv(None, stream=io.StringIO(text), interpolate=True, override=override).dict()
    return {k: v for k, v in values.items() if v is not None}, ""


def _with_dotenv(
    environ: Mapping[str, str], dotenv: str
) -> tuple[Mapping[str, str], str | None, frozenset[str], str]:
    if dotenv == "off":
        return environ, None, frozenset(), ""
    if environ.get("LITELLM_MODE", "DEV") != "DEV":
        return environ, None, frozenset(), "LITELLM_MODE is not DEV: LiteLLM loads no .env"
    if _truthy(environ.get("PYTHON_DOTENV_DISABLED")):
        return environ, None, frozenset(), "PYTHON_DOTENV_DISABLED is set: LiteLLM loads no .env"
    if dotenv == "auto":
        package = _litellm_package_dir()
        if package is None:
            note = (
                "LiteLLM's package directory is not visible to authsvc, so the .env it would "
                "load is unknown (set dotenv: PATH on the litellm_config source)"
            )
            return environ, None, frozenset(), note
        path = find_dotenv(package)
        if path is None:
            return environ, None, frozenset(), ""
    else:
        path = dotenv
    values, problem = read_dotenv(path, environ)
    if problem:
        return environ, path, frozenset(), problem
    override = environ.get("LITELLM_DEV_ENV_HOT_RELOAD") == "True"
    merged = {**environ, **values} if override else {**values, **environ}
    won = frozenset(k for k in values if override or k not in environ)
    return merged, path, won, ""


# -- the config -------------------------------------------------------------------------


def _yaml(path: str, what: str) -> tuple[object, LoadFailure | None]:
    state, detail, text = read_text(path, what)
    if text is None:
        return None, LoadFailure(state, detail, ())
    try:  # bounded: an alias bomb or a 1,000-level nesting is refused before it is built
        return load_bounded(text, path), None
    except YamlError as exc:  # no snippet, no quoted name: either could be a key
        where = f"line {exc.line}: " if exc.line is not None else ""
        return None, LoadFailure(
            State.INVALID, f"{what} is not valid YAML ({where}{exc.problem})", ()
        )


def _include_entries(data: Mapping[object, object], where: str) -> tuple[str, ...] | str:
    if "include" not in data:
        return ()
    entries = data["include"]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return f"'include' in {where} must be a list of file paths (LiteLLM refuses to start)"
    return tuple(entries)


def _resolve_include(entry: str, declared_in: str, root: str) -> str:
    declared = os.path.abspath(os.path.join(os.path.dirname(declared_in), entry))
    rooted = os.path.abspath(os.path.join(os.path.dirname(root), entry))
    if rooted == declared or not os.path.exists(rooted):
        return declared
    return rooted if not os.path.exists(declared) else declared


def _merge(base: dict[object, object], included: Mapping[object, object]) -> dict[object, object]:
    out = dict(base)
    for key, value in included.items():
        if key == "include":
            continue
        old = out.get(key)
        out[key] = [*old, *value] if isinstance(old, list) and isinstance(value, list) else value
    return out


def _includes(data: dict[object, object], path: str) -> tuple[dict[object, object], list[str], str]:
    """``(merged, files read, problem)`` following LiteLLM's include rule."""
    files = [path]
    entries = _include_entries(data, path)
    if isinstance(entries, str):
        return data, files, entries
    pending = [(e, path) for e in entries]
    loaded = {path}
    merged = {k: v for k, v in data.items() if k != "include"}
    while pending:
        entry, declared_in = pending.pop(0)
        location = _resolve_include(entry, declared_in, path)
        if location in loaded:
            continue
        if len(loaded) > MAX_INCLUDES:
            return merged, files, f"more than {MAX_INCLUDES} included files"
        files.append(location)
        loaded.add(location)
        if not os.path.exists(location):
            return (
                merged,
                files,
                f"included file {location} does not exist (LiteLLM refuses to start)",
            )
        included, failure = _yaml(location, f"the included file {location}")
        if failure is not None:
            return merged, files, f"{failure.detail} (LiteLLM refuses to start)"
        included = {} if included is None else included
        if not isinstance(included, dict):
            return (
                merged,
                files,
                f"the included file {location} is not a mapping (LiteLLM refuses to start)",
            )
        more = _include_entries(included, location)
        if isinstance(more, str):
            return merged, files, more
        merged = _merge(merged, included)
        pending.extend((e, location) for e in more)
    return merged, files, ""


def _resolved(value: object, environ: Mapping[str, str], depth: int) -> object:
    """LiteLLM's ``os.environ/`` replacement (mappings at any depth, mappings inside lists)."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _resolved(v, environ, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, environ, depth + 1) if isinstance(v, dict) else v for v in value]
    if isinstance(value, str) and value.startswith(PREFIX):
        return environ.get(value.replace(PREFIX, ""))
    return value


def export_value(value: object) -> str | None:
    """``str(value)`` as LiteLLM exports it, for scalars only (``None`` for a list or mapping:
    its Python repr is no key anyone means, and expanding it could be unbounded)."""
    if value is None or isinstance(value, str | int | float | bool):
        return str(value)
    return None


def _exported(data: Mapping[object, object], environ: Mapping[str, str]) -> Mapping[str, str]:
    section = data.get("environment_variables")
    if not section or not isinstance(section, dict):
        return environ
    out = dict(environ)
    for key, value in section.items():
        if not isinstance(key, str) or key in BLOCKED_EXPORTS:
            continue
        text = export_value(value)
        if text is not None:
            out[key] = text
    return out


def load_litellm_app(
    path: str, environ: Mapping[str, str], *, dotenv: str = "auto"
) -> LiteLLMApp | LoadFailure:
    """Read ``path`` (and its includes, and the ``.env``) as LiteLLM would. Never raises."""
    env, dotenv_path, won, note = _with_dotenv(environ, dotenv)
    data, failure = _yaml(path, "the LiteLLM config")
    if failure is not None:
        return failure
    if data is None:
        return LoadFailure(
            State.INVALID, "the LiteLLM config is empty (LiteLLM refuses to start)", (path,)
        )
    if not isinstance(data, dict):
        return LoadFailure(State.INVALID, "the LiteLLM config is not a mapping", (path,))
    merged, files, problem = _includes(data, path)
    if problem:
        return LoadFailure(State.INVALID, problem, tuple(files))
    resolved = _resolved(merged, env, 0)
    assert isinstance(resolved, dict)
    env_section = resolved.get("environment_variables")
    if env_section and not isinstance(env_section, dict):
        why = "environment_variables is not a mapping (LiteLLM refuses to start)"
        return LoadFailure(State.INVALID, why, tuple(files))
    return LiteLLMApp(
        path, resolved, merged, tuple(files), env, _exported(resolved, env), dotenv_path, won, note
    )
