"""The app container: is it LiteLLM, where does it listen, which port is it (pure).

LiteLLM's CLI (``litellm/proxy/proxy_cli.py``, click): ``--host`` (default ``0.0.0.0``, env
``HOST``), ``--port`` (default 4000, env ``PORT``), ``--config``/``-c`` (the config file). A
command-line option wins over its environment variable. The images are
``ghcr.io/berriai/litellm`` and its variants (``litellm-database``, ``litellm-non_root``, ...).

``bind_loopback`` rewrites a LiteLLM container so it listens on 127.0.0.1 only: the ``--host``
argument when there is one, else the ``HOST`` variable (added when absent: the default is
``0.0.0.0``). Other apps cannot be changed safely; ``inject`` warns about them by name.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LOOPBACK",
    "bind_loopback",
    "is_litellm",
    "litellm_config_path",
    "litellm_port",
    "option_value",
]

Obj = dict[str, Any]
LOOPBACK = "127.0.0.1"
LITELLM_DEFAULT_PORT = 4000
_LITELLM_IMAGE = re.compile(r"(^|/)berriai/litellm([-_][a-z0-9_-]+)?(:|@|$)")
_LOOPBACKS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _words(container: Mapping[str, Any]) -> list[str]:
    words = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            words += [w for w in value if isinstance(w, str)]
    return words


def is_litellm(container: Mapping[str, Any]) -> bool:
    """LiteLLM by image (``.../berriai/litellm*``) or by command (``litellm ...``)."""
    image = container.get("image")
    if isinstance(image, str) and _LITELLM_IMAGE.search(image.lower()):
        return True
    command = container.get("command")
    if isinstance(command, list) and command and isinstance(command[0], str):
        return command[0].rsplit("/", 1)[-1] == "litellm"
    return False


def option_value(words: list[str], *names: str) -> tuple[int, str] | None:
    """``(index of the value, value)`` of the last ``--name V`` / ``--name=V`` in ``words``."""
    found = None
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                found = (i + 1, words[i + 1])
            elif word.startswith(name + "="):
                found = (i, word[len(name) + 1 :])
    return found


def _env_value(container: Mapping[str, Any], name: str) -> str | None:
    value = None
    for entry in container.get("env") or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get("value") if isinstance(entry.get("value"), str) else None
    return value


def litellm_port(container: Mapping[str, Any]) -> int | None:
    """The port LiteLLM listens on: ``--port``, else ``PORT``, else 4000; None if unknowable
    (e.g. ``$(VAR)`` references or a value from a Secret)."""
    option = option_value(_words(container), "--port")
    text = option[1] if option is not None else _env_value(container, "PORT")
    if option is None and text is None:
        if any(
            isinstance(e, Mapping) and e.get("name") == "PORT" for e in container.get("env") or []
        ):
            return None  # PORT from valueFrom: not known at injection
        return LITELLM_DEFAULT_PORT
    if text is None or not text.isdigit() or not 1 <= int(text) <= 65535:
        return None
    return int(text)


def litellm_config_path(container: Mapping[str, Any]) -> str | None:
    """LiteLLM's ``--config``/``-c`` as an absolute path (a relative one is taken from the
    container's ``workingDir``; "" when that is unknown), or None without the option."""
    option = option_value(_words(container), "--config", "-c")
    if option is None:
        return None
    path = option[1]
    if path.startswith("/"):
        return posixpath.normpath(path)
    workdir = container.get("workingDir")
    if isinstance(workdir, str) and workdir.startswith("/"):
        return posixpath.normpath(posixpath.join(workdir, path))
    return ""


def bind_loopback(container: Mapping[str, Any]) -> tuple[Obj, str | None]:
    """A LiteLLM container listening on 127.0.0.1 only, and what was changed (None: nothing)."""
    new = copy.deepcopy(dict(container))
    for key in ("args", "command"):  # args first: the usual place for options
        words = new.get(key)
        if not isinstance(words, list):
            continue
        option = option_value([w if isinstance(w, str) else "" for w in words], "--host")
        if option is None:
            continue
        index, value = option
        if value in _LOOPBACKS:
            return new, None
        words[index] = LOOPBACK if words[index] == value else f"--host={LOOPBACK}"
        return new, f"{key} --host {value} -> {LOOPBACK}"
    env = new.get("env")
    env = list(env) if isinstance(env, list) else []
    for i, entry in enumerate(env):
        if isinstance(entry, Mapping) and entry.get("name") == "HOST":
            if entry.get("value") in _LOOPBACKS:
                return new, None
            before = entry.get("value", "(from valueFrom)")
            env[i] = {"name": "HOST", "value": LOOPBACK}
            new["env"] = env
            return new, f"env HOST {before} -> {LOOPBACK}"
    new["env"] = [*env, {"name": "HOST", "value": LOOPBACK}]
    return new, f"env HOST={LOOPBACK} added (LiteLLM's default is 0.0.0.0)"
