"""The decision: a pure function from (request, policy, keys, clock) to allow or deny.

Phases, in order, each with its combining rule:

1. **route**      — a public path (exact, GET/HEAD) is allowed without a key.
2. **readiness**  — no usable master key: every protected request is denied 503 (fail closed).
3. **credential** — the first credential location present decides; malformed denies.
4. **identity**   — the key's digest must be in the ring (constant-time confirmed), unexpired.
5. **scope**      — a key restricted to paths must match the normalised path.

Any phase that denies ends the pipeline. No I/O, no gRPC, no clock but ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from authsvc.authz._credentials import (
    CredentialError,
    extract_credential,
    is_websocket,
    plain_credential,
    strip_ows,
)
from authsvc.authz._paths import is_canonical, normalize_path, split_target
from authsvc.authz._policy import Policy
from authsvc.authz._ui_session import CookieRoute, Session, cookie_route, read_session, token_cookie
from authsvc.authz._view import RequestView
from authsvc.keymodel import KeyRecord, KeyRing, digest

__all__ = ["STATUS", "Decision", "Reason", "decide"]


class Reason(StrEnum):
    """Stable reason codes: they are API (logs, metric labels, response bodies)."""

    PUBLIC_PATH = "public_path"
    KEY_VALID = "key_valid"
    MISSING_CREDENTIAL = "missing_credential"
    MALFORMED_CREDENTIAL = "malformed_credential"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_KEY = "expired_key"
    BLOCKED_KEY = "blocked_key"  # a LiteLLM virtual key with blocked = true
    TEAM_BLOCKED = "team_blocked"  # a LiteLLM virtual key of a blocked team
    TEAM_NOT_FOUND = "team_not_found"  # a LiteLLM virtual key whose team row is gone
    PATH_NOT_ALLOWED = "path_not_allowed"
    NO_MASTER_KEY = "no_master_key"
    MALFORMED_REQUEST = "malformed_request"
    INTERNAL_ERROR = "internal_error"  # set by adapters only: decide() itself never fails
    DRY_RUN = "dry_run"  # set by the dry-run step only (_dry_run.shadow): a denial let through


STATUS: dict[Reason, int] = {
    Reason.PUBLIC_PATH: 200,
    Reason.KEY_VALID: 200,
    Reason.MISSING_CREDENTIAL: 401,
    Reason.MALFORMED_CREDENTIAL: 401,
    Reason.UNKNOWN_KEY: 401,
    Reason.EXPIRED_KEY: 401,
    Reason.BLOCKED_KEY: 401,
    Reason.TEAM_BLOCKED: 401,
    Reason.TEAM_NOT_FOUND: 404,  # LiteLLM answers 404 (its TeamNotFoundError)
    Reason.PATH_NOT_ALLOWED: 403,
    Reason.NO_MASTER_KEY: 503,
    Reason.MALFORMED_REQUEST: 400,
    Reason.INTERNAL_ERROR: 500,
    Reason.DRY_RUN: 200,
}
"""The one table from reason to HTTP status."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome. ``message`` is for humans and never contains a key."""

    reason: Reason
    message: str
    key_name: str | None = None
    key_fingerprint: str | None = None
    credential_location: str | None = None
    would_deny: Reason | None = None  # dry-run only: the denial that was not enforced
    first_value_of: str | None = None
    """A header sent twice and joined with ``,`` whose FIRST value held the key: the allow
    answer passes only that value upstream, as LiteLLM itself would read it."""

    @property
    def allowed(self) -> bool:
        return STATUS[self.reason] == 200

    @property
    def status(self) -> int:
        return STATUS[self.reason]


_PUBLIC = Decision(Reason.PUBLIC_PATH, "public path")


def _deny(reason: Reason, message: str, location: str | None = None) -> Decision:
    return Decision(reason, message, credential_location=location)


