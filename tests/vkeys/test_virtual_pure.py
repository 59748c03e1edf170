"""Pure parts of the virtual-key source: LiteLLM's rules in ``decide``, rows → records,
the DSN LiteLLM would use, the config entry's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from authsvc._errors import ConfigError
from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.config import load_config
from authsvc.keymodel import KeyMeta, KeyRecord, KeyRing, Standing, digest
from authsvc.sources._litellm_db_rows import (
    VirtualKeyDBError,
    dsn_from_env,
    missing_columns,
    parse_row,
)
from tests._keys import make_key

KEY = make_key("vk-pure")
MASTER = make_key("vk-pure-master")
NOW = 1_800_000_000.0


def _ring(**kw: object) -> KeyRing:
    standing = kw.pop("standing", Standing())
    record = KeyRecord(
        "k", "virtual_keys:$DATABASE_URL", "f" * 12, digest(KEY), litellm=standing, **kw
    )  # type: ignore[arg-type]
    master = KeyRecord("master", "env:M", "0" * 12, digest(MASTER))
    return KeyRing([record], master=master)


def _decide(ring: KeyRing, now: float = NOW, path: str = "/v1/models") -> Reason:
    view = RequestView("GET", path, {"authorization": f"Bearer {KEY}"})
    return decide(view, Policy.build(), ring, now).reason


def test_litellm_rules_in_order() -> None:
    assert _decide(_ring()) is Reason.KEY_VALID
    assert _decide(_ring(standing=Standing(blocked=True))) is Reason.BLOCKED_KEY
    assert _decide(_ring(standing=Standing(team_id="t", team_blocked=True))) is Reason.TEAM_BLOCKED
    # blocked wins over expired and team-blocked, as LiteLLM checks it first
    both = Standing(blocked=True, team_id="t", team_blocked=True)
    assert _decide(_ring(standing=both, expires_at=NOW - 1)) is Reason.BLOCKED_KEY
    assert _decide(_ring(expires_at=NOW)) is Reason.KEY_VALID  # expires == now: valid
    assert _decide(_ring(expires_at=NOW - 0.001)) is Reason.EXPIRED_KEY
    rotated = Standing(revoke_at=NOW + 1)
    assert _decide(_ring(standing=rotated)) is Reason.KEY_VALID
    assert _decide(_ring(standing=rotated), now=NOW + 1) is Reason.UNKNOWN_KEY
    # an ordinary (non-LiteLLM) key keeps authsvc's rule: expires == now is expired
    plain = KeyRing(
        [KeyRecord("k", "env:K", "f" * 12, digest(KEY), expires_at=NOW)],
        master=KeyRecord("master", "env:M", "0" * 12, digest(MASTER)),
    )
    assert _decide(plain) is Reason.EXPIRED_KEY


def _row(**kw: object) -> tuple[object, ...]:
    base: dict[str, object] = {
        "token": "ab" * 32,
        "alias": "alice",
        "team": None,
        "expires": None,
        "blocked": None,
        "routes": [],
        "updated": datetime(2026, 1, 1),
    }
    base.update(kw)
    return tuple(base.values())


def test_rows_become_records_or_errors_naming_the_column() -> None:
    entry = KeyMeta("litellm", "keys[0]")
    row = parse_row(_row())
    assert row is not None and row.meta(entry, frozenset()).name == "alice"
    assert parse_row(_row(token="not-a-sha256")) is None  # no key can match it
    odd = parse_row(_row(alias="a b\u00e9\nc" + "x" * 100))
    assert odd is not None and odd.alias is not None
    assert len(odd.alias) == 64 and " " not in odd.alias and "\n" not in odd.alias
    team = parse_row(_row(alias=None, team="t1"))
    assert team is not None and team.meta(entry, frozenset({"t1"})).name == "team:t1"
    assert team.meta(entry, frozenset({"t1"})).litellm == Standing(False, "t1", True, None)
    with pytest.raises(VirtualKeyDBError, match=r'"LiteLLM_VerificationToken"\.blocked'):
        parse_row(_row(blocked="yes"))
    with pytest.raises(VirtualKeyDBError, match=r"expires"):
        parse_row(_row(expires="2026-01-01"))
    with pytest.raises(VirtualKeyDBError, match=r"allowed_routes"):
        parse_row(_row(routes="/v1"))
    naive = parse_row(_row(expires=datetime(2026, 1, 1)))  # Prisma: UTC without a zone
    assert naive is not None
    assert naive.expires_at == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_routes_litellm_can_match_here_and_the_rest_left_to_the_app() -> None:
    entry = KeyMeta("litellm", "keys[0]")
    paths = parse_row(_row(routes=["/v1/chat", "/"]))
    assert paths is not None
    rule = paths.meta(entry, frozenset()).paths
    assert rule is not None
    assert rule.allows("/v1/chat") and rule.allows("/v1/chat/x") and rule.allows("/")
    assert not rule.allows("/v1/chatx") and not rule.allows("/v2")
    for routes in (["llm_api_routes"], ["/v1/*"], ["/v1/"], [], None):
        row = parse_row(_row(routes=routes))
        assert row is not None and row.meta(entry, frozenset()).paths is None, routes


def test_missing_columns_are_named() -> None:
    assert missing_columns([("LiteLLM_VerificationToken", "token")])[:2] == [
        '"LiteLLM_VerificationToken".key_alias',
        '"LiteLLM_VerificationToken".team_id',
    ]


def test_dsn_as_litellm_reads_it() -> None:
    assert dsn_from_env({}, "DATABASE_URL") == (None, None)
    url, schema = dsn_from_env(
        {
            "DATABASE_URL": "postgresql://u:p@h:5432/db?schema=litellm&connection_limit=5&sslmode=require"
        },
        "DATABASE_URL",
    )
    assert (url, schema) == ("postgresql://u:p@h:5432/db?sslmode=require", "litellm")
    parts = {
        "DATABASE_HOST": "db:5432",
        "DATABASE_USERNAME": "lite llm",
        "DATABASE_PASSWORD": "p@ss",
        "DATABASE_NAME": "litellm",
        "DATABASE_SCHEMA": "s",
    }
    assert dsn_from_env(parts, "DATABASE_URL") == (
        "postgresql://lite+llm:p%40ss@db:5432/litellm",
        "s",
    )
    assert dsn_from_env({**parts, "DATABASE_NAME": ""}, "DATABASE_URL") == (None, None)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("virtual_keys: [1]", "expected a mapping"),
        ("virtual_keys: {refresh_interval: 0}", "out of range"),
        ("virtual_keys: {refresh_interval: nan}", "out of range"),
        ("virtual_keys: {lookup_rate: 1.5}", "whole number"),
        ("virtual_keys: {database_url_env: 1-x}", "database_url_env"),
        ("virtual_keys: {database_url: x}", "unknown setting"),
    ],
)
def test_bad_entries_are_precise_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"keys:\n  - name: litellm\n    {entry}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), environ={})


def test_a_config_without_a_database_is_unset_not_an_allow(tmp_path: Path) -> None:
    from authsvc.keys import resolve

    path = tmp_path / "c.yaml"
    path.write_text("keys:\n  - name: litellm\n    virtual_keys: {}\n")
    res = resolve(load_config(str(path), environ={}), {})
    assert len(res.ring) == 0
    assert any("DATABASE_URL is not set" in w for w in res.warnings)


def test_workers_share_the_lookup_budget() -> None:
    from authsvc.sources import set_lookup_share
    from authsvc.sources._litellm_db import VirtualKeySettings
    from authsvc.sources._litellm_db_lookup import Lookup
    from authsvc.sources._litellm_db_store import VirtualKeyStore

    store = VirtualKeyStore("postgresql:///nowhere", None)  # never connected here
    store.settings = VirtualKeySettings(lookup_rate=40)
    lookup = Lookup(store, KeyMeta("litellm", "keys[0]"))
    try:
        assert lookup.rate == 40
        set_lookup_share(4)
        assert lookup.rate == 10
        set_lookup_share(100)
        assert lookup.rate == 1
        store.settings = VirtualKeySettings(lookup_rate=0)
        assert lookup.rate == 0 and not lookup._take()
    finally:
        set_lookup_share(1)


def test_a_key_whose_team_is_gone_gets_litellms_404() -> None:
    gone = Standing(team_id="t-gone", team_missing=True)
    view = RequestView("GET", "/v1/models", {"authorization": f"Bearer {KEY}"})
    d = decide(view, Policy.build(), _ring(standing=gone), NOW)
    assert (d.reason, d.status) == (Reason.TEAM_NOT_FOUND, 404)
    # LiteLLM's str() of its TeamNotFoundError detail (a dict), verbatim
    assert d.message == (
        "{'error': \"Team doesn't exist in db. Team=t-gone. Create team via `/team/new` call.\"}"
    )
    # LiteLLM checks the key itself first: blocked and expired win
    blocked_too = Standing(blocked=True, team_id="t-gone", team_missing=True)
    assert _decide(_ring(standing=blocked_too)) is Reason.BLOCKED_KEY
    assert _decide(_ring(standing=gone, expires_at=NOW - 1)) is Reason.EXPIRED_KEY


def test_rows_mark_a_missing_team_except_litellms_ui_team() -> None:
    entry = KeyMeta("litellm", "keys[0]", None, None)
    row = parse_row(("a" * 64, None, "t1", None, None, None, None))
    assert row is not None
    standing = row.meta(entry, frozenset(), None, frozenset({"t2"})).litellm
    assert standing is not None and standing.team_missing
    standing = row.meta(entry, frozenset(), None, frozenset({"t1"})).litellm
    assert standing is not None and not standing.team_missing
    ui = parse_row(("b" * 64, None, "litellm-dashboard", None, None, None, None))
    assert ui is not None
    standing = ui.meta(entry, frozenset(), None, frozenset()).litellm
    assert standing is not None and not standing.team_missing  # LiteLLM's UI sentinel
