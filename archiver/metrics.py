"""CloudWatch Embedded Metric Format (EMF): an invocation's ArchiveReport in, one JSON log line out.

CloudWatch Logs turns a log line shaped like this into metrics, with no API
call and no extra latency; on Lambda, printing it to stdout is enough. See
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

    {"_aws": {"Timestamp": 1795000000000,
              "CloudWatchMetrics": [{"Namespace": "DynamoDBStreamArchive",
                                     "Dimensions": [["FunctionName"]],
                                     "Metrics": [{"Name": "RecordsArchived",
                                                  "Unit": "Count"}, ...]}]},
     "FunctionName": "archiver", "RecordsArchived": 100, ...}

The clock is a parameter, so tests control the timestamp and the iterator age.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from archiver.write import ArchiveReport

__all__ = ["DEFAULT_NAMESPACE", "UNITS", "Metric", "emf_document", "emf_line", "invocation_metrics"]

DEFAULT_NAMESPACE = "DynamoDBStreamArchive"
MAX_METRICS = 100  # per MetricDirective, by the specification
# CloudWatch's units (MetricDatum.Unit).
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    value: int | float


def invocation_metrics(
    report: ArchiveReport, *, write_latency_ms: float, now_ms: int
) -> list[Metric]:
    """The metrics of one invocation; IteratorAgeMs only when a record carried a change time."""
    metrics = [
        Metric("RecordsReceived", "Count", report.received),
        Metric("RecordsArchived", "Count", report.archived),
        Metric("RecordsDeadLettered", "Count", report.dead_lettered),
        Metric("RecordsFailed", "Count", len(report.failed_positions)),
        Metric("BytesWritten", "Bytes", report.bytes_written),
        Metric("FilesWritten", "Count", len(report.files)),
        Metric("WriteLatency", "Milliseconds", round(write_latency_ms, 3)),
    ]
    if report.oldest_change_us is not None:
        # How far behind the stream this batch is: now minus its oldest change (never negative,
        # whatever the clocks say).
        metrics.append(
            Metric(
                "IteratorAgeMs", "Milliseconds", max(0, now_ms - report.oldest_change_us // 1000)
            )
        )
    return metrics


def emf_document(
    metrics: Sequence[Metric],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    dimensions: Mapping[str, str] | None = None,
    timestamp_ms: int,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An EMF document: one metric directive, the dimensions as one set, values at the root.

    ``properties`` are extra root members (e.g. the request id), searchable in
    Logs Insights but not dimensions.
    """
    if len(metrics) > MAX_METRICS:
        raise ValueError(f"{len(metrics)} metrics in one EMF document; at most {MAX_METRICS}")
    for metric in metrics:
        if metric.unit not in UNITS:
            raise ValueError(f"metric {metric.name}: {metric.unit!r} is not a CloudWatch unit")
    dims = dict(dimensions or {})
    document: dict[str, Any] = dict(properties or {})
    document.update(dims)
    document.update({m.name: m.value for m in metrics})
    document["_aws"] = {
        "Timestamp": int(timestamp_ms),
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [sorted(dims)],
                "Metrics": [{"Name": m.name, "Unit": m.unit} for m in metrics],
            }
        ],
    }
    return document


def emf_line(
    report: ArchiveReport,
    *,
    write_latency_ms: float,
    namespace: str = DEFAULT_NAMESPACE,
    dimensions: Mapping[str, str] | None = None,
    properties: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """One invocation's EMF line (no newline), timestamped by ``clock`` (epoch seconds)."""
    now_ms = int(clock() * 1000)
    metrics = invocation_metrics(report, write_latency_ms=write_latency_ms, now_ms=now_ms)
    document = emf_document(
        metrics,
        namespace=namespace,
        dimensions=dimensions,
        timestamp_ms=now_ms,
        properties=properties,
    )
    return orjson.dumps(document).decode()
