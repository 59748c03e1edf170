"""Edges of ``Policy`` and ``render`` that ``make mutate`` showed untested: the configured
websocket locations, the "(Bearer)" hint of a strict location, Upgrade never stripped, no app
routes outside LiteLLM mode; the first value passed upstream (never when credentials are
stripped), and the error body of LiteLLM's 404 for a team that is gone.

Expected values are written out here from the documented behaviour.
"""

from __future__ import annotations

import json

from authsvc.authz import (
    Allow,
    Bearer,
    CredentialLocation,
    Decision,
    Deny,
    Policy,
    Reason,
    parse_location,
    render,
)


def test_configured_websocket_locations_are_kept() -> None:
    ws = [parse_location("header:x-ws-key")]
    assert [loc.label for loc in Policy.build(ws_locations=ws).ws_locations] == ["header:x-ws-key"]


def test_a_strict_location_is_shown_as_bearer_in_the_missing_message() -> None:
    strict = CredentialLocation("header", "authorization", Bearer.STRICT)
    p = Policy.build(locations=[strict, parse_location("header:x-k")])
    assert p.missing_message == (
        "No api key passed in. Send it in: header:authorization (Bearer), header:x-k."
    )


def test_upgrade_is_never_stripped_even_as_a_credential_header() -> None:
    """Removing Upgrade would break every websocket handshake behind the sidecar."""
    locations = [parse_location("header:upgrade"), parse_location("header:x-k")]
    p = Policy.build(locations=locations, forward_credentials=False)
    assert p.strip_headers == ("x-k",)


def test_no_app_routes_outside_litellm_mode() -> None:
    p = Policy.build()
    assert p.app_routes is None
    assert p.app_public("/ui/") is False and p.closed_at_edge("/ui/") is False


KEY = "sk-render-0123456789abcdeX"  # ends in X: a strip() of more than space and tab shows


def _allowed(first_value_of: str | None) -> Decision:
    return Decision(
        Reason.KEY_VALID,
        "key accepted",
        "ci",
        "f" * 12,
        "header:authorization",
        first_value_of=first_value_of,
    )


def test_the_first_of_three_joined_values_goes_upstream() -> None:
    headers = {"authorization": f"Bearer {KEY} , Bearer sk-two,Bearer sk-three"}
    out = render(_allowed("authorization"), headers)
    assert isinstance(out, Allow)
    assert out.set_headers == (("x-authsvc-key-name", "ci"), ("authorization", f"Bearer {KEY}"))


def test_a_stripped_credential_is_never_set_again_upstream() -> None:
    """forward_credentials: false strips the credential headers; the first-value rewrite must
    not put the key back."""
    headers = {"authorization": f"Bearer {KEY},Bearer sk-two"}
    out = render(_allowed("authorization"), headers, strip_headers=("authorization",))
    assert isinstance(out, Allow)
    assert out.set_headers == (("x-authsvc-key-name", "ci"),)
    assert "authorization" in out.remove_headers
    absent = render(_allowed("authorization"), {})  # nothing to rewrite
    assert isinstance(absent, Allow) and absent.set_headers == (("x-authsvc-key-name", "ci"),)


def test_a_team_not_found_404_has_litellms_auth_error_body() -> None:
    """LiteLLM answers a key whose team is gone with 404 from its auth step: its auth exception
    handler turns the HTTPException into a ProxyException with type ``auth_error`` and the
    exception's status code (proxy/auth/auth_exception_handler.py). The body keeps authsvc's
    shape with that type (the 404 is not one of _ERROR_TYPE's statuses: the default)."""
    message = "{'error': \"Team doesn't exist in db. Team=t. Create team via `/team/new` call.\"}"
    d = Decision(Reason.TEAM_NOT_FOUND, message, "alice", "f" * 12, "header:authorization")
    out = render(d, {})
    assert isinstance(out, Deny) and out.status == 404
    assert json.loads(out.body) == {
        "error": {
            "message": message,
            "type": "auth_error",
            "param": "header:authorization",
            "code": "404",
            "reason": "team_not_found",
        }
    }
    assert ("x-authsvc-reason", "team_not_found") in out.headers


def test_the_adapter_keeps_each_headers_first_value_for_decide() -> None:
    """From Envoy's raw header list the adapter keeps each name's first value apart (the one
    LiteLLM reads); without a raw list there is nothing to tell, so none."""
    from authsvc._proto.envoy.service.auth.v3.external_auth_pb2 import CheckRequest
    from authsvc.server._adapter import view_from_request

    req = CheckRequest()
    entries = req.attributes.request.http.header_map.headers
    entries.add(key="X-Api-Key", raw_value=b"one")
    entries.add(key="x-api-key", raw_value=b"two")
    entries.add(key="Upgrade", raw_value=b"websocket")
    view = view_from_request(req)
    assert view.first_values == {"x-api-key": "one", "upgrade": "websocket"}
    plain = CheckRequest()
    plain.attributes.request.http.headers["x-api-key"] = "one"
    assert view_from_request(plain).first_values is None
