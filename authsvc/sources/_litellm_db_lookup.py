"""The unknown-key lookup: a key LiteLLM created a moment ago is accepted before the next
refresh, and floods of wrong keys do not reach the database.

For a key the ring does not know (and only for LiteLLM-shaped keys, ``sk-...``: LiteLLM
refuses any other without a lookup), the checker asks ``Lookup``:

- ``cached(digest)`` (sync, no I/O): a record found recently (kept until a refresh that
  started after the lookup has run: from then on the ring decides, so a key deleted or
  blocked since is refused), ``MISS`` for a digest the database did not know ``miss_ttl`` ago (bounded:
  ``MAX_CACHED`` entries), or ``None``: ask the database;
- ``find(digest)`` (async): at most ONE query per distinct digest at a time (single flight:
  concurrent requests for the same key share it), at most ``lookup_rate`` queries per second
  (a token bucket, burst ``lookup_rate // 4``: the default 40 allows at most 50 in any second;
  beyond it the key is refused without a query and ``cap_hits`` counts it),
  ``TIMEOUT`` (0.5 s) at most. The database down: refused (``lookup_errors``), and no new
  connection is tried for ``RETRY`` seconds. Never an allow without a row.

One query finds the key's row, or the row of the key it was rotated into while the old one's
``revoke_at`` is in the future, with its team's ``blocked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

from authsvc.keymodel import KeyMeta
from authsvc.sources import _litellm_db_rows as sql
from authsvc.sources._litellm_db_rows import VirtualKeyDBError
from authsvc.sources._litellm_db_store import VirtualKeyStore

__all__ = ["MISS", "Lookup", "lookup_for", "set_lookup_share", "unknown_message"]

MISS: Final = "miss"
MAX_CACHED = 10_000
TIMEOUT = 0.5
"""Seconds a lookup (connect included) may take: below Envoy's check timeout (1 s in the
bootstrap authsvc writes), so a slow database is a 401 from us, not an error at the proxy."""
RETRY = 1.0

LITELLM_UNKNOWN = "Authentication Error, Invalid API key provided."
"""LiteLLM 1.110.2's 401 for an ``sk-`` key its database does not hold (``KeyNotFoundError``,
``INVALID_API_KEY_ERROR_MESSAGE``)."""
LITELLM_NOT_VIRTUAL = "LiteLLM Virtual Key expected. Received=****, expected to start with 'sk-'."
"""LiteLLM's 401 for any other key (not the master, not ``sk-``): LiteLLM quotes the key's
first and last four characters after ``Received=``; authsvc never echoes a key's bits."""


def unknown_message(key: str) -> str:
    """The reason LiteLLM gives a key it does not know, with its database configured."""
    return LITELLM_UNKNOWN if key.startswith("sk-") else LITELLM_NOT_VIRTUAL


_FIND_SQL = (
    "SELECT v.token, v.key_alias, v.team_id, v.expires, v.blocked, v.allowed_routes, "
    "v.updated_at, d.revoke_at, t.blocked, t.team_id "
    "FROM (SELECT %s::text AS h) q "
    f"LEFT JOIN {sql.DEPRECATED} d ON d.token = q.h "
    "AND d.revoke_at > (now() AT TIME ZONE 'UTC') "
    f"JOIN {sql.TOKENS} v ON v.token = q.h OR v.token = d.active_token_id "
    f"LEFT JOIN {sql.TEAMS} t ON t.team_id = v.team_id "
    "ORDER BY (v.token = q.h) DESC LIMIT 1"
)


