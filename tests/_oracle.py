"""An independent oracle for "may this request be allowed?" (shared by the fuzz tests).

It re-derives the two doors of the design from the documented rules, with its own percent
decoding and path resolution, and calls nothing of ``authsvc.authz`` but the policy's data:

(a) the raw path is exactly a public path and the method is GET or HEAD, or
(b) a master key is loaded and the credential of the *first present* location is a key of
    the ring, unexpired, in scope (as a generous upstream would read the path), and within
    the credential limits (length, printable ASCII, no surrounding space or tab).

``oracle`` is an upper bound: the implementation may deny more, never allow more.
``expected_reasons`` goes further and names the reason codes the documented pipeline may give
(route, readiness, credential, identity, scope — in that order), as plain strings; where the
documents leave room (an odd value that is both unknown and malformed, a path that only a
generous upstream would read as in scope) it allows each documented outcome. The credential
rules are LiteLLM 1.110.2's (docs/configuration.md), written out again here: only ASCII space
and tab trimmed, the token after a prefix never trimmed, a joined header's whole value looked
up before its first value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from authsvc.authz import Bearer, CredentialLocation, Policy, RequestView

__all__ = ["NOW", "FuzzKey", "expected_reasons", "oracle", "usable"]

NOW = 1_800_000_000.0


@dataclass(frozen=True)
class FuzzKey:
    key: str
    name: str
    patterns: tuple[str, ...] | None
    expires_at: float | None


def _sha(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _percent_decode(text: str, replace: bool = False) -> str | None:
    """RFC 3986 percent-decoding to UTF-8; invalid UTF-8 gives None (or U+FFFD for each bad
    byte with ``replace``, as uvicorn decodes a path), stray '%' stays."""
    out = bytearray()
    pos = 0
    for m in _PCT.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogatepass")
    try:
        return out.decode("utf-8", "replace" if replace else "strict")
    except UnicodeDecodeError:
        return None


def _upstream_paths(path: str) -> list[str]:
    """How a generous upstream could read ``path`` (with and without a trailing slash)."""
    if not path.startswith("/"):
        return []
    decoded = _percent_decode(path)
    if decoded is None or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        return []
    stack: list[str] = []
    for seg in decoded.replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if stack:
                stack.pop()
        else:
            stack.append(seg)
    base = "/" + "/".join(stack)
    return [base, base.rstrip("/") + "/"]


def _in_scope(patterns: tuple[str, ...] | None, path: str) -> bool:
    if patterns is None:
        return True
    for upstream in _upstream_paths(path):
        for p in patterns:
            if p == "*" or upstream == p:
                return True
            if p.endswith("/*") and (upstream == p[:-2] or upstream.startswith(p[:-1])):
                return True
    return False


def _values(view: RequestView, loc: CredentialLocation) -> list[str] | None:
    """What the location holds, or None when it is absent (empty header = absent).

    LiteLLM reads a header's first value (``first_values`` when the adapter knows it, else the
    map value whole) and ``?key=`` only on generateContent routes, the last value counting.
    """
    if loc.kind == "header":
        headers = view.first_values if view.first_values is not None else view.headers
        raw = headers.get(loc.name)
        if raw is None or (not raw.strip(" \t") and not loc.overrides):
            return None
        if loc.bearer is Bearer.PROTOCOL and "openai-insecure-api-key." not in raw:
            return None  # other subprotocols only: no key sent
        return [raw]
    path, qmark, query = view.target.partition("?")
    if not qmark:
        return None
    if loc.generate_content_only:
        decoded_path = _percent_decode(path, replace=True) or ""
        if "generateContent" not in decoded_path and "streamGenerateContent" not in decoded_path:
            return None
        last = None
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if _percent_decode(name.replace("+", " ")) == loc.name:
                decoded = _percent_decode(value.replace("+", " "))
                last = "\ufffd" if decoded is None else decoded
        return [last] if last else None
    found: list[str] = []
    for part in query.split("&"):
        if part == loc.name:
            found.append("")
        elif part.startswith(loc.name + "="):
            decoded = _percent_decode(part[len(loc.name) + 1 :])
            found.append("\ufffd" if decoded is None else decoded)
    return found or None


def _token(value: str, bearer: Bearer) -> str | None:
    """The key LiteLLM reads from a header value (its prefix rules), None when none."""
    v = value.strip(" \t")
    if bearer is Bearer.NEVER:
        return v
    if bearer is Bearer.STRICT:
        if not v.startswith("Bearer "):
            return None
        return ("Bearer " + v[7:].strip(" \t")).replace("Bearer ", "")
    if bearer is Bearer.PROTOCOL:
        for p in v.split(","):
            if p.strip().startswith("openai-insecure-api-key."):
                return p.strip()[len("openai-insecure-api-key.") :]
        return None
    for prefix in ("Bearer ", "Basic ", "bearer "):
        if v.startswith(prefix):
            return v.replace(prefix, "")
    if v.startswith("AWS4-HMAC-SHA256"):
        m = re.search(r"Credential=Bearer\s+([^/\s,]+)", v) or re.search(
            r"Credential=([^/\s,]+)", v
        )
        return m.group(1) if m else None
    return None if bearer is Bearer.REQUIRED else v


def _matches(value: str, key: str, bearer: Bearer) -> bool:
    """The whole value, or (a header sent twice, joined with ",") the part before a comma."""
    if _token(value, bearer) == key:
        return True
    return (
        bearer is not Bearer.PROTOCOL
        and "," in value
        and _token(value.split(",")[0], bearer) == key
    )


def usable(key: str, policy: Policy) -> bool:
    return (
        0 < len(key) <= policy.max_credential_length
        and key.isascii()
        and all(32 <= ord(c) < 127 for c in key)
        and key == key.strip(" \t")
    )


def oracle(
    view: RequestView, policy: Policy, keys: list[FuzzKey], has_master: bool
) -> FuzzKey | str | None:
    """``"public"``, the FuzzKey that may authorise the request, or None (must be denied)."""
    path = view.target.partition("?")[0]
    if path in policy.public_paths and view.method in ("GET", "HEAD"):
        return "public"
    routes = policy.app_routes
    if routes is not None:
        closed = path in routes.closed or any(path.startswith(p) for p in routes.closed_prefixes)
        if closed:
            return None
        if path in routes.public or (
            any(path.startswith(p) for p in routes.public_prefixes)
            and _upstream_paths(path)[:1] == [path]
        ):
            return "public"
    if not has_master:
        return None
    headers = view.first_values if view.first_values is not None else view.headers
    websocket = headers.get("upgrade", "").strip(" \t").lower() == "websocket"
    locations = policy.ws_locations if websocket else policy.locations
    overriding = [loc for loc in locations if loc.overrides and _values(view, loc) is not None]
    for loc in overriding[:1] or [loc for loc in locations if not loc.overrides]:
        values = _values(view, loc)
        if values is None:
            continue  # absent: the next location may decide
        for k in keys:  # the present location decides: all its values must be this one key
            if all(_matches(v, k.key, loc.bearer) for v in values):
                if not usable(k.key, policy):
                    return None
                if k.expires_at is not None and k.expires_at <= NOW:
                    return None
                return k if _in_scope(k.patterns, path) else None
        return None
    return None


def _plain(path: str) -> bool:
    """A path already in normal form by syntax alone (no decoding or resolution needed)."""
    if not path.startswith("/") or "//" in path or "%" in path or "\\" in path:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    segments = path.split("/")[1:]
    return not any(seg in (".", "..") for seg in segments)


def _scope_matches(patterns: tuple[str, ...], path: str) -> bool:
    for p in patterns:
        if p == "*" or path == p:
            return True
        if p.endswith("/*") and (path == (p[:-2] or "/") or path.startswith(p[:-1])):
            return True
    return False


def expected_reasons(
    view: RequestView, policy: Policy, keys: list[FuzzKey], has_master: bool
) -> frozenset[str]:
    """The reason codes ``decide`` may answer with, by the documented phases."""
    path = view.target.partition("?")[0]
    if not path:
        return frozenset({"malformed_request"})
    if path in policy.public_paths and view.method in ("GET", "HEAD"):
        return frozenset({"public_path"})
    if not has_master:
        return frozenset({"no_master_key"})
    headers = view.first_values if view.first_values is not None else view.headers
    websocket = headers.get("upgrade", "").strip(" \t").lower() == "websocket"
    for loc in policy.ws_locations if websocket else policy.locations:
        values = _values(view, loc)
        if values is None:
            continue
        candidates = _candidates(values, loc, policy)
        if not candidates:
            return frozenset({"malformed_credential"})
        found = next((k for c in candidates for k in keys if k.key == c), None)
        if found is None:
            return frozenset({"unknown_key"})
        if found.expires_at is not None and found.expires_at <= NOW:
            return frozenset({"expired_key"})
        if found.patterns is None:
            return frozenset({"key_valid"})
        if _plain(path):
            ok = _scope_matches(found.patterns, path)
            return frozenset({"key_valid" if ok else "path_not_allowed"})
        if _in_scope(found.patterns, path):
            return frozenset({"key_valid", "path_not_allowed"})
        return frozenset({"path_not_allowed"})
    return frozenset({"missing_credential"})


def _candidates(values: list[str], loc: CredentialLocation, policy: Policy) -> tuple[str, ...]:
    """The keys a present location offers, in the order they are looked up; () = malformed.

    A header: its whole value's key (LiteLLM's prefix rules), then — when the value holds a
    ``,`` (a header sent twice, joined) — the key of the part before it, if usable. A query
    parameter: its one value (a configured ``query:NAME`` sent with different values: none).
    """
    if loc.kind == "query":
        if len(set(values)) > 1:
            return ()
        return (values[0],) if usable(values[0], policy) else ()
    v = values[0].strip(" \t")
    whole = _token(v, loc.bearer)
    first = None
    if loc.bearer is not Bearer.PROTOCOL and "," in v:
        head = _token(v.split(",")[0], loc.bearer)
        if head and usable(head, policy):
            first = head
    if whole is None or not usable(whole, policy):
        return (first,) if first else ()
    return (whole, first) if first and first != whole else (whole,)
