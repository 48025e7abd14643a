"""Log output for the entrypoints: JSON lines on Lambda, readable text on a terminal.

Only entrypoints call these. Fields passed through ``extra=`` become JSON keys
(or ``key=value`` pairs in text), so one log call serves both.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "TextFormatter", "configure"]

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``LEVEL message key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{record.levelname.lower()}: {record.getMessage()}" + (
            f" {fields}" if fields else ""
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "INFO", *, json: bool) -> None:
    """Send log records to stderr (or the Lambda runtime's handler) in the chosen format."""
    root = logging.getLogger()
    formatter: logging.Formatter = JsonFormatter() if json else TextFormatter()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(level)
    # Keep the SDKs' chatter (which can include request details) out of INFO.
    for noisy in ("botocore", "boto3", "urllib3", "s3fs", "aiobotocore", "fsspec"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