def decide(view: RequestView, policy: Policy, ring: KeyRing, now: float) -> Decision:
    """Allow or deny one request. Total: never raises for any ``RequestView``."""
    path, _ = split_target(view.target)
    if not path:
        return _deny(Reason.MALFORMED_REQUEST, "the request has no path")

    # 1. route
    if path in policy.public_paths and view.method in policy.public_methods:
        return _PUBLIC
    if policy.app_routes is not None:
        if policy.closed_at_edge(path):
            return _deny(
                Reason.PATH_NOT_ALLOWED,
                "the LiteLLM Admin UI and sign-in routes are closed at the edge "
                "(litellm_ui: closed in authsvc's config)",
            )
        if policy.app_public(path):
            return _PUBLIC
        if is_canonical(path) and cookie_route(view.method, path) is CookieRoute.NO_AUTH:
            return _PUBLIC  # LiteLLM's BYOK sign-in form (no auth dependency)

    # 2. readiness
    if not ring.ready:
        return _deny(
            Reason.NO_MASTER_KEY, f"authsvc has no usable master key: {ring.unready_reason}"
        )

    # 3. credential
    headers = view.first_values if view.first_values is not None else view.headers
    cookie_rule = None
    if policy.app_routes is not None and is_canonical(path):
        cookie_rule = cookie_route(view.method, path)  # LiteLLM's UI session cookie routes
    if cookie_rule is CookieRoute.SESSION_ONLY:
        return _ui_session(view, ring, now)
    locations = policy.ws_locations if is_websocket(headers) else policy.locations
    found = extract_credential(view.target, headers, locations, policy.max_credential_length)
    if (
        found is None
        and cookie_rule is CookieRoute.FALLBACK
        and not strip_ows(headers.get("authorization", ""))
    ):
        session = _session_cookie(view, ring, now, cookie_rule)
        if isinstance(session, Session) and session.key is not None:
            found = plain_credential(session.key, COOKIE, policy.max_credential_length)
        elif session is not None:
            return _deny(
                Reason.MISSING_CREDENTIAL,
                f"{policy.missing_message} The token cookie is not a usable UI session: {session}.",
                COOKIE,
            )
    if found is None:
        return _deny(Reason.MISSING_CREDENTIAL, policy.missing_message)
    if isinstance(found, CredentialError):
        return _deny(
            Reason.MALFORMED_CREDENTIAL,
            f"malformed credential in {found.location}: {found.detail}",
            found.location,
        )

    # 4. identity
    record = ring.lookup(digest(found.key))
    via_first = None
    if record is None and found.first is not None:  # a header sent twice, joined with ","
        record = ring.lookup(digest(found.first))
        # Envoy joins a repeated Authorization (one of its inline headers) into one line
        # upstream too: the allow answer passes the first value alone. Other headers reach the
        # app as separate lines, whose first one the app reads anyway.
        if found.location == "header:authorization":
            via_first = "authorization"
    if record is not None and record.litellm is not None:
        refused = _litellm_refusal(record, now, found.location)
        if refused is not None:
            return refused
    elif record is None:
        return _deny(
            Reason.UNKNOWN_KEY, f"invalid api key sent in {found.location}", found.location
        )
    elif record.expires_at is not None and now >= record.expires_at:
        return Decision(
            Reason.EXPIRED_KEY,
            f"api key {record.name!r} has expired",
            record.name,
            record.fingerprint,
            found.location,
        )

    # 5. scope
    assert record is not None
    if record.paths is not None:
        normalized = normalize_path(path)
        if normalized is None or normalized != path or not record.paths.allows(normalized):
            return Decision(
                Reason.PATH_NOT_ALLOWED,
                f"api key {record.name!r} is not allowed on this path",
                record.name,
                record.fingerprint,
                found.location,
            )

    return Decision(
        Reason.KEY_VALID,
        "key accepted",
        record.name,
        record.fingerprint,
        found.location,
        first_value_of=via_first,
    )


COOKIE = "cookie:token"


