"""CloudWatch Embedded Metric Format lines, checked against the EMF specification.

The JSON Schema below is the one the specification publishes, plus what its
prose requires and the schema leaves out: every metric named in a directive
is a numeric member of the root, every dimension key a string member.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from archiver import lambda_handler
from archiver.lambda_handler import handler
from archiver.metrics import DEFAULT_NAMESPACE, Metric, emf_document, emf_line, invocation_metrics
from archiver.write import ArchiveReport
from devkit.traffic import TableHistory

LambdaEnv = Callable[..., None]
UNIT_PATTERN = (
    "^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|"
    "Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes\\/Second|Kilobytes\\/Second|"
    "Megabytes\\/Second|Gigabytes\\/Second|Terabytes\\/Second|Bits\\/Second|Kilobits\\/Second|"
    "Megabits\\/Second|Gigabits\\/Second|Terabits\\/Second|Count\\/Second|None)$"
)
NAME = {"type": "string", "minLength": 1, "maxLength": 255}
EMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer"},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": NAME,
                            "Dimensions": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "array",
                                    "minItems": 0,
                                    "maxItems": 9,
                                    "items": NAME,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": NAME,
                                        "Unit": {"type": "string", "pattern": UNIT_PATTERN},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
NOW = 1_795_003_600.25  # epoch seconds
NOW_MS = 1_795_003_600_250


def validate(document: dict[str, Any]) -> None:
    """Check one EMF document against the schema and the specification's prose."""
    jsonschema.validate(document, EMF_SCHEMA)
    stamp = document["_aws"]["Timestamp"]
    assert isinstance(stamp, int) and 10**12 <= stamp < 10**14  # milliseconds, not seconds
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document.get(key), str), f"dimension {key} is not a string member"
        for definition in directive["Metrics"]:
            value = document.get(definition["Name"])
            assert isinstance(value, int | float) and not isinstance(value, bool), definition


def report(**fields: Any) -> ArchiveReport:
    values: dict[str, Any] = {
        "received": 120,
        "archived": 110,
        "dead_lettered": 4,
        "files": ["a", "b", "c"],
        "bytes_written": 98_765,
        "failed_positions": {117, 118, 119, 116, 115, 114},
        "oldest_change_us": 1_795_000_000_123_456,
    }
    values.update(fields)
    return ArchiveReport(**values)


def test_invocation_metrics_values() -> None:
    metrics = invocation_metrics(report(), write_latency_ms=12.3456, now_ms=NOW_MS)
    assert {m.name: (m.value, m.unit) for m in metrics} == {
        "RecordsReceived": (120, "Count"),
        "RecordsArchived": (110, "Count"),
        "RecordsDeadLettered": (4, "Count"),
        "RecordsFailed": (6, "Count"),
        "BytesWritten": (98_765, "Bytes"),
        "FilesWritten": (3, "Count"),
        "WriteLatency": (12.346, "Milliseconds"),
        "IteratorAgeMs": (NOW_MS - 1_795_000_000_123, "Milliseconds"),
    }


def test_no_iterator_age_without_a_change_time_and_never_negative() -> None:
    names = [
        m.name
        for m in invocation_metrics(
            report(oldest_change_us=None), write_latency_ms=1, now_ms=NOW_MS
        )
    ]
    assert "IteratorAgeMs" not in names
    future = report(oldest_change_us=(NOW_MS + 5_000) * 1000)  # clocks disagree
    [age] = [
        m
        for m in invocation_metrics(future, write_latency_ms=1, now_ms=NOW_MS)
        if m.name == "IteratorAgeMs"
    ]
    assert age.value == 0


def test_emf_line_is_one_valid_document() -> None:
    line = emf_line(
        report(),
        write_latency_ms=5.0,
        dimensions={"FunctionName": "archiver"},
        properties={"RequestId": "r-1"},
        clock=lambda: NOW,
    )
    assert "\n" not in line
    document = json.loads(line)
    validate(document)
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert document["_aws"]["Timestamp"] == NOW_MS
    assert directive["Namespace"] == DEFAULT_NAMESPACE
    assert directive["Dimensions"] == [["FunctionName"]]
    assert document["FunctionName"] == "archiver"
    assert document["RequestId"] == "r-1"
    assert document["IteratorAgeMs"] == NOW_MS - 1_795_000_000_123
    assert len(directive["Metrics"]) == 8


def test_without_a_dimension_the_dimension_set_is_empty() -> None:
    document = json.loads(emf_line(report(), write_latency_ms=5.0, clock=lambda: NOW))
    validate(document)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]


