"""``archiver run``: settings in, a running poller out, until SIGTERM/SIGINT or the stream ends.

Builds the clients, resolves the stream (by ARN or by table), loads the shard
checkpoint, and runs :class:`archiver.poller.Poller` with one EMF metrics line
per flush. Logs are JSON lines when stderr is not a terminal (containers),
readable text otherwise.

Once everything is set up, the objects made so far (modules, botocore's
service models, the clients) are frozen out of the cyclic garbage collector's
sight: they live as long as the process, and every full collection would walk
them again.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Any

from archiver.archive.codec import use_system_allocator
from archiver.archive.store import ArchiveStore, check_writable_folder, open_store
from archiver.poller import (
    ArchiveUnwritable,
    FlushPolicy,
    Poller,
    ShardCheckpoints,
    checkpoint_key,
)
from archiver.settings import ArchiverSettings
from archiver.streams import StreamDenied, StreamGone, StreamSource
from archiver.write import ArchiveOptions, ArchiveReport

__all__ = ["ServiceError", "run_service", "streams_client"]

log = logging.getLogger("archiver.run")


class ServiceError(Exception):
    """An expected failure before polling starts (no such table, no stream on it)."""


def _stream_arn(settings: ArchiverSettings) -> str:
    if settings.stream_arn:
        return settings.stream_arn
    from archiver.archive.aws import client, describe

    dynamodb = client("dynamodb")
    try:
        table = dynamodb.describe_table(TableName=settings.table)["Table"]
    except Exception as err:
        raise ServiceError(f"cannot describe table {settings.table}: {describe(err)}") from err
    arn = table.get("LatestStreamArn")
    if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled", False):
        raise ServiceError(
            f"table {settings.table} has no enabled stream; enable one with a view type "
            "such as NEW_AND_OLD_IMAGES"
        )
    return str(arn)


def streams_client() -> Any:
    """A ``dynamodbstreams`` client as the service uses it: the SDK's credentials, region and
    endpoint, standard retries with as many attempts as ``AWS_MAX_ATTEMPTS`` or the profile say."""
    from botocore.config import Config

    from archiver.archive.aws import client

    return client("dynamodbstreams", config=Config(retries={"mode": "standard"}))


def _checkpoint_location(
    settings: ArchiverSettings, archive: ArchiveStore, stream_arn: str
) -> tuple[ArchiveStore, str]:
    if not settings.checkpoint_uri:
        return archive, checkpoint_key(stream_arn)
    uri = settings.checkpoint_uri
    folder, _, name = uri.rstrip("/").rpartition("/")
    if not name or not folder:
        raise ServiceError(f"--checkpoint {uri}: expected a file path or s3://bucket/key")
    if uri.startswith("s3://"):
        return open_store(folder, sse=settings.sse_arguments, s3="boto3"), name
    try:
        check_writable_folder(folder)
    except OSError as err:
        raise ServiceError(f"--checkpoint {uri}: cannot write ({err.strerror or err})") from None
    return open_store(folder), name


def run_service(
    settings: ArchiverSettings,
    *,
    poll_interval: float = 1.0,
    json_logs: bool | None = None,
    client: Any = None,
) -> int:
    """Run the poller with these settings; returns the exit status (0 after a clean stop)."""
    from archiver.logs import configure
    from archiver.metrics import emf_line

    configure(settings.log_level, json=not sys.stderr.isatty() if json_logs is None else json_logs)
    if not settings.stream_arn and not settings.table:
        raise ServiceError("give --stream-arn or --table (or ARCHIVER_STREAM_ARN / ARCHIVER_TABLE)")
    stream_arn = _stream_arn(settings)
    store = open_store(settings.archive_uri, sse=settings.sse_arguments, s3="boto3")
    checkpoint_store, key = _checkpoint_location(settings, store, stream_arn)
    where = f"{checkpoint_store.uri}/{key}"
    try:
        checkpoints = ShardCheckpoints.load(checkpoint_store, key, stream_arn)
    except ValueError as err:  # not a stream checkpoint, or another stream's
        raise ServiceError(f"cannot use checkpoint {where}: {err}") from err
    if settings.metrics and sys.stdout is None:
        raise ServiceError("stdout is closed: metrics lines go there (or ARCHIVER_METRICS=false)")
    if client is None:
        client = streams_client()

    def metrics(report: ArchiveReport, seconds: float) -> None:
        if settings.metrics:
            line = emf_line(
                report,
                write_latency_ms=seconds * 1000,
                namespace=settings.metrics_namespace,
                dimensions={"Stream": stream_arn.split("/stream/")[0].rsplit("/", 1)[-1]},
                clock=time.time,
            )
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except OSError as err:  # metrics are not data: archiving goes on without them
                log.warning("metrics line not written to stdout: %s", err.strerror or err)

    poller = Poller(
        StreamSource(client, stream_arn),
        store,
        checkpoints,
        ArchiveOptions(
            settings.promoted, settings.plain_images, settings.default_table, settings.full_check
        ),
        FlushPolicy(settings.flush_bytes, settings.flush_records, settings.flush_interval),
        poll_interval=poll_interval,
        on_flush=metrics,
    )
    poller.install_signal_handlers()
    log.info(
        "archiving stream",
        extra={
            "stream_arn": stream_arn,
            "archive": store.uri,
            "checkpoint": f"{checkpoint_store.uri}/{key}",
        },
    )
    use_system_allocator()
    # No gc.collect() first: set-up leaves no garbage cycles (a collection here frees nothing,
    # measured) and would cost ~45 ms walking the ~77,000 objects frozen now.
    gc.freeze()
    try:
        poller.run()
    except (StreamGone, StreamDenied, ArchiveUnwritable) as err:
        log.error("%s", err)
        return 1
    if poller.buffered:  # the last flush failed: nothing of it is checkpointed
        log.error(
            "stopped with %d records read but not archived; they are not checkpointed and "
            "will be read again on restart",
            poller.buffered,
        )
        return 1
    log.info("stopped", extra={"archived": poller.archived})
    return 0
