"""Log output for the entrypoints: JSON lines on Lambda, readable text on a terminal.

Only entrypoints call these. Fields passed through ``extra=`` become JSON keys
(or ``key=value`` pairs in text), so one log call serves both.

Our Lambda runtime (``python -m archiver.runtime``) calls :func:`configure_lambda`
first: it follows Lambda's logging controls (``AWS_LAMBDA_LOG_FORMAT``,
``AWS_LAMBDA_LOG_LEVEL``) as the managed Python runtime does, stamps each record
with the invocation's ``requestId``, and keeps that choice when the handler later
calls :func:`configure` with ``ARCHIVER_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "JsonFormatter",
    "LambdaTextFormatter",
    "RequestIdFilter",
    "TextFormatter",
    "configure",
    "configure_lambda",
    "lambda_level",
]

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# (JSON or the managed runtime's text, the level Lambda asked for) once configure_lambda ran
_lambda_controls: tuple[bool, str | None] | None = None


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


class LambdaTextFormatter(logging.Formatter):
    r"""The managed Python runtime's text lines: ``[LEVEL]\ttime\trequest id\tmessage key=value``.

    A traceback stays in its record's line, its line breaks written as ``\r`` as
    the managed runtime writes them, so CloudWatch keeps the record as one event.
    """

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        request_id = extras.pop("requestId", "")
        fields = " ".join(f"{k}={v}" for k, v in extras.items())
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        text = f"[{record.levelname}]\t{when[:-6]}Z\t{request_id}\t{record.getMessage()}" + (
            f" {fields}" if fields else ""
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text.replace("\n", "\r")


class RequestIdFilter(logging.Filter):
    """Adds ``requestId`` to every record while an invocation runs (set ``request_id``)."""

    def __init__(self) -> None:
        super().__init__()
        self.request_id: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.request_id is not None:
            record.requestId = self.request_id
        return True


def lambda_level(value: str | None) -> str | None:
    """Python's name for an ``AWS_LAMBDA_LOG_LEVEL`` value; None when unset or unknown."""
    name = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(
        (value or "").strip().upper(), (value or "").strip().upper()
    )
    return name if name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else None


def configure_lambda(
    log_format: str | None, log_level: str | None, default_level: str = "INFO"
) -> RequestIdFilter:
    """Log as Lambda's managed Python runtime does, and keep it so for later :func:`configure` calls.

    ``log_format`` is ``AWS_LAMBDA_LOG_FORMAT``: ``JSON`` gives JSON lines, anything
    else (``Text``, the default) the managed runtime's text lines. ``log_level`` is
    ``AWS_LAMBDA_LOG_LEVEL``: when set, it wins over the level :func:`configure` is
    later asked for (``ARCHIVER_LOG_LEVEL``). Returns the filter whose
    ``request_id`` the runtime sets for each invocation.
    """
    global _lambda_controls
    _lambda_controls = ((log_format or "").strip().upper() == "JSON", lambda_level(log_level))
    configure(default_level, json=_lambda_controls[0])
    request_ids = RequestIdFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(request_ids)
    return request_ids


def configure(level: str = "INFO", *, json: bool) -> None:
    """Send log records to stderr (or the Lambda runtime's handler) in the chosen format.

    After :func:`configure_lambda`, its format stays, and so does its level when Lambda set one.
    """
    root = logging.getLogger()
    formatter: logging.Formatter = JsonFormatter() if json else TextFormatter()
    if _lambda_controls is not None:
        json_lines, fixed_level = _lambda_controls
        formatter = JsonFormatter() if json_lines else LambdaTextFormatter()
        level = fixed_level or level
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(level)
    # Keep the SDKs' chatter (which can include request details) out of INFO.
    for noisy in ("botocore", "boto3", "urllib3", "s3fs", "aiobotocore", "fsspec"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
