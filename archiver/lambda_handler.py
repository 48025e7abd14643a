"""The Lambda archival sink: a DynamoDB Streams (or Kinesis) event in, batchItemFailures out.

Wire it to the stream with ``FunctionResponseTypes: [ReportBatchItemFailures]``.
Configuration comes from ``ARCHIVER_*`` environment variables (see
:class:`archiver.settings.ArchiverSettings`); settings and the S3 client are
built on the first invocation and reused. Each invocation prints one
CloudWatch Embedded Metric Format line to stdout unless ``ARCHIVER_METRICS``
is off.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from archiver.archive.store import ArchiveStore
from archiver.decode import item_identifier, typed_records
from archiver.metrics import emf_line
from archiver.split import EventShapeError, split_event
from archiver.write import ArchiveOptions, ArchiveReport, archive_records, paused_gc

__all__ = [
    "ConfigurationError",
    "EventShapeError",
    "batch_item_failures",
    "handle_bytes",
    "handler",
    "prepare",
]

log = logging.getLogger("archiver.lambda")
# (store, options, metrics namespace or None when metrics are off)
_state: tuple[ArchiveStore, ArchiveOptions, str | None] | None = None
clock: Callable[[], float] = time.time  # epoch seconds; tests replace it


class ConfigurationError(RuntimeError):
    """The function's ``ARCHIVER_*`` settings are invalid: nothing can be archived."""


def _setup() -> tuple[ArchiveStore, ArchiveOptions, str | None]:
    from archiver.archive.store import open_store
    from archiver.logs import configure
    from archiver.settings import SettingsError, settings_from_environment

    try:
        settings = settings_from_environment()
    except SettingsError as err:
        raise ConfigurationError(str(err)) from None
    configure(settings.log_level, json=True)
    store = open_store(settings.archive_uri, sse=settings.sse_arguments, s3="boto3")
    options = ArchiveOptions(
        settings.promoted, settings.plain_images, settings.default_table, settings.full_check
    )
    return store, options, settings.metrics_namespace if settings.metrics else None


def records_of(event: Any) -> list[Any]:
    """The ``Records`` list of a Lambda event, or EventShapeError saying what arrived instead."""
    if not isinstance(event, dict):
        raise EventShapeError(
            f"expected a DynamoDB Streams or Kinesis event (an object with 'Records'), got {type(event).__name__}"
        )
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventShapeError(
            "expected a DynamoDB Streams or Kinesis event with a 'Records' list, got an object with keys "
            f"{sorted(event)[:10]}"
        )
    return records


def batch_item_failures(records: list[Any], failed_positions: set[int]) -> list[dict[str, str]]:
    """Lambda's partial-batch response: the first unstored record and every record after it.

    Lambda resumes from the lowest reported sequence number, so everything after
    the first failure is re-delivered; reporting it too makes that explicit.
    Raises RuntimeError when a record to report has no identifier: then only a
    failed invocation (the whole batch retried) is safe.
    """
    if not failed_positions:
        return []
    failures = []
    for position in range(min(failed_positions), len(records)):
        identifier = item_identifier(records[position])
        if identifier is None:
            raise RuntimeError(
                f"record {position} was not stored and has no sequence number to report; "
                "failing the invocation so Lambda retries the whole batch"
            )
        failures.append({"itemIdentifier": identifier})
    return failures


def prepare() -> None:
    """Read the settings and build the store now (a runtime's init phase); idempotent.

    Raises
    ------
    ConfigurationError
        When an ``ARCHIVER_*`` variable is invalid.
    """
    global _state
    if _state is None:
        _state = _setup()


def handle_bytes(body: bytes, context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Archive an invocation given as the raw event bytes; the response as for :func:`handler`.

    The bytes path of our own runtime (:mod:`archiver.runtime`): each record's
    text goes to the decoder as it arrived, nothing is parsed into dicts.
    """
    # No cyclic collection while the event is cut and decoded: its objects hold no cycles.
    with paused_gc():
        records = split_event(body)
        typed = typed_records(body)
        return _archive(
            records, context, typed if typed is not None and len(typed) == len(records) else None
        )


def handler(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Archive the event's records; report what was not durably written."""
    return _archive(records_of(event), context)


def _archive(
    records: list[Any], context: Any, typed: list[Any] | None = None
) -> dict[str, list[dict[str, str]]]:
    prepare()
    assert _state is not None
    store, options, namespace = _state
    started = time.perf_counter()
    report = archive_records(records, store, options, typed=typed)
    write_latency_ms = (time.perf_counter() - started) * 1000
    request_id = getattr(context, "aws_request_id", None)
    if namespace is not None:
        _emit_metrics(report, write_latency_ms, namespace, context, request_id)
    failures = batch_item_failures(records, report.failed_positions)
    log.info(
        "invocation summary",
        extra={
            "received": report.received,
            "archived": report.archived,
            "dead_lettered": report.dead_lettered,
            "failed": len(report.failed_positions),
            "reported_failures": len(failures),
            "files": len(report.files),
            "bytes": report.bytes_written,
            "duration_ms": round(write_latency_ms, 1),
            "request_id": request_id,
        },
    )
    return {"batchItemFailures": failures}


def _emit_metrics(
    report: ArchiveReport,
    write_latency_ms: float,
    namespace: str,
    context: Any,
    request_id: str | None,
) -> None:
    """One EMF line on stdout, where Lambda's log capture hands it to CloudWatch."""
    function = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    line = emf_line(
        report,
        write_latency_ms=write_latency_ms,
        namespace=namespace,
        dimensions={"FunctionName": function} if function else None,
        properties={"RequestId": request_id} if request_id else None,
        clock=clock,
    )
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def reset() -> None:
    """Forget the cached settings and store (tests change the environment between runs)."""
    global _state
    _state = None
