"""A refresh is a diff (issue #15's performance work), against a real Postgres: only the
changed rows get a new record template, the unchanged keys keep theirs (the same objects),
keys of one team share one template, and the ring being served is never changed under it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from authsvc.keymodel import KeyMeta
from authsvc.keys import KeyStore, Reloader
from authsvc.sources._litellm_db_lookup import Lookup
from tests.vkeys._litellm_db import LiteLLMDB
from tests.vkeys.test_virtual_source import MASTER, _config

pytestmark = pytest.mark.usefixtures("fresh_stores")


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_a_refresh_renews_only_the_changed_keys_and_leaves_the_served_ring_alone(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    litellm_db.team("team-d")
    named = [litellm_db.generate(alias=f"diff{i}") for i in range(4)]
    team = [litellm_db.generate(team_id="team-d") for _ in range(3)]
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": MASTER}
    store = KeyStore()
    reloader = Reloader(str(_config(tmp_path)), env, store, watch=False)
    assert reloader.reload()
    old = store.current
    (old_map,) = old._keyed
    served = dict(old_map)
    assert len(old_map) == 7
    assert len({id(old_map[sha(k)]) for k in team}) == 1  # one team, one standing: one object

    litellm_db.update_key(named[0], blocked=True)  # /key/block
    assert reloader.reload()
    new = store.current
    (new_map,) = new._keyed
    assert new_map is not old_map and old_map == served  # the old ring was not touched
    assert old.lookup(sha(named[0])).litellm.blocked is False  # type: ignore[union-attr]
    assert new.lookup(sha(named[0])).litellm.blocked is True  # type: ignore[union-attr]
    for key in [*named[1:], *team]:
        assert new_map[sha(key)] is old_map[sha(key)], "an unchanged key got a new template"

    litellm_db.team("team-d", blocked=True)  # a team change renews its keys only
    assert reloader.reload()
    (team_map,) = store.current._keyed
    for key in team:
        assert store.current.lookup(sha(key)).litellm.team_blocked  # type: ignore[union-attr]
    for key in named[1:]:
        assert team_map[sha(key)] is new_map[sha(key)]

    litellm_db.delete_key(named[1])  # a deletion leaves the map (reconciled by count)
    assert reloader.reload()
    assert store.current.lookup(sha(named[1])) is None
    assert new.lookup(sha(named[1])) is not None  # an older ring still holds what it held


def test_another_config_entry_reloads_from_the_database_and_fails_closed_while_it_cannot(
    tmp_path: Path, litellm_db: LiteLLMDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot keeps no row per key, only templates built for the config entry: a key
    with neither alias nor team is named after the entry, so a renamed entry is a full load
    (the new name served). While that load fails, the reload is rejected as a whole (the
    last good ring, old config included, is served) and no template of the old entry is
    handed out under the new one; the database back, the new name is served."""
    plain = litellm_db.generate()  # no alias, no team: named after the config entry
    aliased = litellm_db.generate(alias="own-name")
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": MASTER}
    config = _config(tmp_path)
    store = KeyStore()
    reloader = Reloader(str(config), env, store, watch=False)
    assert reloader.reload()
    assert store.current.lookup(sha(plain)).name == "litellm"  # type: ignore[union-attr]
    lookup = store.current.unknown_lookup
    assert isinstance(lookup, Lookup)
    db_store = lookup.store
    loads = db_store.status.full_loads

    config.write_text(config.read_text().replace("name: litellm", "name: gateway"))
    assert reloader.reload()
    assert store.current.lookup(sha(plain)).name == "gateway"  # type: ignore[union-attr]
    assert store.current.lookup(sha(aliased)).name == "own-name"  # type: ignore[union-attr]
    assert db_store.status.full_loads == loads + 1

    # the database unreachable (a port nothing listens on), then the entry renamed again
    real_dsn = db_store.dsn
    monkeypatch.setattr(db_store, "dsn", "postgresql://authsvc@127.0.0.1:9/none")
    if db_store._conn is not None:
        db_store._conn.close()
    config.write_text(config.read_text().replace("name: gateway", "name: third"))
    served = store.current
    assert not reloader.reload()  # rejected: the last good ring stays
    assert store.current is served
    batches = db_store.batches(KeyMeta("third", "keys[0]"), "virtual_keys:$DATABASE_URL")
    assert [b for b in batches if b.keyed is not None] == []  # no key under the new entry
    monkeypatch.setattr(db_store, "dsn", real_dsn)
    assert reloader.reload()
    assert store.current.lookup(sha(plain)).name == "third"  # type: ignore[union-attr]
    assert store.current.lookup(sha(aliased)).name == "own-name"  # type: ignore[union-attr]
