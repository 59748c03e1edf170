"""The key model and the resolution rule: pure (no I/O, no clock, no config, no gRPC).

The lowest layer of key handling (see docs/architecture.md): ``Secret`` (a key that cannot
leak by accident), ``Reading`` (what one source said, with its ``State``), the per-key records
(``KeyMeta``, ``ExtraKeyReadings``, ``DigestBatch``), the rule ``resolve_readings`` that turns
readings into a ``Resolution`` and its ``KeyRing``, and how a resolution is shown. The sources
(``authsvc.sources``, I/O) sit above it; ``authsvc.authz`` uses only this package.
"""

from authsvc.keymodel._reading import (
    MIN_KEY_LENGTH,
    WEAK_DIGESTS,
    WEAK_KEYS,
    Reading,
    Role,
    State,
    assess,
)
from authsvc.keymodel._render import Shown, render_table, report
from authsvc.keymodel._ring import (
    FINGERPRINT_LENGTH,
    KeyRecord,
    KeyRing,
    KeyStore,
    PathRule,
    RingBuilder,
    digest,
    fingerprint,
)
from authsvc.keymodel._rule import (
    DIGEST_SIZE,
    MASTER_NAME,
    DigestBatch,
    ExtraKeyReadings,
    KeyMeta,
    Resolution,
    resolve_readings,
)
from authsvc.keymodel._secret import Secret
from authsvc.keymodel._standing import Standing

__all__ = [
    "DIGEST_SIZE",
    "FINGERPRINT_LENGTH",
    "MASTER_NAME",
    "MIN_KEY_LENGTH",
    "WEAK_DIGESTS",
    "WEAK_KEYS",
    "DigestBatch",
    "ExtraKeyReadings",
    "KeyMeta",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "PathRule",
    "Reading",
    "Resolution",
    "RingBuilder",
    "Role",
    "Secret",
    "Shown",
    "Standing",
    "State",
    "assess",
    "digest",
    "fingerprint",
    "render_table",
    "report",
    "resolve_readings",
]
