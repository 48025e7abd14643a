"""Realistic DynamoDB stream traffic, generated deterministically from a seed.

``TableHistory`` applies random INSERT/MODIFY/REMOVE changes (TTL deletions
among them) to a set of items and emits each as the stream record Lambda
would deliver, with NEW_AND_OLD_IMAGES; it also keeps the table's state so
tests can compare against it.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

ACCOUNT = "123456789012"
REGION = "us-east-1"
STATUSES = ["pending", "paid", "packed", "shipped", "delivered", "refunded"]


def stream_arn(table: str, label: str = "2026-11-27T00:00:00.000") -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/{label}"


def key_of(image: dict[str, Any], key_names: tuple[str, ...]) -> dict[str, Any]:
    return {name: image[name] for name in key_names}


class TableHistory:
    """A table whose changes become stream records."""

    def __init__(
        self,
        table: str,
        *,
        seed: int = 0,
        start: float = 1_795_000_000.0,
        items: int = 100,
        key_names: tuple[str, ...] = ("pk", "sk"),
        view_type: str = "NEW_AND_OLD_IMAGES",
        seconds_per_change: float = 1.0,
    ) -> None:
        self.table = table
        self.rng = random.Random(seed)
        self.clock = start
        self.items = items
        self.key_names = key_names
        self.view_type = view_type
        self.seconds_per_change = seconds_per_change
        self.sequence = 10**20 + self.rng.randrange(10**6)
        self.state: dict[str, dict[str, Any]] = {}
        self.arn = stream_arn(table)

    def _image(self, key: dict[str, Any], version: int) -> dict[str, Any]:
        rng = self.rng
        amount = f"{rng.randrange(1, 10**6)}.{rng.randrange(100):02d}"
        image = dict(key)
        image.update(
            {
                "status": {"S": rng.choice(STATUSES)},
                "customer_id": {"S": f"cust-{rng.randrange(500):04d}"},
                "email": {"S": f"user{rng.randrange(10**5)}@example.com"},
                "amount": {"N": amount},
                "qty": {"N": str(rng.randrange(1, 50))},
                "version": {"N": str(version)},
                "ratio": {"N": "0." + "".join(rng.choice("0123456789") for _ in range(33)) + "7"},
                "gift": {"BOOL": rng.random() < 0.2},
                "note": {
                    "S": "".join(rng.choice("abcdefghij klmnopqrstuvwxyzé") for _ in range(120))
                },
                "tags": {
                    "SS": sorted(
                        {
                            rng.choice(["red", "blue", "green", "sale", "vip", "new"])
                            for _ in range(3)
                        }
                    )
                },
                "scores": {"NS": sorted({str(rng.randrange(100)) for _ in range(3)})},
                "checksum": {"B": base64.b64encode(rng.randbytes(48)).decode()},
                "address": {
                    "M": {
                        "street": {"S": f"{rng.randrange(1, 999)} Main St"},
                        "zip": {"N": str(rng.randrange(10000, 99999))},
                        "geo": {
                            "L": [
                                {"N": f"{rng.uniform(-90, 90):.6f}"},
                                {"N": f"{rng.uniform(-180, 180):.6f}"},
                            ]
                        },
                        "verified": {"BOOL": rng.random() < 0.5},
                        "apartment": {"NULL": True},
                    }
                },
                "lines": {
                    "L": [
                        {
                            "M": {
                                "sku": {"S": f"SKU-{rng.randrange(10**4)}"},
                                "qty": {"N": str(rng.randrange(1, 9))},
                                "price": {"N": f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}"},
                            }
                        }
                        for _ in range(rng.randrange(1, 5))
                    ]
                },
                "meta": {
                    "M": {
                        "history": {"L": [{"S": "created"}, {"N": str(version)}]},
                        "empty": {"M": {}},
                        "blank": {"S": ""},
                    }
                },
            }
        )
        return image

    def _key(self, index: int) -> dict[str, Any]:
        key = {self.key_names[0]: {"S": f"order#{index:05d}"}}
        if len(self.key_names) > 1:
            key[self.key_names[1]] = {"N": str(index % 7)}
        return key

    def change(self) -> dict[str, Any]:
        """Make one change and return its stream record."""
        rng = self.rng
        index = rng.randrange(self.items)
        key = self._key(index)
        ident = orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()
        old = self.state.get(ident)
        identity = None
        if old is None:
            name, new = "INSERT", self._image(key, 1)
        elif rng.random() < 0.15:
            name, new = "REMOVE", None
            if rng.random() < 0.3:
                identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        else:
            name, new = "MODIFY", self._image(key, int(old["version"]["N"]) + 1)
        if new is None:
            self.state.pop(ident)
        else:
            self.state[ident] = new
        self.clock += self.seconds_per_change * rng.uniform(0.5, 1.5)
        self.sequence += rng.randrange(1, 1000)
        dynamodb: dict[str, Any] = {
            "ApproximateCreationDateTime": float(int(self.clock)),
            "Keys": key,
        }
        if new is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            dynamodb["NewImage"] = new
        if old is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            dynamodb["OldImage"] = old
        dynamodb["SequenceNumber"] = str(self.sequence)
        dynamodb["SizeBytes"] = len(orjson.dumps(new or old or key))
        dynamodb["StreamViewType"] = self.view_type
        record: dict[str, Any] = {
            "eventID": uuid.UUID(int=rng.getrandbits(128)).hex,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": dynamodb,
            "eventSourceARN": self.arn,
        }
        if identity is not None:
            record["userIdentity"] = identity
        return record

    def changes(self, count: int) -> list[dict[str, Any]]:
        return [self.change() for _ in range(count)]


def lambda_events(records: list[dict[str, Any]], batch_size: int = 100) -> Iterator[dict[str, Any]]:
    """The records as Lambda would deliver them, in batches."""
    for start in range(0, len(records), batch_size):
        yield {"Records": records[start : start + batch_size]}


def kinesis_record(
    change: dict[str, Any], sequence: int, *, precision: str = "MILLISECOND"
) -> dict[str, Any]:
    """One DynamoDB change as Lambda delivers it from a Kinesis data stream."""
    ddb = dict(change["dynamodb"])
    seconds = ddb.pop("ApproximateCreationDateTime")
    ddb.pop("SequenceNumber", None)
    ddb.pop("StreamViewType", None)
    factor = 1_000 if precision == "MILLISECOND" else 1_000_000
    ddb = {
        "ApproximateCreationDateTime": int(seconds * factor),
        **ddb,
        "ApproximateCreationDateTimePrecision": precision,
    }
    table = change["eventSourceARN"].split(":table/")[1].split("/")[0]
    inner = {
        "awsRegion": change["awsRegion"],
        "eventID": change["eventID"],
        "eventName": change["eventName"],
        "userIdentity": change.get("userIdentity"),
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": ddb,
        "eventSource": "aws:dynamodb",
    }
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "A1B2C3",
            "sequenceNumber": str(
                49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898
                + sequence
            ),
            "data": base64.b64encode(orjson.dumps(inner)).decode(),
            "approximateArrivalTimestamp": seconds + 0.5,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/archiver",
        "awsRegion": change["awsRegion"],
        "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{table}-changes",
    }


def orders_table(name: str, *, stream_view_type: str | None = None) -> dict[str, Any]:
    """``create_table`` arguments for a table keyed like TableHistory's (pk S, sk N)."""
    definition: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream_view_type:
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream_view_type,
        }
    return definition
