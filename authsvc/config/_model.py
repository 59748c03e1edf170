"""The validated configuration: frozen dataclasses, built once by ``load_config``.

Nothing here reads files or the environment; sources only *name* where a key lives. A
``value:`` entry's literal is held as a ``Secret`` so no ``repr`` of a config shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from authsvc.authz._credentials import (
    DEFAULT_LOCATIONS,
    MAX_CREDENTIAL_LENGTH,
    CredentialLocation,
)
from authsvc.authz._policy import DEFAULT_PROTECTED_HEALTH_PATH, DEFAULT_PUBLIC_PATHS, Policy
from authsvc.keys._ring import PathRule
from authsvc.keys._secret import Secret

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


@dataclass(frozen=True, slots=True)
class EnvSource:
    """``env: NAME`` — the environment variable ``NAME``."""

    name: str
    where: str = ""  # config location, e.g. "master_key.sources[0]" ("" for built-in defaults)

    @property
    def label(self) -> str:
        return f"env:{self.name}"


@dataclass(frozen=True, slots=True)
class FileSource:
    """``file: PATH`` — an absolute path (relative ones were resolved against the config dir)."""

    path: str
    where: str = ""

    @property
    def label(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True, slots=True)
class LiteLLMSource:
    """``litellm_config: PATH`` — resolve the master key exactly as LiteLLM does from it.

    ``dotenv`` is the ``.env`` LiteLLM loads (``auto``, ``off`` or a path); ``files`` are the
    files LiteLLM reads for its config (the main one, its ``include:`` files, the ``.env``),
    found when the config was loaded, so a reload watches them too.
    """

    path: str
    where: str = ""
    dotenv: str = "auto"
    files: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"litellm:{self.path}#general_settings.master_key"


@dataclass(frozen=True, slots=True)
class DotenvSource:
    """``dotenv: PATH`` — the variable ``name`` of a ``.env`` file, parsed as python-dotenv
    (and so LiteLLM) does; an exported variable of that name wins, as with ``load_dotenv()``."""

    path: str
    where: str = ""
    name: str = "LITELLM_MASTER_KEY"

    @property
    def label(self) -> str:
        return f"dotenv:{self.path}#{self.name}"


@dataclass(frozen=True, slots=True)
class ValueSource:
    """``value: STRING`` — a literal (held as a ``Secret``) or ``os.environ/NAME``."""

    config_path: str
    where: str
    literal: Secret | None = None
    env: str | None = None  # set for "os.environ/NAME"

    @property
    def label(self) -> str:
        return f"config:{self.config_path}#{self.where}"


@dataclass(frozen=True, slots=True)
class Sha256Source:
    """``sha256: HEX`` (extra keys only) — the key is known only by its digest."""

    config_path: str
    where: str
    digest: bytes

    @property
    def label(self) -> str:
        return f"config:{self.config_path}#{self.where}.sha256"


SourceSpec = EnvSource | FileSource | LiteLLMSource | ValueSource | DotenvSource
"""One layer of the master-key chain."""

KeySource = EnvSource | FileSource | ValueSource | Sha256Source
"""Where an extra key comes from (a ``file`` may hold several keys, one per line)."""


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
    source: KeySource
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
    litellm_ui: Literal["open", "closed"] = "open"

    def watched_files(self) -> tuple[str, ...]:
        """Every file whose change must trigger a reload: key files, LiteLLM configs, self."""
        files: list[str] = []
        for spec in self.master_key.sources:
            if isinstance(spec, FileSource | LiteLLMSource | DotenvSource):
                files.append(spec.path)
            if isinstance(spec, LiteLLMSource):
                files.extend(spec.files)
        files.extend(k.source.path for k in self.keys if isinstance(k.source, FileSource))
        if self.path is not None:
            files.append(self.path)
        return tuple(dict.fromkeys(files))