class Lookup:
    """Single-flight, rate-capped, miss-cached lookups in one store's database."""

    def __init__(self, store: VirtualKeyStore, entry: KeyMeta, label: str = "virtual_keys") -> None:
        self.store = store
        self.entry = entry
        self.store_label = label
        self._inflight: dict[bytes, asyncio.Future[KeyMeta | None]] = {}
        self._misses: OrderedDict[bytes, float] = OrderedDict()
        # digest → (record, expiry, the store's refresh count when found)
        self._hits: OrderedDict[bytes, tuple[KeyMeta, float, int]] = OrderedDict()
        self._tokens = float("inf")  # a full bucket (capped to the rate at first use)
        self._refilled = time.monotonic()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._down_until = 0.0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def rate(self) -> int:
        """This process's share of ``lookup_rate`` (``serve --workers N``: a 1/N share each,
        at least 1 a second unless the rate is 0)."""
        settings = self.store.settings
        total = int(settings.lookup_rate) if settings is not None else 40
        return 0 if total <= 0 else max(1, total // _SHARE[0])

    @property
    def miss_ttl(self) -> float:
        settings = self.store.settings
        return float(settings.miss_ttl) if settings is not None else 1.0

    @property
    def hit_ttl(self) -> float:
        settings = self.store.settings
        interval = float(settings.refresh_interval) if settings is not None else 2.0
        return 3 * interval + 5.0  # until a refresh has surely put the key in the ring

    def cached(self, digest: bytes) -> KeyMeta | str | None:
        now = time.monotonic()
        hit = self._hits.get(digest)
        if hit is not None:
            # Until a sync (watermark or refresh) that STARTED after the lookup has run (two
            # on), the ring may not have the key yet; after it the ring decides, or one more
            # lookup does (a key deleted or blocked since is refused).
            if hit[1] > now and self.store.status.syncs < hit[2] + 2:
                return hit[0]
            del self._hits[digest]
        expiry = self._misses.get(digest)
        if expiry is not None:
            if expiry > now:
                return MISS
            del self._misses[digest]
        return None

    def _take(self) -> bool:
        """One query from the token bucket: ``rate`` a second, a burst of ``rate // 4``, so no
        one-second window holds more than ``1.25 * rate`` (default 40: at most 50)."""
        rate = self.rate
        if rate <= 0:
            return False
        now = time.monotonic()
        burst = float(max(1, rate // 4))
        self._tokens = min(burst, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def find(self, digest: bytes) -> KeyMeta | None:
        """The record for ``digest`` from the database, or ``None`` (refuse). Never raises."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # asyncio objects and the connection belong to one loop
            self._loop, self._lock, self._conn, self._inflight = loop, None, None, {}
        flight = self._inflight.get(digest)
        if flight is not None:
            return await asyncio.shield(flight)
        status = self.store.status
        if time.monotonic() < self._down_until:
            status.lookup_errors += 1
            return None
        if not self._take():
            status.cap_hits += 1
            return None
        future: asyncio.Future[KeyMeta | None] = loop.create_future()
        self._inflight[digest] = future
        result: KeyMeta | None = None
        import psycopg  # here: see _litellm_db_store

        try:
            status.lookups += 1
            result = await asyncio.wait_for(self._query(digest), TIMEOUT)
        except (psycopg.Error, OSError, VirtualKeyDBError, TimeoutError):
            status.lookup_errors += 1
            self._down_until = time.monotonic() + RETRY
            await self._drop()
        finally:
            self._inflight.pop(digest, None)
            future.set_result(result)
        self._remember(digest, result)
        return result

    def _remember(self, digest: bytes, result: KeyMeta | None) -> None:
        now = time.monotonic()
        if result is None:
            if self.miss_ttl > 0 and time.monotonic() >= self._down_until:
                self._misses[digest] = now + self.miss_ttl
                if len(self._misses) > MAX_CACHED:
                    self._misses.popitem(last=False)
            return
        self.store.status.lookup_hits += 1
        self._hits[digest] = (result, now + self.hit_ttl, self.store.status.syncs)
        if len(self._hits) > MAX_CACHED:
            self._hits.popitem(last=False)

    async def _query(self, digest: bytes) -> KeyMeta | None:
        import psycopg  # here: see _litellm_db_store

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one connection, one query at a time
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                kwargs = self.store.connect_kwargs()
                conn = await psycopg.AsyncConnection.connect(self.store.dsn, **kwargs)
                self._conn = conn
            self.store.status.queries += 1
            async with conn.cursor() as cur:
                await cur.execute(_FIND_SQL, (digest.hex(),))
                row = await cur.fetchone()
        if row is None:
            return None
        parsed = sql.parse_row(tuple(row[:7]))
        if parsed is None:
            return None
        revoke_at = sql.parse_when(row[7], '"LiteLLM_DeprecatedVerificationToken".revoke_at')
        active = hmac.compare_digest(parsed.digest, digest)  # else: found as a rotated-away key
        if not active and revoke_at is None:
            return None
        teams = frozenset({parsed.team_id}) if row[8] is True and parsed.team_id else frozenset()
        has_row = isinstance(row[9], str) and parsed.team_id  # the join found the team's row
        known = frozenset({parsed.team_id}) if has_row and parsed.team_id else frozenset()
        return parsed.meta(self.entry, teams, None if active else revoke_at, known)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


_LOOKUPS: dict[int, Lookup] = {}


def lookup_for(store: VirtualKeyStore, entry: KeyMeta, label: str) -> Lookup:
    """The process's one ``Lookup`` for ``store``."""
    lookup = _LOOKUPS.get(id(store))
    if lookup is None or lookup.store is not store:
        lookup = _LOOKUPS[id(store)] = Lookup(store, entry, label)
    lookup.entry, lookup.store_label = entry, label
    return lookup


_SHARE: list[int] = [1]


def set_lookup_share(workers: int) -> None:
    """This process is one of ``workers`` worker processes sharing the lookup budget."""
    _SHARE[0] = max(1, int(workers))
