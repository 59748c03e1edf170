"""The snapshot of a ``VirtualKeyStore``: ONE map digest → record template, the only per-key
state the store keeps, and the ring's view of it.

What is kept per virtual key (issue #15, 100,000 keys): a ``dict`` slot, the 32-byte digest
and a record template (``KeyRecord`` without digest or fingerprint). No row object: a
template holds everything a later change needs (its standing carries the key's own
``blocked`` and ``team_id``), and a template built for another config entry is rebuilt from
the database (``built_for``). Keys without an alias are named after their team, so their
templates are interned: the keys of one team with equal standing share one object; route
rules and standings are interned for every key. The map is handed to the ring by reference
(``DigestBatch.keyed``), so once handed out it is copied (one C-level ``dict.copy``) before
the next change.

A refresh is a diff: ``apply`` takes the templates of the rows read again and replaces only
those that differ; a change in the blocked or known teams renews only the templates of the
teams that moved (from the template itself). ``load`` takes a whole new map (a full load).
Not thread-safe on its own: the store calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from authsvc.keymodel import DigestBatch, KeyMeta, KeyRecord, PathRule, Standing
from authsvc.sources._litellm_db_rows import VirtualRow, standing_of

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
        self._for: _For | None = None

    def __len__(self) -> int:
        return len(self._keyed)

    def digests(self) -> set[bytes]:
        """A set of the stored digests (references, no new bytes)."""
        return set(self._keyed)

    def built_for(self) -> tuple[KeyMeta, str] | None:
        """The config entry and label the templates were built for (``None``: nothing yet)."""
        return None if self._for is None else (self._for[0], self._for[1])

    def forget_templates(self) -> None:
        """Before a full load: the interned templates of the old map are not reused."""
        self._templates, self._paths, self._standings = {}, {}, {}

    def template(
        self,
        row: VirtualRow,
        entry: KeyMeta,
        label: str,
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> KeyRecord:
        """The record template of ``row`` for the config ``entry`` (interned when the key has
        no alias of its own: then it is named after its team or the entry)."""
        meta = row.meta(entry, teams, None, known)
        return self._template(
            meta.name, label, meta.paths, meta.expires_at, meta.litellm, row.alias is None
        )

    def _template(
        self,
        name: str,
        label: str,
        paths: PathRule | None,
        expires_at: float | None,
        standing: Standing | None,
        shared: bool,
    ) -> KeyRecord:
        paths = self._paths.setdefault(paths, paths)
        standing = self._standings.setdefault(standing, standing)
        record = KeyRecord(name, label, "", b"", paths, expires_at, standing)
        if not shared:
            return record  # a key of its own name (its alias): nothing to share
        return self._templates.setdefault(record, record)

    def load(
        self,
        keyed: dict[bytes, KeyRecord],
        entry: KeyMeta,
        label: str,
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> None:
        """A full load: ``keyed`` (built with ``template``) replaces the map."""
        self._keyed, self._out = keyed, False
        self._for = (entry, label, teams, known)

    def _writable(self) -> dict[bytes, KeyRecord]:
        if self._out:
            self._keyed, self._out = dict(self._keyed), False  # a ring holds the old one
        return self._keyed

    def apply(
        self,
        fresh: Mapping[bytes, KeyRecord],
        teams: frozenset[str],
        known: frozenset[str] | None,
    ) -> bool:
        """An incremental refresh: ``fresh`` (the rows read again, as templates built for
        ``teams``/``known``) replaces what differs, and the templates of the teams that
        moved are renewed. True when any template changed."""
        assert self._for is not None, "apply() before load()"
        entry, label, old_teams, old_known = self._for
        changed = False
        if old_teams != teams or old_known != known:
            moved: frozenset[str] | None = teams ^ old_teams
            if (old_known is None) != (known is None):
                moved = None  # every team's "missing" may have changed
            elif known is not None and old_known is not None and moved is not None:
                moved |= known ^ old_known
            renew = [
                (digest, template)
                for digest, template in self._keyed.items()
                if (team := _team(template)) is not None and (moved is None or team in moved)
            ]
            for digest, template in renew:
                renewed = self._renew(template, teams, known)
                if renewed != template:
                    self._writable()[digest] = renewed
                    changed = True
        for digest, template in fresh.items():
            if self._keyed.get(digest) != template:
                self._writable()[digest] = template
                changed = True
        self._for = (entry, label, teams, known)
        if len(self._templates) > 2 * len(self._keyed) + 1024:  # templates no key uses
            self.forget_templates()
        return changed

    def _renew(
        self, template: KeyRecord, teams: frozenset[str], known: frozenset[str] | None
    ) -> KeyRecord:
        """``template`` with its team's standing as of ``teams``/``known``."""
        old = template.litellm
        assert old is not None and old.team_id is not None
        standing = standing_of(old.blocked, old.team_id, teams, known, old.revoke_at)
        shared = template.name == f"team:{old.team_id}"
        return self._template(
            template.name, template.origin, template.paths, template.expires_at, standing, shared
        )

    def gone(self, digests: Iterable[bytes]) -> None:
        """Keys deleted from the database."""
        keyed = None
        for digest in digests:
            keyed = keyed if keyed is not None else self._writable()
            keyed.pop(digest, None)

    def batches(
        self,
        deprecated: Mapping[bytes, tuple[bytes, float]],
        entry: KeyMeta,
        label: str,
        teams: frozenset[str],
    ) -> tuple[DigestBatch, ...]:
        """A summary batch (no key, the figures for explain), ONE keyed batch with every key,
        and one with the rotated-away keys (``deprecated``: old → (active, revoke_at))."""
        keyed = self._keyed
        rotated: dict[bytes, KeyRecord] = {}
        for old, (active, revoke_at) in deprecated.items():
            current = keyed.get(active)
            if current is not None and old not in keyed and current.litellm is not None:
                standing = replace(current.litellm, revoke_at=revoke_at)
                rotated[old] = replace(current, litellm=standing)
        self._generation += 1
        stamp = f"{id(self)}:{self._generation}".encode()
        summary = DigestBatch(
            entry,
            label,
            b"",
            f"LiteLLM database: {len(keyed)} keys, {len(rotated)} rotated, "
            f"{len(teams)} blocked teams",
        )
        names = len({t.name for t in keyed.values()})
        out = [summary, DigestBatch(entry, label, b"", keyed=keyed, stamp=stamp, names=names)]
        if rotated:
            out.append(DigestBatch(entry, label, b"", keyed=rotated, stamp=stamp + b"r"))
        self._out = True
        return tuple(out)


def _team(template: KeyRecord) -> str | None:
    return None if template.litellm is None else template.litellm.team_id
