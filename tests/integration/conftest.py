"""Integration fixtures: moto's server for the AWS APIs no real local server offers (Glue);
tables with streams on DynamoDB Local and the history their stream holds; a proxy in front of
DynamoDB Local's Streams API that records what it hands out and fails calls on demand."""

from __future__ import annotations

import logging
import random
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tests.proxies import FlippingProxy


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on a free port of 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def glue_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3's Glue client (only) at moto, through the standard endpoint variable."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", moto_endpoint)
    return moto_endpoint


# -- the poller's tests: tables with streams, their change history, a recording proxy ---------


class StreamTables:
    """Tables with a stream on DynamoDB Local, varied writes, and the history their stream holds."""

    def __init__(self, local: Any) -> None:
        self.local = local
        self.client = local.client()
        self.streams = local.client("dynamodbstreams")
        # The body of each GetRecords answer, as DynamoDB Local sent it (botocore parses it too).
        self.bodies: list[bytes] = []
        self.streams.meta.events.register(
            "before-parse.dynamodb-streams.GetRecords",
            lambda response_dict, **_: self.bodies.append(response_dict["body"]),
        )

    def create(self, *, stream: bool = True) -> tuple[str, str]:
        """A table keyed by (pk S, sk N) with a NEW_AND_OLD_IMAGES stream: (name, stream ARN)."""
        name = f"poll-{uuid.uuid4().hex[:12]}"
        arguments: dict[str, Any] = {}
        if stream:
            arguments["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            }
        description = self.client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
            **arguments,
        )["TableDescription"]
        return name, description.get("LatestStreamArn", "")

    def write(self, table: str, rng: random.Random, count: int, *, items: int = 12) -> None:
        """``count`` random writes: puts (new, overwriting), updates, deletes, some of them no-ops.

        Values cover every attribute type, numbers DynamoDB normalises (``1.50``,
        ``-0.0100``, ``1E+2``), 38-digit numbers, binary, sets, nesting, unicode,
        empty strings, binaries and lists.
        """
        for _ in range(count):
            n = rng.randrange(items)
            key = {"pk": {"S": f"item-{n}"}, "sk": {"N": str(n % 3)}}
            roll = rng.random()
            if roll < 0.45:
                self.client.put_item(TableName=table, Item={**key, **self._attributes(rng)})
            elif roll < 0.8:
                self.client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET #p = :p, #t = :t, #b = :b ADD #h :one REMOVE #g",
                    ExpressionAttributeNames={
                        "#p": "price",
                        "#t": "tags",
                        "#b": "blob",
                        "#h": "hits",
                        "#g": "gone",
                    },
                    ExpressionAttributeValues={
                        ":p": {"N": rng.choice(["1.50", "2.250", "-0.0100", "1E+2", "0"])},
                        ":t": {"SS": rng.sample(["red", "green", "blue", "ünï", "😀"], 2)},
                        ":b": {"B": rng.randbytes(rng.randrange(1, 9))},
                        ":one": {"N": "1"},
                    },
                )
            else:
                self.client.delete_item(TableName=table, Key=key)

    @staticmethod
    def _attributes(rng: random.Random) -> dict[str, Any]:
        digits = "".join(rng.choice("0123456789") for _ in range(37))
        return {
            "status": {"S": rng.choice(["new", "paid", "shipped", "ünïcødé ✓", ""])},
            "amount": {"N": rng.choice(["1.50", "10.00", "0.10", "-3.0", "1E+2", f"9{digits}"])},
            "ok": {"BOOL": rng.random() < 0.5},
            "nothing": {"NULL": True},
            "blob": {"B": rng.randbytes(rng.randrange(0, 16))},
            "codes": {"BS": [b"\x00\x01", bytes([rng.randrange(2, 256)])]},
            "sizes": {"NS": ["1.50", str(rng.randrange(2, 99))]},
            "tags": {"SS": ["a", rng.choice(["b", "c", "d"])]},
            # No empty map: DynamoDB Local 3.x streams send it as {} without its "M"
            # (awslabs/amazon-dynamodb-local-samples#37), which the archiver rightly dead-letters.
            "meta": {"M": {"depth": {"L": [{"N": "1.0"}, {"L": []}, {"M": {"s": {"S": "x"}}}]}}},
            "gone": {"S": "removed by the next update"},
        }

    def history(self, stream_arn: str) -> list[dict[str, Any]]:
        """Every record the stream holds, parents' shards first, in the Lambda event shape: the
        JSON GetRecords returned, with the ``eventSourceARN`` Lambda adds."""
        return [
            {**record, "eventSourceARN": stream_arn}
            for body in self.pages(stream_arn)
            for record in orjson.loads(body)["Records"]
        ]

    def pages(self, stream_arn: str) -> list[bytes]:
        """The body of every GetRecords answer that reads the whole stream, parents first."""
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            description = self.streams.describe_stream(StreamArn=stream_arn, **start)[
                "StreamDescription"
            ]
            shards += description["Shards"]
            if "LastEvaluatedShardId" not in description:
                break
            start = {"ExclusiveStartShardId": description["LastEvaluatedShardId"]}
        listed = {s["ShardId"] for s in shards}
        done: set[str] = set()
        pages: list[bytes] = []
        while len(done) < len(shards):
            for shard in shards:
                parent = shard.get("ParentShardId")
                if shard["ShardId"] in done or (parent in listed and parent not in done):
                    continue
                iterator = self.streams.get_shard_iterator(
                    StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                ).get("ShardIterator")
                while iterator:
                    page = self.streams.get_records(ShardIterator=iterator)
                    pages.append(self.bodies[-1])
                    iterator = page.get("NextShardIterator") if page["Records"] else None
                done.add(shard["ShardId"])
        return pages

    def scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"TableName": table}
        while True:
            page = self.client.scan(**arguments)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def stream_tables(dynamodb_tables: Any, dynamodb_local: Any) -> StreamTables:
    """Tables with streams on DynamoDB Local, reached through ``AWS_ENDPOINT_URL_DYNAMODB*``."""
    return StreamTables(dynamodb_local)


