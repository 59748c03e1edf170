"""The shapes observability reads from other packages, as structural types.

``authsvc.keys.resolve(...)`` returns a ``Resolution``; observability only needs the attributes
below, so it depends on this protocol and on the pure key model (``authsvc.keymodel``: the
ring), never on the resolution/reload package (``authsvc.keys``), its sources or the config
parser. An import-linter contract (pyproject.toml) keeps it so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from authsvc.keymodel import KeyRing

__all__ = ["ReloadResult", "ResolutionLike", "WinnerLike"]

ReloadResult = Literal["success", "failure", "unchanged"]


class WinnerLike(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def fingerprint(self) -> str | None: ...


class ResolutionLike(Protocol):
    """What a key resolution must offer: no key, only fingerprints and the built ring."""

    @property
    def resolved(self) -> bool: ...

    @property
    def winner(self) -> WinnerLike | None: ...

    @property
    def ring(self) -> KeyRing: ...

    @property
    def warnings(self) -> Sequence[object]: ...

    def report(self) -> Mapping[str, object]: ...
