"""Start-up/reload summaries, the reloader and deep-health callbacks, and configure_logging."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc import ConfigError
from authsvc.keys import fingerprint
from authsvc.observability import (
    RESOLUTION_LOGGER,
    BackgroundHandler,
    JsonFormatter,
    Observer,
    TextFormatter,
    configure_logging,
    log_resolution,
)
from tests._keys import ALT, MASTER, SCOPED
from tests._resolution_stub import Resolution, resolution


@pytest.fixture
def summary() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(RESOLUTION_LOGGER)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def reloads(obs: Observer) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(obs.metrics()[0].decode()):
        for s in family.samples:
            if s.name == "authsvc_reloads_total":
                out[s.labels["result"]] = s.value
    return out


def test_startup_summary_carries_the_chain_without_keys(summary: io.StringIO) -> None:
    res = resolution(MASTER, ALT, source="env:LITELLM_MASTER_KEY")
    log_resolution(res)
    (line,) = lines(summary)
    assert line["level"] == "info" and line["event"] == "key_resolution"
    assert line["phase"] == "startup" and line["resolved"] is True
    assert line["source"] == "env:LITELLM_MASTER_KEY"
    assert line["fingerprint"] == fingerprint(MASTER) and line["keys_loaded"] == 2
    assert line["chain"] == json.loads(json.dumps(res.report()))
    assert MASTER not in summary.getvalue() and ALT not in summary.getvalue()


def test_unresolved_is_an_error_and_warnings_are_a_warning(summary: io.StringIO) -> None:
    log_resolution(resolution(None), phase="reload")
    log_resolution(resolution(MASTER, warnings=["file:/a holds a different key (fp 0123)"]))
    first, second = lines(summary)
    assert first["level"] == "error" and first["resolved"] is False and first["phase"] == "reload"
    assert "failing closed" in str(first["message"])
    assert second["level"] == "warning" and second["warnings"] == [
        "file:/a holds a different key (fp 0123)"
    ]


def test_a_report_that_leaks_a_key_is_scrubbed(summary: io.StringIO) -> None:
    base = resolution(MASTER, SCOPED)

    class Leaky(Resolution):
        def report(self) -> Mapping[str, object]:
            return {
                "sources": [{"source": "value", "raw": MASTER, "nested": {"k": [SCOPED]}}],
                "n": 1,
            }

    log_resolution(Leaky(base.resolved, base.winner, base.ring, (f"shadowed {SCOPED}",)))
    text = summary.getvalue()
    assert MASTER not in text and SCOPED not in text
    (line,) = lines(summary)
    assert line["chain"] == {
        "sources": [{"source": "value", "raw": "[REDACTED]", "nested": {"k": ["[REDACTED]"]}}],
        "n": 1,
    }


def test_a_report_that_raises_does_not_stop_the_summary(summary: io.StringIO) -> None:
    base = resolution(MASTER)

    class Broken(Resolution):
        def report(self) -> Mapping[str, object]:
            raise OSError("disk gone")

    log_resolution(Broken(base.resolved, base.winner, base.ring))
    (line,) = lines(summary)
    assert line["chain"] == "report unavailable: OSError"


def test_reloader_callbacks_count_success_unchanged_and_failure(summary: io.StringIO) -> None:
    obs = Observer()
    obs.on_startup(resolution(MASTER))
    assert reloads(obs) == {"success": 0, "failure": 0, "unchanged": 0}
    obs.on_change(resolution(MASTER))  # same keys re-read
    obs.on_change(resolution(MASTER, ALT))  # a new extra key
    obs.on_error(f"file:/run/secrets/master: not valid YAML near {MASTER}")
    obs.on_change(resolution(MASTER, ALT))
    assert reloads(obs) == {"success": 1, "failure": 1, "unchanged": 2}
    out = lines(summary)
    assert [(x["phase"] if "phase" in x else x["event"]) for x in out] == [
        "startup",
        "reload",
        "reload",
        "key_reload",
        "reload",
    ]
    assert [x["level"] for x in out] == ["info", "info", "info", "warning", "info"]
    assert str(out[3]["message"]).startswith("key reload failed: file:/run/secrets/master")
    assert MASTER not in summary.getvalue()  # sk- shaped text in an error is redacted


class Verdict(StrEnum):  # the deep health checker's verdicts (authsvc.health, issue 5)
    AGREE = "agree"
    DISAGREE = "disagree"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class DeepResult:
    verdict: Verdict
    message: str


def test_deep_health_callback_moves_the_gauge() -> None:
    obs = Observer()
    obs.on_result(False, "401 from /health")
    assert "authsvc_deep_health_ok 0.0" in obs.metrics()[0].decode()
    obs.on_result(True, "")
    assert "authsvc_deep_health_ok 1.0" in obs.metrics()[0].decode()


def test_deep_health_results_label_the_counter_by_verdict() -> None:
    obs = Observer()
    obs.on_result(DeepResult(Verdict.DISAGREE, "app rejected the key"))
    body = obs.metrics()[0].decode()
    assert "authsvc_deep_health_ok 0.0" in body
    assert 'authsvc_deep_health_checks_total{result="disagree"} 1.0' in body
    obs.on_result(DeepResult(Verdict.AGREE, "ok"))
    obs.on_result(DeepResult(Verdict.AGREE, "ok"))
    body = obs.metrics()[0].decode()
    assert "authsvc_deep_health_ok 1.0" in body
    assert 'authsvc_deep_health_checks_total{result="agree"} 2.0' in body
    obs.on_result(DeepResult("Not A Label!\n", "x"))  # type: ignore[arg-type]
    body = obs.metrics()[0].decode()
    assert 'authsvc_deep_health_checks_total{result="fail"} 1.0' in body and "Not A" not in body


# -- configure_logging ------------------------------------------------------------------------


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()  # stops a background writer thread
        root.setLevel(level)
        logging.captureWarnings(False)


def test_configure_logging_json_replaces_itself(clean_root: logging.Logger) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("debug", json=True, stream=first)
    handler = configure_logging("WARN", json=True, stream=second)
    logging.getLogger("thirdparty.test").warning("reload %s", "failed", extra={"source": "file:/x"})
    logging.getLogger("thirdparty.test").info("not shown")
    handler.flush()
    assert first.getvalue() == ""
    (line,) = [json.loads(x) for x in second.getvalue().splitlines()]
    assert line["message"] == "reload failed" and line["source"] == "file:/x"
    assert line["level"] == "warning" and clean_root.level == logging.WARNING


def test_configure_logging_text_and_exceptions(clean_root: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging(logging.INFO, stream=out, background=False)
    try:
        raise KeyError("x")
    except KeyError:
        logging.getLogger("authsvc.test").exception("bad\nthing", extra={"n": 3, "s": "a b"})
    first, *rest = out.getvalue().splitlines()
    assert "ERROR" in first and "bad\\x0athing" in first and 'n=3 s="a b"' in first
    assert rest[0].startswith("Traceback")


class SlowStream(io.StringIO):
    """stderr piped to a stalled log collector: every write blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


