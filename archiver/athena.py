"""Registering the archive's Athena table in Glue: an AthenaTable in, a Glue table out.

``apply_table`` creates the database when it is missing, then creates the
table or updates it in place (same name, new columns or projection), through
boto3's Glue client, which honours ``AWS_ENDPOINT_URL_GLUE`` and the rest of
the SDK's configuration. SDK errors become :class:`GlueError` naming the
operation and the table.
"""

from __future__ import annotations

from typing import Any, Literal

from archiver.archive.athena import AthenaTable
from archiver.archive.aws import Failure, classify, describe
from archiver.archive.errors import ArchiveError

__all__ = ["GlueError", "apply_table"]


class GlueError(ArchiveError):
    """The Glue Data Catalog refused or failed an operation."""


def _glue_client() -> Any:
    from botocore.config import Config

    from archiver.archive.aws import client

    return client("glue", config=Config(retries={"mode": "standard"}))


def _call(client: Any, operation: str, target: str, **kwargs: Any) -> Any:
    """One Glue call; LookupError when the database or table is not there, else GlueError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError) as err:
        # botocore has already retried what can pass (throttling, 5xx): what is left ends the call.
        if classify(err) is Failure.NOT_FOUND:  # EntityNotFoundException
            raise LookupError(target) from err
        raise GlueError(f"glue {operation} {target}: {describe(err)}") from err


def apply_table(table: AthenaTable, client: Any = None) -> Literal["created", "updated"]:
    """Create or update ``table`` in the Glue Data Catalog (and its database when missing).

    Returns
    -------
    str
        ``"created"`` or ``"updated"``.

    Raises
    ------
    GlueError
        When Glue refuses or fails a call (permissions, validation, throttling after retries).
    """
    glue = client or _glue_client()
    target = f"{table.database}.{table.name}"
    try:
        _call(glue, "get_database", table.database, Name=table.database)
    except LookupError:
        _call(
            glue,
            "create_database",
            table.database,
            DatabaseInput={
                "Name": table.database,
                "Description": "DynamoDB Streams change archives (dynamodb-stream-archive)",
            },
        )
    table_input = table.glue_table_input()
    try:
        _call(glue, "get_table", target, DatabaseName=table.database, Name=table.name)
    except LookupError:
        _call(glue, "create_table", target, DatabaseName=table.database, TableInput=table_input)
        return "created"
    _call(glue, "update_table", target, DatabaseName=table.database, TableInput=table_input)
    return "updated"
