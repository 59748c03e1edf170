"""The wiring surface of authsvc.server stays small and explicit."""

from __future__ import annotations

import inspect

import authsvc.server


def test_server_package_exports() -> None:
    assert (
        sorted(authsvc.server.__all__)
        == [
            "AUTHZ_SERVICE",
            "AuthzServer",
            "DecisionObserver",
            "Front",  # for bench (the ext_authz floor runs the real front with a checker that decides nothing)
            "ListenError",
            "parse_listen",  # for bench, which may not reach into server's _private modules
            "response_from",  # ditto (the floor benchmark answers with the real adapter)
            "serve_until_signal",
        ]
    )
    assert authsvc.server.AUTHZ_SERVICE == "envoy.service.auth.v3.Authorization"
    assert issubclass(authsvc.server.ListenError, authsvc.ConfigError)


def test_authz_server_signature() -> None:
    params = inspect.signature(authsvc.server.AuthzServer).parameters
    assert list(params) == ["store", "policy", "listen", "strip_headers", "on_decision"]
    assert params["strip_headers"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["on_decision"].kind is inspect.Parameter.KEYWORD_ONLY
    for name in ("start", "stop", "refresh_health", "bound_addresses", "started"):
        assert hasattr(authsvc.server.AuthzServer, name)
