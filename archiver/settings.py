"""The archiver's settings: ``ARCHIVER_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from archiver.archive.errors import FormatError
from archiver.archive.layout import validate_table_name
from archiver.archive.schema import PromotedColumn, parse_promoted_columns
from archiver.archive.store import sse_arguments
from archiver.metrics import DEFAULT_NAMESPACE

__all__ = ["ArchiverSettings", "SettingsError", "settings_from_environment"]


class ArchiverSettings(BaseSettings):
    """Settings of the Lambda sink and the ``archiver`` CLI."""

    model_config = SettingsConfigDict(env_prefix="ARCHIVER_", extra="ignore")

    archive_uri: str = Field(
        description="Where the archive lives: `s3://bucket/prefix` or a local folder.",
    )
    promoted_columns: str = Field(
        default="",
        description="Extra typed columns copied from item attributes, "
        "e.g. `customer_id:string,total=amount:decimal(18,2)` (types: string, bigint, double, "
        "boolean, decimal(p,s)).",
    )
    plain_images: bool = Field(
        default=False,
        description="Also store NewImage/OldImage as plain JSON (`new_image_plain`, "
        "`old_image_plain`); costs a second pass over every image.",
    )
    image_check: Literal["light", "full"] | None = Field(
        default=None,
        description="How images are checked before they are archived: `full` checks every "
        "attribute value against DynamoDB's types, `light` that each image is a JSON object "
        "of valid UTF-8. Default: `light` for records from the AWS service (Lambda, "
        "`archiver run`), which DynamoDB has checked, `full` for `archiver ingest` files.",
    )
    sse: Literal["AES256", "aws:kms", "none"] = Field(
        default="AES256",
        description="Server-side encryption of every S3 object: `AES256` (SSE-S3), `aws:kms` "
        "(SSE-KMS) or `none` (the bucket's default applies).",
    )
    sse_kms_key_id: str | None = Field(
        default=None, description="KMS key id or ARN for `aws:kms` (else the AWS managed key)."
    )
    default_table: str | None = Field(
        default=None,
        description="Table to file DynamoDB Streams records under when they carry no "
        "`eventSourceARN` (records from GetRecords dumps); a DynamoDB table name.",
    )
    stream_arn: str | None = Field(
        default=None,
        description="`archiver run`: the DynamoDB stream to read (or give `ARCHIVER_TABLE`).",
    )
    table: str | None = Field(
        default=None, description="`archiver run`: the table whose latest stream to read."
    )
    checkpoint_uri: str | None = Field(
        default=None,
        description="`archiver run`: where shard positions are kept, a file path or `s3://bucket/key` "
        "(default: `_checkpoints/` inside the archive).",
    )
    flush_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="`archiver run`: flush when this many bytes are buffered.",
    )
    flush_records: int = Field(
        default=100_000,
        gt=0,
        description="`archiver run`: flush when this many records are buffered.",
    )
    flush_interval: float = Field(
        default=300.0,
        gt=0,
        description="`archiver run`: flush when the oldest buffered record is this "
        "many seconds old, also when the stream is idle.",
    )
    iceberg_catalog: str | None = Field(
        default=None,
        description="The scheduled `iceberg-sync` function (`archiver.iceberg_handler`): the "
        "pyiceberg catalog to register the archive in, configured by "
        "`PYICEBERG_CATALOG__<NAME>__*` variables (`archiver iceberg-sync` takes `--catalog`).",
    )
    iceberg_namespace: str = Field(
        default="dynamodb_archive",
        min_length=1,
        description="The scheduled `iceberg-sync` function: the Iceberg namespace (the Glue "
        "database) of the tables (`archiver iceberg-sync` takes `--namespace`).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level; item data is never logged at INFO or WARNING."
    )
    metrics: bool = Field(
        default=True,
        description="Print one CloudWatch Embedded Metric Format line per Lambda invocation to "
        "stdout (records received, archived, dead-lettered, failed; bytes and files written; "
        "write latency; iterator age).",
    )
    metrics_namespace: str = Field(
        default=DEFAULT_NAMESPACE,
        min_length=1,
        max_length=255,
        description="CloudWatch namespace of those metrics.",
    )

    @field_validator("promoted_columns")
    @classmethod
    def _check_promoted(cls, value: str) -> str:
        try:
            parse_promoted_columns(value)
        except FormatError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("default_table", "table")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        if value is not None:
            validate_table_name(value)  # an InvalidNameError is a ValueError
        return value

    @model_validator(mode="after")
    def _check_sse(self) -> ArchiverSettings:
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id is set but sse is not 'aws:kms'")
        return self

    @property
    def promoted(self) -> tuple[PromotedColumn, ...]:
        return parse_promoted_columns(self.promoted_columns)

    @property
    def full_check(self) -> bool:
        """Whether records from the AWS service get the full image check."""
        return self.image_check == "full"

    @property
    def sse_arguments(self) -> dict[str, str]:
        """The S3 put arguments for server-side encryption."""
        return sse_arguments(self.sse, self.sse_kms_key_id)


class SettingsError(ValueError):
    """The ``ARCHIVER_*`` variables do not make valid settings; the message names each one."""


def settings_from_environment() -> ArchiverSettings:
    """The settings the ``ARCHIVER_*`` environment variables give (the Lambda functions).

    Raises
    ------
    SettingsError
        ``invalid archiver configuration: ARCHIVER_NAME: problem; ...``.
    """
    try:
        return ArchiverSettings()  # type: ignore[call-arg]  # filled from the environment
    except ValidationError as err:
        problems = "; ".join(
            f"ARCHIVER_{'_'.join(map(str, e['loc'])).upper() or 'SETTINGS'}: {e['msg']}"
            for e in err.errors()
        )
        raise SettingsError(f"invalid archiver configuration: {problems}") from None
