"""Making request-derived text safe to log: no keys, no control characters, bounded length.

Pure functions, no I/O. The rules (docs/observability.md, "Redaction"):

1. A query parameter whose name (``%``-decoded, case-insensitive) is a credential location or a
   well-known secret name has its value replaced by ``[REDACTED]``.
2. Any query value or path segment that *is* a key in the current ring (by digest) is redacted,
   whatever its name.
3. Anything that looks like a LiteLLM/OpenAI-style key (``sk-`` followed by 4+ token characters)
   is redacted wherever it appears, also in ``%``-encoded form in a value.
4. Every non-printable character (controls, DEL, C1, bidi/format characters, line separators,
   surrogates) is written as a backslash escape, so a field is always one harmless line.
5. Fields are cut to a fixed length *after* redaction (a key is never cut in half and leaked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, unquote_plus

from authsvc.keymodel import KeyRing, digest

__all__ = [
    "MAX_PARTS",
    "REDACTED",
    "SECRET_PARAM_NAMES",
    "Redactor",
    "escape",
    "looks_like_key",
]

REDACTED = "[REDACTED]"
MAX_PARTS = 64
"""Path segments / query parameters examined per target; the rest is omitted, not logged."""

SECRET_PARAM_NAMES = frozenset(
    {
        "key",
        "api_key",
        "api-key",
        "apikey",
        "access_token",
        "token",
        "auth",
        "authorization",
        "password",
        "secret",
        "client_secret",
        "x-api-key",
        "x-goog-api-key",
        "x-litellm-api-key",
    }
)
"""Query parameters redacted in addition to the configured credential locations."""

_KEY_LIKE = re.compile(r"sk-[^\s/?&#;=,\"'<>\\]{4,}", re.IGNORECASE)
_QUERY_SPLIT = re.compile(r"([&;])")
_TOKEN_SPLIT = re.compile(r"[\s,;=:]+")
_MIN_RING_CHECK = 8  # shorter values are not worth hashing: no usable key is that short
_MAX_RING_CHECK = 4096


def escape(text: str) -> str:
    """``text`` with every non-printable character replaced by a ``\\xNN``/``\\uNNNN`` escape."""
    if text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def looks_like_key(text: str) -> bool:
    """True when ``text`` contains an ``sk-``-style token (LiteLLM virtual/master key shape)."""
    return _KEY_LIKE.search(text) is not None


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


class Redactor:
    """Redacts targets and free text using the credential parameter names and the live ring.

    ``ring`` is called at redaction time (cold path: only lines that are actually written), so
    a reloaded key is recognised from the moment it is loaded.
    """

    __slots__ = ("_names", "_ring")

    def __init__(
        self,
        credential_params: Iterable[str] = (),
        ring: Callable[[], KeyRing | None] = lambda: None,
    ) -> None:
        self._names = frozenset(
            {n.lower() for n in credential_params} | SECRET_PARAM_NAMES,
        )
        self._ring = ring

    def _is_ring_key(self, ring: KeyRing | None, raw: str) -> bool:
        if ring is None or not _MIN_RING_CHECK <= len(raw) <= _MAX_RING_CHECK:
            return False
        candidates = {raw}
        if "%" in raw or "+" in raw:
            candidates.update((unquote(raw), unquote_plus(raw)))
        for text in tuple(candidates):
            candidates.update(_TOKEN_SPLIT.split(text)[:MAX_PARTS])
        return any(
            len(c) >= _MIN_RING_CHECK and ring.lookup(digest(c)) is not None for c in candidates
        )

    def _secret_value(self, ring: KeyRing | None, raw: str) -> bool:
        if self._is_ring_key(ring, raw):
            return True
        return looks_like_key(raw) or ("%" in raw and looks_like_key(unquote(raw)))

    def _param(self, ring: KeyRing | None, part: str) -> str:
        name, sep, value = part.partition("=")
        if not sep:
            return REDACTED if self._secret_value(ring, name) else part
        decoded_name = unquote_plus(name).strip().lower()
        if decoded_name in self._names or self._secret_value(ring, value):
            value = REDACTED
        if self._secret_value(ring, name):
            name = REDACTED
        return f"{name}={value}"

    def target(self, raw: str, limit: int = 2048) -> str:
        """The request target with secrets redacted, escaped and cut to ``limit`` characters."""
        ring = self._ring()
        path, qmark, query = raw.partition("?")
        segments = path.split("/")
        out_path = "/".join(
            REDACTED if self._secret_value(ring, s) else s for s in segments[:MAX_PARTS]
        )
        if len(segments) > MAX_PARTS:
            out_path += f"/…[{len(segments) - MAX_PARTS} more segments]"
        out = out_path
        if qmark:
            pieces = _QUERY_SPLIT.split(query)  # [part, sep, part, sep, ..., part]
            params = pieces[0::2]
            seps = [*pieces[1::2], ""]
            kept = [
                self._param(ring, p) + s
                for p, s in zip(params[:MAX_PARTS], seps[:MAX_PARTS], strict=True)
            ]
            out += "?" + "".join(kept)
            if len(params) > MAX_PARTS:
                out += f"…[{len(params) - MAX_PARTS} more parameters]"
        out = _KEY_LIKE.sub(REDACTED, out)
        return _truncate(escape(out), limit)

    def text(self, raw: str, limit: int = 256) -> str:
        """Free text from a request (method, request id, address): same rules, no structure."""
        ring = self._ring()
        if self._is_ring_key(ring, raw):
            return REDACTED
        return _truncate(escape(_KEY_LIKE.sub(REDACTED, raw)), limit)
