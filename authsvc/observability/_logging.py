"""Log formatting for the whole process: one JSON object per line, or logfmt-style text.

Both formatters put every ``extra=`` field of a record on the line, so callers log structured
data with the standard ``logging`` API (``log.info("reload", extra={"result": "failure"})``).
Neither can emit a raw control character: JSON escapes them, the text formatter quotes and
escapes any value that is not a plain token.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import TextIO

from authsvc._errors import ConfigError
from authsvc.observability._redact import escape

__all__ = ["BackgroundHandler", "JsonFormatter", "TextFormatter", "configure_logging", "rfc3339"]

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def rfc3339(created: float) -> str:
    """``2025-01-31T12:00:00.123Z``: RFC 3339, UTC, millisecond precision."""
    stamp = datetime.fromtimestamp(created, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", **extra, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            out.setdefault(key, _jsonable(value))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: every control, separator and non-ASCII character becomes \uXXXX, so a
        # line is one line for every reader (and lone surrogates cannot break the encoder).
        return json.dumps(out, ensure_ascii=True, separators=(",", ":"), default=str)


def _logfmt_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = value
        if text and text.isprintable() and not any(c in text for c in ' "=\\'):
            return text
        return json.dumps(text, ensure_ascii=False)  # quotes and escapes controls
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER message k=v k="v w"`` for humans; values escaped like logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            rfc3339(record.created),
            f"{record.levelname:<7}",
            record.name,
            escape(record.getMessage()),
        ]
        parts.extend(f"{k}={_logfmt_value(v)}" for k, v in _extras(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


QUEUE_SIZE = 10_000


class _Listener(logging.handlers.QueueListener):
    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)  # type: ignore[attr-defined]  # blocking: never lost


class BackgroundHandler(logging.handlers.QueueHandler):
    """Hands records to a writer thread: logging never blocks the caller on I/O.

    The gRPC server answers checks on one event loop; a denial line written synchronously to
    a slow stderr pipe would stall every check behind it. The queue is bounded: when it is
    full, records are dropped and counted (``dropped``, and process-wide in
    ``total_dropped``, exported as ``authsvc_log_records_dropped_total``) rather than blocking.
    """

    total_dropped = 0

    def __init__(self, target: logging.Handler, maxsize: int = QUEUE_SIZE) -> None:
        self.records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize)
        super().__init__(self.records)
        self.dropped = 0
        self._listener: _Listener | None = _Listener(
            self.records, target, respect_handler_level=True
        )
        self._listener.start()
        atexit.register(self.close)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Same process, so no pickling: keep exc_info and extras; freeze the message now.
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.records.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            BackgroundHandler.total_dropped += 1

    def flush(self) -> None:
        """Wait until every queued record has been written."""
        self.records.join()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()  # writes what is queued, then joins the thread
            atexit.unregister(self.close)
        super().close()


def configure_logging(
    level: str | int = "INFO",
    *,
    json: bool = False,
    stream: TextIO | None = None,
    background: bool = True,
) -> logging.Handler:
    """Send every log record of the process to ``stream`` (stderr) in one format.

    Called once by the CLI. ``level`` is a name (``debug`` … ``critical``, any case) or a
    ``logging`` number; an unknown name raises ``ConfigError`` naming the accepted ones.
    With ``background`` (the default) lines are written by a thread (``BackgroundHandler``);
    call the returned handler's ``flush()`` to wait for them. A later call replaces (and
    closes) the handler installed before.
    """
    if isinstance(level, str):
        name = level.strip().upper()
        if name == "WARN":
            name = "WARNING"
        if name not in _LEVELS:
            raise ConfigError(
                f"log level {level!r} is not one of {', '.join(n.lower() for n in _LEVELS)}"
            )
        numeric = logging.getLevelName(name)
        assert isinstance(numeric, int)
    else:
        numeric = level
    writer = logging.StreamHandler(stream if stream is not None else sys.stderr)
    writer.setFormatter(JsonFormatter() if json else TextFormatter())
    handler: logging.Handler = BackgroundHandler(writer) if background else writer
    handler._authsvc_installed = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_authsvc_installed", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    # watchfiles logs every batch of file events at info; our reload lines already say what
    # changed and what it meant
    logging.getLogger("watchfiles").setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    return handler
