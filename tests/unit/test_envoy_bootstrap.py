"""The bootstrap's shape and hardened defaults (as data; `test_envoy_validate` runs Envoy)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc.envoy import (
    DEFAULT_CREDENTIAL_HEADERS,
    EnvoyOptions,
    RouteOptions,
    build_bootstrap,
    parse_address,
    policy_options,
    render_yaml,
)
from authsvc.envoy._bootstrap import _seconds


def _hcm(boot: dict[str, Any]) -> dict[str, Any]:
    listener = boot["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _filters(boot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f["typed_config"] for f in _hcm(boot)["http_filters"]}


def _routes(boot: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _hcm(boot)["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def _cluster(boot: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in boot["static_resources"]["clusters"] if c["name"] == name)


def test_defaults_come_from_the_shared_defaults_module() -> None:
    opts = EnvoyOptions()
    assert opts.listen == _defaults.ENVOY_LISTEN
    assert opts.admin == _defaults.ENVOY_ADMIN
    assert opts.authz == (_defaults.AUTHZ_LISTEN,)
    assert opts.upstream == f"127.0.0.1:{_defaults.APP_PORT}"
    assert opts.authz_cluster == _defaults.AUTHZ_CLUSTER


def test_filter_chain_strips_authsvc_headers_then_checks_then_routes() -> None:
    boot = build_bootstrap(EnvoyOptions())
    names = [f["name"] for f in _hcm(boot)["http_filters"]]
    assert names == [
        "strip-client-authsvc-headers",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    strip = _filters(boot)["strip-client-authsvc-headers"]
    mutation = strip["mutations"]["request_mutations"][0]["remove_on_match"]
    assert mutation == {"key_matcher": {"prefix": "x-authsvc-"}}


def test_ext_authz_is_hardened() -> None:
    authz = _filters(build_bootstrap(EnvoyOptions()))["envoy.filters.http.ext_authz"]
    assert authz["failure_mode_allow"] is False
    assert authz["status_on_error"] == {"code": "ServiceUnavailable"}
    assert authz["transport_api_version"] == "V3"
    assert authz["encode_raw_headers"] is True
    assert authz["grpc_service"] == {  # one endpoint: no other worker to retry on
        "envoy_grpc": {"cluster_name": _defaults.AUTHZ_CLUSTER},
        "timeout": "1s",
    }
    assert authz["allowed_headers"] == {
        "patterns": [{"exact": h} for h in (*DEFAULT_CREDENTIAL_HEADERS, "upgrade")]
    }
    # LiteLLM's locations, websocket ones included, reach authsvc
    assert {"ocp-apim-subscription-key", "sec-websocket-protocol"} <= set(
        DEFAULT_CREDENTIAL_HEADERS
    )
    assert "with_request_body" not in authz
    assert "http_service" not in authz


def test_connection_manager_normalises_paths() -> None:
    hcm = _hcm(build_bootstrap(EnvoyOptions()))
    assert hcm["normalize_path"] is True
    assert hcm["merge_slashes"] is True
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == (
        "REJECT_REQUEST"
    )
    assert (
        "%PATH(NQ:"
        in hcm["access_log"][0]["typed_config"]["log_format"]["text_format_source"]["inline_string"]
    ), "the access log must never print the query string (?key=)"


def test_public_probe_routes_are_exact_get_head_and_skip_the_check() -> None:
    routes = _routes(build_bootstrap(EnvoyOptions()))
    public = [r for r in routes if "typed_per_filter_config" in r]
    assert len(public) == 6
    for route in public:
        match = route["match"]
        assert set(match) == {"path", "headers"}, "exact path only, never a prefix"
        assert match["path"] in ("/health/liveliness", "/health/liveness", "/health/readiness")
        assert match["headers"][0]["name"] == ":method"
        assert match["headers"][0]["string_match"]["exact"] in ("GET", "HEAD")
        per_route = route["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
        assert per_route["disabled"] is True
    assert routes[-1]["match"] == {"prefix": "/"}
    assert "typed_per_filter_config" not in routes[-1]
    assert all(r["match"].get("path") != "/health" for r in routes)


def test_extra_routes_keep_the_check_and_sort_longest_first() -> None:
    opts = EnvoyOptions(
        routes=(
            RouteOptions("/v1", timeout=30),
            RouteOptions("/v1/chat/completions", timeout=0, context_extensions=(("r", "chat"),)),
        )
    )
    routes = _routes(build_bootstrap(opts))
    checked = [r for r in routes if "prefix" in r["match"]]
    assert [r["match"]["prefix"] for r in checked] == ["/v1/chat/completions", "/v1", "/"]
    chat = checked[0]
    assert chat["route"]["timeout"] == "0s"
    settings = chat["typed_per_filter_config"]["envoy.filters.http.ext_authz"]
    assert settings == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
        "check_settings": {"context_extensions": {"r": "chat"}},
    }
    assert checked[2]["route"]["timeout"] == "600s"


@pytest.mark.parametrize("forward", [True, False])
def test_forward_credentials(forward: bool) -> None:
    routes = _routes(build_bootstrap(EnvoyOptions(forward_credentials=forward)))
    for route in routes:
        if forward:
            assert "request_headers_to_remove" not in route
        else:
            assert route["request_headers_to_remove"] == list(DEFAULT_CREDENTIAL_HEADERS)
    assert "authorization" in DEFAULT_CREDENTIAL_HEADERS


def test_authz_cluster_http2_and_endpoints() -> None:
    opts = EnvoyOptions(authz=("unix:/run/a/0.sock", "unix:/run/a/1.sock", "unix:/run/a/2.sock"))
    cluster = _cluster(build_bootstrap(opts), _defaults.AUTHZ_CLUSTER)
    protocol = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert protocol["explicit_http_config"] == {"http2_protocol_options": {}}
    assert cluster["type"] == "STATIC"
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"] for e in endpoints] == [
        {"pipe": {"path": f"/run/a/{i}.sock"}} for i in range(3)
    ]
    limits = cluster["circuit_breakers"]["thresholds"][0]
    assert limits["max_requests"] == 1024 and limits["max_connections"] == 192


def test_several_workers_get_retries_and_outlier_detection() -> None:
    single = build_bootstrap(EnvoyOptions())
    assert "outlier_detection" not in _cluster(single, _defaults.AUTHZ_CLUSTER)
    opts = EnvoyOptions(authz=("unix:/run/a/0.sock", "unix:/run/a/1.sock"))
    boot = build_bootstrap(opts)
    retries = _filters(boot)["envoy.filters.http.ext_authz"]["grpc_service"]["retry_policy"]
    # only failures where no worker answered are retried, never an answer (a deny stays a deny)
    assert set(retries["retry_on"].split(",")) == {
        "connect-failure",
        "refused-stream",
        "reset",
        "unavailable",
    }
    assert retries["num_retries"] == 2
    assert [p["name"] for p in retries["retry_host_predicate"]] == [
        "envoy.retry_host_predicates.previous_hosts"
    ]
    cluster = _cluster(boot, _defaults.AUTHZ_CLUSTER)
    assert cluster["circuit_breakers"]["thresholds"][0]["max_retries"] == 1024
    outlier = cluster["outlier_detection"]
    assert outlier["split_external_local_origin_errors"] is True
    assert outlier["consecutive_local_origin_failure"] == 1
    assert outlier["max_ejection_percent"] == 100  # all out: panic mode tries them all anyway


def test_tcp_and_dns_endpoints() -> None:
    boot = build_bootstrap(EnvoyOptions(authz=("127.0.0.1:9191",), upstream="litellm:4000"))
    authz = _cluster(boot, _defaults.AUTHZ_CLUSTER)
    assert authz["type"] == "STATIC"
    address = authz["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address == {"socket_address": {"address": "127.0.0.1", "port_value": 9191}}
    assert _cluster(boot, "app")["type"] == "STRICT_DNS"


@pytest.mark.parametrize("admin", ["0.0.0.0:9901", "10.1.2.3:9901", "[::]:9901", "example.com:1"])
def test_admin_must_be_loopback(admin: str) -> None:
    with pytest.raises(ConfigError, match="admin"):
        EnvoyOptions(admin=admin)


@pytest.mark.parametrize("admin", ["127.0.0.1:9901", "127.0.0.2:1", "[::1]:9901", "unix:/a/s"])
def test_loopback_admin_accepted(admin: str) -> None:
    EnvoyOptions(admin=admin)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"authz": ()}, "authz"),
        ({"authz": "127.0.0.1:1"}, "authz"),
        ({"authz": ("127.0.0.1:1", "127.0.0.1:1")}, "duplicate"),
        ({"authz": ("unix:/a", "authsvc:9191")}, "mixed"),
        ({"authz_timeout": 0}, "timeout"),
        ({"status_on_error": 200}, "status_on_error"),
        ({"public_paths": ("/health/../x",)}, "normal form"),
        ({"public_paths": ("/a//b",)}, "normal form"),
        ({"public_paths": ("/a%2Fb",)}, "normal form"),
        ({"public_paths": ("health",)}, "normal form"),
        ({"public_methods": ("POST",)}, "public method"),
        ({"credential_headers": ("Authorization",)}, "credential header"),
        ({"credential_headers": (":path",)}, "credential header"),
        ({"escaped_slashes": "KEEP_UNCHANGED"}, "escaped_slashes"),
        ({"listen": "example.com:80"}, "IP"),
        ({"routes": (RouteOptions("/a"), RouteOptions("/a"))}, "duplicate"),
    ],
)
def test_bad_options_are_refused_with_the_field_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EnvoyOptions(**kwargs)


@pytest.mark.parametrize("prefix", ["v1", "/v1/../x", "/v1//x", "/v1?x", "/a%2F"])
def test_bad_route_prefix(prefix: str) -> None:
    with pytest.raises(ConfigError, match="route"):
        RouteOptions(prefix)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9191", "127.0.0.1:9191"),
        ("[::1]:80", "[::1]:80"),
        ("authsvc.default.svc:9191", "authsvc.default.svc:9191"),
        ("unix:/var/run/authsvc/authz.sock", "unix:/var/run/authsvc/authz.sock"),
    ],
)
def test_parse_address_round_trips(text: str, expected: str) -> None:
    assert str(parse_address(text, "x")) == expected


@pytest.mark.parametrize(
    "text", ["nohost", ":80", "h:0", "h:70000", "h:x", "unix:rel", "::1:80", "bad host:1", "a..b:1"]
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--flag"):
        parse_address(text, "--flag")


def test_localhost_binds_to_loopback_ip() -> None:
    assert parse_address("localhost:1", "x", ip_only=True).host == "127.0.0.1"


@pytest.mark.parametrize(("value", "text"), [(1, "1s"), (0.25, "0.25s"), (600, "600s"), (0, "0s")])
def test_durations(value: float, text: str) -> None:
    assert _seconds(value) == text


def test_render_is_deterministic_and_round_trips() -> None:
    a = render_yaml(build_bootstrap(EnvoyOptions(authz=("unix:/s/a", "unix:/s/b"))))
    b = render_yaml(build_bootstrap(EnvoyOptions(authz=("unix:/s/a", "unix:/s/b"))))
    assert a == b
    assert a.startswith("# Generated by `authsvc envoy-config`")
    assert "&id" not in a and "*id" not in a, "no YAML anchors/aliases"
    assert yaml.safe_load(a) == build_bootstrap(EnvoyOptions(authz=("unix:/s/a", "unix:/s/b")))


def test_output_is_identical_across_interpreters_and_hash_seeds() -> None:
    def generate(seed: str) -> bytes:
        return subprocess.run(
            [sys.executable, "-m", "authsvc", "envoy-config", "--authz", "unix:/a", "unix:/b"],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        ).stdout

    assert generate("1") == generate("2") != b""


def test_websocket_upgrades_are_enabled() -> None:
    hcm = build_bootstrap(EnvoyOptions())["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"
    ][0]["typed_config"]
    assert hcm["upgrade_configs"] == [{"upgrade_type": "websocket"}]


def _allowed(opts: EnvoyOptions) -> list[str]:
    authz = _filters(build_bootstrap(opts))["envoy.filters.http.ext_authz"]
    return [p["exact"] for p in authz["allowed_headers"]["patterns"]]


def test_litellm_mode_sends_the_cookie_to_authsvc_but_never_strips_it(tmp_path: Any) -> None:
    """The Admin UI's ``token`` cookie (authz/_ui_session.py): in LiteLLM mode Envoy passes
    ``Cookie`` to authsvc; it is no credential header, so it still reaches the app."""
    (tmp_path / "litellm.yaml").write_text("general_settings:\n  master_key: os.environ/K\n")
    cfg = tmp_path / "authsvc.yaml"
    cfg.write_text("master_key:\n  sources:\n    - litellm_config: litellm.yaml\n")
    litellm = policy_options(str(cfg), environ={})
    assert litellm["session_cookie"] is True and "cookie" not in litellm["credential_headers"]
    allowed = _allowed(EnvoyOptions(**litellm))
    assert allowed[-1] == "cookie" and allowed.count("cookie") == 1
    litellm["forward_credentials"] = False
    for route in _routes(build_bootstrap(EnvoyOptions(**litellm))):
        assert "cookie" not in route.get("request_headers_to_remove", [])
    plain = tmp_path / "plain.yaml"
    plain.write_text("master_key:\n  sources:\n    - env: K\n")
    options = policy_options(str(plain), environ={})
    assert options["session_cookie"] is False
    assert "cookie" not in _allowed(EnvoyOptions(**options))
