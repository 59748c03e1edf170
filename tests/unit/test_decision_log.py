"""Decision log lines: levels, sampling, fields, redaction and log-injection safety."""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections.abc import Iterator

import pytest

from authsvc.authz import Decision, Policy, Reason, RequestView, decide, parse_location
from authsvc.keys import KeyStore, fingerprint
from authsvc.observability import (
    DECISION_LOGGER,
    REDACTED,
    DecisionLog,
    JsonFormatter,
    Observer,
    Redactor,
    Sampler,
    TextFormatter,
    escape,
)
from authsvc.observability._redact import MAX_PARTS
from tests._keys import ALT, MASTER, WRONG
from tests._resolution_stub import resolution

RES = resolution(MASTER, ALT)
POLICY = Policy.build()
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Lines:
    """A real handler + formatter on the decisions logger, collecting the written lines."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    @property
    def raw(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.raw]


@pytest.fixture
def lines() -> Iterator[Lines]:
    yield from _attach(JsonFormatter(), logging.DEBUG)


@pytest.fixture
def info_lines() -> Iterator[Lines]:
    yield from _attach(JsonFormatter(), logging.INFO)


def _attach(formatter: logging.Formatter, level: int) -> Iterator[Lines]:
    logger = logging.getLogger(DECISION_LOGGER)
    collected = Lines(formatter)
    old = logger.level
    logger.addHandler(collected.handler)
    logger.setLevel(level)
    try:
        yield collected
    finally:
        logger.removeHandler(collected.handler)
        logger.setLevel(old)


def observe(log: DecisionLog, view: RequestView, seconds: float = 0.0005) -> Decision:
    decision = decide(view, POLICY, RES.ring, 0.0)
    log.record(view, decision, seconds)
    return decision


def new_log(**kw: object) -> DecisionLog:
    return DecisionLog(ring=lambda: RES.ring, **kw)  # type: ignore[arg-type]


# -- levels and sampling -------------------------------------------------------------------


def test_a_denied_request_is_one_info_line_with_every_field(info_lines: Lines) -> None:
    view = RequestView("POST", "/v1/chat/completions?stream=1", {}, "req-1", "10.0.0.7:5123")
    observe(new_log(), view)
    (line,) = info_lines.json()
    assert RFC3339.fullmatch(str(line["time"]))
    assert line == {
        "time": line["time"],
        "level": "info",
        "logger": "authsvc.decisions",
        "message": "decision",
        "decision": "deny",
        "status": 401,
        "reason": "missing_credential",
        "method": "POST",
        "path": "/v1/chat/completions?stream=1",
        "request_id": "req-1",
        "source": "10.0.0.7:5123",
        "credential_location": None,
        "key_name": None,
        "key_fingerprint": None,
        "duration_ms": 0.5,
        "detail": POLICY.missing_message,
    }


def test_a_known_key_is_named_by_name_and_fingerprint(info_lines: Lines) -> None:
    view = RequestView("GET", "/v1/models", {"authorization": f"Bearer {ALT}"})
    decision = decide(view, POLICY, RES.ring, 0.0)
    assert decision.allowed  # allowed, not sampled → no INFO line
    new_log().record(view, decision, 0.001)
    assert info_lines.raw == []
    denied = Decision(
        Reason.EXPIRED_KEY, "api key 'x' has expired", "x", fingerprint(ALT), "header:authorization"
    )
    new_log().record(view, denied, 0.001)
    (line,) = info_lines.json()
    assert line["key_name"] == "x" and line["key_fingerprint"] == fingerprint(ALT)
    assert line["credential_location"] == "header:authorization"


def test_allowed_requests_are_debug_unless_sampled(lines: Lines) -> None:
    view = RequestView("GET", "/v1/models", {"x-api-key": MASTER})
    observe(new_log(), view)
    (line,) = lines.json()
    assert line["level"] == "debug" and line["reason"] == "key_valid"
    assert line["key_name"] == "master" and line["key_fingerprint"] == fingerprint(MASTER)


def test_sampled_allowed_requests_are_info(info_lines: Lines) -> None:
    draws = iter([0.1, 0.9, 0.2, 0.7])
    log = new_log(sample_rate=0.5, random=lambda: next(draws))
    view = RequestView("GET", "/v1/models", {"x-api-key": MASTER})
    for _ in range(4):
        observe(log, view)
    assert len(info_lines.json()) == 2


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_probe_traffic_is_never_above_debug_even_fully_sampled(method: str, lines: Lines) -> None:
    log = new_log(sample_rate=1.0)
    decision = observe(log, RequestView(method, "/health/liveliness"))
    assert decision.reason is Reason.PUBLIC_PATH
    assert [line["level"] for line in lines.json()] == ["debug"]


def test_nothing_is_formatted_when_the_level_is_off(info_lines: Lines) -> None:
    """The hot-path promise: an allowed request below the level builds no fields at all."""
    view = RequestView("GET", "/v1/models", {"x-api-key": MASTER})
    decision = decide(view, POLICY, RES.ring, 0.0)

    class Exploding(DecisionLog):
        __slots__ = ()

        def fields(self, *args: object) -> dict[str, object]:
            raise AssertionError("fields built for a line that is not written")

    Exploding(ring=lambda: RES.ring).record(view, decision, 0.001)
    probe = RequestView("GET", "/health/readiness")
    Exploding(sample_rate=1.0).record(probe, decide(probe, POLICY, RES.ring, 0.0), 0.001)


def test_status_5xx_is_louder(lines: Lines) -> None:
    log = new_log()
    log.record(RequestView("GET", "/v1/models"), Decision(Reason.NO_MASTER_KEY, "no key"), 0.0)
    log.record_failure(Reason.INTERNAL_ERROR, "RuntimeError", view=RequestView("GET", "/x"))
    assert [(x["level"], x["status"]) for x in lines.json()] == [("warning", 503), ("error", 500)]


def test_sampler_is_deterministic_with_an_injected_source() -> None:
    rng = random.Random(7)
    first = [Sampler(0.25, rng.random)() for _ in range(1000)]
    rng = random.Random(7)
    again = [Sampler(0.25, rng.random)() for _ in range(1000)]
    assert first == again
    assert 200 < sum(first) < 300
    assert not any(Sampler(0.0, lambda: 0.0)() for _ in range(10))
    assert all(Sampler(1.0, lambda: 0.9999)() for _ in range(10))


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_sampler_refuses_rates_outside_0_1(rate: float) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        Sampler(rate)


# -- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (f"/v1beta/models?alt=sse&key={MASTER}", f"/v1beta/models?alt=sse&key={REDACTED}"),
        (f"/x?KEY={WRONG}", f"/x?KEY={REDACTED}"),  # case-insensitive names
        (f"/x?%6Bey={WRONG}", f"/x?%6Bey={REDACTED}"),  # encoded name: an app decodes it
        (f"/x?a=1;key={WRONG}", f"/x?a=1;key={REDACTED}"),  # ';' separates for some apps
        (
            f"/x?api_key={WRONG}&token=t0k3n&password=p",
            f"/x?api_key={REDACTED}&token={REDACTED}&password={REDACTED}",
        ),
        (f"/x?x-api-key={WRONG}", f"/x?x-api-key={REDACTED}"),  # header location as a param
        ("/x?key=", f"/x?key={REDACTED}"),
        ("/x?key", "/x?key"),
        ("/x?keys=1&monkey=2", "/x?keys=1&monkey=2"),  # only exact names
        (f"/x?q={MASTER}", f"/x?q={REDACTED}"),  # a ring key under any name
        (f"/x?q=Bearer%20{MASTER}", f"/x?q={REDACTED}"),  # ...also inside an encoded value
        (f"/keys/{MASTER}/info", f"/keys/{REDACTED}/info"),  # ...or as a path segment
        ("/x?q=sk%2Dabcdefgh", f"/x?q={REDACTED}"),  # an sk- shaped value, encoded
        ("/v1/sk-anything-12345/x", f"/v1/{REDACTED}/x"),  # an sk- shape anywhere
        ("/x#frag?k=1", "/x#frag?k=1"),
        ("", ""),
        ("*", "*"),
    ],
)
def test_target_redaction(target: str, expected: str) -> None:
    assert Redactor(["key"], lambda: RES.ring).target(target) == expected


def test_configured_query_locations_are_redacted() -> None:
    loc = parse_location("query:access_code")
    log = DecisionLog(locations=[loc], ring=lambda: None)
    fields = log.fields(
        RequestView("GET", "/x?access_code=abc123&a=1"), Decision(Reason.UNKNOWN_KEY, "x"), 0
    )
    assert fields["path"] == f"/x?access_code={REDACTED}&a=1"


def test_a_ring_key_is_recognised_from_the_moment_it_is_loaded() -> None:
    store = KeyStore()
    redactor = Redactor((), lambda: store.current)
    store.swap(resolution(MASTER).ring)
    plain = "plainsecretvalue0001"
    assert redactor.target(f"/x?q={plain}") == f"/x?q={plain}"
    store.swap(resolution(MASTER, plain).ring)
    assert redactor.target(f"/x?q={plain}") == f"/x?q={REDACTED}"


def test_parts_beyond_the_limit_are_omitted_not_logged() -> None:
    many = "&".join(f"p{i}=v{i}" for i in range(MAX_PARTS + 10))
    out = Redactor().target(f"/x?{many}")
    assert f"p{MAX_PARTS - 1}=" in out and f"p{MAX_PARTS}=" not in out
    assert out.endswith("…[10 more parameters]")
    deep = "/a" * (MAX_PARTS + 5)
    assert "more segments" in Redactor().target(deep)


def test_long_targets_are_cut_after_redaction() -> None:
    target = "/x?" + "a" * 3000 + f"&key={MASTER}"
    out = Redactor(["key"]).target(target, limit=100)
    assert len(out) < 130 and out.endswith("more chars]") and MASTER[:8] not in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\x0ab"),
        ('\r\n{"level":"error"}', '\\x0d\\x0a{"level":"error"}'),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("line\u2028sep", "line\\u2028sep"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85", "c1\\x85"),
        ("üñí", "üñí"),
        ("tab\t", "tab\\x09"),
    ],
)
def test_escape(raw: str, expected: str) -> None:
    assert escape(raw) == expected
    assert escape(raw).isprintable()


# -- log injection, end to end through both formatters --------------------------------------

HOSTILE = RequestView(
    "GET\r\nX-Injected: 1",
    '/v1/models\n{"level":"info","decision":"allow"}?key=x\u2028y',
    {"x-api-key": "bad\x00key"},
    "id\x1b[2J",
    "1.2.3.4\n5",
)


def test_hostile_fields_stay_on_one_json_line(info_lines: Lines) -> None:
    observe(new_log(), HOSTILE)
    (raw,) = info_lines.raw  # exactly one physical line
    line = json.loads(raw)
    assert line["decision"] == "deny"
    for field in ("method", "path", "request_id", "source"):
        assert str(line[field]).isprintable(), field


def test_hostile_fields_stay_on_one_text_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("test.decisions.text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        DecisionLog(logger=logger).record(HOSTILE, decide(HOSTILE, POLICY, RES.ring, 0.0), 0.001)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    assert out[:-1].isprintable()
    assert "decision=deny" in out and "status=401" in out


# -- the Observer's failure paths -------------------------------------------------------------


def test_parse_and_internal_errors_log_the_type_never_the_message(lines: Lines) -> None:
    obs = Observer()
    obs.on_parse_error(ValueError(f"could not parse {MASTER}"), request_id="r1", source="1.1.1.1")
    obs.on_internal_error(
        RuntimeError(f"boom {MASTER}"), view=RequestView("GET", "/x"), seconds=0.002
    )
    out = lines.json()
    assert [(x["reason"], x["status"], x["detail"]) for x in out] == [
        ("malformed_request", 400, "ValueError"),
        ("internal_error", 500, "RuntimeError"),
    ]
    assert out[0]["request_id"] == "r1" and out[1]["path"] == "/x"
    assert MASTER not in "".join(lines.raw)


def test_the_observer_never_raises_into_the_hot_path(caplog: pytest.LogCaptureFixture) -> None:
    obs = Observer()
    broken = RequestView("GET", None, {})  # type: ignore[arg-type]  # a view no adapter should build
    obs.on_decision(broken, Decision(Reason.MISSING_CREDENTIAL, "x"), 0.001)
    obs.on_decision(broken, Decision(Reason.MISSING_CREDENTIAL, "x"), 0.001)
    body = obs.metrics()[0].decode()
    assert "authsvc_observer_errors_total 2.0" in body
    errors = [r for r in caplog.records if r.name == "authsvc.observability"]
    assert len(errors) == 1 and "AttributeError" in errors[0].getMessage()


def test_cached_details_follow_the_ring() -> None:
    store = KeyStore()
    log = DecisionLog(ring=lambda: store.current)
    plain = "plainsecretvalue0002"
    decision = Decision(Reason.UNKNOWN_KEY, f"odd message {plain}")
    view = RequestView("GET", "/x")
    assert log.fields(view, decision, 0)["detail"] == f"odd message {plain}"
    store.swap(resolution(MASTER, plain).ring)
    assert log.fields(view, decision, 0)["detail"] == REDACTED
