import json

import pytest

from authsvc.authz import Allow, Decision, Deny, Reason, render


def test_deny_401_has_litellm_shaped_body_and_www_authenticate() -> None:
    out = render(Decision(Reason.MISSING_CREDENTIAL, "No api key passed in."), {})
    assert isinstance(out, Deny) and out.status == 401
    headers = dict(out.headers)
    assert headers["www-authenticate"].startswith("Bearer ")
    assert headers["content-type"] == "application/json"
    err = json.loads(out.body)["error"]
    assert err["type"] == "auth_error" and err["code"] == "401"
    assert err["message"] == "No api key passed in." and err["reason"] == "missing_credential"


def test_deny_403_and_503() -> None:
    assert render(Decision(Reason.PATH_NOT_ALLOWED, "x"), {}).status == 403  # type: ignore[union-attr]
    out = render(Decision(Reason.NO_MASTER_KEY, "x"), {})
    assert isinstance(out, Deny) and out.status == 503
    assert "www-authenticate" not in dict(out.headers)


def test_allow_sets_key_name_and_strips_spoofed_headers() -> None:
    d = Decision(Reason.KEY_VALID, "ok", key_name="master")
    out = render(d, {"x-authsvc-key-name": "admin", "x-authsvc-other": "1", "x-api-key": "k"})
    assert isinstance(out, Allow)
    assert out.set_headers == (("x-authsvc-key-name", "master"),)
    assert out.remove_headers == ("x-authsvc-other",)


def test_public_allow_removes_every_client_authsvc_header() -> None:
    out = render(Decision(Reason.PUBLIC_PATH, "public"), {"x-authsvc-key-name": "admin"})
    assert isinstance(out, Allow) and out.set_headers == ()
    assert out.remove_headers == ("x-authsvc-key-name",)


JSON = ("content-type", "application/json")


def _www(error: str) -> tuple[str, str]:
    return ("www-authenticate", f'Bearer realm="authsvc", error="{error}"')


@pytest.mark.parametrize(
    ("reason", "status", "kind", "extra"),
    [  # written out from the design: status, LiteLLM error type, extra client headers
        (Reason.MISSING_CREDENTIAL, 401, "auth_error", [_www("invalid_request")]),
        (Reason.MALFORMED_CREDENTIAL, 401, "auth_error", [_www("invalid_token")]),
        (Reason.UNKNOWN_KEY, 401, "auth_error", [_www("invalid_token")]),
        (Reason.EXPIRED_KEY, 401, "auth_error", [_www("invalid_token")]),
        (Reason.PATH_NOT_ALLOWED, 403, "auth_error", []),
        (Reason.NO_MASTER_KEY, 503, "service_unavailable", [("retry-after", "5")]),
        (Reason.MALFORMED_REQUEST, 400, "bad_request", []),
        (Reason.INTERNAL_ERROR, 500, "internal_error", []),
    ],
)
def test_every_denial_exactly(
    reason: Reason, status: int, kind: str, extra: list[tuple[str, str]]
) -> None:
    for location in (None, "header:x-api-key"):
        d = Decision(reason, "the message", credential_location=location)
        out = render(d, {"x-authsvc-key-name": "spoof"}, ("x-api-key",), ("key",))
        assert isinstance(out, Deny)
        assert out.status == status
        assert out.headers == (JSON, ("x-authsvc-reason", reason.value), *extra)
        param = "null" if location is None else f'"{location}"'
        body = (
            '{"error":{"message":"the message","type":"KIND","param":PARAM,'
            '"code":"STATUS","reason":"REASON"}}'
        )
        for name, value in [("KIND", kind), ("PARAM", param), ("STATUS", str(status))]:
            body = body.replace(name, value)
        assert out.body == body.replace("REASON", reason.value)


def test_allow_removes_credentials_when_they_are_not_forwarded() -> None:
    d = Decision(Reason.KEY_VALID, "ok", key_name="ci")
    headers = {"x-authsvc-key-name": "admin", "x-authsvc-a": "1", "x-api-key": "k"}
    out = render(d, headers, ("x-api-key", "authorization"), ("key",))
    assert out == Allow(
        (("x-authsvc-key-name", "ci"),),
        ("x-authsvc-a", "x-api-key", "authorization"),
        ("key",),
    )
    public = render(Decision(Reason.PUBLIC_PATH, "public"), headers, ("x-api-key",), ("key",))
    assert public == Allow((), ("x-authsvc-key-name", "x-authsvc-a", "x-api-key"), ("key",))
    assert render(d, {}) == Allow((("x-authsvc-key-name", "ci"),), (), ())