class StreamsProxy:
    """A forwarding HTTP proxy in front of DynamoDB Local that notes every sequence number that
    GetRecords hands out, so a test knows what a poller in another process has read. It counts
    GetRecords requests (with the iterator each asked for and the status answered) and answers
    the next ones with scripted failures instead of forwarding them (``fail_get_records``)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.delivered: list[str] = []
        self.get_records: list[tuple[str, int]] = []  # (ShardIterator asked for, status answered)
        self.failures: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reading = self.headers.get("X-Amz-Target", "").endswith(".GetRecords")
                iterator = str(orjson.loads(body).get("ShardIterator")) if reading else ""
                if reading:
                    with proxy._lock:
                        failure = proxy.failures.pop(0) if proxy.failures else None
                        if failure is not None:
                            proxy.get_records.append((iterator, failure[0]))
                    if failure is not None:
                        self._answer(failure[0], failure[1], {})
                        return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("content-length", "connection", "accept-encoding")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload, reply = response.status, response.read(), response.headers
                except urllib.error.HTTPError as err:
                    status, payload, reply = err.code, err.read(), err.headers
                if reading:
                    sequences = [
                        r["dynamodb"]["SequenceNumber"]
                        for r in (orjson.loads(payload).get("Records", []) if status == 200 else [])
                    ]
                    with proxy._lock:
                        proxy.delivered += sequences
                        proxy.get_records.append((iterator, status))
                self._answer(status, payload, reply)

            def _answer(self, status: int, payload: bytes, reply: Any) -> None:
                self.send_response(status)
                for name in ("Content-Type", "x-amz-crc32", "x-amzn-RequestId"):
                    if reply.get(name):
                        self.send_header(name, reply[name])
                if not reply:
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail_get_records(self, status: int, body: bytes, times: int = 1) -> None:
        """Answer the next ``times`` GetRecords requests with ``status`` and ``body``."""
        with self._lock:
            self.failures += [(status, body)] * times

    def has_delivered(self, sequence: str) -> bool:
        with self._lock:
            return sequence in self.delivered

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def streams_proxy(
    stream_tables: StreamTables, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StreamsProxy]:
    """A recording proxy to DynamoDB Local's Streams API as ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``,
    for subprocesses started with ``os.environ`` (the test's own clients go direct)."""
    proxy = StreamsProxy(stream_tables.local.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", proxy.endpoint)
    yield proxy
    proxy.close()


# A proxy that flips one byte of chosen bodies between the S3 clients and SeaweedFS.
@pytest.fixture
def flipping(
    s3_archive: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FlippingProxy, str]]:
    with FlippingProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        yield proxy, s3_archive
