"""Session-wide log collection for the no-key-leak scan (pytest hooks, loaded by conftest.py).

What is collected, all under one session log directory ``$AUTHSVC_TEST_LOG_DIR`` (created
per session unless already set; kept after a failing session, removed after a passing one):

- ``pytest/records.log``   every ``logging`` record of the test process (handler on the root
  logger; the ``authsvc`` logger is lowered to ``$AUTHSVC_TEST_LOG_LEVEL``, default INFO, so
  decision lines are actually produced),
- ``pytest/sections.log``  every test's captured stdout/stderr/log report sections,
- ``pytest/readouterr.log`` whatever tests read with ``capsys``/``capfd.readouterr()`` (that
  output never reaches the report sections),
- anything else: files that e2e harnesses write there, e.g. a subprocess's stdout/stderr
  (``open(log_file("envoy"), "wb")``) or a ``/metrics`` scrape. Harnesses should always do so.

``tests/test_zz_no_key_leak.py`` runs last (``pytest_collection_modifyitems`` below moves it)
and scans all of it for every key in ``tests/_keys.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "LOG_DIR_ENV",
    "LOG_LEVEL_ENV",
    "PYTEST_SUBDIR",
    "log_dir",
    "log_file",
    "other_tests_run",
]

LOG_DIR_ENV = "AUTHSVC_TEST_LOG_DIR"
LOG_LEVEL_ENV = "AUTHSVC_TEST_LOG_LEVEL"
PYTEST_SUBDIR = "pytest"
LEAK_SCAN_MODULE = "test_zz_no_key_leak.py"

_state: dict[str, Any] = {"created": False, "other_tests": 0}
_counter = itertools.count()
_lock = threading.Lock()


def log_dir() -> Path:
    """The session log directory (created on demand when pytest did not configure it)."""
    path = os.environ.get(LOG_DIR_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="authsvc-test-logs-")
        os.environ[LOG_DIR_ENV] = path
        _state["created"] = True
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def log_file(name: str) -> Path:
    """A fresh file path under the log directory for one subprocess's output."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "log"
    return log_dir() / f"{next(_counter):04d}-{safe}.log"


def other_tests_run() -> int:
    """How many test items outside the leak-scan module have run in this session."""
    return int(_state["other_tests"])


class _Sink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", errors="backslashreplace")

    def write(self, text: str) -> None:
        if not text:
            return
        with _lock:
            self._file.write(text if text.endswith("\n") else text + "\n")
            self._file.flush()

    def close(self) -> None:
        with _lock:
            self._file.close()


class _RecordHandler(logging.Handler):
    """Writes message, extra fields and traceback of every record, unformatted-but-complete."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
        "message",
        "asctime",
        "taskName",
    }

    def __init__(self, sink: _Sink) -> None:
        super().__init__(logging.NOTSET)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extras = {k: v for k, v in vars(record).items() if k not in self._STANDARD}
            text = f"{record.name} {record.levelname} {record.getMessage()} {extras!r}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._sink.write(text)
        except Exception:
            self.handleError(record)


def pytest_configure(config: pytest.Config) -> None:
    base = log_dir()
    sub = base / PYTEST_SUBDIR
    sinks = {name: _Sink(sub / f"{name}.log") for name in ("records", "sections", "readouterr")}
    _state["sinks"] = sinks
    handler = _RecordHandler(sinks["records"])
    logging.getLogger().addHandler(handler)
    _state["handler"] = handler
    level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    authsvc_logger = logging.getLogger("authsvc")
    _state["old_level"] = authsvc_logger.level
    authsvc_logger.setLevel(level)

    original = pytest.CaptureFixture.readouterr

    def readouterr(self: pytest.CaptureFixture[Any]) -> Any:
        result = original(self)
        for stream in (result.out, result.err):
            text = (
                stream.decode("utf-8", "backslashreplace") if isinstance(stream, bytes) else stream
            )
            sinks["readouterr"].write(text)
        return result

    _state["readouterr"] = original
    pytest.CaptureFixture.readouterr = readouterr  # type: ignore[method-assign]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the leak scan after every other test, whatever the directory order."""
    last = [i for i in items if i.nodeid.split("::")[0].endswith(LEAK_SCAN_MODULE)]
    if last:
        rest = [i for i in items if i not in last]
        items[:] = rest + last


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    if not report.nodeid.split("::")[0].endswith(LEAK_SCAN_MODULE):
        _state["other_tests"] += 1
    sinks = _state.get("sinks")
    if sinks is None:
        return
    for title, content in report.sections:
        sinks["sections"].write(f"== {report.nodeid} {title}\n{content}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _state["failed"] = bool(session.testsfailed) or exitstatus not in (0, 5)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    path = os.environ.get(LOG_DIR_ENV)
    if path and _state.get("created") and _state.get("failed", True):
        terminalreporter.write_line(f"session logs kept for inspection: {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    handler = _state.pop("handler", None)
    if handler is not None:
        logging.getLogger().removeHandler(handler)
    if "old_level" in _state:
        logging.getLogger("authsvc").setLevel(_state.pop("old_level"))
    if "readouterr" in _state:
        pytest.CaptureFixture.readouterr = _state.pop("readouterr")  # type: ignore[method-assign]
    for sink in _state.pop("sinks", {}).values():
        sink.close()
    path = os.environ.get(LOG_DIR_ENV)
    if path and _state.get("created") and not _state.get("failed", True):
        shutil.rmtree(path, ignore_errors=True)
