"""After the whole suite: no test key in any captured log line, log file or ``/metrics`` output.

Runs last (``tests/_leakscan.py`` moves it to the end of the session). Keys come from
``tests/_keys.py`` (registered by the tests that use them) plus every ``sk-`` constant of at
least 16 characters defined in an imported ``tests.*`` module. Where they are searched:

1. a synthetic drive of the observability stack: every key in every credential location, in
   other query parameters, path segments, request ids and addresses, fully sampled, at debug,
   through both formatters; key resolution summaries and a reload error; then ``/metrics``;
2. everything the session captured in-process (log records, report sections, readouterr);
3. every other file under ``$AUTHSVC_TEST_LOG_DIR`` (subprocess logs written by e2e harnesses,
   ``/metrics`` scrapes).

A hit is reported as ``file:line`` and the key's label and fingerprint, never the key.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from authsvc.authz import DEFAULT_LOCATIONS, Policy, RequestView, decide
from authsvc.keys import KeyRing, KeyStore, fingerprint
from authsvc.observability import JsonFormatter, Observer, TextFormatter
from tests import _keys
from tests._leakscan import LOG_DIR_ENV, PYTEST_SUBDIR, log_dir, other_tests_run
from tests._resolution_stub import Resolution, Winner, record

MIN_HARVEST = 16


def harvest() -> dict[str, str]:
    """Registered keys plus ``sk-`` constants of imported test modules (key -> label)."""
    for name, module in list(sys.modules.items()):
        if not (name == "tests" or name.startswith("tests.")) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, str) and value.startswith("sk-") and len(value) >= MIN_HARVEST:
                _keys.register(value, f"{name}.{attr}")
    return _keys.registered()


def _variants(key: str) -> set[bytes]:
    forms = {key, quote(key, safe=""), json.dumps(key)[1:-1], key.encode("unicode_escape").decode()}
    return {f.encode("utf-8") for f in forms}


class Scanner:
    def __init__(self, keys: dict[str, str]) -> None:
        self.by_form: dict[bytes, str] = {}
        for key in keys:
            for form in _variants(key):
                self.by_form[form] = key
        self.labels = keys
        forms = sorted(self.by_form, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(f) for f in forms)) if forms else None
        self.lines = 0

    def scan(self, paths: list[Path]) -> list[str]:
        hits: list[str] = []
        if self.pattern is None:
            return hits
        for path in paths:
            with path.open("rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    self.lines += 1
                    for match in self.pattern.finditer(line):
                        key = self.by_form[match.group(0)]
                        hits.append(
                            f"{path}:{lineno}: test key {self.labels[key]!r} "
                            f"(fingerprint {fingerprint(key)})"
                        )
        return hits


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _drive(keys: list[str], out: Path) -> None:
    """Every key through the observability stack, as loudly as it can log."""
    master, *extra = keys
    ring = KeyRing(
        [record(k, f"k{i}") for i, k in enumerate(extra)], master=record(master, "master")
    )
    store = KeyStore(ring)
    resolution = Resolution(True, Winner("env:AUTHSVC_MASTER_KEY", fingerprint(master)), ring, ())
    obs = Observer(keys=store, sample_rate=1.0)
    obs.decision_log.throttle.burst = 1 << 30  # write every denial: each one is scanned
    policy = Policy.build()
    buffers = [io.StringIO(), io.StringIO()]
    handlers = [logging.StreamHandler(buffers[0]), logging.StreamHandler(buffers[1])]
    handlers[0].setFormatter(JsonFormatter())
    handlers[1].setFormatter(TextFormatter())
    logger = logging.getLogger("authsvc")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    for h in handlers:
        logger.addHandler(h)
    try:
        obs.on_startup(resolution)
        for key in keys:
            views = [
                RequestView("GET", f"/v1/models?key={key}", {}, key, key),
                RequestView("GET", f"/v1/models?KEY={quote(key)}&foo={key}"),
                RequestView("POST", f"/v1/{key}/x?token={key}", {"x-api-key": key + "\x00"}),
                RequestView(key, f"/x;{key}?a=1;b={key}", {"authorization": key}),
                RequestView("GET", "/health/liveliness?key=" + key),
            ]
            views += [
                RequestView("GET", "/v1/models", {loc.name: f"Bearer {key}"})
                for loc in DEFAULT_LOCATIONS
                if loc.kind == "header"
            ]
            for view in views:
                obs.on_decision(view, decide(view, policy, ring, 0.0), 0.0001)
                obs.on_decision(view, decide(view, policy, KeyRing(), 0.0), 0.0001)
            obs.on_parse_error(ValueError(key), request_id=key, source=key)
            obs.on_internal_error(RuntimeError(key), view=views[0])
            obs.on_error(f"file:/run/secrets/key: invalid value {key}")
        obs.on_change(Resolution(True, Winner("file:/k", fingerprint(keys[-1])), ring, ()))
        obs.on_result(False, f"app answered 401 for {fingerprint(master)}")
    finally:
        for h in handlers:
            logger.removeHandler(h)
        logger.setLevel(old)
    json_lines = buffers[0].getvalue().splitlines()
    assert len(json_lines) > 10 * len(keys), "the drive must actually produce decision lines"
    for line in json_lines:
        json.loads(line)
    (out / "drive-json.log").write_text(buffers[0].getvalue(), encoding="utf-8")
    (out / "drive-text.log").write_text(buffers[1].getvalue(), encoding="utf-8")
    (out / "drive-metrics.txt").write_bytes(obs.metrics()[0])


def test_observability_outputs_hold_no_key() -> None:
    keys = harvest()
    assert len(keys) >= 4
    out = log_dir() / PYTEST_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    _drive(list(keys), out)
    paths = [out / "drive-json.log", out / "drive-text.log", out / "drive-metrics.txt"]
    hits = Scanner(keys).scan(paths)
    assert not hits, "test keys leaked:\n" + "\n".join(hits)


def test_no_key_in_captured_test_logs() -> None:
    if other_tests_run() == 0:
        pytest.skip(
            "run alone: no other test ran in this session, so nothing was captured to scan "
            "(run the whole suite)"
        )
    scanner = Scanner(harvest())
    paths = _files(log_dir() / PYTEST_SUBDIR)
    hits = scanner.scan(paths)
    assert not hits, "test keys leaked into captured test output:\n" + "\n".join(hits)
    assert scanner.lines > 0


def test_no_key_in_subprocess_logs() -> None:
    root = log_dir()
    paths = [p for p in _files(root) if PYTEST_SUBDIR not in p.relative_to(root).parts[:1]]
    if not paths:
        pytest.skip(
            f"no subprocess log files under ${LOG_DIR_ENV} ({root}): no e2e harness "
            "wrote any in this session"
        )
    hits = Scanner(harvest()).scan(paths)
    assert not hits, "test keys leaked into subprocess logs:\n" + "\n".join(hits)
