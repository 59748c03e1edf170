"""``Policy``: the route policy built from config, and ``PathRule``, a scoped key's paths.

Expected values are written out here from the documented rules, not computed by the code.
"""

from __future__ import annotations

import pytest

from authsvc.authz import Policy, parse_location
from authsvc.keys import PathRule


def test_default_policy() -> None:
    p = Policy.build()
    assert p.public_paths == {"/health/liveliness", "/health/liveness", "/health/readiness"}
    assert p.public_methods == {"GET", "HEAD"}
    assert p.protected_health_path == "/health"
    assert p.max_credential_length == 65536  # Envoy's 60 KiB header block fits under it
    assert p.forward_credentials is True
    assert p.strip_headers == () and p.strip_query == ()
    assert p.missing_message == (
        "No api key passed in. Send it in: header:x-litellm-api-key, "
        "header:authorization (Bearer), header:api-key, header:x-api-key, "
        "header:x-goog-api-key, header:ocp-apim-subscription-key, query:key."
    )


def test_credentials_are_stripped_only_when_not_forwarded() -> None:
    locations = [parse_location(s) for s in ("header:Authorization", "query:key", "header:x-k")]
    hidden = Policy.build(locations=locations, forward_credentials=False)
    assert hidden.strip_headers == ("authorization", "x-k")
    assert hidden.strip_query == ("key",)
    assert hidden.missing_message == (
        "No api key passed in. Send it in: header:authorization (Bearer), query:key, header:x-k."
    )
    shown = Policy.build(locations=locations, forward_credentials=True)
    assert shown.strip_headers == () and shown.strip_query == ()


def test_build_keeps_what_it_is_given() -> None:
    p = Policy.build(
        ["/livez", "/"],
        locations=[parse_location("query:k")],
        max_credential_length=16,
        protected_health_path="/healthz",
    )
    assert p.public_paths == {"/livez", "/"}
    assert [loc.label for loc in p.locations] == ["query:k"]
    assert p.max_credential_length == 16
    assert p.protected_health_path == "/healthz"
    assert Policy.build([]).public_paths == frozenset()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_credential_length": 15}, "max credential length must be at least 16"),
        ({"max_credential_length": 0}, "max credential length must be at least 16"),
        ({"locations": []}, "at least one credential location is required"),
        (
            {"public_paths": ["/healthz"], "protected_health_path": "/healthz"},
            "protected health path '/healthz' cannot also be a public path",
        ),
        (
            {"public_paths": ["/ok", "/a/../b"]},
            "public path '/a/../b' is not in normal form "
            "(absolute, no query, no '.', '..', '//' or %-escapes)",
        ),
        (
            {"public_paths": ["/a?b"]},
            "public path '/a?b' is not in normal form "
            "(absolute, no query, no '.', '..', '//' or %-escapes)",
        ),
    ],
)
def test_build_refuses(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        Policy.build(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("patterns", "allowed", "refused"),
    [
        (["/v1/models"], ["/v1/models"], ["/v1/models/", "/v1/model", "/v1/models/x", "/"]),
        (["/v1/chat/*"], ["/v1/chat", "/v1/chat/", "/v1/chat/x/y"], ["/v1/chatx", "/v1", "/"]),
        (["*"], ["/", "/anything", "/a/b/c"], []),
        (["/*"], ["/", "/a", "/a/b"], []),
        (["/a", "/b/*"], ["/a", "/b", "/b/c"], ["/a/b", "/c", "/ab"]),
        ([], [], ["/", "/a"]),
    ],
)
def test_path_rule(patterns: list[str], allowed: list[str], refused: list[str]) -> None:
    rule = PathRule.from_patterns(patterns)
    for path in allowed:
        assert rule.allows(path), path
    for path in refused:
        assert not rule.allows(path), path


@pytest.mark.parametrize("pattern", ["/v1/*/x", "/v1*", "*/x", "/a/**"])
def test_path_rule_refuses_inner_wildcards(pattern: str) -> None:
    with pytest.raises(ValueError) as err:
        PathRule.from_patterns([pattern])
    assert str(err.value) == f"path pattern {pattern!r}: '*' is only allowed as a last segment"
