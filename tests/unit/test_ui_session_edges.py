"""Edges of the Admin UI ``token`` cookie check (authz/_ui_session.py) that ``make mutate``
showed untested. Oracles: RFC 7515 (base64url without padding: a segment is 0, 2 or 3 long mod
4), PyJWT's documented claim checks (``exp``/``nbf``/``iat`` are each optional and checked
alone; numbers are JSON numbers, ``int()``-truncated), Starlette's ``cookie_parser`` (split at
the first ``=``; the value keeps any later ``=``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from authsvc.authz._ui_session import Session, read_session, token_cookie
from tests._keys import register
from tests._ui_cookie import mint

MASTER = "sk-ui-edge-master-0123456789abcdefAB"
SESSION = "sk-ui-edge-session-0123456789abcdefA"
for _key, _what in ((MASTER, "ui edge master"), (SESSION, "ui edge session")):
    register(_key, _what)

NOW = 1_800_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mac() -> hmac.HMAC:
    return hmac.new(MASTER.encode(), digestmod=hashlib.sha256)


def signed(head: str, body: str) -> str:
    """A token over raw segments, signed as RFC 7515 says (HMAC over ``head.body``)."""
    sig = hmac.new(MASTER.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


HEAD = _b64(b'{"alg":"HS256","typ":"JWT"}')


def base(**over: object) -> dict[str, object]:
    claims: dict[str, object] = {"key": SESSION, "login_method": "sso", "user_id": "u"}
    claims.update(over)
    return claims


# -- base64url segments ----------------------------------------------------------------------


@pytest.mark.parametrize("pad", ["", "x", "xx", "xxx"])
def test_every_unpadded_segment_length_is_read(pad: str) -> None:
    """Payloads whose segment is 0, 2 and 3 long mod 4 (all RFC 7515 allows) are all read."""
    token = mint(base(p=pad), MASTER, scan=False)
    assert isinstance(read_session(token, mac(), NOW), Session)


def test_the_payload_segment_lengths_cover_every_allowed_remainder() -> None:
    lengths = {len(mint(base(p=p), MASTER, scan=False).split(".")[1]) % 4 for p in ("", "x", "xx")}
    assert lengths == {0, 2, 3}


def test_a_segment_one_past_a_multiple_of_four_is_malformed() -> None:
    body = _b64(json.dumps(base()).encode())
    body += "A" * ((1 - len(body)) % 4)  # no base64 text is 1 long mod 4
    assert len(body) % 4 == 1
    assert read_session(signed(HEAD, body), mac(), NOW) == "malformed (base64url)"


@pytest.mark.parametrize("bad", ["+", "/", "=", " ", "é"])
def test_characters_outside_base64url_are_malformed(bad: str) -> None:
    body = _b64(json.dumps(base()).encode())
    token = signed(HEAD, body[:4] + bad + body[5:])
    found = read_session(token, mac(), NOW)
    assert found in ("malformed (base64url)", "malformed (size or characters)")


def test_a_non_ascii_token_is_refused_before_anything_else() -> None:
    assert read_session("é.é.é", mac(), NOW) == "malformed (size or characters)"


# -- JSON ------------------------------------------------------------------------------------


def test_a_header_that_is_not_utf8_is_not_hs256() -> None:
    head = _b64(b'{"alg":"HS256","x":"\xff"}')
    body = _b64(json.dumps(base()).encode())
    assert read_session(signed(head, body), mac(), NOW) == "not an HS256 token"


def test_claims_that_are_not_utf8_are_malformed() -> None:
    body = _b64(b'{"key":"\xff"}')
    assert read_session(signed(HEAD, body), mac(), NOW) == "malformed (claims)"


def test_claims_nested_past_the_parser_depth_are_malformed() -> None:
    """Within the size bound, JSON nested deeper than Python's recursion limit: refused, not an
    exception out of decide."""
    body = _b64(b"[" * 2500 + b"]" * 2500)
    assert read_session(signed(HEAD, body), mac(), NOW) == "malformed (claims)"


def test_a_header_nested_past_the_parser_depth_is_not_hs256() -> None:
    head = _b64(b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}")
    body = _b64(json.dumps(base()).encode())
    assert read_session(signed(head, body), mac(), NOW) == "not an HS256 token"


# -- time claims, each optional and checked alone (PyJWT) ------------------------------------


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_nbf_and_iat_are_checked_without_exp(name: str) -> None:
    assert read_session(mint(base(**{name: NOW + 60}), MASTER, scan=False), mac(), NOW) == (
        f"not yet valid ({name})"
    )
    assert isinstance(
        read_session(mint(base(**{name: NOW}), MASTER, scan=False), mac(), NOW), Session
    )


def test_iat_is_checked_without_nbf() -> None:
    token = mint(base(exp=NOW + 60, iat=NOW + 60), MASTER, scan=False)
    assert read_session(token, mac(), NOW) == "not yet valid (iat)"


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_nbf_and_iat_must_be_numbers(name: str) -> None:
    token = mint(base(**{name: str(int(NOW))}), MASTER, scan=False)
    assert read_session(token, mac(), NOW) == f"{name} is not a number"


@pytest.mark.parametrize(("exp", "ok"), [(1_800_000_001, True), (1_800_000_000, False)])
def test_integer_exp_as_litellm_mints_it(exp: int, ok: bool) -> None:
    """LiteLLM writes ``exp`` as an integer (seconds); PyJWT: expired when ``exp <= now``."""
    found = read_session(mint(base(exp=exp), MASTER, scan=False), mac(), NOW)
    assert isinstance(found, Session) is ok


def test_a_time_claim_in_a_fraction_of_a_second_truncates_like_pyjwt() -> None:
    """PyJWT compares ``int(exp)`` with the float ``now``: at NOW + 0.5 an ``exp`` of NOW + 0.9
    is ``int`` NOW, already past; an ``nbf`` of NOW + 0.9 is ``int`` NOW, not in the future."""
    now = NOW + 0.5
    assert read_session(mint(base(exp=NOW + 0.9), MASTER, scan=False), mac(), now) == (
        "expired (exp)"
    )
    assert isinstance(
        read_session(mint(base(nbf=NOW + 0.9), MASTER, scan=False), mac(), now), Session
    )


# -- the cookie header (Starlette's cookie_parser) -------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("token=a=b", "a=b"),  # split at the first '=' only
        ("x=token=abc", None),  # the name is 'x'
        ("x=1;token=abc=", "abc="),
    ],
)
def test_token_cookie_splits_at_the_first_equals(header: str, value: str | None) -> None:
    assert token_cookie(header) == value


def test_a_four_character_segment_is_read() -> None:
    """``{ }`` is 3 bytes, 4 base64url characters: a segment of exactly 4 is valid."""
    body = _b64(b"{ }")
    assert len(body) == 4
    found = read_session(signed(HEAD, body), mac(), NOW)
    assert isinstance(found, Session) and found.key is None
