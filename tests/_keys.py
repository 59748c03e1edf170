"""Every key the test suite uses, registered for the end-of-session leak scan.

Use ``make_key("label")`` for a deterministic, unique test key (``sk-test-<label>-<hex>``), or
``register(key)`` for a key made elsewhere (e.g. one a subprocess generated and the test read
from a file). ``tests/test_zz_no_key_leak.py`` searches every captured log line, every file
under ``$AUTHSVC_TEST_LOG_DIR`` and a ``/metrics`` output for each registered key, and reports
a hit by fingerprint only.

Keys shorter than ``MIN_LENGTH`` are refused: they could match ordinary text by chance.
"""

from __future__ import annotations

import hashlib

__all__ = ["ALT", "MASTER", "MIN_LENGTH", "SCOPED", "WRONG", "make_key", "register", "registered"]

MIN_LENGTH = 12

_REGISTRY: dict[str, str] = {}  # key -> label (the label, never the key, may be printed)


def register(key: str, label: str = "") -> str:
    """Remember ``key`` for the leak scan and return it unchanged."""
    if len(key) < MIN_LENGTH:
        raise ValueError(f"test key {label!r} is shorter than {MIN_LENGTH} characters")
    _REGISTRY.setdefault(key, label or "unlabelled")
    return key


def make_key(label: str) -> str:
    """A deterministic test key unique to ``label``, already registered."""
    tail = hashlib.sha256(f"authsvc-test-key:{label}".encode()).hexdigest()[:24]
    return register(f"sk-test-{label}-{tail}", label)


def registered() -> dict[str, str]:
    """A copy of the registry: key -> label."""
    return dict(_REGISTRY)


MASTER = make_key("master")
ALT = make_key("alt")
SCOPED = make_key("scoped")
WRONG = make_key("wrong")  # never loaded anywhere: a client's mistaken key is a secret too
