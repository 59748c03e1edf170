"""Fuzzing the observability outputs: decision log lines and ``/metrics``.

For arbitrary requests, with keys of the ring planted as whole values in every place a request
can carry them (credential headers are never logged; query values, path segments, request
id, source address are) and sk- shaped keys planted anywhere:

- ``on_decision`` never raises and the observer records no internal error;
- each decision is exactly one line of valid JSON (and one printable text line), every string
  field printable;
- no ring key appears in a line (raw, percent-encoded or JSON-escaped), nor any sk- token;
- ``/metrics`` always parses with prometheus_client's own parser and holds no key.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from authsvc.authz import Decision, Policy, Reason, RequestView, decide
from authsvc.keys import KeyRing, KeyStore
from authsvc.observability import (
    DECISION_LOGGER,
    JsonFormatter,
    Observer,
    TextFormatter,
    looks_like_key,
)
from tests._resolution_stub import Resolution, Winner, record

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Opaque keys: printable ASCII without the token delimiters the redactor splits on
# (whitespace , ; = :) — a key containing one is recognised only as a whole value (documented).
OPAQUE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",;=:")
junk = st.text(st.characters(codec="utf-8"), max_size=30)

sk_keys = st.builds(lambda s: "sk-" + s, st.text(URLSAFE, min_size=16, max_size=32))
# Built from two draws around a '~': hypothesis also replays string constants of the code
# (metric names, field names), which legitimately appear in every output and are no keys.
opaque_keys = st.builds(
    lambda a, b: f"{a}~{b}",
    st.text(OPAQUE, min_size=12, max_size=20),
    st.text(OPAQUE, min_size=12, max_size=20),
).filter(lambda k: not k.startswith("sk-"))


class Capture:
    def __init__(self) -> None:
        self.json = io.StringIO()
        self.text = io.StringIO()
        self.handlers = [logging.StreamHandler(self.json), logging.StreamHandler(self.text)]
        self.handlers[0].setFormatter(JsonFormatter())
        self.handlers[1].setFormatter(TextFormatter())

    def take(self) -> tuple[list[str], list[str]]:
        out = self.json.getvalue().splitlines(), self.text.getvalue().splitlines()
        for buf in (self.json, self.text):
            buf.seek(0)
            buf.truncate()
        return out


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    cap = Capture()
    logger = logging.getLogger(DECISION_LOGGER)
    old, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # thousands of fuzz lines: keep them out of pytest's report
    for h in cap.handlers:
        logger.addHandler(h)
    try:
        yield cap
    finally:
        for h in cap.handlers:
            logger.removeHandler(h)
        logger.setLevel(old)
        logger.propagate = propagate


def _place(draw: st.DrawFn, key: str) -> str:
    """A key as a query value, encoded or (when URL-safe) raw."""
    return (
        quote(key, safe="")
        if draw(st.booleans()) or not key.replace("-", "").replace("_", "").isalnum()
        else key
    )


@st.composite
def planted(draw: st.DrawFn, keys: list[str]) -> RequestView:
    """A request with ring keys planted as whole query values, path segments, ids."""
    segments = draw(
        st.lists(
            st.one_of(
                junk.map(lambda s: quote(s, safe="")),
                st.sampled_from(keys).map(lambda k: quote(k, safe="")),
            ),
            max_size=4,
        )
    )
    params = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.one_of(
                st.sampled_from(["key", "KEY", "q", "api_key", "token", "x"]),
                junk.map(lambda s: quote(s, safe="")),
            )
        )
        value = (
            _place(draw, draw(st.sampled_from(keys)))
            if draw(st.booleans())
            else quote(draw(junk), safe="")
        )
        params.append(f"{name}={value}")
    sep = draw(st.sampled_from(["&", ";"]))
    target = "/" + "/".join(segments) + ("?" + sep.join(params) if params else "")
    sk = [k for k in keys if k.startswith("sk-")]
    if sk and draw(st.booleans()):  # sk- keys are caught anywhere, even inside other text
        target += draw(st.sampled_from(["#", "/x", "?z="])) + draw(st.sampled_from(sk))
    ids = st.one_of(junk, st.sampled_from(keys), st.sampled_from(keys).map(lambda k: f"id {k}"))
    headers = {"x-api-key": draw(st.sampled_from(keys))} if draw(st.booleans()) else {}
    method = draw(st.one_of(st.sampled_from(["GET", "POST", "HEAD"]), junk))
    return RequestView(method, target, headers, draw(ids), draw(ids))


def _forbidden(keys: list[str]) -> list[str]:
    return [form for k in keys for form in {k, quote(k, safe=""), json.dumps(k)[1:-1]}]


def _assert_clean(
    json_lines: list[str], text_lines: list[str], keys: list[str], expected: int
) -> None:
    assert len(json_lines) == expected and len(text_lines) == expected
    for line in json_lines:
        parsed = json.loads(line)  # valid JSON, one physical line
        for value in parsed.values():
            if isinstance(value, str):
                assert value.isprintable()
                assert not looks_like_key(value), value
    for line in text_lines:
        assert line.isprintable()
    blob = "\n".join(json_lines + text_lines)
    for form in _forbidden(keys):
        assert form not in blob, "a ring key reached a decision line"


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(st.one_of(sk_keys, opaque_keys), min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_decision_lines_are_one_clean_json_line_and_hold_no_key(
    capture: Capture, keys: list[str], data: st.DataObject
) -> None:
    ring = KeyRing(
        [record(k, f"k{i}") for i, k in enumerate(keys[1:])], master=record(keys[0], "master")
    )
    observer = Observer(keys=KeyStore(ring), sample_rate=1.0)
    capture.take()
    views = data.draw(st.lists(planted(keys), min_size=1, max_size=5))
    seconds = data.draw(st.floats(allow_nan=True, allow_infinity=True))
    policy = Policy.build()
    for view in views:
        observer.on_decision(view, decide(view, policy, ring, 0.0), seconds)
    observer.on_parse_error(
        ValueError(keys[0]), request_id=views[0].request_id, source=views[0].source
    )
    _assert_clean(*capture.take(), keys, len(views) + 1)
    body = observer.metrics()[0].decode()
    assert "authsvc_observer_errors_total 0.0" in body
    for form in _forbidden(keys):
        assert form not in body


reasons = st.sampled_from(list(Reason))
opt_junk = st.one_of(st.none(), st.text(max_size=40))


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    reason=reasons,
    message=st.text(max_size=60),
    key_name=opt_junk,
    key_fp=opt_junk,
    location=opt_junk,
    view=st.builds(
        RequestView,
        st.text(),
        st.text(),
        st.dictionaries(st.text(), st.text(), max_size=3),
        st.text(),
        st.text(),
    ),
    seconds=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_decision_is_logged_and_counted_without_error(
    capture: Capture,
    reason: Reason,
    message: str,
    key_name: str | None,
    key_fp: str | None,
    location: str | None,
    view: RequestView,
    seconds: float,
) -> None:
    observer = Observer(sample_rate=1.0)
    capture.take()
    observer.on_decision(view, Decision(reason, message, key_name, key_fp, location), seconds)
    json_lines, text_lines = capture.take()
    assert len(json_lines) == 1 and len(text_lines) == 1
    parsed = json.loads(json_lines[0])
    assert parsed["reason"] == reason.value
    assert text_lines[0].isprintable()
    families = {f.name: f for f in text_string_to_metric_families(observer.metrics()[0].decode())}
    assert families["authsvc_observer_errors"].samples[0].value == 0
    total = sum(
        s.value for s in families["authsvc_checks"].samples if s.name == "authsvc_checks_total"
    )
    assert total == 1
    count = next(
        s.value
        for s in families["authsvc_check_duration_seconds"].samples
        if s.name.endswith("_count")
    )
    assert count == (1 if seconds >= 0 and not math.isnan(seconds) else 0)


@settings(max_examples=150, deadline=None)
@given(
    source=st.text(max_size=80),
    fp=st.text(max_size=20),
    keys=st.lists(st.one_of(sk_keys, opaque_keys), min_size=1, max_size=3, unique=True),
    warnings=st.lists(st.text(max_size=30), max_size=3),
    ok=st.lists(st.booleans(), max_size=3),
    reloads=st.lists(st.sampled_from(["success", "failure", "unchanged"]), max_size=4),
    accept=st.sampled_from(
        ["", "text/plain", "application/openmetrics-text; version=1.0.0", "*/*"]
    ),
)
def test_render_always_parses_and_holds_no_key(
    source: str,
    fp: str,
    keys: list[str],
    warnings: list[str],
    ok: list[bool],
    reloads: list[str],
    accept: str,
) -> None:
    ring = KeyRing(
        [record(k, f"k{i}") for i, k in enumerate(keys[1:])], master=record(keys[0], "m")
    )
    observer = Observer()
    # The source label is fuzzed with junk and with the key itself (a buggy resolver).
    for src in (source, keys[0], f"value:{keys[-1]}"):
        observer.prometheus.on_resolution(Resolution(True, Winner(src, fp), ring, tuple(warnings)))
        for result in reloads:
            observer.prometheus.on_reload(result)  # type: ignore[arg-type]
        for flag in ok:
            observer.on_result(flag, "")
        body, content_type = observer.metrics(accept)
        text = body.decode("utf-8")
        if content_type.startswith("text/plain"):
            names = {f.name for f in text_string_to_metric_families(text)}
            assert {"authsvc_checks", "authsvc_keys_loaded", "authsvc_master_key_info"} <= names
        else:
            assert text.endswith("# EOF\n")
        for form in _forbidden(keys):
            assert form not in text
