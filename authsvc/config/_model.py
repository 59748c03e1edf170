"""The validated configuration: frozen dataclasses, built once by ``load_config``.

Nothing here reads files or the environment; the sources (``authsvc.sources``, built by the
parser through the registry) only *name* where a key lives until the resolver asks them. A
``value:`` entry's literal is held as a ``Secret`` so no ``repr`` of a config shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from authsvc.authz import (
    DEFAULT_LOCATIONS,
    DEFAULT_PROTECTED_HEALTH_PATH,
    DEFAULT_PUBLIC_PATHS,
    MAX_CREDENTIAL_LENGTH,
    CredentialLocation,
    Policy,
)
from authsvc.keymodel import PathRule
from authsvc.sources import (
    DotenvSource,
    EnvSource,
    FileSource,
    KeySource,
    LiteLLMSource,
    Sha256Source,
    ValueSource,
)

__all__ = [
    "DEFAULT_HEALTH_URL",
    "Config",
    "DotenvSource",
    "EnvSource",
    "ExtraKeySpec",
    "FileSource",
    "HealthCheckConfig",
    "KeySource",
    "LiteLLMSource",
    "MasterKeyConfig",
    "ReloadConfig",
    "Sha256Source",
    "SourceSpec",
    "ValueSource",
]

DEFAULT_HEALTH_URL = "http://127.0.0.1:10000"

SourceSpec = KeySource
"""One layer of the master-key chain: any ``KeySource`` (the classes live in
``authsvc.sources``; they are re-exported here because configs name them)."""


@dataclass(frozen=True, slots=True)
class MasterKeyConfig:
    sources: tuple[SourceSpec, ...]
    on_conflict: Literal["warn", "error"] = "warn"
    allow_weak: bool = False
    weak: Literal["warn", "refuse"] = "warn"  # authsvc's stricter rules: warn and serve, or refuse


@dataclass(frozen=True, slots=True)
class ExtraKeySpec:
    """An entry of ``keys:``. ``expires_at`` is Unix time (``None`` = never)."""

    name: str
    where: str  # "keys[0]"
    source: KeySource  # built with this entry's KeyMeta: its reading carries name and limits
    paths: PathRule | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    enabled: bool = True
    interval: float = 30.0
    url: str = DEFAULT_HEALTH_URL


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    poll_interval: float = 2.0


@dataclass(frozen=True, slots=True)
class Config:
    """Everything authsvc reads from its config file (or the built-in defaults).

    ``path`` is the config file (``None`` = built-in defaults). ``policy`` is precomputed for
    the hot path.
    """

    path: str | None
    master_key: MasterKeyConfig
    keys: tuple[ExtraKeySpec, ...] = ()
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    protected_health_path: str = DEFAULT_PROTECTED_HEALTH_PATH
    credentials: tuple[CredentialLocation, ...] = DEFAULT_LOCATIONS
    max_credential_length: int = MAX_CREDENTIAL_LENGTH
    forward_credentials: bool = True
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    policy: Policy = field(default_factory=Policy.build)
    dry_run: bool = False  # answer allow for would-be denials and record them (docs/dry-run.md)
    litellm_ui: Literal["open", "closed"] = "open"  # LiteLLM mode: the Admin UI at the edge

    def sources(self) -> tuple[KeySource, ...]:
        """Every configured source: the master-key chain in order, then each ``keys:`` entry."""
        return (*self.master_key.sources, *(k.source for k in self.keys))

    def watched_files(self) -> tuple[str, ...]:
        """Every file whose change must trigger a reload: what the sources watch, and self."""
        files = [f for source in self.sources() for f in source.watch().files]
        if self.path is not None:
            files.append(self.path)
        return tuple(dict.fromkeys(files))
