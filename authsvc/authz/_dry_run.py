"""Dry-run (shadow) mode: a denial that is recorded, not enforced. A pure step after ``decide``.

``decide()`` does not know about dry-run: the server calls ``shadow(decide(...))`` when
dry-run is on. ``shadow`` turns a *policy* denial — the caller's credential is missing,
malformed, unknown, expired or not allowed on this path, or a LiteLLM virtual key that
LiteLLM's own rules refuse (blocked key, blocked team, team gone) — into an allow with reason
``dry_run`` that remembers the denial in ``would_deny``. Everything else passes unchanged:

- ``no_master_key`` (503) stays a denial: authsvc cannot check anyone, which is a broken
  deployment, not a client's policy outcome. Dry-run never turns "no key configured" into an
  open door; the pod is not ready either (``/readyz``), as without dry-run.
- ``malformed_request`` and ``internal_error`` (answered by the adapter, never by ``decide``)
  stay denials: Envoy sent garbage, or authsvc has a bug; hiding either would be wrong.
"""

from __future__ import annotations

from authsvc.authz._decide import Decision, Reason

__all__ = ["DRY_RUN_HEADER", "SHADOWED", "shadow"]

DRY_RUN_HEADER = "x-authsvc-dry-run"
"""Set on a request let through by dry-run (to the upstream, and on the response to the
client): its value is the reason it would have been denied, e.g. ``unknown_key``."""

SHADOWED: frozenset[Reason] = frozenset(
    {
        Reason.MISSING_CREDENTIAL,
        Reason.MALFORMED_CREDENTIAL,
        Reason.UNKNOWN_KEY,
        Reason.EXPIRED_KEY,
        Reason.PATH_NOT_ALLOWED,
        Reason.BLOCKED_KEY,
        Reason.TEAM_BLOCKED,
        Reason.TEAM_NOT_FOUND,
    }
)
"""The denials dry-run lets through (and records); every other decision passes unchanged."""


def shadow(decision: Decision) -> Decision:
    """``decision``, or for a shadowed denial an allow (``dry_run``) that records it."""
    if decision.reason not in SHADOWED:
        return decision
    return Decision(
        Reason.DRY_RUN,
        f"dry-run: would deny {decision.status} {decision.reason.value}: {decision.message}",
        key_name=decision.key_name,
        key_fingerprint=decision.key_fingerprint,
        credential_location=decision.credential_location,
        would_deny=decision.reason,
    )
