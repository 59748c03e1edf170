"""LiteLLM's tables as authsvc reads them: the SQL, the columns it needs, rows → ``KeyMeta``.

Facts from LiteLLM 1.110.2 (``litellm/proxy/schema.prisma``, ``proxy/auth/*.py``):

- ``"LiteLLM_VerificationToken"``: ``token`` = SHA-256 hex of the key; ``key_alias``,
  ``team_id``, ``expires`` (``timestamp(3)`` without time zone, UTC; NULL = never),
  ``blocked`` (NULL/false/true), ``allowed_routes`` (``text[]``), ``updated_at`` (set by
  Prisma on every update, spend included);
- ``"LiteLLM_DeprecatedVerificationToken"``: a rotated-away key (``token``) keeps the rights of
  ``active_token_id`` while ``revoke_at > now``;
- ``"LiteLLM_TeamTable".blocked`` blocks every key of the team.

Nothing here holds a key: a row gives a digest (bytes) and a record. The record's name (sent
upstream as ``x-authsvc-key-name``) is the key's alias, else ``team:<team_id>``, else the
config entry's name — never ``key_name``, which LiteLLM fills with the key's first and last
characters. Names from the database are bounded and reduced to header-safe characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authsvc._errors import KeySourceError
from authsvc.keymodel import KeyMeta, PathRule, Standing

__all__ = [
    "COLUMNS",
    "KEYS_SQL",
    "ROUTE_GROUP",
    "VirtualKeyDBError",
    "VirtualRow",
    "dsn_from_env",
    "missing_columns",
    "parse_deprecated",
    "parse_row",
    "parse_when",
    "row_digest",
    "standing_of",
]

TOKENS = '"LiteLLM_VerificationToken"'
DEPRECATED = '"LiteLLM_DeprecatedVerificationToken"'
TEAMS = '"LiteLLM_TeamTable"'

COLUMNS: dict[str, tuple[str, ...]] = {
    "LiteLLM_VerificationToken": (
        "token",
        "key_alias",
        "team_id",
        "expires",
        "blocked",
        "allowed_routes",
        "updated_at",
    ),
    "LiteLLM_DeprecatedVerificationToken": ("token", "active_token_id", "revoke_at"),
    "LiteLLM_TeamTable": ("team_id", "blocked"),
}
"""Every column authsvc reads, per table: a database lacking one is refused by name."""

_SELECT = (
    f"SELECT token, key_alias, team_id, expires, blocked, allowed_routes, updated_at FROM {TOKENS}"
)
KEYS_SQL = _SELECT
KEYS_SINCE_SQL = f"{_SELECT} WHERE updated_at >= %s"
KEY_BY_TOKEN_SQL = f"{_SELECT} WHERE token = %s"
ALL_TOKENS_SQL = f"SELECT token FROM {TOKENS}"
BLOCKED_TEAMS_SQL = f"SELECT team_id FROM {TEAMS} WHERE blocked"
ALL_TEAMS_SQL = f"SELECT team_id FROM {TEAMS}"
UI_TEAM_ID = "litellm-dashboard"
"""LiteLLM's UI session keys carry this team, which never has a row (``UI_TEAM_ID``)."""
TEAM_BLOCKED_SQL = f"SELECT blocked FROM {TEAMS} WHERE team_id = %s"
DEPRECATED_SQL = (
    f"SELECT token, active_token_id, revoke_at FROM {DEPRECATED} "
    "WHERE revoke_at > (now() AT TIME ZONE 'UTC')"
)
DEPRECATED_BY_TOKEN_SQL = f"{DEPRECATED_SQL} AND token = %s"
COLUMNS_SQL = (
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ANY(%s)"
)
# One cheap round trip that moves whenever anything authsvc serves may have changed: the key
# table's row count (a deletion) and newest updated_at (an insert, an update, a rotation),
# the blocked teams, the live deprecated tokens. No per-row hashing: ~ a count(*).
WATERMARK_SQL = (
    f"SELECT (SELECT count(*) FROM {TOKENS}), (SELECT max(updated_at) FROM {TOKENS}), "
    f"(SELECT coalesce(string_agg(md5(team_id), '' ORDER BY team_id), '') FROM {TEAMS} WHERE blocked), "
    f"(SELECT count(*) FROM {DEPRECATED} WHERE revoke_at > (now() AT TIME ZONE 'UTC')), "
    f"(SELECT max(created_at) FROM {DEPRECATED}), "
    f"(SELECT coalesce(md5(string_agg(team_id, ',' ORDER BY team_id)), '') FROM {TEAMS})"
)
COUNT_SQL = f"SELECT count(*) FROM {TOKENS}"

