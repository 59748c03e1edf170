"""The built-in master-key chain and the ``--master-key-file`` override.

Without a config file (or without its ``master_key`` section) the chain is:

1. ``env:AUTHSVC_MASTER_KEY``
2. ``file:$AUTHSVC_MASTER_KEY_FILE`` — present only when that variable is set and non-empty
3. ``env:LITELLM_MASTER_KEY`` — or, when ``AUTHSVC_LITELLM_CONFIG`` is set and non-empty,
   ``litellm_config: $AUTHSVC_LITELLM_CONFIG`` (LiteLLM mode, whose fallback is that variable;
   ``authsvc inject`` sets it for a LiteLLM app started with ``--config``)

``serve --master-key-file F`` (``load_config(master_key_file=F)``) puts ``file:F`` FIRST, in
front of whatever chain applies.

LiteLLM's virtual keys without a config file: when the environment names LiteLLM's database
the way LiteLLM reads it (``DATABASE_URL``, or ``DATABASE_HOST`` + ``DATABASE_USERNAME`` +
``DATABASE_NAME``), ``default_keys`` adds one ``virtual_keys`` entry with the defaults (name
``litellm``). Without those variables nothing changes (``make run`` needs no database).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from authsvc._errors import ConfigError
from authsvc.config._model import ExtraKeySpec, SourceSpec
from authsvc.keymodel import KeyMeta
from authsvc.sources import ENV_PREFIX, EnvSource, FileSource, LiteLLMSource, VirtualKeySource

__all__ = [
    "ENV_CONFIG",
    "ENV_LITELLM_CONFIG",
    "ENV_LITELLM_MASTER_KEY",
    "ENV_MASTER_KEY",
    "ENV_MASTER_KEY_FILE",
    "ENV_PREFIX",
    "default_keys",
    "default_sources",
    "with_override",
]

ENV_CONFIG = "AUTHSVC_CONFIG"
ENV_MASTER_KEY = "AUTHSVC_MASTER_KEY"
ENV_MASTER_KEY_FILE = "AUTHSVC_MASTER_KEY_FILE"
ENV_LITELLM_MASTER_KEY = "LITELLM_MASTER_KEY"
ENV_LITELLM_CONFIG = "AUTHSVC_LITELLM_CONFIG"


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
    litellm = environ.get(ENV_LITELLM_CONFIG, "")
    if litellm:
        chain.append(LiteLLMSource(os.path.abspath(litellm), f"${ENV_LITELLM_CONFIG}"))
    else:
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


def default_keys(environ: Mapping[str, str]) -> tuple[ExtraKeySpec, ...]:
    """LiteLLM's virtual keys when its database is named in the environment (see above)."""
    named = environ.get("DATABASE_URL", "").strip() or all(
        environ.get(name, "").strip()
        for name in ("DATABASE_HOST", "DATABASE_USERNAME", "DATABASE_NAME")
    )
    if not named:
        return ()
    meta = KeyMeta("litellm", "$DATABASE_URL")
    return (ExtraKeySpec(meta.name, meta.where, VirtualKeySource.default(meta)),)
