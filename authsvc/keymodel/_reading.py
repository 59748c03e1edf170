"""Readings: what one source said about the key, with its state and fingerprint, never the key.

``assess`` is the single rule that decides whether a value is a usable key (pure, no I/O):

- ``empty``   — nothing left after trimming whitespace;
- ``invalid`` — a client could not send it in a header: surrounding or inner whitespace,
  control or non-ASCII characters, a comma (repeated headers are joined with ``,``), or
  longer than the credential length limit;
- ``weak``    — shorter than 16 characters, a single repeated character, or publicly known
  (``WEAK_KEYS``);
- ``set``     — usable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from authsvc.keymodel._secret import Secret

__all__ = ["MIN_KEY_LENGTH", "WEAK_KEYS", "Reading", "Role", "State", "assess"]

MIN_KEY_LENGTH = 16

WEAK_KEYS = frozenset(
    {
        "sk-1234",  # LiteLLM's documented example master key
        "sk-12345",
        "sk-123456",
        "sk-12345678",
        "sk-1234567890",
        "changeme",
        "change-me",
        "password",
        "secret",
        "admin",
        "test",
        "default",
        "letmein",
        "master-key",
        "your-master-key",
    }
)
"""Publicly known keys (compared case-insensitively). Most are also too short: the list is
there so the message says *why* such a key is refused."""

WEAK_DIGESTS = frozenset(Secret(k).digest for k in WEAK_KEYS)


class State(StrEnum):
    """What a source held. Stable strings: they are API (``explain --json``, metrics)."""

    SET = "set"
    UNSET = "unset"
    EMPTY = "empty"
    MISSING = "missing"  # a file that does not exist
    UNREADABLE = "unreadable"
    INVALID = "invalid"
    WEAK = "weak"


class Role(StrEnum):
    """Whether a reading may win. Only candidates can; the others are read for the report."""

    CANDIDATE = "candidate"
    IGNORED = "ignored"  # the app ignores this layer (e.g. LITELLM_MASTER_KEY under a config key)
    MISPLACED = "misplaced"  # set in a place the app never reads: always warned about


@dataclass(frozen=True, slots=True)
class Reading:
    """One layer of the chain: ``source`` label, ``state``, ``fingerprint`` when a value exists.

    The key itself is held privately as a ``Secret`` (``repr`` shows only its fingerprint).
    ``key_digest`` is set for hash-only keys (``sha256:`` entries) that have no ``Secret``.
    """

    source: str
    state: State
    fingerprint: str | None
    detail: str
    role: Role = Role.CANDIDATE
    note: str = ""  # why a non-candidate is ignored
    secret: Secret | None = field(default=None, repr=False, compare=False)
    key_digest: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def digest(self) -> bytes | None:
        """SHA-256 of the value, when there is one."""
        return self.secret.digest if self.secret is not None else self.key_digest

    def usable(self, allow_weak: bool) -> bool:
        """May this reading win? ``set`` (or ``weak`` when allowed), as a candidate."""
        if self.role is not Role.CANDIDATE or self.digest is None:
            return False
        return self.state is State.SET or (allow_weak and self.state is State.WEAK)

    @classmethod
    def of_value(
        cls,
        source: str,
        value: str,
        *,
        max_length: int,
        what: str = "the key",
        role: Role = Role.CANDIDATE,
        note: str = "",
    ) -> Reading:
        """Assess ``value`` and build the reading (``empty`` carries no fingerprint)."""
        state, detail = assess(value, max_length=max_length, what=what)
        if state is State.EMPTY:
            return cls(source, state, None, detail, role, note)
        secret = Secret(value)
        return cls(source, state, secret.fingerprint, detail, role, note, secret)

    @classmethod
    def without_value(
        cls, source: str, state: State, detail: str, *, role: Role = Role.CANDIDATE, note: str = ""
    ) -> Reading:
        return cls(source, state, None, detail, role, note)


def _bad_character(value: str) -> str | None:
    for ch in value:
        if ch == ",":
            return "contains a comma (a header sent twice reaches us joined with ',')"
        if ch in "\r\n":
            return "contains a line break (one key per source)"
        if ch.isspace():
            return "contains whitespace"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "contains a control character"
        if not ch.isascii():
            return "contains a non-ASCII character"
        if not ch.isprintable():  # pragma: no cover - every ASCII non-printable is a control
            return "contains a non-printable character"
    return None


def assess(value: str, *, max_length: int = 1024, what: str = "the key") -> tuple[State, str]:
    """Classify a raw value: ``(state, detail)``. The detail never contains the value."""
    if not value.strip():
        return State.EMPTY, f"{what} is empty" if not value else f"{what} is only whitespace"
    if value != value.strip():
        return (
            State.INVALID,
            f"{what} has leading or trailing whitespace: a client cannot send it in a header",
        )
    bad = _bad_character(value)
    if bad is not None:
        return State.INVALID, f"{what} {bad}: a client cannot send it in a header"
    if len(value) > max_length:
        return (
            State.INVALID,
            f"{what} is longer than {max_length} characters (max_credential_length): "
            "every request would be refused",
        )
    if value.lower() in WEAK_KEYS:
        return State.WEAK, f"{what} is a publicly known default key"
    if len(value) < MIN_KEY_LENGTH:
        return State.WEAK, f"{what} is shorter than {MIN_KEY_LENGTH} characters ({len(value)})"
    if len(set(value)) == 1:
        return State.WEAK, f"{what} is a single repeated character"
    return State.SET, f"{what} is set ({len(value)} characters)"
