"""Resumable progress: what a run has acknowledged, durably, so a rerun goes on after it.

A checkpoint is a small JSON document (the archive format's checkpoint
document, :mod:`archiver.archive.checkpoints`, of kind ``replay``), rewritten
whole after every acknowledged batch: a local file is replaced atomically
(temporary file, fsync, rename), an ``s3://bucket/key`` object by its PUT. It
records the run's *fingerprint* (archive, table, window, filters, slice,
target, lanes), the last partition finished, and, inside the partition in
progress, the index of the last acknowledged change of each lane. Work is
split into lanes by key hash, and a lane's changes are acknowledged in order,
so "index <= last acknowledged" is exactly what was done.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.archive.checkpoints import CheckpointFormatError, read_document, write_document
from archiver.archive.errors import StoreError
from archiver.archive.store import (
    ArchiveStore,
    LocalStore,
    check_writable_folder,
    open_store,
    split_s3_uri,
)

__all__ = ["Checkpoint", "CheckpointError"]

KIND = "replay"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used for this run (other run, unreadable, newer format,
    or that cannot be written)."""


def _place(location: str) -> tuple[ArchiveStore, str]:
    """The store and key of a checkpoint given as a path or as ``s3://bucket/key``."""
    if location.startswith("s3://"):
        bucket, prefix = split_s3_uri(location)
        folder, _, name = prefix.rstrip("/").rpartition("/")
        if not name:
            raise CheckpointError(f"checkpoint {location}: expected s3://bucket/key")
        return open_store(f"s3://{bucket}/{folder}"), name
    path = Path(location).expanduser()
    return LocalStore(path.parent), path.name


@dataclass
class Checkpoint:
    """Progress of one run; ``location`` None keeps it in memory only."""

    location: str | None
    fingerprint: dict[str, Any]
    done_through_us: int | None = None  # every partition up to this hour start is finished
    partition_us: int | None = None  # the partition in progress
    partition_digest: str | None = None  # what that partition held (its files), to detect changes
    lanes: dict[int, int] = field(default_factory=dict)  # lane -> last acknowledged index
    finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _store: tuple[ArchiveStore, str] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, location: str | None, fingerprint: dict[str, Any]) -> Checkpoint:
        """Load the checkpoint at ``location`` if it exists and belongs to this run, else start one.

        ``location`` is a file path or ``s3://bucket/key``.
        """
        if location is None:
            return cls(None, fingerprint)
        store, key = _place(location)
        try:
            data = read_document(store, key, KIND, VERSION)
        except NotADirectoryError:
            data = None  # a file where its folder should be: no checkpoint, and none writable
        except CheckpointFormatError as err:
            raise CheckpointError(f"checkpoint {location}: unusable ({err})") from None
        except (StoreError, OSError) as err:
            raise CheckpointError(f"checkpoint {location}: unreadable ({err})") from None
        if data is None:
            return cls(location, fingerprint, _store=(store, key))
        saved = data.get("fingerprint", {})
        if saved != fingerprint:
            differences = sorted(
                k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
            )
            raise CheckpointError(
                f"checkpoint {location} belongs to another run (different "
                f"{', '.join(differences)}); use another --checkpoint path or delete it to "
                "start over"
            )
        try:
            lanes = {int(k): int(v) for k, v in (data.get("lanes") or {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise CheckpointError(f"checkpoint {location}: unusable (lanes)") from None
        return cls(
            location,
            fingerprint,
            done_through_us=data.get("done_through_us"),
            partition_us=data.get("partition_us"),
            partition_digest=data.get("partition_digest"),
            lanes=lanes,
            finished=bool(data.get("finished")),
            _store=(store, key),
        )

    def check_writable(self) -> None:
        """Raise OSError now if the checkpoint could not be written later.

        The file is replaced by a rename: what matters is that its folder takes a new file.
        """
        if self._store is not None and isinstance(self._store[0], LocalStore):
            check_writable_folder(self._store[0].root)

    def is_done(self, partition_us: int) -> bool:
        return self.done_through_us is not None and partition_us <= self.done_through_us

    def acknowledged(self, partition_us: int, lane: int) -> int:
        """The last acknowledged index of ``lane`` in ``partition_us`` (-1 when none)."""
        if self.partition_us != partition_us:
            return -1
        return self.lanes.get(lane, -1)

    def begin(self, partition_us: int, digest: str) -> None:
        """Start (or resume) a partition; ``digest`` names its content (e.g. its file list).

        Resuming a partition whose content changed since the checkpoint would
        skip the wrong changes, so it is refused.
        """
        with self._lock:
            if self.partition_us == partition_us and self.lanes:
                if self.partition_digest != digest:
                    raise CheckpointError(
                        f"checkpoint {self.location}: the archive's files for this hour changed since the "
                        "checkpoint was written; delete the checkpoint to start over"
                    )
                return
            self.partition_us = partition_us
            self.partition_digest = digest
            self.lanes = {}
            self._save()

    def ack(self, partition_us: int, lane: int, index: int) -> None:
        """Record that ``lane`` has done everything up to ``index`` of ``partition_us``."""
        with self._lock:
            self.partition_us = partition_us
            self.lanes[lane] = max(index, self.lanes.get(lane, -1))
            self._save()

    def finish_partition(self, partition_us: int) -> None:
        with self._lock:
            self.done_through_us = partition_us
            self.partition_us = None
            self.partition_digest = None
            self.lanes = {}
            self._save()

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            self._save()

    def _save(self) -> None:
        if self._store is None:
            return
        store, key = self._store
        body = {
            "fingerprint": self.fingerprint,
            "done_through_us": self.done_through_us,
            "partition_us": self.partition_us,
            "partition_digest": self.partition_digest,
            "lanes": {str(k): v for k, v in sorted(self.lanes.items())},
            "finished": self.finished,
        }
        try:
            write_document(store, key, KIND, VERSION, body)
        except StoreError as err:
            raise CheckpointError(
                f"checkpoint {self.location}: cannot write ({err}); a rerun repeats what was "
                "done after the last checkpoint that was written"
            ) from err
