"""Deep health: prove, through Envoy, that the app accepts the master key authsvc accepts.

Every ``interval`` seconds authsvc sends ``GET <protected health path>`` **through Envoy** with
the current master key. The answer is classified (``classify``, pure) into a verdict:

========================  ================================================  ================
answer                    verdict                                           readiness
========================  ================================================  ================
2xx                       ``agree``: sidecar and app accept the same key    ready
401/403 from the app      ``disagree``: the app rejects the key authsvc     NOT ready
                          accepts (no ``x-authsvc-reason`` header)
any denial carrying       ``authsvc_denied``: authsvc (behind Envoy)        NOT ready
``x-authsvc-reason``      refused its own master key, e.g. 503 no key
other status, refused,    ``app_unhealthy`` / ``unreachable``: the app or   unchanged: the
timeout                   Envoy is unwell; that is not a key problem        last verdict
no master key resolved    ``no_key``: nothing to send                       unchanged
========================  ================================================  ================

A verdict is about one key: when the master key changes (a reload), readiness waits for a
verdict on the new key; ``serve`` calls ``trigger()`` after a reload so that takes one request.
Before the first verdict, readiness is false ("waiting for the first deep health verdict"),
and checks are retried quickly (1 s, doubling up to ``interval``) so a pod becomes ready soon
after its app does. After a verdict, an unhealthy app does not flip authsvc's readiness: the
app's own probes report app health, and a flaky or slow ``/health`` (LiteLLM's runs model
calls) must not flap the sidecar. Only key evidence changes the verdict.

Each change of outcome is logged once (error for key problems, warning for an unhealthy app —
info while no verdict was reached yet, since at start-up the app not answering is routine —
info for agreement); repeated identical outcomes log at debug. Logs name the key's source and
fingerprint, never the key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from authsvc._errors import ConfigError
from authsvc.health._http import HttpAnswer, HttpFailure, Target, http_get, parse_url

__all__ = [
    "AUTHSVC_REASON_HEADER",
    "DeepHealth",
    "DeepResult",
    "KeyProvider",
    "SupportsReveal",
    "Verdict",
    "classify",
    "deep_readiness",
    "key_header",
    "key_header_name",
]

AUTHSVC_REASON_HEADER = "x-authsvc-reason"
"""Set by authsvc on every denial (Envoy copies denied_response headers to the client)."""

log = logging.getLogger("authsvc.health.deep")


class SupportsReveal(Protocol):
    """A secret that shows its value only when asked explicitly."""

    def reveal(self) -> str: ...


KeyProvider = Callable[[], tuple[SupportsReveal, str, str] | None]
"""Returns ``(secret, source, fingerprint)`` of the current master key, or ``None``."""


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    AUTHSVC_DENIED = "authsvc_denied"
    APP_UNHEALTHY = "app_unhealthy"
    UNREACHABLE = "unreachable"
    NO_KEY = "no_key"

    @property
    def is_key_evidence(self) -> bool:
        """Whether this outcome says something about the key (and so sets readiness)."""
        return self in (Verdict.AGREE, Verdict.DISAGREE, Verdict.AUTHSVC_DENIED)


@dataclass(frozen=True, slots=True)
class DeepResult:
    """One deep check. ``message`` is the human line; it never contains the key."""

    verdict: Verdict
    message: str
    status: int | None = None
    source: str | None = None
    fingerprint: str | None = None
    authsvc_reason: str | None = None
    checked_at: float = 0.0  # time.time() of the check
    duration: float = 0.0  # seconds the request took

    @property
    def signature(self) -> tuple[object, ...]:
        """What must change for the outcome to count as a transition (and be logged)."""
        return (self.verdict, self.fingerprint, self.authsvc_reason)


class CredentialPlace(Protocol):
    """A credential location as the config holds it (``authsvc.authz.CredentialLocation``)."""

    @property
    def kind(self) -> str: ...  # "header" or "query"
    @property
    def name(self) -> str: ...


def key_header_name(locations: Iterable[CredentialPlace]) -> str:
    """The header to present a key in: ``authorization`` (Bearer) when configured, else the
    first header location. Raises ``ConfigError`` when keys are only accepted in the query."""
    headers = [loc.name.lower() for loc in locations if loc.kind == "header"]
    if not headers:
        raise ConfigError(
            "deep health and verify send keys in a header, "
            "but no header credential location is configured"
        )
    return "authorization" if "authorization" in headers else headers[0]


def key_header(secret: str, header: str = "authorization") -> dict[str, str]:
    """The request header that presents ``secret``: ``Authorization: Bearer`` by default."""
    name = header.lower()
    return {name: f"Bearer {secret}" if name == "authorization" else secret}


def classify(
    answer: HttpAnswer | HttpFailure,
    *,
    where: str,
    source: str,
    fingerprint: str,
) -> DeepResult:
    """Turn one answer into a verdict (pure). ``where`` is the URL, for messages."""
    key = f"the master key resolved from {source} (fp {fingerprint})"
    if isinstance(answer, HttpFailure):
        return DeepResult(
            Verdict.UNREACHABLE,
            f"deep health: app unhealthy: GET {where} failed: {answer.reason}",
            source=source,
            fingerprint=fingerprint,
        )
    status = answer.status
    reason = answer.headers.get(AUTHSVC_REASON_HEADER)
    if 200 <= status < 300:
        return DeepResult(
            Verdict.AGREE,
            f"deep health: the app accepts {key} (GET {where} answered {status})",
            status,
            source,
            fingerprint,
        )
    if reason:
        return DeepResult(
            Verdict.AUTHSVC_DENIED,
            f"authsvc behind {where} denied {key} with {status} ({reason}): "
            "the authsvc Envoy talks to does not hold this key; run `authsvc explain`",
            status,
            source,
            fingerprint,
            reason,
        )
    if status in (401, 403):
        return DeepResult(
            Verdict.DISAGREE,
            f"app rejected {key}: sidecar and app disagree on the key; "
            f"run `authsvc explain` (GET {where} answered {status})",
            status,
            source,
            fingerprint,
        )
    return DeepResult(
        Verdict.APP_UNHEALTHY,
        f"deep health: app unhealthy: GET {where} answered {status} (not a key problem)",
        status,
        source,
        fingerprint,
    )


def deep_readiness(
    last: DeepResult | None, verdict: DeepResult | None, current_fingerprint: str | None = None
) -> tuple[bool, str]:
    """Readiness from the last result and the last key verdict (pure; see module docstring).

    A verdict is evidence about one key: once the master key changed (``current_fingerprint``
    differs), it no longer counts and readiness waits for a verdict on the new key.
    """
    if current_fingerprint is not None:
        if verdict is not None and verdict.fingerprint != current_fingerprint:
            verdict = None
        if last is not None and last.fingerprint not in (None, current_fingerprint):
            last = None
    if verdict is None:
        waiting = "waiting for the first deep health verdict"
        if current_fingerprint is not None:
            waiting += " on the current master key"
        return False, waiting if last is None else f"{waiting} ({_unkeyed(last)})"
    if verdict.verdict is Verdict.AGREE:
        return True, ""
    return False, _unkeyed(verdict)


def _unkeyed(result: DeepResult) -> str:
    """The result's message without its key fingerprint: readiness is served on the
    unauthenticated status port, which carries no key-derived bits (the log line has it)."""
    if result.fingerprint is None:
        return result.message
    return result.message.replace(f" (fp {result.fingerprint})", "")


def _log_level(result: DeepResult) -> int:
    if result.verdict in (Verdict.DISAGREE, Verdict.AUTHSVC_DENIED):
        return logging.ERROR
    if result.verdict in (Verdict.APP_UNHEALTHY, Verdict.UNREACHABLE):
        return logging.WARNING
    return logging.INFO


class DeepHealth:
    """Runs the deep check periodically in a daemon thread (``start``/``stop``).

    ``readiness()`` is cheap (reads state) and is what the status server combines.
    ``trigger()`` runs a check now, e.g. right after a key reload. ``check_once()`` runs one
    check synchronously (tests, ``verify``-like callers). ``on_result`` sees every result
    (metrics); it must not block.
    """

    def __init__(
        self,
        url: str,
        path: str = "/health",
        *,
        key_provider: KeyProvider,
        interval: float = 30.0,
        timeout: float | None = None,
        header: str = "authorization",
        on_result: Callable[[DeepResult], None] | None = None,
        first_retry: float = 1.0,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"deep health interval must be positive, got {interval!r}")
        self._target: Target = parse_url(url, path)
        self._where = str(self._target)
        self._key_provider = key_provider
        self.interval = float(interval)
        self.timeout = float(timeout) if timeout is not None else min(10.0, self.interval)
        self._header = header
        self._on_result = on_result
        self._first_retry = first_retry
        self._last: DeepResult | None = None
        self._verdict: DeepResult | None = None
        self._logged: tuple[object, ...] | None = None
        self._check_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def last(self) -> DeepResult | None:
        return self._last

    @property
    def verdict(self) -> DeepResult | None:
        """The last result that said something about the key (agree/disagree/denied)."""
        return self._verdict

    def readiness(self) -> tuple[bool, str]:
        current = self._key_provider()
        fingerprint = current[2] if current is not None else None
        return deep_readiness(self._last, self._verdict, fingerprint)

    def check_once(self) -> DeepResult:
        with self._check_lock:
            result = self._check()
            self._last = result
            if result.verdict.is_key_evidence:
                self._verdict = result
            self._log_transition(result)
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:
                log.exception("deep health on_result callback failed")
        return result

    def _check(self) -> DeepResult:
        now = time.time()
        current = self._key_provider()
        if current is None:
            return DeepResult(
                Verdict.NO_KEY,
                "deep health: skipped, authsvc has no usable master key to send",
                checked_at=now,
            )
        secret, source, fingerprint = current
        started = time.monotonic()
        answer = http_get(
            self._target, key_header(secret.reveal(), self._header), timeout=self.timeout
        )
        result = classify(answer, where=self._where, source=source, fingerprint=fingerprint)
        return replace(result, checked_at=now, duration=time.monotonic() - started)

    def _log_transition(self, result: DeepResult) -> None:
        if result.signature == self._logged:
            log.debug("%s", result.message)
            return
        self._logged = result.signature
        level = _log_level(result)
        if level == logging.WARNING and self._verdict is None:
            level = logging.INFO  # at start-up the app (or Envoy) not answering yet is routine
        log.log(level, "%s", result.message)

    # ------------------------------------------------------------------- background thread

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        log.info(
            "deep health: checking GET %s every %gs with the master key", self._where, self.interval
        )
        self._thread = threading.Thread(target=self._run, name="authsvc-deep-health", daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        """Run the next check now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(self.timeout + 1.0 if timeout is None else timeout)
        self._thread = None

    def _run(self) -> None:
        retry = self._first_retry
        while not self._stopping.is_set():
            self._wake.clear()  # a trigger() during the check below makes the wait return at once
            try:
                self.check_once()
            except Exception:  # never let the checker die silently
                log.exception("deep health check crashed; retrying at the next interval")
            if self._verdict is None:
                delay, retry = min(retry, self.interval), retry * 2
            else:
                delay = self.interval
            self._wake.wait(delay)
