"""``load_config``: find the config file (argument, ``$AUTHSVC_CONFIG`` or none), read it, and
hand it to the strict parser. Without a file, the built-in defaults apply (see ``_chain``).
"""

from __future__ import annotations

from collections.abc import Mapping

from authsvc._errors import ConfigError
from authsvc._fileio import FileProblem, Problem, read_regular
from authsvc.config._chain import ENV_CONFIG, default_keys, default_sources
from authsvc.config._model import Config, MasterKeyConfig
from authsvc.config._parse import parse_config

__all__ = ["MAX_CONFIG_BYTES", "load_config"]

MAX_CONFIG_BYTES = 4 << 20
"""4 MiB: ~40,000 ``sha256:`` entries. Bulk keys belong in key lists (``file:`` or
``sha256_file:`` in ``keys:``, up to 250,000 keys each), not in the config file."""


def load_config(
    path: str | None = None,
    *,
    environ: Mapping[str, str],
    master_key_file: str | None = None,
) -> Config:
    """Load and validate the config.

    ``path`` ``None`` means ``$AUTHSVC_CONFIG`` when set (and non-empty), else the built-in
    defaults. ``master_key_file`` (``serve --master-key-file``) is put FIRST in the chain.
    Raises ``ConfigError`` naming file, line, key path and the nearest valid name.
    """
    origin = ""
    if path is None:
        path = environ.get(ENV_CONFIG) or None
        origin = f" (from ${ENV_CONFIG})"
    if path is None:
        return Config(
            path=None,
            master_key=MasterKeyConfig(default_sources(environ, master_key_file)),
            keys=default_keys(environ),
        )
    data = read_regular(path, MAX_CONFIG_BYTES)  # never blocks: a FIFO is refused, not opened
    if isinstance(data, FileProblem):
        if data.problem is Problem.TOO_LARGE:
            raise ConfigError(
                f"config file {path}{origin} is larger than {MAX_CONFIG_BYTES // (1 << 20)} MiB "
                "(the limit): put bulk keys in a key list instead ('file:' or 'sha256_file:' in "
                "keys:, one key or digest per line)"
            )
        raise ConfigError(f"config file {path}{origin} {data.detail}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}{origin} is not UTF-8 (byte {exc.start})") from None
    return parse_config(text, path, environ=environ, master_key_file=master_key_file)
