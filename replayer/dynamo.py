"""Writing to a DynamoDB table: puts and deletes in, acknowledged writes out.

``TableWriter`` sends BatchWriteItem requests of at most 25 distinct items,
retries ``UnprocessedItems`` and throttling with exponential backoff, paces
itself to a write-capacity budget, and, for restores beside live traffic,
writes one item at a time with a condition that never overwrites a newer item.
Images arrive as Lambda-form DynamoDB JSON (binary as base64 text) and are
converted to what the low-level client sends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from archiver.archive.aws import Failure, backoff, classify, describe, error_code
from archiver.archive.dynamojson import to_client, to_client_item
from replayer.lanes import RateLimiter

__all__ = ["Op", "RestoreError", "TableWriter"]

log = logging.getLogger(__name__)

BATCH_LIMIT = 25
BACKOFF_FIRST = 0.1  # seconds before the second try, before jitter
BACKOFF_MAX = 20.0  # seconds between tries, at most, before jitter


class RestoreError(Exception):
    """An expected failure that stops a restore with a message, before or while writing."""


@dataclass(frozen=True, slots=True)
class Op:
    """One write: a put of ``item`` or a delete of ``key`` (typed, Lambda form)."""

    kind: str  # "put" | "delete"
    key: dict[str, Any]
    item: dict[str, Any] | None = None
    version: dict[str, Any] | None = None  # the condition attribute's value in the change, if any
    size: int = 1


class TableWriter:
    """Writes to one table through a boto3 DynamoDB client."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        max_wcu: float | None = None,
        condition_attribute: str | None = None,
        max_attempts: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table
        self.limiter = RateLimiter(max_wcu)
        self.condition_attribute = condition_attribute
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.skipped = 0  # conditional writes that found a newer item, over all calls
        self._lock = threading.Lock()

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One call, tried again while it fails transiently (throttling, 5xx, the network)."""
        from botocore.exceptions import BotoCoreError, ClientError

        attempt = 0
        while True:
            try:
                return getattr(self.client, method)(**kwargs)
            except (ClientError, BotoCoreError) as err:
                if error_code(err) == "ConditionalCheckFailedException":
                    raise  # the caller's answer, not a failure
                kind = classify(err)
                if kind is Failure.NOT_FOUND:
                    raise RestoreError(f"table {self.table} does not exist") from err
                if not kind.transient or attempt + 1 >= self.max_attempts:
                    raise RestoreError(f"{method} on {self.table} failed: {describe(err)}") from err
            attempt += 1
            self.sleep(backoff(attempt, BACKOFF_FIRST, BACKOFF_MAX))

    def write(self, ops: Sequence[Op]) -> int:
        """Apply ``ops``: up to 25 distinct keys per request, unless writes are conditional.

        Returns how many of them were skipped because the table held a newer item (lanes share
        one writer, so each caller counts its own skips).
        """
        if self.condition_attribute:
            skipped = sum(not self._conditional(op) for op in ops)
            with self._lock:
                self.skipped += skipped
            return skipped
        for start in range(0, len(ops), BATCH_LIMIT):
            self._batch(ops[start : start + BATCH_LIMIT])
        return 0

    def _batch(self, ops: Sequence[Op]) -> None:
        self.limiter.acquire(sum(op.size for op in ops))
        requests = [
            {"PutRequest": {"Item": to_client_item(op.item or {})}}
            if op.kind == "put"
            else {"DeleteRequest": {"Key": to_client_item(op.key)}}
            for op in ops
        ]
        pending = {self.table: requests}
        attempt = 0
        while pending:
            response = self._call("batch_write_item", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if pending:
                attempt += 1
                if attempt >= self.max_attempts:
                    left = sum(len(v) for v in pending.values())
                    raise RestoreError(
                        f"{left} writes to {self.table} still unprocessed after "
                        f"{attempt} attempts (throttled)"
                    )
                self.sleep(backoff(attempt, BACKOFF_FIRST, BACKOFF_MAX))

    def _conditional(self, op: Op) -> bool:
        """One conditional write; False when the table held a newer item."""
        from botocore.exceptions import ClientError

        self.limiter.acquire(op.size)
        attr = self.condition_attribute
        names = {"#v": attr}
        if op.version is None:
            condition, values = "attribute_not_exists(#v)", None
        else:
            condition, values = (
                "attribute_not_exists(#v) OR #v <= :v",
                {":v": to_client(op.version)},
            )
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            arguments["ExpressionAttributeValues"] = values
        try:
            if op.kind == "put":
                self._call("put_item", Item=to_client_item(op.item or {}), **arguments)
            else:
                self._call("delete_item", Key=to_client_item(op.key), **arguments)
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def key_names(self) -> list[str]:
        """The table's key attribute names (hash first); RestoreError when it does not exist."""
        return list(self.key_schema())

    def key_schema(self) -> dict[str, str]:
        """The table's key attributes and their types (S, N, B), hash first; RestoreError when it
        does not exist."""
        table = self._call("describe_table", TableName=self.table)["Table"]
        types = {
            d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])
        }
        schema = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return {k["AttributeName"]: types.get(k["AttributeName"], "?") for k in schema}

    def is_empty(self) -> bool:
        return not self._call("scan", TableName=self.table, Limit=1, Select="COUNT").get("Count", 0)


def write_units(size: int) -> int:
    """Write capacity units of an item of ``size`` bytes (1 WCU per KB, rounded up)."""
    return max(1, math.ceil(size / 1024))
