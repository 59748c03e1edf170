"""One Check, from request bytes to answer bytes: the hot path both transports share.

parse → ``view_from_request`` → read ``store.current`` once → ``decide`` → answer bytes. The
answer is cached: ``render`` + ``response_from`` + serialisation depend only on the decision
for a deny, and only on the key name and the client's ``x-authsvc-*`` header names for an
allow, so each distinct answer is built once and then reused (bounded; cleared when full).
Nothing is logged for a check; the observer (metrics, decision log) is called after every one.

LiteLLM virtual keys (``virtual_keys:``): a key the ring does not know may have been created
in LiteLLM's database since the last refresh. For an ``sk-`` key with a database configured,
the checker asks the source's ``Lookup`` — carried by the ring it reads (``KeyRing.unknown_lookup``,
so a reload that removes ``virtual_keys:`` removes the lookup in the same swap) (single flight, miss cache, rate cap): a recent
answer is used at once; otherwise the answer is DEFERRED — ``check`` returns an awaitable
answer (``finish`` awaits it), and ``decide`` runs again, pure, on a one-record ring.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TypeAlias

from google.protobuf.message import DecodeError

from authsvc._proto.envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from authsvc.authz import (
    HEADER_PREFIX,
    Decision,
    Policy,
    Reason,
    RequestView,
    decide,
    extract_credential,
    render,
    shadow,
)
from authsvc.keymodel import FINGERPRINT_LENGTH
from authsvc.keymodel import digest as key_digest
from authsvc.keys import KeyMeta, KeyRecord, KeyRing, KeyStore
from authsvc.server._adapter import response_from, view_from_request
from authsvc.sources import MISS, Lookup, unknown_message

__all__ = ["CACHE_SIZE", "Answer", "Checker", "DecisionObserver", "finish", "settle", "where"]

_log = logging.getLogger("authsvc.server")

DecisionObserver = Callable[[RequestView, Decision, float], Awaitable[None] | None]
"""Called after every Check with (view, decision, seconds spent). May be ``async``.

