"""The AWS region as a container gets it: ``AWS_REGION`` alone, or nothing at all.

Each command runs in a subprocess whose environment has the credentials and the
local endpoints (SeaweedFS for S3, DynamoDB Local, the local Lambda Invoke API,
moto for Glue) and, for the region, only ``AWS_REGION`` or nothing (no
``AWS_DEFAULT_REGION``, no profile), the way the README's ``docker run -e
AWS_REGION`` examples start them. botocore alone reads no ``AWS_REGION``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.archive.store import open_store
from archiver.write import archive_records
from devkit.traffic import TableHistory

ROOT = Path(__file__).resolve().parents[2]
TABLE = "orders"


def environment(**region: str) -> dict[str, str]:
    """This test's AWS environment (credentials, endpoints, no profile files) with ``region``
    as its only region setting."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("AWS_") and name not in ("AWS_REGION", "AWS_DEFAULT_REGION")
    }
    assert env["AWS_CONFIG_FILE"] == os.devnull  # no profile to take a region from
    return {"PATH": os.environ["PATH"], **env, **region}


def command(*args: str, **region: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=environment(**region),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def aws(
    s3_archive: str, dynamodb_tables: Any, lambda_server: Any, glue_endpoint: str
) -> dict[str, Any]:
    """An archive of 40 changes on S3, an empty target table, a consumer, and what each
    command takes to reach them."""
    records = TableHistory(TABLE, seed=3, items=10).changes(40)
    assert archive_records(records, open_store(s3_archive, s3="boto3")).ok
    received: list[str] = []
    lambda_server.functions["consumer"] = lambda event, _: received.extend(
        r["eventID"] for r in event["Records"]
    )
    database = f"region_{uuid.uuid4().hex[:12]}"
    into = dynamodb_tables.create(("pk", "S"), ("sk", "N"))
    return {
        "archive": s3_archive,
        "records": records,
        "received": received,
        "database": database,
        "tables": dynamodb_tables,
        "commands": {
            "restore": ("replayer", "restore", "--archive", s3_archive, "--table", TABLE,
                        "--into", into, "--until", "2100-01-01"),
            "redrive": ("replayer", "redrive", "--archive", s3_archive, "--table", TABLE,
                        "--function", "consumer"),
            "athena-ddl": ("archiver", "athena-ddl", "--archive", s3_archive,
                           "--database", database, "--apply"),
            "run": ("archiver", "run", "--archive", s3_archive, "--table", "no-such-table"),
        },
        "into": into,
    }  # fmt: skip


def test_every_command_finds_the_region_in_aws_region_alone(aws: dict[str, Any]) -> None:
    commands: dict[str, tuple[str, ...]] = aws["commands"]
    # restore: DynamoDB (and s3fs reading the archive)
    done = command(*commands["restore"], AWS_REGION="us-east-1")
    assert done.returncode == 0, done.stderr
    assert aws["tables"].scan(aws["into"])
    # redrive: Lambda
    done = command(*commands["redrive"], AWS_REGION="us-east-1")
    assert done.returncode == 0, done.stderr
    assert sorted(aws["received"]) == sorted({r["eventID"] for r in aws["records"]})
    # athena-ddl --apply: S3 through boto3, then Glue
    done = command(*commands["athena-ddl"], AWS_REGION="us-east-1")
    assert done.returncode == 0, done.stderr
    table = boto3.client("glue").get_table(DatabaseName=aws["database"], Name="changes")
    assert table["Table"]["Parameters"]["projection.table_name.values"] == TABLE
    # run: DynamoDB's DescribeTable is reached (and answers that there is no such table)
    done = command(*commands["run"], AWS_REGION="us-east-1")
    assert done.returncode == 1
    assert "cannot describe table no-such-table: ResourceNotFoundException" in done.stderr


@pytest.mark.parametrize("name", ["restore", "redrive", "athena-ddl", "run"])
def test_without_a_region_a_command_says_what_to_set(aws: dict[str, Any], name: str) -> None:
    done = command(*aws["commands"][name])
    # one line, the README's exit code for a failure (as for missing credentials)
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()
    program = aws["commands"][name][0]
    assert line.startswith(f"{program}: error: no AWS region is set for "), line
    assert "set AWS_REGION" in line and "Traceback" not in done.stderr
    # and nothing was done
    assert aws["received"] == [] and aws["tables"].scan(aws["into"]) == []


def test_the_region_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from archiver.archive.aws import client, region

    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert region() == "ap-south-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert region() == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    assert region() == "sa-east-1"
    assert client("dynamodb").meta.region_name == "sa-east-1"


def test_s3_needs_no_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from archiver.archive.aws import client, region
    from archiver.archive.errors import MissingRegionError

    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert region() is None
    assert client("s3").meta.region_name in (None, "us-east-1", "aws-global")
    with pytest.raises(MissingRegionError, match="AWS_REGION"):
        client("lambda")
