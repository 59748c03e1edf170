"""What LiteLLM's own tables say about one virtual key beyond its digest, name and expiry.

A key read from LiteLLM's database (``virtual_keys:``, issue #15) carries a ``Standing`` on
its ``KeyMeta`` and ``KeyRecord``; ``decide`` then applies LiteLLM's rules to it, not ours:
expiry is strict (``expires < now`` refuses: a key whose ``expires`` equals ``now`` is still
valid), a blocked key or a key of a blocked team is refused with LiteLLM's message, and a
rotated-away key (``LiteLLM_DeprecatedVerificationToken``) is valid only while
``now < revoke_at`` — after that LiteLLM no longer finds it at all (unknown key). A key whose
``team_id`` names no row of ``LiteLLM_TeamTable`` (the team was deleted) is refused as
LiteLLM refuses it (404, "Team doesn't exist in db"), except LiteLLM's UI sentinel team.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Standing"]


@dataclass(frozen=True, slots=True)
class Standing:
    """A virtual key's standing in LiteLLM's tables (pure data, compared by value)."""

    blocked: bool = False
    team_id: str | None = None
    team_blocked: bool = False
    revoke_at: float | None = None  # Unix time; set only for a rotated-away (deprecated) key
    team_missing: bool = False  # team_id set, but no such row in LiteLLM_TeamTable
