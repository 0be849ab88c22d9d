"""Logging: JSON lines for a cluster's log pipeline, readable lines on a terminal.

Secrets never reach a log line: every value passed to :func:`register_secret` (the API
key) is replaced by ``***`` in the final text, whatever path it took into the message, and
:func:`redact_url` drops the query string of presigned URLs before they are logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import urllib.parse
from typing import Any, Literal

_SECRETS: set[str] = set()
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    """Make sure ``value`` never appears in a log line (values under 4 chars are ignored)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """A URL without its query string and fragment (presigned signatures live there)."""
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + "?…"
    return url


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_extras(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup_logging(
    fmt: Literal["auto", "json", "text"] = "auto", level: str = "INFO", stream: Any = None
) -> None:
    """Configure the root logger once per process (later calls replace the handler)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter at INFO would drown the run's own lines.
    for noisy in ("botocore", "aiobotocore", "urllib3", "httpx", "httpcore", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