def test_the_validator_catches_what_the_specification_forbids() -> None:
    good = emf_document(
        [Metric("A", "Count", 1)], dimensions={"Table": "orders"}, timestamp_ms=NOW_MS
    )
    validate(good)
    broken: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d.pop("A"),  # a metric without a value
        lambda d: d.__setitem__("A", "1"),  # a non-numeric value
        lambda d: d.pop("Table"),  # a dimension without a member
        lambda d: d["_aws"].__setitem__("Timestamp", NOW),  # seconds, and not an integer
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].__setitem__("Unit", "Rows"),
    ]
    for breaks in broken:
        document = json.loads(json.dumps(good))
        breaks(document)
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            validate(document)


def test_emf_document_refuses_too_many_metrics_and_unknown_units() -> None:
    with pytest.raises(ValueError, match="at most 100"):
        emf_document([Metric(f"M{i}", "Count", i) for i in range(101)], timestamp_ms=NOW_MS)
    with pytest.raises(ValueError, match="'Rows' is not a CloudWatch unit"):
        emf_document([Metric("M", "Rows", 1)], timestamp_ms=NOW_MS)
    validate(emf_document([Metric(f"M{i}", "Count", i) for i in range(100)], timestamp_ms=NOW_MS))


# --- the Lambda handler prints one line per invocation ---------------------------------------

CONTEXT = SimpleNamespace(function_name="dynamodb-archiver", aws_request_id="req-42")


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lambda_handler, "clock", lambda: NOW)


def test_handler_prints_one_emf_line_per_invocation(
    local_archive: str,
    lambda_env: LambdaEnv,
    fixed_clock: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch of 60 changes and one record that cannot be decoded
    lambda_env(local_archive)
    records = TableHistory("orders", seed=9, seconds_per_change=120).changes(60)
    poison = {"eventID": "p1", "eventName": "UPSERT", "eventSource": "aws:dynamodb"}
    capsys.readouterr()
    # When it is invoked
    assert handler({"Records": [*records, poison]}, CONTEXT)["batchItemFailures"] == []
    # Then it printed exactly one EMF line on stdout
    [first] = emf_lines(capsys.readouterr().out)
    validate(first)
    assert first["FunctionName"] == "dynamodb-archiver"
    assert first["RequestId"] == "req-42"
    assert first["_aws"]["Timestamp"] == NOW_MS
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == DEFAULT_NAMESPACE
    # with the counts of what happened, measured on disk
    files = [p for p in Path(local_archive).rglob("*") if p.is_file()]
    data = [p for p in files if p.suffix == ".parquet"]
    dead = [p for p in files if p.suffix == ".jsonl"]
    assert (first["RecordsReceived"], first["RecordsArchived"]) == (61, 60)
    assert (first["RecordsDeadLettered"], first["RecordsFailed"]) == (1, 0)
    assert first["FilesWritten"] == len(data) + len(dead) > 2  # the batch spans hours
    assert first["BytesWritten"] == sum(p.stat().st_size for p in files)
    assert first["WriteLatency"] >= 0
    oldest_ms = min(r["dynamodb"]["ApproximateCreationDateTime"] for r in records) * 1000
    assert first["IteratorAgeMs"] == NOW_MS - oldest_ms
    # and the next invocation prints its own line, about its own batch
    assert handler({"Records": records[:10]}, CONTEXT)["batchItemFailures"] == []
    [second] = emf_lines(capsys.readouterr().out)
    validate(second)
    assert second["RecordsReceived"] == second["RecordsArchived"] == 10


def test_handler_metrics_can_be_turned_off(
    local_archive: str, lambda_env: LambdaEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_env(local_archive, metrics="false")
    capsys.readouterr()
    result = handler({"Records": TableHistory("orders").changes(5)}, CONTEXT)
    assert result["batchItemFailures"] == []
    assert emf_lines(capsys.readouterr().out) == []


def test_handler_metrics_namespace_is_configurable(
    local_archive: str,
    lambda_env: LambdaEnv,
    fixed_clock: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without a context, the function name comes from Lambda's own environment variable
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "from-env")
    lambda_env(local_archive, metrics_namespace="Team/Archive")
    capsys.readouterr()
    handler({"Records": TableHistory("orders").changes(5)}, None)
    [document] = emf_lines(capsys.readouterr().out)
    validate(document)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Team/Archive"
    assert document["FunctionName"] == "from-env"
    assert "RequestId" not in document


def test_handler_counts_records_it_could_not_write(
    lambda_env: LambdaEnv,
    closed_endpoint: str,
    fixed_clock: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an S3 endpoint that refuses connections
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", closed_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lambda_env("s3://archive-bucket/changes")
    records = TableHistory("orders", seed=4).changes(30)
    capsys.readouterr()
    # When a batch arrives, nothing is acknowledged
    assert len(handler({"Records": records}, CONTEXT)["batchItemFailures"]) == 30
    # and the metrics say so
    [document] = emf_lines(capsys.readouterr().out)
    validate(document)
    assert (document["RecordsFailed"], document["RecordsArchived"]) == (30, 0)
    assert (document["FilesWritten"], document["BytesWritten"]) == (0, 0)
