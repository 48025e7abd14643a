"""DynamoDB's export to S3 (DynamoDB JSON format) in, items and the export time out.

An export folder ``.../AWSDynamoDB/<ExportId>/`` holds ``manifest-summary.json``
(with ``exportTime``), ``manifest-files.json`` (one JSON object per line naming
a ``dataFileS3Key``) and ``data/*.json.gz`` files with one ``{"Item": {...}}``
per line, items in typed DynamoDB JSON with binary as base64 text.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from archiver.archive.store import ArchiveStore, open_store

__all__ = ["Export", "ExportError", "open_export"]


class ExportError(Exception):
    """A folder that is not a readable DynamoDB export."""


@dataclass(frozen=True, slots=True)
class Export:
    store: ArchiveStore
    export_time_us: int
    item_count: int | None
    data_keys: tuple[str, ...]

    def items(self) -> Iterator[dict[str, Any]]:
        """Every item of the export, typed."""
        for key in self.data_keys:
            try:
                raw = gzip.decompress(self.store.get(key))
            except (OSError, EOFError) as err:
                raise ExportError(f"{self.store.uri}/{key}: not a gzip file ({err})") from None
            yield from _json_lines(raw, f"{self.store.uri}/{key}", "Item")


def _json_lines(data: bytes, where: str, field: str) -> Iterator[Any]:
    """``field`` of every JSON line of ``data``; ExportError names the file and line otherwise."""
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)[field]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ExportError(f'{where}:{number}: a line without "{field}"') from None


def _time_us(text: str, where: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise ExportError(f"{where}: exportTime {text!r} is not an ISO-8601 time") from None
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def open_export(uri: str) -> Export:
    """Open an export given its folder (``.../AWSDynamoDB/<ExportId>``) or the folder above it."""
    store = open_store(uri)
    try:
        summary_bytes = store.get("manifest-summary.json")
    except FileNotFoundError:
        candidates = [d for d in store.list_dirs("AWSDynamoDB/")]
        if len(candidates) != 1:
            raise ExportError(
                f"{uri}: no manifest-summary.json; give the export's folder (…/AWSDynamoDB/<ExportId>)"
                + (f", one of {candidates[:5]}" if candidates else "")
            ) from None
        return open_export(f"{uri.rstrip('/')}/AWSDynamoDB/{candidates[0]}")
    where = f"{store.uri}/manifest-summary.json"
    try:
        summary = orjson.loads(summary_bytes)
    except orjson.JSONDecodeError:
        raise ExportError(f"{where}: not JSON") from None
    if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
        raise ExportError(
            f"{where}: outputFormat {summary.get('outputFormat')!r}; only DYNAMODB_JSON "
            "exports can be read"
        )
    if summary.get("exportType") == "INCREMENTAL_EXPORT":
        raise ExportError(
            f"{where}: an incremental export holds changes, not a full table; "
            "use a full export as the base"
        )
    export_time = _time_us(summary.get("exportTime", ""), where)
    try:
        manifest = store.get("manifest-files.json")
    except FileNotFoundError:
        raise ExportError(f"{store.uri}: manifest-files.json is missing") from None
    keys = [
        "data/" + str(data_key).rsplit("/", 1)[-1]
        for data_key in _json_lines(manifest, f"{store.uri}/manifest-files.json", "dataFileS3Key")
    ]
    count = summary.get("itemCount")
    return Export(store, export_time, count if isinstance(count, int) else None, tuple(keys))
