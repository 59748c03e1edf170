"""Where keys come from, put together: resolution of a config, reload, and the public names.

Cold path: ``resolve(config, environ) -> Resolution`` asks every configured source
(``authsvc.sources``, I/O) and applies the one rule (``resolve_readings``, pure, in
``authsvc.keymodel``); ``Reloader`` re-runs it when a source's change token moves and swaps the
``KeyStore``. Hot path: ``KeyRing`` / ``KeyStore`` only.

Layers, one way (import-linter enforces them, see pyproject.toml): ``keymodel`` (pure) ←
``sources`` (I/O) ← ``config`` (parser; dispatches through the source registry) ← ``keys``
(this package) ← server and CLI. The model's names are re-exported here for callers that
think in "keys".
"""

from authsvc.keymodel import (
    MIN_KEY_LENGTH,
    WEAK_KEYS,
    DigestBatch,
    ExtraKeyReadings,
    KeyMeta,
    KeyRecord,
    KeyRing,
    KeyStore,
    PathRule,
    Reading,
    Role,
    Secret,
    State,
    assess,
    digest,
    fingerprint,
    resolve_readings,
)
from authsvc.keys._reload import Reloader, rejection
from authsvc.keys._resolver import Resolution, resolve
from authsvc.sources import REGISTRY, KeySource, SourceKind, SourceOutput, Watch

__all__ = [
    "MIN_KEY_LENGTH",
    "REGISTRY",
    "WEAK_KEYS",
    "DigestBatch",
    "ExtraKeyReadings",
    "KeyMeta",
    "KeyRecord",
    "KeyRing",
    "KeySource",
    "KeyStore",
    "PathRule",
    "Reading",
    "Reloader",
    "Resolution",
    "Role",
    "Secret",
    "SourceKind",
    "SourceOutput",
    "State",
    "Watch",
    "assess",
    "digest",
    "fingerprint",
    "rejection",
    "resolve",
    "resolve_readings",
]
