"""The checker's unknown-key lookup against a real Postgres: a key created after the last
refresh is accepted at once; one query per distinct key (single flight); misses cached;
the lookup rate capped; the database down refuses unknown keys and keeps known ones."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.config import load_config
from authsvc.keys import KeyStore, resolve
from authsvc.server._check import Checker, finish
from authsvc.sources import Lookup
from tests._keys import make_key
from tests.vkeys._litellm_db import LiteLLMDB

pytestmark = pytest.mark.usefixtures("fresh_stores")

MASTER = make_key("vk-lookup-master")


def _request(key: str, path: str = "/v1/models") -> bytes:
    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method, http.path, http.id = "GET", path, "r1"
    http.headers["authorization"] = f"Bearer {key}"
    return req.SerializeToString()


def _status(answer: bytes) -> int:
    resp = ext.CheckResponse.FromString(answer)
    if resp.HasField("ok_response"):
        return 200
    return int(resp.denied_response.status.code)


def _checker(tmp_path: Path, db: LiteLLMDB, settings: str = "") -> Checker:
    path = tmp_path / "authsvc.yaml"
    path.write_text(
        "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"
        "keys:\n  - name: litellm\n    virtual_keys:\n      database_url_env: DATABASE_URL\n"
        + settings
    )
    env = {"DATABASE_URL": db.url, "AUTHSVC_MASTER_KEY": MASTER}
    config = load_config(str(path), environ=env)
    res = resolve(config, env)
    return Checker(KeyStore(res.ring), config.policy)


async def _ask(checker: Checker, key: str, path: str = "/v1/models") -> int:
    answer, pending = checker.check(_request(key, path))
    return _status(await finish(answer, pending))


def test_a_key_created_after_the_refresh_is_accepted_at_once(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    checker = _checker(tmp_path, litellm_db)
    lookup = checker.store.current.unknown_lookup
    assert isinstance(lookup, Lookup)
    status = lookup.store.status

    async def scenario() -> None:
        key = litellm_db.generate(alias="fresh")  # committed after the ring was built
        before = status.lookups
        assert await _ask(checker, key) == 200
        assert status.lookups == before + 1
        assert await _ask(checker, key) == 200  # remembered: no second query
        assert status.lookups == before + 1
        blocked = litellm_db.generate(alias="blk", blocked=True)
        assert await _ask(checker, blocked) == 401  # found, and refused as LiteLLM does

    asyncio.run(scenario())


def test_single_flight_and_miss_cache(tmp_path: Path, litellm_db: LiteLLMDB) -> None:
    checker = _checker(tmp_path, litellm_db, "      miss_ttl: 5\n")
    lookup = checker.store.current.unknown_lookup
    assert isinstance(lookup, Lookup)
    status = lookup.store.status

    async def scenario() -> None:
        wrong = "sk-" + secrets.token_urlsafe(16)
        before = status.lookups
        codes = await asyncio.gather(*(_ask(checker, wrong) for _ in range(50)))
        assert set(codes) == {401}
        assert status.lookups == before + 1  # 50 concurrent requests, one query
        assert await _ask(checker, wrong) == 401
        assert status.lookups == before + 1  # the miss is cached
        assert await _ask(checker, "not-an-sk-key-" + "x" * 20) == 401
        assert status.lookups == before + 1  # LiteLLM looks up sk- keys only

    asyncio.run(scenario())


def test_a_flood_of_random_keys_stays_under_the_query_cap(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    checker = _checker(tmp_path, litellm_db)  # the default cap: 40/s, a burst of 10
    lookup = checker.store.current.unknown_lookup
    assert isinstance(lookup, Lookup)
    status = lookup.store.status
    good = litellm_db.generate(alias="good")  # created after the ring: needs a lookup

    async def scenario() -> tuple[int, float, int]:
        await asyncio.sleep(0.5)  # a full bucket
        before, capped = status.queries, status.cap_hits
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 2.0:
            batch = [_ask(checker, "sk-" + secrets.token_urlsafe(16)) for _ in range(500)]
            codes = await asyncio.gather(*batch)
            assert set(codes) == {401}  # never an allow
            sent += len(batch)
        elapsed = time.monotonic() - started
        assert status.cap_hits > capped
        return status.queries - before, elapsed, sent

    queries, elapsed, sent = asyncio.run(scenario())
    # burst (10) + 40/s: at most 10 + 40 * elapsed queries, whatever was sent
    assert sent > 1000
    assert queries <= 10 + 40 * elapsed + 1, (queries, elapsed, sent)

    async def after() -> int:
        await asyncio.sleep(0.2)
        return await _ask(checker, good)

    assert asyncio.run(after()) == 200  # the cap refills: a real new key still gets in


def _message(answer: bytes) -> str:
    import json

    resp = ext.CheckResponse.FromString(answer)
    return str(json.loads(resp.denied_response.body)["error"]["message"])


def test_unknown_keys_get_litellms_reason(tmp_path: Path, litellm_db: LiteLLMDB) -> None:
    """With virtual keys on, LiteLLM 1.110.2's own 401 text (the reason code stays
    ``unknown_key``); without them, authsvc's. Never a bit of the key."""
    from authsvc.sources._litellm_db_lookup import LITELLM_NOT_VIRTUAL, LITELLM_UNKNOWN

    checker = _checker(tmp_path, litellm_db)
    plain = tmp_path / "plain.yaml"
    plain.write_text("master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n")
    env = {"AUTHSVC_MASTER_KEY": MASTER}
    config = load_config(str(plain), environ=env)
    without = Checker(KeyStore(resolve(config, env).ring), config.policy)
    sk_key, other = "sk-" + secrets.token_urlsafe(16), "abcd" + secrets.token_urlsafe(16)

    async def ask(c: Checker, key: str) -> str:
        answer, pending = c.check(_request(key))
        body = await finish(answer, pending)
        assert _status(body) == 401
        assert ext.CheckResponse.FromString(body).denied_response.headers  # a real denial
        return _message(body)

    async def scenario() -> None:
        assert await ask(checker, sk_key) == LITELLM_UNKNOWN  # looked up, not found
        assert await ask(checker, sk_key) == LITELLM_UNKNOWN  # the cached miss
        assert await ask(checker, other) == LITELLM_NOT_VIRTUAL  # LiteLLM: not sk-
        assert other[:4] not in LITELLM_NOT_VIRTUAL
        assert (await ask(without, sk_key)).startswith("invalid api key sent in")

    asyncio.run(scenario())
    assert LITELLM_UNKNOWN == "Authentication Error, Invalid API key provided."


def test_a_looked_up_key_whose_team_is_gone_gets_litellms_404(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    checker = _checker(tmp_path, litellm_db)
    orphan = litellm_db.generate(alias="late-orphan", team_id="t-none")  # after the ring
    litellm_db.team("t-ok")
    member = litellm_db.generate(alias="late-member", team_id="t-ok")

    async def scenario() -> None:
        answer, pending = checker.check(_request(orphan))
        body = await finish(answer, pending)
        assert _status(body) == 404
        assert "Team doesn't exist in db. Team=t-none." in _message(body)
        assert await _ask(checker, member) == 200

    asyncio.run(scenario())
