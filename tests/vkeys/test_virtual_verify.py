"""``authsvc verify`` shows the virtual-key store (real Postgres): keys loaded, rotated,
blocked teams and the last refresh when the database reads as ``serve`` reads it; a failing
check naming why when it does not — never a key, a hash or the DSN."""

from __future__ import annotations

import json
from pathlib import Path

from tests._keys import make_key
from tests.unit.test_health_http import local_app
from tests.unit.test_verify_cli import verify
from tests.unit.test_verify_http import EnvoyAuthsvcApp
from tests.vkeys._litellm_db import LiteLLMDB, hash_token

KEY = make_key("vk-verify-master")
CONFIG = (
    "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n"
    "keys:\n  - name: litellm\n    virtual_keys:\n      database_url_env: DATABASE_URL\n"
)
ROW = "LiteLLM database (virtual_keys:$DATABASE_URL)"


def test_verify_shows_the_store(tmp_path: Path, litellm_db: LiteLLMDB) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG)
    keys = [litellm_db.generate(alias="a"), litellm_db.generate(alias="b")]
    env = {"DATABASE_URL": litellm_db.url, "AUTHSVC_MASTER_KEY": KEY}
    with local_app(EnvoyAuthsvcApp(KEY, KEY)) as server:
        done = verify("--url", server.url, "--config", str(config), env=env)
        as_json = verify("--url", server.url, "--config", str(config), "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(ROW)]
    assert "2 keys, 0 rotated, 0 blocked teams, refreshed " in line and line.endswith("ok")
    rows = json.loads(as_json.stdout)
    assert rows[0]["check"] == ROW and rows[0]["expected"] == "readable" and rows[0]["ok"]
    for key in keys:
        assert key not in done.stdout + as_json.stdout
        assert hash_token(key)[:12] not in done.stdout + as_json.stdout
    assert litellm_db.url not in done.stdout + done.stderr


def test_verify_fails_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG)
    url = "postgresql://litellm:s3cret-pw@127.0.0.1:1/litellm"  # nothing listens there
    env = {"DATABASE_URL": url, "AUTHSVC_MASTER_KEY": KEY}
    with local_app(EnvoyAuthsvcApp(KEY, KEY)) as server:
        done = verify("--url", server.url, "--config", str(config), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(ROW)]
    assert "unreadable: database unavailable (OperationalError)" in line
    assert line.endswith("FAIL")
    assert "check the database and its URL" in done.stdout
    assert "s3cret-pw" not in done.stdout + done.stderr
