"""The ring's view of a ``VirtualKeyStore``'s rows: ONE map digest → record template.

What the ring holds per virtual key (issue #15, 100,000 keys): a ``dict`` slot and a record
template (``KeyRecord`` without digest or fingerprint). Keys without an alias are named after
their team, so their templates are interned: the keys of one team with equal standing share
one object; route rules and standings are interned for every key. The map is handed to the
ring by reference (``DigestBatch.keyed``), so once handed out it is copied (one C-level
``dict.copy``) before the next change.

A refresh is a diff: the store marks the rows that changed or went (``changed``, ``gone``)
and only those get a new template; a change in the blocked or known teams renews only the
keys of the teams that moved; a new config entry (or a full load) rebuilds the whole map.
Not thread-safe on its own: the store calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from authsvc.keymodel import DigestBatch, KeyMeta, KeyRecord, PathRule, Standing
from authsvc.sources._litellm_db_rows import VirtualRow

__all__ = ["KeyedView"]

_For = tuple[KeyMeta, str, frozenset[str], frozenset[str] | None]


class KeyedView:
    """The map and what it was built for (see the module docstring)."""

    def __init__(self) -> None:
        self._keyed: dict[bytes, KeyRecord] = {}
        self._out = False  # handed to a ring: copy before changing it
        self._generation = 0  # views handed out (their stamp)
        self._templates: dict[KeyRecord, KeyRecord] = {}
        self._paths: dict[PathRule | None, PathRule | None] = {}  # one object per equal rule
        self._standings: dict[Standing | None, Standing | None] = {}
        self._dirty: set[bytes] = set()
        self._for: _For | None = None

    def reset(self) -> None:
        """A full load: the next view is built from every row (no set of every key now)."""
        self._for, self._dirty = None, set()

    def changed(self, digest: bytes) -> None:
        if self._for is not None:
            self._dirty.add(digest)

    def gone(self, digests: Iterable[bytes]) -> None:
        self._dirty.update(digests)

    def batches(
        self,
        rows: Mapping[bytes, VirtualRow],
        deprecated: Mapping[bytes, tuple[bytes, float]],
        entry: KeyMeta,
        label: str,
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> tuple[DigestBatch, ...]:
        """A summary batch (no key, the figures for explain), ONE keyed batch with every key,
        and one with the rotated-away keys (``deprecated``: old → (active, revoke_at))."""
        keyed = self._update(rows, entry, label, teams, known)
        rotated: dict[bytes, KeyRecord] = {}
        for old, (active, revoke_at) in deprecated.items():
            current = rows.get(active)
            if current is not None and old not in rows:
                meta = current.meta(entry, teams, revoke_at, known)
                rotated[old] = self._template(meta, label, shared=False)
        self._generation += 1
        stamp = f"{id(self)}:{self._generation}".encode()
        summary = DigestBatch(
            entry,
            label,
            b"",
            f"LiteLLM database: {len(rows)} keys, {len(rotated)} rotated, "
            f"{len(teams)} blocked teams",
        )
        names = len({t.name for t in keyed.values()})
        out = [summary, DigestBatch(entry, label, b"", keyed=keyed, stamp=stamp, names=names)]
        if rotated:
            out.append(DigestBatch(entry, label, b"", keyed=rotated, stamp=stamp + b"r"))
        self._out = True
        return tuple(out)

    def _template(self, meta: KeyMeta, label: str, shared: bool = True) -> KeyRecord:
        """The record template for ``meta``. Its routes and standing are interned, and with
        ``shared`` (a key without an alias, named after its team) the template itself."""
        paths = self._paths.setdefault(meta.paths, meta.paths)
        standing = self._standings.setdefault(meta.litellm, meta.litellm)
        record = KeyRecord(meta.name, label, "", b"", paths, meta.expires_at, standing)
        if not shared:
            return record  # a key of its own name (its alias): nothing to share
        return self._templates.setdefault(record, record)

    def _update(
        self,
        rows: Mapping[bytes, VirtualRow],
        entry: KeyMeta,
        label: str,
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> dict[bytes, KeyRecord]:
        for_now = (entry, label, teams, known)
        if self._for is None or self._for[:2] != for_now[:2]:
            self._templates, self._paths, self._standings = {}, {}, {}
            dirty: Iterable[bytes] = rows
            self._keyed, self._out = {}, False
        else:
            dirty = self._dirty
            _, _, old_teams, old_known = self._for
            if old_teams != teams or old_known != known:
                moved: frozenset[str] | None = teams ^ old_teams
                if (old_known is None) != (known is None):
                    moved = None  # every team's "missing" may have changed
                elif known is not None and old_known is not None and moved is not None:
                    moved |= known ^ old_known
                dirty = [
                    d
                    for d, row in rows.items()
                    if row.team_id is not None and (moved is None or row.team_id in moved)
                ]
                dirty += self._dirty
        if self._out:
            self._keyed, self._out = dict(self._keyed), False  # a ring holds the old one
        keyed = self._keyed
        for digest in dirty:
            row = rows.get(digest)
            if row is None:
                keyed.pop(digest, None)
            else:
                meta = row.meta(entry, teams, None, known)
                keyed[digest] = self._template(meta, label, row.alias is None)
        self._dirty = set()
        self._for = for_now
        if len(self._templates) > 2 * len(keyed) + 1024:  # templates no key uses any more
            self._templates, self._paths, self._standings = {}, {}, {}
        return keyed
