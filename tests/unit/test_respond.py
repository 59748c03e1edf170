import json

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
