"""Request-target parsing and path normalisation (pure, no I/O).

Envoy hands the authorizer the raw request target: path *and* query string, not decoded
(REFERENCE.md §1). Everything path-related that the decision needs lives here, so the rules
that were CVEs elsewhere (encoded slashes, dot segments, doubled slashes) are in one place.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["is_canonical", "normalize_path", "query_values", "split_target"]


def split_target(target: str) -> tuple[str, str]:
    """Split a raw request target into ``(path, query)``.

    The query starts at the first ``?``. A ``#fragment`` (clients should never send one) stays
    in the path part, so such a path never equals its normal form and is never public.
    """
    path, sep, query = target.partition("?")
    return path, query if sep else ""


def normalize_path(path: str) -> str | None:
    """The path as an upstream would most generously interpret it, or ``None`` if unusable.

    ``%``-escapes are decoded (``%2F`` becomes a separator, so does a backslash), empty and ``.``
    segments are dropped, ``..`` pops a segment, and a trailing slash is kept. Paths that do not
    start with ``/`` (``*``, absolute-form targets) or that decode to control characters give
    ``None``: callers must treat that as "not a public path".
    """
    if not path.startswith("/"):
        return None
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        return None
    decoded = decoded.replace("\\", "/")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = decoded.endswith(("/", "/.", "/..")) and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def is_canonical(path: str) -> bool:
    """True when ``path`` is already its own normal form (what public paths must be)."""
    return normalize_path(path) == path


def query_values(query: str, name: str) -> list[str]:
    """Every value of parameter ``name`` in a raw query string, ``%``-decoded, in order.

    ``+`` is kept literally (API keys are not form-encoded). A parameter given without ``=``
    yields an empty string.
    """
    if not query:
        return []
    values: list[str] = []
    prefix = name + "="
    for part in query.split("&"):
        if part == name:
            values.append("")
        elif part.startswith(prefix):
            values.append(unquote(part[len(prefix) :]))
    return values
