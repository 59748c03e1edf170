"""Issue #13, pure rules over real temp files: authsvc resolves and reads keys as LiteLLM 1.110.2
does (include:, general_settings, environment_variables, .env, the open override, credential
formats, keyless routes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authsvc.authz import Policy, Reason, RequestView, decide, extract_credential
from authsvc.authz._credentials import (
    DEFAULT_WS_LOCATIONS,
    Credential,
    CredentialError,
    custom_header_location,
)
from authsvc.authz._litellm_routes import litellm_routes
from authsvc.config import parse_config
from authsvc.keymodel import KeyRecord, digest
from authsvc.keys import KeyRing, Resolution, Role, State, fingerprint, resolve
from authsvc.sources._litellm_app import find_dotenv

KEY = "sk-parity-litellm-0123456789abcdef"
OTHER = "sk-parity-other-0123456789abcdef"


def run(
    tmp_path: Path,
    files: dict[str, str],
    environ: dict[str, str],
    source: str = "    - litellm_config: litellm.yaml\n      dotenv: 'off'\n",
    extra: str = "",
) -> Resolution:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    config = parse_config(
        f"master_key:\n  sources:\n{source}{extra}", str(tmp_path / "authsvc.yaml"), environ=environ
    )
    res = resolve(config, environ)
    blob = json.dumps(res.report()) + res.render_table() + res.unready_reason
    assert KEY not in blob and OTHER not in blob
    return res


# -- include: ------------------------------------------------------------------------------


def test_key_only_in_an_included_file_is_used(tmp_path: Path) -> None:
    res = run(
        tmp_path,
        {
            "litellm.yaml": "include:\n  - secrets.yaml\nmodel_list: []\n",
            "secrets.yaml": f"general_settings:\n  master_key: {KEY}\n",
        },
        {"LITELLM_MASTER_KEY": OTHER},
    )
    assert res.winner is not None and res.winner.fingerprint == fingerprint(KEY)
    assert res.readings[1].role is Role.IGNORED  # LITELLM_MASTER_KEY: the entry is present
    assert res.config is not None
    assert str(tmp_path / "secrets.yaml") in res.config.watched_files()


def test_an_included_section_replaces_the_main_one(tmp_path: Path) -> None:
    res = run(
        tmp_path,
        {
            "litellm.yaml": f"include: [extra.yaml]\ngeneral_settings:\n  master_key: {OTHER}\n",
            "extra.yaml": "general_settings:\n  store_model_in_db: false\n",
        },
        {"LITELLM_MASTER_KEY": KEY},
    )
    # the included general_settings replaced the main one: no master_key entry any more
    assert res.winner is not None and res.winner.fingerprint == fingerprint(KEY)
    assert res.winner.source == "env:LITELLM_MASTER_KEY"


def test_nested_includes_resolve_next_to_the_declaring_file(tmp_path: Path) -> None:
    res = run(
        tmp_path,
        {
            "litellm.yaml": "include: [sub/a.yaml]\n",
            "sub/a.yaml": "include: [b.yaml]\n",
            "sub/b.yaml": f"general_settings:\n  master_key: {KEY}\n",
        },
        {},
    )
    assert res.winner is not None and res.winner.fingerprint == fingerprint(KEY)


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"litellm.yaml": "include: [nope.yaml]\n"}, "does not exist (LiteLLM refuses to start)"),
        ({"litellm.yaml": "include: nope.yaml\n"}, "must be a list of file paths"),
        ({"litellm.yaml": "include: [x.yaml]\n", "x.yaml": "- 1\n"}, "is not a mapping"),
    ],
)
def test_broken_includes_fail_closed(tmp_path: Path, files: dict[str, str], words: str) -> None:
    res = run(tmp_path, files, {"LITELLM_MASTER_KEY": KEY})
    assert not res.resolved and len(res.readings) == 1
    assert res.readings[0].state is State.INVALID and words in res.readings[0].detail


# -- the open override ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        ("general_settings:\n  dangerously_permit_weak_or_unset_master_key: true\n", {}),
        (
            "model_list: []\n",
            {"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": " True "},
        ),
    ],
)
def test_litellm_running_open_is_said_in_plain_words(
    tmp_path: Path, text: str, environ: dict[str, str]
) -> None:
    res = run(tmp_path, {"litellm.yaml": text}, environ)
    assert not res.resolved and not res.ring.ready  # authsvc stays closed
    opened = [r for r in res.readings if r.role is Role.APP_OPEN]
    assert len(opened) == 1 and "THE APP ITSELF IS OPEN" in opened[0].detail
    assert any("accepts every request without authentication" in w for w in res.warnings)
    assert "THE APP ITSELF IS OPEN" in res.unready_reason  # the 503 message and /readyz
    assert res.report()["app_open"] is True
    assert "THE APP IS OPEN" in res.render_table()


def test_override_with_a_key_is_not_open(tmp_path: Path) -> None:
    text = "general_settings:\n  dangerously_permit_weak_or_unset_master_key: true\n"
    res = run(tmp_path, {"litellm.yaml": text}, {"LITELLM_MASTER_KEY": KEY})
    assert res.resolved and not any(r.role is Role.APP_OPEN for r in res.readings)
    lax = run(tmp_path, {"litellm.yaml": text}, {"LITELLM_MASTER_KEY": "sk-1234"})
    assert not lax.resolved  # LiteLLM starts with sk-1234 under the override; authsvc refuses
    assert any("unsafe master key" in r.detail for r in lax.readings if r.role is Role.APP_OPEN)


# -- .env ----------------------------------------------------------------------------------


def test_dotenv_layer_and_exported_variables_win(tmp_path: Path) -> None:
    files = {".env": f"# comment\nexport LITELLM_MASTER_KEY='{KEY}'\n"}
    res = run(tmp_path, files, {}, source="    - dotenv: .env\n")
    assert res.winner is not None and res.winner.fingerprint == fingerprint(KEY)
    assert res.winner.source == f"dotenv:{tmp_path / '.env'}#LITELLM_MASTER_KEY"
    shadowed = run(tmp_path, files, {"LITELLM_MASTER_KEY": OTHER}, source="    - dotenv: .env\n")
    assert not shadowed.resolved and shadowed.readings[0].role is Role.IGNORED
    assert "exported variable wins" in shadowed.readings[0].note


def test_litellm_mode_reads_the_dotenv_litellm_loads(tmp_path: Path) -> None:
    files = {
        "litellm.yaml": "general_settings:\n  master_key: os.environ/FROM_DOTENV\n",
        "app/.env": f"FROM_DOTENV={KEY}\nLITELLM_MASTER_KEY={OTHER}\n",
    }
    source = "    - litellm_config: litellm.yaml\n      dotenv: app/.env\n"
    res = run(tmp_path, files, {}, source=source)
    assert res.winner is not None and res.winner.fingerprint == fingerprint(KEY)
    assert res.config is not None and str(tmp_path / "app/.env") in res.config.watched_files()
    # LITELLM_MODE=PRODUCTION: LiteLLM loads no .env
    prod = run(tmp_path, files, {"LITELLM_MODE": "PRODUCTION"}, source=source)
    assert not prod.resolved
    # the fallback, read from the .env, is labelled so
    files["litellm.yaml"] = "general_settings:\n  store_model_in_db: false\n"
    fallback = run(tmp_path, files, {}, source=source)
    assert fallback.winner is not None
    assert fallback.winner.source == f"dotenv:{tmp_path / 'app/.env'}#LITELLM_MASTER_KEY"


def test_find_dotenv_walks_up_like_python_dotenv(tmp_path: Path) -> None:
    pkg = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "litellm"
    pkg.mkdir(parents=True)
    found = find_dotenv(str(pkg))
    assert found is None or not found.startswith(str(tmp_path))
    (tmp_path / ".env").write_text("A=1\n")
    assert find_dotenv(str(pkg)) == str(tmp_path / ".env")
    (tmp_path / "venv" / ".env").mkdir()  # a directory is not a .env file
    assert find_dotenv(str(pkg)) == str(tmp_path / ".env")


# -- weak keys -----------------------------------------------------------------------------


def test_key_litellm_accepts_is_served_with_a_warning_or_refused(tmp_path: Path) -> None:
    short = "sk-13-chars-x"
    res = run(tmp_path, {}, {"K": short}, source="    - env: K\n")
    assert res.resolved and res.winner is not None and res.winner.caution
    assert any("WEAK master key in use" in w for w in res.warnings)
    refuse = run(tmp_path, {}, {"K": short}, source="    - env: K\n", extra="  weak: refuse\n")
    assert not refuse.resolved and any("weak key refused" in w for w in refuse.warnings)
    dev = run(tmp_path, {}, {"K": "sk-1234"}, source="    - env: K\n", extra="  allow_weak: true\n")
    assert dev.resolved and any("allow_weak is deprecated" in w for w in dev.warnings)
    long_key = "sk-" + "x1" * 553  # 1,109 characters: LiteLLM runs with it, so must authsvc
    assert run(tmp_path, {}, {"K": long_key}, source="    - env: K\n").resolved


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": f"Bearer {KEY}"}, KEY),
        ({"authorization": f"bearer {KEY}"}, KEY),
        ({"authorization": f"Basic {KEY}"}, KEY),
        (
            {"authorization": f"AWS4-HMAC-SHA256 Credential=Bearer {KEY}/d/r/s/aws4_request, S=x"},
            KEY,
        ),
        ({"authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/d/r/s/aws4_request"}, KEY),
        ({"authorization": f"Bearer {KEY[:5]}Bearer {KEY[5:]}"}, KEY),  # str.replace: every one
        ({"authorization": f"BEARER {KEY}"}, None),
        ({"authorization": f"Bearer  {KEY}"}, None),  # the token is not trimmed
        ({"authorization": f"  Bearer {KEY}\t"}, KEY),  # HTTP's optional whitespace is
        ({"x-litellm-api-key": f"Basic {KEY}"}, KEY),
        ({"x-litellm-api-key": KEY}, KEY),
        ({"ocp-apim-subscription-key": KEY}, KEY),
        ({"x-api-key": f"{KEY}\xa0"}, None),  # only space and tab are trimmed
    ],
)
def test_litellm_header_parsing(headers: dict[str, str], expected: str | None) -> None:
    found = extract_credential("/v1/models", headers)
    if expected is None:
        assert isinstance(found, CredentialError)
    else:
        assert isinstance(found, Credential) and found.key == expected


def test_custom_header_overrides_everything_and_needs_a_scheme() -> None:
    locs = (custom_header_location("X-Team-Key"),)
    from authsvc.authz import DEFAULT_LOCATIONS

    locations = (*locs, *DEFAULT_LOCATIONS)
    both = {"x-team-key": f"Bearer {KEY}", "authorization": f"Bearer {OTHER}"}
    found = extract_credential("/v1/models", both, locations)
    assert isinstance(found, Credential) and found.key == KEY
    raw = extract_credential("/v1/models", {"x-team-key": KEY}, locations)
    assert isinstance(raw, CredentialError)
    empty = extract_credential("/v1/models", {"x-team-key": "", "x-api-key": KEY}, locations)
    assert isinstance(empty, CredentialError)  # present decides, even empty
    absent = extract_credential("/v1/models", {"x-api-key": KEY}, locations)
    assert isinstance(absent, Credential) and absent.key == KEY


def test_websocket_rule() -> None:
    ws = DEFAULT_WS_LOCATIONS
    proto = {"sec-websocket-protocol": f"realtime, openai-insecure-api-key.{KEY}, x"}
    found = extract_credential("/v1/realtime", proto, ws)
    assert isinstance(found, Credential) and found.key == KEY
    assert extract_credential("/v1/realtime", {"sec-websocket-protocol": "realtime"}, ws) is None
    basic = extract_credential("/v1/realtime", {"authorization": f"Basic {KEY}"}, ws)
    assert isinstance(basic, CredentialError)
    trimmed = extract_credential("/v1/realtime", {"authorization": f"Bearer  {KEY} "}, ws)
    assert isinstance(trimmed, Credential) and trimmed.key == KEY


RING = KeyRing([], master=KeyRecord("master", "test", fingerprint(KEY), digest(KEY)))


def test_decide_uses_first_values_and_the_websocket_rule() -> None:
    policy = Policy.build()
    first = RequestView(
        "GET",
        "/v1/models",
        {"x-api-key": f"{KEY},{OTHER}"},
        first_values={"x-api-key": KEY},
    )
    assert decide(first, policy, RING, 0).allowed
    upgrade = {"upgrade": "websocket", "sec-websocket-protocol": f"openai-insecure-api-key.{KEY}"}
    assert decide(RequestView("GET", "/v1/realtime", upgrade), policy, RING, 0).allowed
    plain = {"sec-websocket-protocol": f"openai-insecure-api-key.{KEY}"}
    d = decide(RequestView("GET", "/v1/realtime", plain), policy, RING, 0)
    assert d.reason is Reason.MISSING_CREDENTIAL  # not an upgrade: LiteLLM's HTTP rule


# -- keyless routes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "public"),
    [
        ("GET", "/", True),
        ("GET", "/ui/", True),
        ("GET", "/ui/assets/x.js", True),
        ("GET", "/sso/key/generate", True),
        ("POST", "/login", True),
        ("GET", "/.well-known/litellm-ui-config", True),
        ("GET", "/litellm/.well-known/litellm-ui-config", True),
        ("GET", "/public/model_hub", True),
        ("GET", "/public/litellm_model_cost_map", True),
        ("GET", "/routes", True),
        ("GET", "/test", True),
        ("GET", "/openapi.json", True),
        ("POST", "/health/readiness", True),
        ("GET", "/health", False),
        ("GET", "/v1/models", False),
        ("GET", "/ui/../v1/models", False),
        ("GET", "/public//../v1/models", False),
        ("GET", "/sso/%2e%2e/v1/models", False),
    ],
)
def test_litellm_keyless_routes(method: str, path: str, public: bool) -> None:
    policy = Policy.build(app_routes=litellm_routes())
    d = decide(RequestView(method, path), policy, RING, 0)
    assert (d.reason is Reason.PUBLIC_PATH) is public, (path, d)


def test_ui_closed_refuses_ui_and_sign_in_even_with_a_key() -> None:
    policy = Policy.build(app_routes=litellm_routes(ui_closed=True))
    headers = {"authorization": f"Bearer {KEY}"}
    for method, path in [
        ("GET", "/ui/"),
        ("GET", "/ui"),
        ("GET", "/sso/key/generate"),
        ("POST", "/login"),
    ]:
        d = decide(RequestView(method, path, headers), policy, RING, 0)
        assert d.status == 403 and "closed at the edge" in d.message, path
    assert decide(RequestView("GET", "/"), policy, RING, 0).allowed
    assert decide(RequestView("GET", "/v1/models", headers), policy, RING, 0).allowed


def test_litellm_mode_config_builds_the_litellm_policy(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text(
        "general_settings:\n  master_key: os.environ/X\n  litellm_key_header_name: X-Team-Key\n"
    )
    text = "master_key:\n  sources:\n    - litellm_config: litellm.yaml\nlitellm_ui: closed\n"
    config = parse_config(text, str(tmp_path / "authsvc.yaml"), environ={})
    policy = config.policy
    assert policy.locations[0].name == "x-team-key" and policy.locations[0].overrides
    assert policy.ws_locations[0].name == "x-team-key"
    assert policy.app_routes is not None and "/ui" in policy.app_routes.closed
    with pytest.raises(Exception, match="in LiteLLM mode the credential locations"):
        parse_config(
            text + "credentials: [header:x-api-key]\n", str(tmp_path / "a.yaml"), environ={}
        )
    with pytest.raises(Exception, match="applies only in LiteLLM mode"):
        parse_config("litellm_ui: closed\n", str(tmp_path / "b.yaml"), environ={})


def test_a_change_in_an_included_file_is_reloaded(tmp_path: Path) -> None:
    from authsvc.keys import KeyStore, Reloader

    (tmp_path / "litellm.yaml").write_text("include: [keys.yaml]\n")
    (tmp_path / "keys.yaml").write_text(f"general_settings:\n  master_key: {KEY}\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text("master_key:\n  sources:\n    - litellm_config: litellm.yaml\n")
    store = KeyStore(KeyRing([]))
    reloader = Reloader(str(config), {}, store, watch=False)
    assert reloader.reload() and store.current.lookup(digest(KEY)) is not None
    assert str(tmp_path / "keys.yaml") in reloader.watched_files()  # its directory is watched
    (tmp_path / "keys.yaml").write_text(f"general_settings:\n  master_key: {OTHER}\n")
    assert reloader.reload()
    assert store.current.lookup(digest(OTHER)) is not None
    assert store.current.lookup(digest(KEY)) is None


def test_a_header_sent_twice_and_joined_with_a_comma_uses_the_first_value() -> None:
    policy = Policy.build()
    joined = {"authorization": f"Bearer {KEY},Bearer {OTHER}"}  # Envoy joins Authorization
    assert decide(RequestView("GET", "/v1/models", joined), policy, RING, 0).allowed
    wrong_first = {"authorization": f"Bearer {OTHER},Bearer {KEY}"}
    d = decide(RequestView("GET", "/v1/models", wrong_first), policy, RING, 0)
    assert d.reason is Reason.UNKNOWN_KEY
    comma_key = "sk-with,comma-0123456789abcdef"  # a key may hold a comma: tried whole first
    ring = KeyRing([], master=KeyRecord("master", "t", fingerprint(comma_key), digest(comma_key)))
    whole = {"x-api-key": comma_key}
    assert decide(RequestView("GET", "/v1/models", whole), policy, ring, 0).allowed


def test_the_first_value_alone_goes_upstream() -> None:
    from authsvc.authz import Allow, render

    joined = {"authorization": f"Bearer {KEY},Bearer {OTHER}"}
    d = decide(RequestView("GET", "/v1/models", joined), Policy.build(), RING, 0)
    assert d.allowed and d.first_value_of == "authorization" and KEY not in repr(d)
    out = render(d, joined)
    assert isinstance(out, Allow) and ("authorization", f"Bearer {KEY}") in out.set_headers
    plain = decide(RequestView("GET", "/v1/models", {"x-api-key": KEY}), Policy.build(), RING, 0)
    assert plain.first_value_of is None


def test_litellm_mode_without_a_config_file(tmp_path: Path) -> None:
    # the injector's default chain ends in litellm_config: $AUTHSVC_LITELLM_CONFIG
    from authsvc.config import load_config

    (tmp_path / "litellm.yaml").write_text(
        "include: [more.yaml]\ngeneral_settings:\n  litellm_key_header_name: X-Team-Key\n"
    )
    (tmp_path / "more.yaml").write_text("model_list: []\n")
    config = load_config(None, environ={"AUTHSVC_LITELLM_CONFIG": str(tmp_path / "litellm.yaml")})
    assert config.policy.app_routes is not None and config.policy.locations[0].overrides
    assert str(tmp_path / "more.yaml") in config.watched_files()
    plain = load_config(None, environ={})
    assert plain.policy.app_routes is None
