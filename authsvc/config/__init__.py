"""The config file: strict YAML → frozen dataclasses, validated once at load.

``load_config(path, *, environ, master_key_file=None) -> Config`` is the entry point; see
docs/configuration.md for every field.
"""

from authsvc.config._chain import (
    ENV_CONFIG,
    ENV_LITELLM_MASTER_KEY,
    ENV_MASTER_KEY,
    ENV_MASTER_KEY_FILE,
    default_sources,
)
from authsvc.config._load import load_config
from authsvc.config._model import (
    Config,
    DotenvSource,
    EnvSource,
    ExtraKeySpec,
    FileSource,
    HealthCheckConfig,
    KeySource,
    LiteLLMSource,
    MasterKeyConfig,
    ReloadConfig,
    Sha256Source,
    SourceSpec,
    ValueSource,
)
from authsvc.config._parse import parse_config

__all__ = [
    "ENV_CONFIG",
    "ENV_LITELLM_MASTER_KEY",
    "ENV_MASTER_KEY",
    "ENV_MASTER_KEY_FILE",
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
    "default_sources",
    "load_config",
    "parse_config",
]
