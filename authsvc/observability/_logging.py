"""Log formatting for the whole process: one JSON object per line, or logfmt-style text.

Both formatters put every ``extra=`` field of a record on the line, so callers log structured
data with the standard ``logging`` API (``log.info("reload", extra={"result": "failure"})``).
Neither can emit a raw control character: JSON escapes them, the text formatter quotes and
escapes any value that is not a plain token.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from authsvc._errors import ConfigError
from authsvc.observability._redact import escape

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "rfc3339"]

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


class _Installed(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``configure_logging`` installed, so a second call replaces it."""


def configure_logging(
    level: str | int = "INFO", *, json: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record of the process to ``stream`` (stderr) in one format.

    Called once by the CLI. ``level`` is a name (``debug`` … ``critical``, any case) or a
    ``logging`` number; an unknown name raises ``ConfigError`` naming the accepted ones.
    Returns the installed handler (replaced, not duplicated, by a later call).
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
    handler = _Installed(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Installed)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    return handler
