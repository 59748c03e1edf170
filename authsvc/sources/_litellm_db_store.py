"""The snapshot of LiteLLM's virtual keys, kept in step with its database (sync, one thread).

One ``VirtualKeyStore`` per (DSN, schema) lives for the process: the config is re-parsed at
every reload and builds a new source object each time, so the snapshot, the connection and
the counters live here, shared (``store_for``).

Refresh, asked by the reloader in its worker thread:

- ``watermark()`` — one cheap query (row count, newest ``updated_at``, blocked teams, live
  deprecated tokens); the reloader reads only when it moved (and once every ``RECONCILE``
  seconds: the source's change token carries the minute);
- ``refresh()`` — the first time, every row; then only rows with ``updated_at`` at or after
  the newest seen minus ``OVERLAP`` seconds (a transaction that commits late with an older
  ``updated_at`` is still seen), plus the blocked teams and the live deprecated tokens
  (small tables). A deletion shows as a row count that no longer matches the snapshot (an
  insert hiding it moves ``updated_at``, and the snapshot then has one key too many): then
  the token column alone is read and the deleted keys are dropped — and so every
  ``RECONCILE`` seconds whatever the count says.

The database down: the snapshot stays as it was (known keys keep working), ``stale_since``
says since when, and the next refresh recovers. A missing column is a ``VirtualKeyDBError``
naming it, and the snapshot is not touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

from authsvc.keymodel import DigestBatch, KeyMeta, KeyRecord
from authsvc.sources import _litellm_db_rows as sql
from authsvc.sources._litellm_db_rows import VirtualKeyDBError
from authsvc.sources._litellm_db_view import KeyedView

__all__ = ["OVERLAP", "StoreStatus", "VirtualKeyStore", "store_for", "stores"]

log = logging.getLogger("authsvc.sources.virtual_keys")

OVERLAP = 10.0
"""Seconds of ``updated_at`` re-read at every incremental refresh (late commits)."""

RECONCILE = 60.0
"""Seconds between token-set reconciliations even when the counts agree."""

MAX_ROWS = 2_000_000
"""More rows than this is refused as garbage (memory is bounded, ~200 bytes a key)."""

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 5000
CHUNK = 4096
"""Key rows fetched (and parsed) per step of a load."""


@dataclass(slots=True)
class StoreStatus:
    """What explain, metrics and readiness show (no key, no hash)."""

    keys: int = 0
    deprecated: int = 0
    blocked_teams: int = 0
    last_refresh: float | None = None  # Unix time of the last successful refresh
    stale_since: float | None = None  # first failure since the last success
    error: str | None = None
    refreshes: int = 0
    syncs: int = 0  # successful watermark queries and refreshes (the lookup's hit expiry)
    full_loads: int = 0
    queries: int = 0
    lookups: int = 0
    lookup_hits: int = 0
    cap_hits: int = 0
    lookup_errors: int = 0
    newest_update: float | None = None  # the newest updated_at seen
    extra: dict[str, int] = field(default_factory=dict)

    def lag(self, now: float) -> float | None:
        """Seconds since the last successful refresh."""
        return None if self.last_refresh is None else max(0.0, now - self.last_refresh)

    def describe(self, now: float) -> str:
        if self.last_refresh is None:
            return f"no snapshot yet: {self.error or 'not read yet'}"
        when = datetime.fromtimestamp(self.last_refresh).astimezone().isoformat(timespec="seconds")
        text = f"{self.keys} keys, {self.deprecated} rotated, refreshed {when}"
        if self.stale_since is not None:
            since = (
                datetime.fromtimestamp(self.stale_since).astimezone().isoformat(timespec="seconds")
            )
            text += f"; STALE since {since} ({self.error})"
        return text


class VirtualKeyStore:
    """The shared snapshot of one LiteLLM database (see the module docstring)."""

    def __init__(self, dsn: str, schema: str | None) -> None:
        self.dsn = dsn
        self.schema = schema
        self.status = StoreStatus()
        self.settings: Any = None  # the source's VirtualKeySettings (lookup rate, miss TTL)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._view = KeyedView()  # THE snapshot: digest → record template, kept as a diff
        self._entry: tuple[KeyMeta, str] | None = None  # the config entry it is built for
        self._strings: dict[str, str] = {}  # team ids: one object each
        self._reconciled = 0.0
        self._deprecated: dict[bytes, tuple[bytes, float]] = {}  # old → (active, revoke_at)
        self._blocked_teams: frozenset[str] = frozenset()
        self._teams: frozenset[str] | None = None  # every team_id (a key's team may be gone)
        self._version = 0
        self._built: tuple[int, KeyMeta | None, tuple[DigestBatch, ...]] = (-1, None, ())
        self._columns_checked = False
        self._loaded = False
        self._mark: Hashable | None = None
        self._synced = False

    # -- connection ------------------------------------------------------------------------

    def connect_kwargs(self) -> dict[str, Any]:
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c default_transaction_read_only=on"
        if self.schema:
            options += f" -c search_path={self.schema}"
        return {"connect_timeout": CONNECT_TIMEOUT, "options": options, "autocommit": True}

    def _connection(self) -> psycopg.Connection[Any]:
        # imported here, not at the top: a serving process without virtual_keys never loads
        # psycopg and libpq (~12 MB of RSS, in every process that imports authsvc.sources)
        import psycopg

        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._conn = None
            conn = psycopg.connect(self.dsn, **self.connect_kwargs())
            conn.read_only = True
            self._conn = conn
            if not self._columns_checked:
                check_columns(conn)
                self._columns_checked = True
        return conn

    def _query(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        self.status.queries += 1
        with self._connection().cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _parsed_rows(
        self,
        query: str,
        params: tuple[object, ...],
        entry: tuple[KeyMeta, str],
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> tuple[dict[bytes, KeyRecord], float | None]:
        """``query``'s key rows as digest → record template (built for ``entry``), and
        their newest ``updated_at``, read through a server-side cursor ``CHUNK`` rows at a
        time: the driver never holds 100,000 raw rows at once (peak memory), each chunk is
        a short step for the GIL, and no row object outlives its step (the template is all
        that is kept). More than ``MAX_ROWS`` rows is refused as garbage."""
        parsed: dict[bytes, KeyRecord] = {}
        newest: float | None = None
        meta, label = entry
        template = self._view.template
        for chunk in self._chunks(query, params):
            for raw in chunk:  # a value of the wrong type raises, naming the column
                row = sql.parse_row(raw, self._strings)
                if row is not None:
                    when = row.updated_at
                    if when is not None and (newest is None or when > newest):
                        newest = when
                    parsed[row.digest] = template(row, meta, label, teams, known)
        return parsed, newest

    def _chunks(
        self, query: str, params: tuple[object, ...] = ()
    ) -> Iterator[list[tuple[Any, ...]]]:
        """``query``'s rows, ``CHUNK`` at a time, through a server-side cursor in a read-only
        transaction (closed when the caller stops early). More than ``MAX_ROWS`` rows is
        refused as garbage."""
        self.status.queries += 1
        seen = 0
        conn = self._connection()
        with conn.transaction(), conn.cursor(name="authsvc_virtual_keys") as cur:
            cur.itersize = CHUNK
            cur.execute(query, params)
            while chunk := cur.fetchmany(CHUNK):
                seen += len(chunk)
                if seen > MAX_ROWS:
                    raise VirtualKeyDBError(
                        f"more than {MAX_ROWS} virtual keys: refusing to load them"
                    )
                yield chunk

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, VirtualKeyDBError):
            why = str(exc)
        else:  # the driver's message may quote the DSN's user/host, never a key: type + class
            why = f"database unavailable ({type(exc).__name__})"
        if self.status.stale_since is None:
            self.status.stale_since = time.time()
            log.warning("virtual keys: %s; serving the last snapshot", why)
        self.status.error = why
        if self._conn is not None and not isinstance(exc, VirtualKeyDBError):
            self._conn.close()
            self._conn = None

    # -- the reloader's two questions ------------------------------------------------------

    def watermark(self) -> Hashable | None:
        """The watermark query's answer: ``None`` when it fails."""
        with self._lock:
            return self._watermark()

    def _watermark(self) -> Hashable | None:
        import psycopg  # here: see _connection

        try:
            mark = tuple(self._query(sql.WATERMARK_SQL)[0])
        except (psycopg.Error, VirtualKeyDBError, OSError) as exc:
            self._failed(exc)
            return None
        self.status.syncs += 1
        return mark

    def use(self, entry: KeyMeta, label: str) -> None:
        """The config entry (and label) the snapshot's templates are built for: another
        one than before means a full load at the next refresh."""
        with self._lock:
            self._entry = (entry, label)

    def sync(self) -> Hashable | None:
        """The source's change token: the snapshot's version after refreshing it when the
        watermark moved (or a reconciliation is due). Spend-only updates move the
        watermark but not the version, so the reloader re-resolves only on a change that
        matters. ``None`` when the database cannot be read (the read then reports it)."""
        with self._lock:
            mark = self._watermark()
            if mark is None:
                return None
            due = time.monotonic() - self._reconciled >= RECONCILE
            stale_entry = self._view.built_for() != self._entry
            if mark != self._mark or due or not self._loaded or stale_entry:
                self._refresh_locked()
                if self.status.stale_since is not None:
                    return None
                self._mark = mark
            self._synced = True
            return self._version

    def refresh(self) -> None:
        """Bring the snapshot up to date (see the module docstring). Never raises."""
        with self._lock:
            self._refresh_locked()

    def take_synced(self) -> bool:
        """True once after a successful ``sync``: the read that follows need not refresh."""
        with self._lock:
            synced, self._synced = self._synced, False
            return synced and self.status.stale_since is None

    def _refresh_locked(self) -> None:
        import psycopg  # here: see _connection

        try:
            self._refresh()
        except (psycopg.Error, VirtualKeyDBError, OSError) as exc:
            self._failed(exc)
        else:
            if self.status.stale_since is not None:
                log.warning("virtual keys: database reachable again; snapshot refreshed")
            self.status.stale_since = None
            self.status.error = None
            self.status.last_refresh = time.time()
            self.status.refreshes += 1
            self.status.syncs += 1

    def _refresh(self) -> None:
        status = self.status
        entry = self._entry
        if entry is None:
            return  # no source has said which entry yet: nothing to build templates for
        full = not self._loaded or self._view.built_for() != entry
        teams = frozenset(t for (t,) in self._query(sql.BLOCKED_TEAMS_SQL) if isinstance(t, str))
        all_teams = self._query(sql.ALL_TEAMS_SQL)
        if len(all_teams) > MAX_ROWS:
            raise VirtualKeyDBError(f"more than {MAX_ROWS} teams: refusing to load them")
        known = frozenset(t[: sql.MAX_NAME] for (t,) in all_teams if isinstance(t, str))
        del all_teams
        deprecated = sql.parse_deprecated(self._query(sql.DEPRECATED_SQL))
        if full:
            self._view.forget_templates()
            parsed, newest_row = self._parsed_rows(sql.KEYS_SQL, (), entry, teams, known)
        else:
            newest = status.newest_update or 0.0
            since = datetime.fromtimestamp(max(0.0, newest - OVERLAP), UTC).replace(tzinfo=None)
            query, params = sql.KEYS_SINCE_SQL, (since,)
            parsed, newest_row = self._parsed_rows(query, params, entry, teams, known)
        changed = full or teams != self._blocked_teams or known != self._teams
        changed = changed or deprecated != self._deprecated
        if full:
            self._view.load(parsed, entry[0], entry[1], teams, known)
            self._reconciled = time.monotonic()
            status.full_loads += 1
        else:
            changed = self._view.apply(parsed, teams, known) or changed
        del parsed
        if newest_row is not None and (status.newest_update or 0.0) < newest_row:
            status.newest_update = newest_row
        self._loaded = True
        self._blocked_teams, self._deprecated, self._teams = teams, deprecated, known
        (count,) = self._query(sql.COUNT_SQL)[0]
        due = time.monotonic() - self._reconciled >= RECONCILE
        if count != len(self._view) + status.extra.get("unusable_tokens", 0) or due:
            changed = self._reconcile() or changed
        if changed:
            self._version += 1
        status.keys = len(self._view)
        status.deprecated = len(deprecated)
        status.blocked_teams = len(teams)

    def _reconcile(self) -> bool:
        """Drop the keys deleted from the database (their tokens are gone). True if any. The
        token column comes in chunks and strikes the digests it finds off a set of
        references (a ``fetchall`` of it raised the peak RSS by ~29 MB at 100,000 keys)."""
        self._reconciled = time.monotonic()
        missing = self._view.digests()  # references to the stored digests, no new bytes
        unusable = 0
        for chunk in self._chunks(sql.ALL_TOKENS_SQL):
            for (token,) in chunk:
                found = sql.row_digest(token)
                if found is None:
                    unusable += 1  # not a SHA-256 hex digest: no key can match it
                else:
                    missing.discard(found)
        gone = list(missing)
        del missing
        self._view.gone(gone)
        self.status.extra["unusable_tokens"] = unusable
        return bool(gone)

    # -- what the source yields ------------------------------------------------------------

    def batches(self, entry: KeyMeta, label: str) -> tuple[DigestBatch, ...]:
        """The snapshot as ring batches: a summary (no key, the store's figures for explain),
        then ONE keyed batch holding every key (digest → shared record template, see
        ``DigestBatch.keyed``) and one for the rotated-away keys. Only the rows that changed
        since the last call got a new template; nothing is done per unchanged key.

        A snapshot built for another config entry (its full load for this one failed: the
        database is down) yields no key: the old entry's name and paths are not served
        under the new one (fail closed until the database answers)."""
        with self._lock:
            version, built_for, built = self._built
            if version == self._version and built_for == entry:
                return built
            teams = self._blocked_teams
            if self._view.built_for() != (entry, label):
                summary = f"LiteLLM database: no snapshot for {entry.where} yet"
                return (DigestBatch(entry, label, b"", summary),)
            built = self._view.batches(self._deprecated, entry, label, teams)
            self._built = (self._version, entry, built)
            return built

    def blocked_teams(self) -> frozenset[str]:
        return self._blocked_teams

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def check_columns(conn: psycopg.Connection[Any]) -> None:
    """Refuse a database whose LiteLLM tables lack a column authsvc reads, naming it."""
    with conn.cursor() as cur:
        cur.execute(sql.COLUMNS_SQL, (list(sql.COLUMNS),))
        found = [(str(t), str(c)) for t, c in cur.fetchall()]
    missing = sql.missing_columns(found)
    if missing:
        raise VirtualKeyDBError(
            "LiteLLM's database lacks column(s) "
            + ", ".join(missing)
            + ": is this LiteLLM's database, migrated (litellm >= 1.110)?"
        )


_STORES: dict[tuple[str, str | None], VirtualKeyStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(dsn: str, schema: str | None) -> VirtualKeyStore:
    """The process's one store for this database."""
    with _STORES_LOCK:
        store = _STORES.get((dsn, schema))
        if store is None:
            store = _STORES[(dsn, schema)] = VirtualKeyStore(dsn, schema)
        return store


def stores() -> tuple[VirtualKeyStore, ...]:
    """Every store of the process (the checker's lookup and the metrics ask)."""
    return tuple(_STORES.values())
