"""Resumable progress: what a run has acknowledged, durably, so a rerun goes on after it.

A checkpoint is a small JSON file, rewritten atomically (temporary file,
fsync, rename) after every acknowledged batch. It records the run's
*fingerprint* (archive, table, window, filters, slice, target, lanes), the
last partition finished, and, inside the partition in progress, the index of
the last acknowledged change of each lane. Work is split into lanes by key
hash, and a lane's changes are acknowledged in order, so "index <= last
acknowledged" is exactly what was done.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Checkpoint", "CheckpointError"]

VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used for this run (other run, unreadable, newer format)."""


@dataclass
class Checkpoint:
    """Progress of one run; ``path`` None keeps it in memory only."""

    path: Path | None
    fingerprint: dict[str, Any]
    done_through_us: int | None = None  # every partition up to this hour start is finished
    partition_us: int | None = None  # the partition in progress
    partition_digest: str | None = None  # what that partition held (its files), to detect changes
    lanes: dict[int, int] = field(default_factory=dict)  # lane -> last acknowledged index
    finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, path: str | None, fingerprint: dict[str, Any]) -> Checkpoint:
        """Load the checkpoint at ``path`` if it exists and belongs to this run, else start one."""
        if path is None:
            return cls(None, fingerprint)
        file = Path(path)
        if not file.exists():
            return cls(file, fingerprint)
        try:
            data = orjson.loads(file.read_bytes())
        except (OSError, orjson.JSONDecodeError) as err:
            raise CheckpointError(f"checkpoint {path}: unreadable ({err})") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise CheckpointError(f"checkpoint {path}: not a checkpoint of this version")
        saved = data.get("fingerprint", {})
        if saved != fingerprint:
            differences = sorted(
                k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
            )
            raise CheckpointError(
                f"checkpoint {path} belongs to another run (different {', '.join(differences)}); "
                "use another --checkpoint path or delete it to start over"
            )
        return cls(
            file,
            fingerprint,
            done_through_us=data.get("done_through_us"),
            partition_us=data.get("partition_us"),
            partition_digest=data.get("partition_digest"),
            lanes={int(k): int(v) for k, v in (data.get("lanes") or {}).items()},
            finished=bool(data.get("finished")),
        )

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
                        f"checkpoint {self.path}: the archive's files for this hour changed since the "
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
        if self.path is None:
            return
        data = orjson.dumps(
            {
                "version": VERSION,
                "fingerprint": self.fingerprint,
                "done_through_us": self.done_through_us,
                "partition_us": self.partition_us,
                "partition_digest": self.partition_digest,
                "lanes": {str(k): v for k, v in sorted(self.lanes.items())},
                "finished": self.finished,
            },
            option=orjson.OPT_INDENT_2,
        )
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