ROUTE_GROUP = re.compile(r"[a-z_]+\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._:@/-]")
MAX_NAME = 64
MAX_ROUTES = 64
MAX_ROUTE = 512
# Prisma's own query parameters in DATABASE_URL: libpq refuses unknown ones.
_PRISMA_PARAMS = frozenset(
    {"schema", "connection_limit", "pool_timeout", "pgbouncer", "statement_cache_size",
     "socket_timeout", "connect_timeout_ms", "sslaccept"}
)  # fmt: skip


class VirtualKeyDBError(KeySourceError):
    """LiteLLM's database cannot be used as a key store (schema, garbage, configuration)."""


@dataclass(frozen=True, slots=True)
class VirtualRow:
    """One ``LiteLLM_VerificationToken`` row, reduced to what the edge decides on."""

    digest: bytes
    alias: str | None
    team_id: str | None
    expires_at: float | None
    blocked: bool
    routes: tuple[str, ...] | None  # None: no restriction the edge can enforce
    updated_at: float | None = field(compare=False)  # a spend update changes nothing here

    def meta(
        self,
        entry: KeyMeta,
        blocked_teams: frozenset[str],
        revoke_at: float | None = None,
        known_teams: frozenset[str] | None = None,
    ) -> KeyMeta:
        """The ring record of this key (``revoke_at``: served for a rotated-away key;
        ``known_teams``: every ``team_id`` of ``LiteLLM_TeamTable``, ``None``: not read)."""
        if self.alias:
            name = self.alias
        elif self.team_id:
            name = f"team:{self.team_id}"
        else:
            name = entry.name
        standing = standing_of(self.blocked, self.team_id, blocked_teams, known_teams, revoke_at)
        paths = PathRule.from_patterns(self.routes) if self.routes is not None else entry.paths
        return KeyMeta(name, entry.where, paths, self.expires_at, standing)


def standing_of(
    blocked: bool,
    team_id: str | None,
    blocked_teams: frozenset[str],
    known_teams: frozenset[str] | None,
    revoke_at: float | None = None,
) -> Standing:
    """A key's standing: its own ``blocked``, and its team's (blocked, or gone from
    ``LiteLLM_TeamTable``: ``known_teams`` ``None`` = not read)."""
    return Standing(
        blocked=blocked,
        team_id=team_id,
        team_blocked=team_id is not None and team_id in blocked_teams,
        revoke_at=revoke_at,
        team_missing=team_id is not None
        and team_id != UI_TEAM_ID
        and known_teams is not None
        and team_id not in known_teams,
    )


def _bounded(text: str | None, what: str) -> str | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise VirtualKeyDBError(f"column {what} holds a {type(text).__name__}, expected text")
    return _NAME_BAD.sub("_", text[:MAX_NAME])


