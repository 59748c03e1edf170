"""Turn raw answers into verdicts ("accept" / "refuse") and compare them.

What "accept" means for LiteLLM (facts from ``litellm/proxy/auth/user_api_key_auth.py`` and the
real process, 1.110.x): its auth layer refuses with 401/403 (``auth_error``: "No api key passed
in", "Malformed API Key", a websocket closed before the upgrade -> 403), or, for a key that is
not the master key while no database is connected, with 400 ``no_db_connection`` ("No connected
db."; with a database the key would be looked up and refused as unknown). Any other answer came
from a route handler after auth passed: 200, a 400 "Missing required parameter" from
generateContent, a 101 websocket upgrade, and the 401 of ``POST /login``'s own credential check
(``param: invalid_credentials``), which only runs once the request got past auth.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from parity._send import CheckAnswer, HttpAnswer

ACCEPT = "accept"
REFUSE = "refuse"


def litellm_verdict(answer: HttpAnswer) -> str:
    error = answer.json_error()
    if answer.status == 0:
        return REFUSE
    if answer.status == 400 and error.get("type") == "no_db_connection":
        return REFUSE
    if answer.status in (401, 403):
        return ACCEPT if error.get("param") == "invalid_credentials" else REFUSE
    return ACCEPT


def litellm_cell(answer: HttpAnswer, verdict: str) -> str:
    if answer.status == 0:
        return f"{verdict} ({answer.error})"
    return f"{verdict} {answer.status}"


def check_cell(answer: CheckAnswer) -> str:
    if answer.allowed is None:
        return f"error ({answer.reason})"
    if answer.allowed:
        return ACCEPT
    return f"{REFUSE} {answer.status} {answer.reason}".rstrip()


def check_verdict(answer: CheckAnswer) -> str:
    return ACCEPT if answer.allowed else REFUSE


def stack_verdict(answer: HttpAnswer) -> tuple[str, str]:
    """(verdict, cell) for an answer that came through Envoy: authsvc's denial (its JSON body
    carries ``error.reason``), Envoy's own reply (no upstream-service-time header: e.g. 403
    ``upgrade_failed``, 503 no healthy upstream), or LiteLLM's answer passed through."""
    reason = answer.json_error().get("reason")
    if answer.status == 0:
        return REFUSE, f"refuse ({answer.error})"
    if isinstance(reason, str) and reason:
        return REFUSE, f"refuse {answer.status} by authsvc {reason}"
    from_app = "x-envoy-upstream-service-time" in answer.headers or answer.status == 101
    if not from_app:
        detail = answer.body[:60].decode("latin-1", "replace").strip().replace("|", "/")
        return REFUSE, f"refuse {answer.status} by Envoy {detail}".rstrip()
    verdict = litellm_verdict(answer)
    return verdict, f"{verdict} {answer.status} (LiteLLM)"


class Outcome(Enum):
    AGREE = "agree"
    STRICTER = "stricter"  # authsvc refuses what LiteLLM accepts
    LOOSER = "looser"  # authsvc accepts what LiteLLM refuses
    ERROR = "error"  # no answer to compare


def compare(litellm: str, ours: str) -> Outcome:
    if litellm not in (ACCEPT, REFUSE) or ours not in (ACCEPT, REFUSE):
        return Outcome.ERROR
    if litellm == ours:
        return Outcome.AGREE
    return Outcome.STRICTER if litellm == ACCEPT else Outcome.LOOSER


@dataclass(frozen=True)
class Row:
    setup: str
    request: str
    litellm: str  # the cell shown
    check: str
    check_outcome: Outcome
    stack: str
    stack_outcome: Outcome
    deliberate: str = ""  # the documented reason, when the disagreement is listed
