"""The built-in master-key chain and the ``--master-key-file`` override.

Without a config file (or without its ``master_key`` section) the chain is:

1. ``env:AUTHSVC_MASTER_KEY``
2. ``file:$AUTHSVC_MASTER_KEY_FILE`` — present only when that variable is set and non-empty
3. ``env:LITELLM_MASTER_KEY``

``serve --master-key-file F`` (``load_config(master_key_file=F)``) puts ``file:F`` FIRST, in
front of whatever chain applies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from authsvc._errors import ConfigError
from authsvc.config._model import SourceSpec
from authsvc.sources import ENV_PREFIX, EnvSource, FileSource

__all__ = [
    "ENV_CONFIG",
    "ENV_LITELLM_MASTER_KEY",
    "ENV_MASTER_KEY",
    "ENV_MASTER_KEY_FILE",
    "ENV_PREFIX",
    "default_sources",
    "with_override",
]

ENV_CONFIG = "AUTHSVC_CONFIG"
ENV_MASTER_KEY = "AUTHSVC_MASTER_KEY"
ENV_MASTER_KEY_FILE = "AUTHSVC_MASTER_KEY_FILE"
ENV_LITELLM_MASTER_KEY = "LITELLM_MASTER_KEY"


def default_sources(
    environ: Mapping[str, str], master_key_file: str | None = None
) -> tuple[SourceSpec, ...]:
    """The chain without a config file: ``--master-key-file`` (if given), ``env:
    AUTHSVC_MASTER_KEY``, ``file:$AUTHSVC_MASTER_KEY_FILE`` (only when that variable is set
    and non-empty), ``env:LITELLM_MASTER_KEY``."""
    chain: list[SourceSpec] = [EnvSource(ENV_MASTER_KEY)]
    named = environ.get(ENV_MASTER_KEY_FILE, "")
    if named:
        chain.append(FileSource(os.path.abspath(named), f"${ENV_MASTER_KEY_FILE}"))
    chain.append(EnvSource(ENV_LITELLM_MASTER_KEY))
    return with_override(tuple(chain), master_key_file)


def with_override(
    chain: tuple[SourceSpec, ...], master_key_file: str | None
) -> tuple[SourceSpec, ...]:
    if master_key_file is None:
        return chain
    if not master_key_file.strip():
        raise ConfigError("--master-key-file: the path is empty")
    return (FileSource(os.path.abspath(master_key_file), "--master-key-file"), *chain)