def parse_when(value: object, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise VirtualKeyDBError(
            f"column {what} holds a {type(value).__name__}, expected a timestamp"
        )
    if value.tzinfo is None:  # Prisma stores UTC in "timestamp without time zone"
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _routes(value: object) -> tuple[str, ...] | None:
    """LiteLLM's ``allowed_routes`` as PathRule patterns, or ``None`` when the edge cannot
    enforce them exactly (empty = no restriction; a route-group name or a wildcard pattern
    needs LiteLLM's own route tables, so the app decides those)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise VirtualKeyDBError(
            f'column "LiteLLM_VerificationToken".allowed_routes holds a {type(value).__name__}, '
            "expected text[]"
        )
    if not value or len(value) > MAX_ROUTES:
        return None
    patterns: list[str] = []
    for route in value:
        if not isinstance(route, str) or not route.startswith("/") or len(route) > MAX_ROUTE:
            return None  # a route group (llm_api_routes, ...) or something the app interprets
        if "*" in route or (route.endswith("/") and route != "/"):
            return None
        # LiteLLM: the route itself, or any route below it (prefix + "/").
        patterns.append("/" if route == "/" else f"{route}/*")
    return tuple(patterns)


def row_digest(token: object) -> bytes | None:
    """The 32-byte digest of a ``token`` column (SHA-256 hex), or ``None`` for any other
    value (LiteLLM hashes every ``sk-`` key it is sent; such a row can match no key)."""
    if isinstance(token, str) and _HEX64.match(token):
        return bytes.fromhex(token)
    return None


def parse_row(row: tuple[object, ...], strings: dict[str, str] | None = None) -> VirtualRow | None:
    """A ``KEYS_SQL`` row → ``VirtualRow`` (``None``: a token no key can have). A value of
    the wrong type is a ``VirtualKeyDBError`` naming the column, never a guess. ``strings``:
    equal team ids become one object (100,000 keys share a few teams)."""
    token, alias, team_id, expires, blocked, routes, updated = row
    digest = row_digest(token)
    if digest is None:
        return None
    if blocked is not None and not isinstance(blocked, bool):
        raise VirtualKeyDBError(
            f'column "LiteLLM_VerificationToken".blocked holds a {type(blocked).__name__}, '
            "expected boolean"
        )
    team = team_id[:MAX_NAME] if isinstance(team_id, str) and team_id else None
    if team_id is not None and not isinstance(team_id, str):
        raise VirtualKeyDBError('column "LiteLLM_VerificationToken".team_id is not text')
    if team is not None and strings is not None:
        team = strings.setdefault(team, team)
    return VirtualRow(
        digest=digest,
        alias=_bounded(alias, '"LiteLLM_VerificationToken".key_alias'),  # type: ignore[arg-type]
        team_id=team,
        expires_at=parse_when(expires, '"LiteLLM_VerificationToken".expires'),
        blocked=blocked is True,
        routes=_routes(routes),
        updated_at=parse_when(updated, '"LiteLLM_VerificationToken".updated_at'),
    )


def parse_deprecated(rows: Iterable[tuple[object, ...]]) -> dict[bytes, tuple[bytes, float]]:
    """``DEPRECATED_SQL``'s rows as old digest → (active digest, ``revoke_at``)."""
    deprecated: dict[bytes, tuple[bytes, float]] = {}
    for old, active, revoke in rows:
        old_d, active_d = row_digest(old), row_digest(active)
        revoke_at = parse_when(revoke, '"LiteLLM_DeprecatedVerificationToken".revoke_at')
        if old_d is not None and active_d is not None and revoke_at is not None:
            deprecated[old_d] = (active_d, revoke_at)
    return deprecated


def missing_columns(found: Iterable[tuple[str, str]]) -> list[str]:
    """``"Table".column`` for every column authsvc reads that ``found`` lacks."""
    have = set(found)
    return [
        f'"{table}".{column}'
        for table, columns in COLUMNS.items()
        for column in columns
        if (table, column) not in have
    ]


def dsn_from_env(environ: Mapping[str, str], url_env: str) -> tuple[str | None, str | None]:
    """The connection string LiteLLM itself would use: ``$url_env`` (``DATABASE_URL``), else
    ``DATABASE_HOST`` + ``DATABASE_USERNAME`` + ``DATABASE_NAME`` (+ ``DATABASE_PASSWORD``,
    ``DATABASE_SCHEMA``). Returns ``(dsn, schema)``; Prisma's query parameters (``schema=``,
    ``connection_limit=``, ...) are removed, since libpq refuses them; the schema is
    returned so the connection can set its ``search_path``."""
    url = environ.get(url_env, "").strip()
    if not url:
        host = environ.get("DATABASE_HOST", "")
        user = environ.get("DATABASE_USERNAME", "")
        name = environ.get("DATABASE_NAME", "")
        if not (host and user and name):
            return None, None
        from urllib.parse import quote_plus

        password = environ.get("DATABASE_PASSWORD", "")
        auth = quote_plus(user) + (f":{quote_plus(password)}" if password else "")
        url = f"postgresql://{auth}@{host}/{quote_plus(name)}"
        schema = environ.get("DATABASE_SCHEMA") or None
        return url, schema
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema" and v), None)
    kept = [(k, v) for k, v in query if k not in _PRISMA_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(kept))), schema