def _session_cookie(
    view: RequestView, ring: KeyRing, now: float, rule: CookieRoute
) -> Session | str | None:
    """The verified UI session of the ``token`` cookie, why it is refused, or ``None`` when no
    such cookie was sent."""
    token = token_cookie(view.headers.get("cookie"))
    if token is None:
        return None
    if ring.session_mac is None:
        return "authsvc holds no master key to verify it with"
    session = read_session(token, ring.session_mac, now)
    if isinstance(session, str):
        return session
    return session.refusal(rule) or session


def _ui_session(view: RequestView, ring: KeyRing, now: float) -> Decision:
    """``POST /v1/mcp/oauth/authorize``: LiteLLM reads the UI session cookie alone there
    (``_byok_session_auth``); authsvc accepts it when its session key is a LiteLLM virtual key
    that passes LiteLLM's rules."""
    session = _session_cookie(view, ring, now, CookieRoute.SESSION_ONLY)
    if not isinstance(session, Session) or session.key is None:
        why = session if isinstance(session, str) else "none was sent"
        return _deny(
            Reason.MISSING_CREDENTIAL,
            f"This route accepts only the Admin UI session cookie (token): {why}.",
            COOKIE,
        )
    record = ring.lookup(digest(session.key))
    refused = None
    if record is not None and record.litellm is not None:
        refused = _litellm_refusal(record, now, COOKIE)
    if record is None or record.litellm is None or _is_unknown(refused):
        # Never UNKNOWN_KEY (e.g. rotated past revoke_at): that would send the checker's
        # database lookup after the request's other credentials, which this route ignores.
        return _deny(
            Reason.MISSING_CREDENTIAL,
            "This route accepts only the Admin UI session cookie (token): its session key is "
            "not a LiteLLM virtual key authsvc holds.",
            COOKIE,
        )
    if refused is not None:
        return refused
    return Decision(
        Reason.KEY_VALID, "UI session accepted", record.name, record.fingerprint, COOKIE
    )


def _is_unknown(decision: Decision | None) -> bool:
    return decision is not None and decision.reason is Reason.UNKNOWN_KEY


LITELLM_BLOCKED = (
    "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin."
)


def _litellm_refusal(record: KeyRecord, now: float, location: str) -> Decision | None:
    """LiteLLM's own rules for a virtual key read from its database (see
    ``keymodel.Standing``): rotated away after ``revoke_at`` (unknown), blocked key, blocked
    team, expired — checked in LiteLLM's order, with LiteLLM's messages."""
    standing = record.litellm
    assert standing is not None
    if standing.revoke_at is not None and now >= standing.revoke_at:
        # LiteLLM's lookup asks for revoke_at > now: at revoke_at the old key is not found.
        return _deny(Reason.UNKNOWN_KEY, f"invalid api key sent in {location}", location)

    def refuse(reason: Reason, message: str) -> Decision:
        return Decision(reason, message, record.name, record.fingerprint, location)

    if standing.blocked:
        return refuse(Reason.BLOCKED_KEY, LITELLM_BLOCKED)
    if record.expires_at is not None and record.expires_at < now:  # strict, as LiteLLM
        expiry = datetime.fromtimestamp(record.expires_at, UTC)
        current = datetime.fromtimestamp(now, UTC)
        return refuse(
            Reason.EXPIRED_KEY,
            "Authentication Error - Expired Key. "
            f"Key Expiry time {expiry} and current time {current}",
        )
    if standing.team_missing:  # LiteLLM's str() of its HTTPException detail, verbatim
        detail = {
            "error": f"Team doesn't exist in db. Team={standing.team_id}. "
            "Create team via `/team/new` call."
        }
        return refuse(Reason.TEAM_NOT_FOUND, str(detail))
    if standing.team_blocked:
        return refuse(
            Reason.TEAM_BLOCKED,
            f"Authentication Error, Team={standing.team_id} is blocked. "
            "Update via `/team/unblock` if you're an admin.",
        )
    return None
