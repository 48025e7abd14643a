"""Reaching AWS: the region and the boto3 clients of the archiver and the replayer, made here.

The region is ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's
``region``, as Lambda and the newer AWS SDKs resolve it; botocore alone reads
only the last two (boto/boto3#3620), so a container given ``AWS_REGION`` would
otherwise have no region. Every other setting (credentials, endpoints such as
``AWS_ENDPOINT_URL_DYNAMODB``, retries) is the SDK's own. S3 needs no region
(it finds the bucket's); every other service does, and :func:`client` says
what to set instead of botocore's ``NoRegionError`` traceback.

boto3 and botocore are imported on first use, not with this module: the
format package stays free of the SDK at import time (Lambda cold starts).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import MissingRegionError

__all__ = ["client", "region"]

_REGIONLESS = {"s3"}  # finds the bucket's region itself


def _region_variable() -> str | None:
    return os.environ.get("AWS_REGION") or None


def region() -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's region; None when unset."""
    import botocore.session

    found = _region_variable() or botocore.session.get_session().get_config_variable("region")
    return str(found) if found else None


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` in :func:`region`, with the SDK's other configuration.

    Parameters
    ----------
    service
        The boto3 service name (``"dynamodb"``, ``"lambda"``, ``"glue"``, ``"s3"``, ...).
    **kwargs
        Passed to ``Session.client`` (``config=``, for instance).

    Raises
    ------
    MissingRegionError
        When no region is set anywhere and the service needs one (every service but S3).
    """
    import boto3

    session = boto3.session.Session(region_name=_region_variable())
    if session.region_name is None and service not in _REGIONLESS:
        raise MissingRegionError(
            f"no AWS region is set for {service}: set AWS_REGION "
            "(or AWS_DEFAULT_REGION, or region in your AWS profile)"
        )
    return session.client(service, **kwargs)
