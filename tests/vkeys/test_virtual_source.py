"""The ``virtual_keys:`` source against a real Postgres holding LiteLLM's tables: what the
ring holds and what ``decide`` answers, with LiteLLM's semantics and messages."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from authsvc.authz import Reason, RequestView, decide
from authsvc.config import load_config
from authsvc.keys import Resolution, resolve
from authsvc.sources import Lookup
from authsvc.sources._litellm_db_store import stores
from tests._keys import make_key
from tests.vkeys._litellm_db import LiteLLMDB, now_utc

pytestmark = pytest.mark.usefixtures("fresh_stores")

MASTER = make_key("vk-master")


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "authsvc.yaml"
    path.write_text(
        "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"
        "keys:\n  - name: litellm\n    virtual_keys:\n"
        f"      database_url_env: DATABASE_URL\n{extra}"
    )
    return path


def _resolve(tmp_path: Path, db: LiteLLMDB) -> Resolution:
    env = {"DATABASE_URL": db.url, "AUTHSVC_MASTER_KEY": MASTER}
    return resolve(load_config(str(_config(tmp_path)), environ=env), env)


def _ask(res: Resolution, key: str, path: str = "/v1/models", now: float | None = None):  # type: ignore[no-untyped-def]
    config = res.config
    assert config is not None
    view = RequestView("GET", path, {"authorization": f"Bearer {key}"})
    return decide(view, config.policy, res.ring, time.time() if now is None else now)


def test_keys_in_the_database_are_accepted_with_their_alias(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    plain = litellm_db.generate(alias="alice")
    team = litellm_db.generate(team_id="team-a")
    litellm_db.team("team-a")
    nameless = litellm_db.generate()
    res = _resolve(tmp_path, litellm_db)
    assert len(res.ring) == 4  # master + 3
    assert _ask(res, plain).key_name == "alice"
    assert _ask(res, team).key_name == "team:team-a"
    assert _ask(res, nameless).key_name == "litellm"
    assert _ask(res, nameless).reason is Reason.KEY_VALID
    unknown = _ask(res, "sk-" + "x" * 30)
    assert unknown.reason is Reason.UNKNOWN_KEY and unknown.status == 401
    # no key, no full hash in what explain shows
    table = res.render_table()
    for key in (plain, team, nameless):
        assert key not in table
    from tests.vkeys._litellm_db import hash_token

    assert hash_token(plain) not in table


def test_blocked_expired_and_team_blocked_get_litellms_answers(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    blocked = litellm_db.generate(alias="b", blocked=True)
    unblocked = litellm_db.generate(alias="nb", blocked=False)
    expired = litellm_db.generate(alias="e", expires=now_utc() - timedelta(seconds=5))
    later = litellm_db.generate(alias="l", expires=now_utc() + timedelta(hours=1))
    litellm_db.team("t-blocked", blocked=True)
    in_team = litellm_db.generate(alias="t", team_id="t-blocked")
    res = _resolve(tmp_path, litellm_db)

    d = _ask(res, blocked)
    assert (d.reason, d.status) == (Reason.BLOCKED_KEY, 401)
    assert d.message == (
        "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin."
    )
    assert _ask(res, unblocked).reason is Reason.KEY_VALID
    d = _ask(res, expired)
    assert (d.reason, d.status) == (Reason.EXPIRED_KEY, 401)
    assert d.message.startswith("Authentication Error - Expired Key. Key Expiry time ")
    assert "+00:00 and current time " in d.message
    assert _ask(res, later).reason is Reason.KEY_VALID
    d = _ask(res, in_team)
    assert (d.reason, d.status) == (Reason.TEAM_BLOCKED, 401)
    assert d.message == (
        "Authentication Error, Team=t-blocked is blocked. "
        "Update via `/team/unblock` if you're an admin."
    )


def test_expiry_boundary_is_litellms_strict_less_than(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    """LiteLLM refuses when ``expires < now``: at ``expires == now`` the key still works."""
    when = now_utc().replace(microsecond=0) + timedelta(hours=1)
    key = litellm_db.generate(alias="edge", expires=when)
    res = _resolve(tmp_path, litellm_db)
    at = when.timestamp()
    assert _ask(res, key, now=at).reason is Reason.KEY_VALID
    assert _ask(res, key, now=at + 0.001).reason is Reason.EXPIRED_KEY


def test_a_rotated_key_works_until_revoke_at_then_is_unknown(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    old = litellm_db.generate(alias="rot")
    new = litellm_db.rotate(old, grace=timedelta(hours=1))
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, new).reason is Reason.KEY_VALID
    d = _ask(res, old)
    assert d.reason is Reason.KEY_VALID and d.key_name == "rot"
    revoke_at = litellm_db.sql('SELECT revoke_at FROM "LiteLLM_DeprecatedVerificationToken"')[0][0]
    at = revoke_at.replace(tzinfo=now_utc().tzinfo).timestamp()
    assert _ask(res, old, now=at - 0.001).reason is Reason.KEY_VALID
    assert _ask(res, old, now=at).reason is Reason.UNKNOWN_KEY  # revoke_at > now, as LiteLLM


def test_allowed_routes_are_enforced_as_litellm_does(tmp_path: Path, litellm_db: LiteLLMDB) -> None:
    key = litellm_db.generate(alias="r", allowed_routes=["/v1/chat/completions", "/key/info"])
    grouped = litellm_db.generate(alias="g", allowed_routes=["llm_api_routes"])
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, key, "/v1/chat/completions").reason is Reason.KEY_VALID
    assert _ask(res, key, "/key/info/x").reason is Reason.KEY_VALID  # prefix + "/"
    assert _ask(res, key, "/key/infox").reason is Reason.PATH_NOT_ALLOWED
    d = _ask(res, key, "/v1/models")
    assert (d.reason, d.status) == (Reason.PATH_NOT_ALLOWED, 403)
    # a route group needs LiteLLM's own route tables: the app decides
    assert _ask(res, grouped, "/v1/models").reason is Reason.KEY_VALID


def _odd_schema(postgres: object, name: str, blocked: str, key: str) -> LiteLLMDB:
    """A fresh database ``name`` whose token table declares ``blocked`` as given (``""``:
    no such column), holding one row for ``key`` (``blocked`` set to the text 'true' when
    the column exists)."""
    import psycopg

    from tests.vkeys._litellm_db import DDL, hash_token

    uri = postgres.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    db = LiteLLMDB(uri.replace("/postgres?", f"/{name}?"))
    db.sql(DDL.replace("    blocked BOOLEAN,\n", blocked))
    if blocked:
        db.sql(
            'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias, blocked) '
            "VALUES (%s, %s, %s)",
            (hash_token(key), name, "true"),
        )
    else:
        db.sql(
            'INSERT INTO "LiteLLM_VerificationToken" (token, key_alias) VALUES (%s, %s)',
            (hash_token(key), name),
        )
    return db


def test_a_schema_lacking_a_column_is_an_error_naming_it_never_an_allow(
    tmp_path: Path, postgres: object
) -> None:
    key = make_key("vk-broken")
    res = _resolve(tmp_path, _odd_schema(postgres, "broken", "", key))
    assert _ask(res, key).reason is Reason.UNKNOWN_KEY
    text = "\n".join(res.warnings)
    assert '"LiteLLM_VerificationToken".blocked' in text


def test_incremental_refresh_sees_updates_and_deletions(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    a = litellm_db.generate(alias="a")
    b = litellm_db.generate(alias="b")
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, a).reason is Reason.KEY_VALID
    full_loads = sum(s.status.full_loads for s in stores())
    litellm_db.delete_key(a)
    litellm_db.update_key(b, blocked=True)
    c = litellm_db.generate(alias="c")
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, a).reason is Reason.UNKNOWN_KEY
    assert _ask(res, b).reason is Reason.BLOCKED_KEY
    assert _ask(res, c).reason is Reason.KEY_VALID
    assert sum(s.status.full_loads for s in stores()) == full_loads  # incremental


def test_litellm_mode_reads_the_database_litellm_uses(litellm_db: LiteLLMDB) -> None:
    """No config file: DATABASE_URL as LiteLLM reads it (Prisma's own query parameters
    included, which libpq refuses) adds the virtual keys; without it nothing changes."""
    key = litellm_db.generate(alias="mode")
    env = {
        "LITELLM_MASTER_KEY": MASTER,
        "DATABASE_URL": litellm_db.url + "&schema=public&connection_limit=5&pool_timeout=10",
    }
    res = resolve(load_config(None, environ=env), env)
    assert _ask(res, key).reason is Reason.KEY_VALID
    assert _ask(res, key).key_name == "mode"
    plain = {"LITELLM_MASTER_KEY": MASTER}
    res = resolve(load_config(None, environ=plain), plain)
    assert len(res.ring) == 1 and not res.warnings


def test_a_column_of_the_wrong_type_is_an_error_naming_it(tmp_path: Path, postgres: object) -> None:
    key = make_key("vk-garbage")
    res = _resolve(tmp_path, _odd_schema(postgres, "garbage", "    blocked TEXT,\n", key))
    assert _ask(res, key).reason is Reason.UNKNOWN_KEY  # never an allow
    assert any('"LiteLLM_VerificationToken".blocked' in w for w in res.warnings)


def test_explain_shows_the_store_without_keys(tmp_path: Path, litellm_db: LiteLLMDB) -> None:
    import subprocess
    import sys

    from tests.vkeys._litellm_db import hash_token

    keys = [litellm_db.generate(alias=f"k{i}") for i in range(8)]
    config = _config(tmp_path)
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": MASTER, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "authsvc", "explain", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    text = out.stdout + out.stderr
    assert "(8 names)" in text and "8 keys" in text, text
    assert "LiteLLM database: 8 keys, 0 rotated, 0 blocked teams" in text
    for key in keys:
        assert key not in text and hash_token(key) not in text


def test_a_key_whose_team_row_is_gone_is_refused_as_litellm_does(
    tmp_path: Path, litellm_db: LiteLLMDB
) -> None:
    litellm_db.team("t-live")
    member = litellm_db.generate(alias="m", team_id="t-live")
    orphan = litellm_db.generate(alias="o", team_id="t-never")  # no such team row
    ui = litellm_db.generate(alias="ui", team_id="litellm-dashboard")  # LiteLLM's UI team
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, member).reason is Reason.KEY_VALID
    assert _ask(res, ui).reason is Reason.KEY_VALID
    d = _ask(res, orphan)
    assert (d.reason, d.status) == (Reason.TEAM_NOT_FOUND, 404)
    assert "Team doesn't exist in db. Team=t-never." in d.message

    litellm_db.delete_team("t-live")  # /team/delete: the member's key now fails in LiteLLM
    lookup = res.ring.unknown_lookup
    assert isinstance(lookup, Lookup)
    assert lookup.store.sync() is not None  # the watermark moves (the team ids' checksum)
    res = _resolve(tmp_path, litellm_db)
    d = _ask(res, member)
    assert (d.reason, d.status) == (Reason.TEAM_NOT_FOUND, 404)
    litellm_db.team("t-live")  # recreated: accepted again
    res = _resolve(tmp_path, litellm_db)
    assert _ask(res, member).reason is Reason.KEY_VALID
