"""The replayer's settings: ``REPLAYER_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from archiver.archive.store import sse_arguments

__all__ = ["ReplayerSettings"]


class ReplayerSettings(BaseSettings):
    """Settings of the ``replayer`` CLI."""

    model_config = SettingsConfigDict(env_prefix="REPLAYER_", extra="ignore")

    archive_uri: str | None = Field(
        default=None, description="The archive to read: `s3://bucket/prefix` or a local folder."
    )
    # What the replayer writes into the archive (redrive's dead letters) is encrypted as the
    # archiver encrypts it: the same variables serve both.
    sse: Literal["AES256", "aws:kms", "none"] = Field(
        default="AES256",
        validation_alias=AliasChoices("REPLAYER_SSE", "ARCHIVER_SSE"),
        description="Server-side encryption of what the replayer writes into the archive "
        "(redrive's dead letters), as the archiver's `ARCHIVER_SSE`, which it also reads.",
    )
    sse_kms_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REPLAYER_SSE_KMS_KEY_ID", "ARCHIVER_SSE_KMS_KEY_ID"),
        description="KMS key id or ARN for `aws:kms`, as the archiver's `ARCHIVER_SSE_KMS_KEY_ID`.",
    )

    @property
    def sse_arguments(self) -> dict[str, str]:
        """The S3 put arguments for server-side encryption."""
        return sse_arguments(self.sse, self.sse_kms_key_id)
