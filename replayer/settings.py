"""The replayer's settings: ``REPLAYER_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ReplayerSettings"]


class ReplayerSettings(BaseSettings):
    """Settings of the ``replayer`` CLI."""

    model_config = SettingsConfigDict(env_prefix="REPLAYER_", extra="ignore")

    archive_uri: str | None = Field(
        default=None, description="The archive to read: `s3://bucket/prefix` or a local folder."
    )
