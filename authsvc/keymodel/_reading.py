"""Readings: what one source said about the key, with its state and fingerprint, never the key.

``assess`` is the single rule that decides whether a value is a usable key (pure, no I/O):

- ``empty``   — nothing left after trimming ASCII spaces and tabs;
- ``invalid`` — a client could not send it in a header: surrounding whitespace, a line break,
  a control or non-ASCII character, or longer than the credential length limit;
- ``weak``    — refused as publicly guessable: what LiteLLM itself refuses (``sk-1234``, after
  trimming) and the literal ``None`` (what LiteLLM exports for an unset ``os.environ/``);
- ``set``     — usable. ``caution`` then names authsvc's own stricter rules that the key breaks
  (shorter than 16 characters, a single repeated character, a listed default, a comma or an
  inner space): LiteLLM runs with such a key, so by default it is served with a loud warning
  (``master_key.weak: warn``), or refused (``master_key.weak: refuse``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from authsvc.keymodel._secret import Secret

__all__ = [
    "LITELLM_REFUSED",
    "MIN_KEY_LENGTH",
    "OWS",
    "WEAK_KEYS",
    "Reading",
    "Role",
    "State",
    "assess",
    "caution_of",
]

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
    APP_OPEN = "app_open"  # the app itself accepts every request without a key: always warned


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
    caution: str = ""  # an authsvc-only weakness of a usable key (see the module docstring)
    secret: Secret | None = field(default=None, repr=False, compare=False)
    key_digest: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def digest(self) -> bytes | None:
        """SHA-256 of the value, when there is one."""
        return self.secret.digest if self.secret is not None else self.key_digest

    def usable(self, allow_weak: bool, refuse_cautions: bool = False) -> bool:
        """May this reading win? ``set`` (or ``weak`` when allowed), as a candidate.

        ``refuse_cautions`` (``master_key.weak: refuse``) also refuses a ``set`` key that
        breaks one of authsvc's stricter rules, unless ``allow_weak``.
        """
        if self.role is not Role.CANDIDATE or self.digest is None:
            return False
        if self.state is State.SET:
            return not (refuse_cautions and self.caution and not allow_weak)
        return allow_weak and self.state is State.WEAK

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
        caution = caution_of(value, what=what) if state is State.SET else ""
        secret = Secret(value)
        return cls(source, state, secret.fingerprint, detail, role, note, caution, secret)

    @classmethod
    def without_value(
        cls, source: str, state: State, detail: str, *, role: Role = Role.CANDIDATE, note: str = ""
    ) -> Reading:
        return cls(source, state, None, detail, role, note)


OWS = " \t"
"""The only characters trimmed from a key: ASCII space and tab (what HTTP drops around a header
value). LiteLLM's emptiness test uses Python's ``str.strip()``, which trims every Unicode space;
the cases where that differs are documented in docs/configuration.md."""

PUBLICLY_GUESSABLE = frozenset({"None"})
"""Keys LiteLLM runs with that anyone can guess: ``None`` is what LiteLLM exports when an
``environment_variables`` entry is ``os.environ/NAME`` and ``NAME`` is not set."""

LITELLM_REFUSED = frozenset({"sk-1234"})
"""Keys LiteLLM refuses to start with (``master_key_boot_check.py``, compared after
``str.strip()``)."""


def _bad_character(value: str) -> str | None:
    for ch in value:
        if ch in "\r\n":
            return "contains a line break (one key per source)"
        if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            return "contains a control character"
        if not ch.isascii():
            return "contains a non-ASCII character"
    return None


def assess(value: str, *, max_length: int = 65536, what: str = "the key") -> tuple[State, str]:
    """Classify a raw value: ``(state, detail)``. The detail never contains the value."""
    if not value.strip(OWS) or not value.strip():
        return State.EMPTY, f"{what} is empty" if not value else f"{what} is only whitespace"
    if value.strip() in LITELLM_REFUSED:
        return State.WEAK, f"{what} is a publicly known default key (LiteLLM refuses it too)"
    if value in PUBLICLY_GUESSABLE:
        return (
            State.WEAK,
            f"{what} is the literal string 'None', which is publicly guessable (LiteLLM "
            "exports it for an os.environ/ reference to an unset variable and then accepts it)",
        )
    if value != value.strip(OWS):
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
    return State.SET, f"{what} is set ({len(value)} characters)"


def caution_of(value: str, *, what: str = "the key") -> str:
    """authsvc's stricter rules for a usable key (LiteLLM runs with it): ``""`` when none."""
    if value.lower() in WEAK_KEYS:
        return f"{what} is a publicly known default key"
    if len(value) < MIN_KEY_LENGTH:
        return f"{what} is shorter than {MIN_KEY_LENGTH} characters ({len(value)})"
    if len(set(value)) == 1:
        return f"{what} is a single repeated character"
    if "," in value:
        return f"{what} contains a comma (proxies may join a repeated header with ',')"
    if " " in value or "\t" in value:
        return f"{what} contains a space or tab"
    return ""
