"""A straightforward hand-written archiving Lambda: the baseline the benchmarks compare against.

What a team writes without this project: boto3's TypeDeserializer over Keys,
NewImage and OldImage, ``json.dumps`` of the result, ``pa.Table.from_pylist``
and a zstd ``pq.write_table``. ``handler`` is its Lambda entry point, run under
AWS's runtime interface client (``python -m awslambdaric bench.handwritten.handler``)
by bench/runtime.py; ``archive`` is the same work on a list of records.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Any

__all__ = ["archive", "handler"]


def archive(records: list[dict[str, Any]], path: str) -> int:
    """What a hand-written archiving Lambda does: deserialize, json.dumps, Arrow, Parquet."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq
    from boto3.dynamodb.types import Binary, TypeDeserializer

    class LambdaDeserializer(TypeDeserializer):  # type: ignore[misc]
        """Lambda delivers B and BS as base64 text; TypeDeserializer expects bytes."""

        def _deserialize_b(self, value: str) -> Any:
            return super()._deserialize_b(base64.b64decode(value))

    deserializer = LambdaDeserializer()

    def default(value: Any) -> Any:
        if isinstance(value, Binary):
            return base64.b64encode(value.value).decode()
        return str(value)

    rows = []
    for record in records:
        ddb = record["dynamodb"]
        row = {
            "event_id": record["eventID"],
            "event_name": record["eventName"],
            "sequence_number": ddb["SequenceNumber"],
            "change_time": datetime.fromtimestamp(ddb["ApproximateCreationDateTime"], UTC),
            "stream_arn": record.get("eventSourceARN"),
            "size_bytes": ddb.get("SizeBytes"),
        }
        for source in ("Keys", "NewImage", "OldImage"):
            image = ddb.get(source)
            row[source] = (
                None
                if image is None
                else json.dumps(
                    {name: deserializer.deserialize(value) for name, value in image.items()},
                    default=default,
                )
            )
        rows.append(row)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def handler(event: dict[str, Any], context: Any) -> dict[str, list[Any]]:
    """Archive the event's records into a Parquet file under $BASELINE_OUTPUT (a folder)."""
    folder = os.environ.get("BASELINE_OUTPUT") or tempfile.gettempdir()
    request = getattr(context, "aws_request_id", "local")
    archive(event["Records"], os.path.join(folder, f"{request}.parquet"))
    return {"batchItemFailures": []}