It runs before the response is sent, so keep it quick. An exception in it is logged (type
only) and never changes the answer.
"""

Answer: TypeAlias = bytes | Awaitable[bytes]
"""The serialized ``CheckResponse``, or (virtual-key lookup) an awaitable of it."""

CACHE_SIZE = 4096
_EMPTY_VIEW = RequestView(method="", target="")
_parse = CheckRequest.FromString
_perf_counter = time.perf_counter
_time = time.time


class Checker:
    """Answers Check requests for a store, a policy and the headers to strip on allow.

    On allow, the credential headers and query parameters the policy hides
    (``Policy.strip_headers`` / ``strip_query``) are removed, plus ``extra_strip``.
    With ``dry_run`` set, each decision passes through ``authz.shadow``: a policy denial is
    answered allow and reported to the observer as ``dry_run`` with ``would_deny``.
    """

    __slots__ = (
        "_answers",
        "_extra_strip",
        "_internal",
        "_malformed",
        "_policy",
        "_strip",
        "_strip_query",
        "dry_run",
        "observer",
        "store",
    )

    def __init__(
        self,
        store: KeyStore,
        policy: Policy,
        extra_strip: tuple[str, ...] = (),
        observer: DecisionObserver | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.dry_run = False
        self._extra_strip = extra_strip
        self._answers: dict[Hashable, bytes] = {}
        self.policy = policy
        self._malformed = self._fixed(
            Decision(Reason.MALFORMED_REQUEST, "the CheckRequest could not be parsed")
        )
        self._internal = self._fixed(
            Decision(Reason.INTERNAL_ERROR, "authsvc failed to evaluate the request")
        )

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """A new policy (config reload): new strip lists, and cached answers are dropped."""
        self._policy = policy
        self._strip = self._extra_strip + policy.strip_headers
        self._strip_query = policy.strip_query
        self._answers = {}

    def _fixed(self, decision: Decision) -> tuple[Decision, bytes]:
        return decision, response_from(render(decision, {})).SerializeToString()

    def check(self, request: bytes) -> tuple[Answer, Awaitable[None] | None]:
        """The serialized ``CheckResponse`` (or an awaitable of it: a virtual-key lookup), and
        the observer's awaitable if it returned one. ``finish`` awaits both. Never raises."""
        observer = self.observer
        started = _perf_counter() if observer is not None else 0.0
        view = _EMPTY_VIEW
        try:
            try:
                req = _parse(request)
            except DecodeError:
                decision, answer = self._malformed
            else:
                view = view_from_request(req)
                ring = self.store.current
                decision = decide(view, self._policy, ring, _time())
                if decision.reason is Reason.UNKNOWN_KEY:
                    lookup = ring.unknown_lookup  # the source's lookup, swapped with the ring
                    if isinstance(lookup, Lookup):
                        found = self._lookup(lookup, view, ring, decision, started)
                        if not isinstance(found, Decision):
                            return found, None
                        decision = found
                if self.dry_run:
                    decision = shadow(decision)
                answer = self._answer(decision, view.headers)
        except Exception as exc:
            _log.error("Check failed, answering 500 deny: %s", where(exc))
            decision, answer = self._internal
        if observer is None:
            return answer, None
        try:
            return answer, observer(view, decision, _perf_counter() - started)
        except Exception as exc:
            _log.warning("decision observer failed: %s", where(exc))
            return answer, None

    def _lookup(
        self, lookup: Lookup, view: RequestView, ring: KeyRing, unknown: Decision, started: float
    ) -> Decision | Awaitable[bytes]:
        """An unknown key, a database to ask: a cached answer at once, else a deferred one."""
        policy = self._policy
        found = extract_credential(
            view.target, view.headers, policy.locations, policy.max_credential_length
        )
        key = getattr(found, "key", None)
        if not isinstance(key, str):
            return unknown
        # With its database configured, LiteLLM's own reason (reason code unchanged).
        unknown = dataclasses.replace(unknown, message=unknown_message(key))
        if not key.startswith("sk-"):
            return unknown  # LiteLLM looks up only sk- keys
        digest = key_digest(key)
        cached = lookup.cached(digest)
        if cached == MISS:
            return unknown
        if isinstance(cached, KeyMeta):
            return _redecide(view, policy, ring, cached, digest, lookup)
        return self._deferred(lookup, view, ring, unknown, digest, started)

    async def _deferred(
        self,
        lookup: Lookup,
        view: RequestView,
        ring: KeyRing,
        unknown: Decision,
        digest: bytes,
        started: float,
    ) -> bytes:
        decision = unknown
        try:
            meta = await lookup.find(digest)
            if meta is not None:
                decision = _redecide(view, self._policy, ring, meta, digest, lookup)
            if self.dry_run:
                decision = shadow(decision)
            answer = self._answer(decision, view.headers)
        except Exception as exc:
            _log.error("Check failed, answering 500 deny: %s", where(exc))
            decision, answer = self._internal
        observer = self.observer
        if observer is not None:
            try:
                pending = observer(view, decision, _perf_counter() - started)
                if pending is not None:
                    await settle(pending)
            except Exception as exc:
                _log.warning("decision observer failed: %s", where(exc))
        return answer

    def _answer(self, decision: Decision, headers: Mapping[str, str]) -> bytes:
        key: Hashable
        if decision.first_value_of is not None:  # carries a request's own header value
            return response_from(
                render(decision, headers, self._strip, self._strip_query)
            ).SerializeToString()
        if decision.allowed:
            client = tuple(name for name in headers if name.startswith(HEADER_PREFIX))
            key = (decision.key_name, decision.would_deny, client)
        else:
            key = decision
        answers = self._answers
        answer = answers.get(key)
        if answer is None:
            out = render(decision, headers, self._strip, self._strip_query)
            answer = response_from(out).SerializeToString()
            if len(answers) >= CACHE_SIZE:
                answers.clear()
            answers[key] = answer
        return answer


def _redecide(
    view: RequestView, policy: Policy, ring: KeyRing, meta: KeyMeta, digest: bytes, lookup: Lookup
) -> Decision:
    """``decide`` again, pure, on a ring holding the master and the one record found."""
    record = KeyRecord(
        meta.name,
        lookup.store_label,
        digest.hex()[:FINGERPRINT_LENGTH],
        digest,
        meta.paths,
        meta.expires_at,
        meta.litellm,
    )
    return decide(view, policy, KeyRing([record], master=ring.master), _time())


async def finish(answer: Answer, pending: Awaitable[None] | None) -> bytes:
    """What ``Checker.check`` returned, awaited: the answer bytes to send."""
    if pending is not None:
        await settle(pending)
    if isinstance(answer, bytes):
        return answer
    return await answer


async def settle(pending: Awaitable[None]) -> None:
    """Await an observer's awaitable; its failure is logged (type only) and swallowed."""
    try:
        await pending
    except Exception as exc:
        _log.warning("decision observer failed: %s", where(exc))


def where(exc: BaseException) -> str:
    """Exception type and innermost frame — never the message, which may quote request data."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
