"""``Secret``: a key value that cannot leak by accident.

Its ``repr``/``str``/``format`` show only the fingerprint; pickling is refused; the value comes
out only through the explicit ``reveal()``. Equality is by digest, compared in constant time.
This module has no dependencies inside authsvc, so the config layer can hold secrets too.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NoReturn

__all__ = ["Secret"]

_FINGERPRINT_LENGTH = 12  # same as authsvc.keymodel._ring.FINGERPRINT_LENGTH


class Secret:
    """A key value. ``digest`` is its SHA-256, ``fingerprint`` the first 12 hex characters."""

    __slots__ = ("_value", "digest", "fingerprint")

    _value: str
    digest: bytes
    fingerprint: str

    def __init__(self, value: str) -> None:
        raw = hashlib.sha256(value.encode("utf-8", "surrogatepass"))
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "digest", raw.digest())
        object.__setattr__(self, "fingerprint", raw.hexdigest()[:_FINGERPRINT_LENGTH])

    def reveal(self) -> str:
        """The key itself. Call it only where the key must be used (hashing, a health probe)."""
        return self._value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.digest, other.digest)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or serialised")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self