def test_background_logging_never_blocks_the_caller_and_counts_drops(
    clean_root: logging.Logger,
) -> None:
    stream = SlowStream()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(JsonFormatter())
    handler = BackgroundHandler(writer, maxsize=5)
    log = logging.getLogger("thirdparty.slow")
    log.addHandler(handler)
    log.propagate = False
    before = BackgroundHandler.total_dropped
    try:
        started = time.perf_counter()
        for i in range(50):
            log.warning("line %d", i)
        assert time.perf_counter() - started < 1.0, "a stalled stream blocked the caller"
        assert handler.dropped >= 40 and BackgroundHandler.total_dropped - before == handler.dropped
        body = Observer().metrics()[0].decode()
        assert f"authsvc_log_records_dropped_total {float(BackgroundHandler.total_dropped)}" in body
        stream.release.set()
        handler.flush()
        written = [json.loads(x)["message"] for x in stream.getvalue().splitlines()]
        assert written[0] == "line 0" and len(written) == 50 - handler.dropped
    finally:
        stream.release.set()
        log.removeHandler(handler)
        log.propagate = True
        handler.close()


def test_background_logging_keeps_exceptions_and_extras(clean_root: logging.Logger) -> None:
    out = io.StringIO()
    handler = configure_logging("info", json=True, stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("thirdparty.bg").exception("failed %s", "here", extra={"n": 1})
    handler.flush()
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["message"] == "failed here" and line["n"] == 1
    assert "ValueError: boom" in line["exception"]


def test_json_formatter_survives_odd_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %s", ("\udcff",), None)
    record.obj = object()
    record.data = {"a": (1, 2), 3: None}
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["message"] == "m \udcff" and parsed["data"] == {"a": [1, 2], "3": None}
    assert line.isascii() and "\n" not in line
    assert TextFormatter().format(record).isprintable()


@pytest.mark.parametrize("level", ["loud", "", "5x"])
def test_configure_logging_names_a_bad_level(level: str) -> None:
    with pytest.raises(ConfigError, match="log level"):
        configure_logging(level)
