"""The unknown-key lookup travels with the ring (``KeyRing.unknown_lookup``), not in a process global:
a config reload that removes ``virtual_keys:`` removes the lookup in the same swap, and a
checker of a config without virtual keys never asks a database (real Postgres)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from authsvc.config import load_config
from authsvc.keys import KeyStore, Reloader, resolve
from authsvc.server._check import Checker, finish
from authsvc.sources import Lookup
from tests._keys import make_key
from tests.vkeys._litellm_db import LiteLLMDB
from tests.vkeys.test_virtual_lookup import _request, _status

MASTER = make_key("vk-reload-master")
WITH = (
    "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"
    "keys:\n  - name: litellm\n    virtual_keys:\n      database_url_env: DATABASE_URL\n"
)
WITHOUT = "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"


def _ask(checker: Checker, key: str) -> int:
    async def one() -> int:
        answer, pending = checker.check(_request(key))
        return _status(await finish(answer, pending))

    return asyncio.run(one())


def test_a_reload_that_removes_virtual_keys_removes_the_lookup(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(WITH)
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": MASTER}
    store = KeyStore()
    reloader = Reloader(str(config), env, store, watch=False)
    assert reloader.reload()
    lookup = store.current.unknown_lookup
    assert isinstance(lookup, Lookup)
    checker = Checker(store, reloader.current.config.policy)  # type: ignore[union-attr]
    first = litellm_db.generate(alias="first")  # after the ring: found by the lookup
    assert _ask(checker, first) == 200

    config.write_text(WITHOUT)  # the operator turns virtual keys off
    assert reloader.reload()
    assert store.current.unknown_lookup is None
    second = litellm_db.generate(alias="second")
    before = lookup.store.status.lookups
    assert _ask(checker, second) == 401  # no database is asked any more
    assert lookup.store.status.lookups == before

    config.write_text(WITH)  # and on again
    assert reloader.reload()
    assert store.current.unknown_lookup is lookup
    assert _ask(checker, second) == 200


def test_a_checker_without_virtual_keys_never_looks_up(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    """Two checkers in one process (the old global made the second use the first's lookup)."""
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": MASTER}
    with_vk, without = tmp_path / "with.yaml", tmp_path / "without.yaml"
    with_vk.write_text(WITH)
    without.write_text(WITHOUT)
    res_with = resolve(load_config(str(with_vk), environ=env), env)
    res_without = resolve(load_config(str(without), environ=env), env)
    assert res_without.ring.unknown_lookup is None
    plain = Checker(KeyStore(res_without.ring), res_without.config.policy)  # type: ignore[union-attr]
    virtual = Checker(KeyStore(res_with.ring), res_with.config.policy)  # type: ignore[union-attr]
    key = litellm_db.generate(alias="late")
    assert _ask(plain, key) == 401
    assert _ask(virtual, key) == 200
    assert _ask(plain, key) == 401
