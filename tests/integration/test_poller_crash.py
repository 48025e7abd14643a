"""Crash safety: ``archiver run`` killed with SIGKILL at random moments, restarted, loses nothing.

While the test keeps writing to a table on DynamoDB Local, the real
``archiver run`` (small flush interval and record count, so kills land before,
during and after flushes) is killed with ``kill -9`` at random moments and
restarted with the same checkpoint, again and again. A last run archives the
rest and is stopped with SIGTERM. Then ``replayer events`` must print the
table's full change history exactly as the stream holds it: every eventID
once, every item's changes in sequence order, the same images. Files may hold
duplicates (a batch re-read after a kill); the reader drops them. And
``replayer verify`` passes on the archive.

The kill moments come from a seeded generator; a failure names the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from archiver.archive.store import LocalStore
from archiver.poller import checkpoint_key

BIN = Path(sys.executable).parent
KILLS = 20


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen(
            [str(BIN / "archiver"), "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=dict(os.environ),
        )


def wait_reading(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Until the process logs that it reads a shard (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while b'"reading shard"' not in log.read_bytes():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"archiver run did not start reading: {log.read_text()}"
        time.sleep(0.02)


def checkpoint_position(store: LocalStore, arn: str) -> dict[str, str]:
    try:
        return dict(orjson.loads(store.get(checkpoint_key(arn)))["positions"])
    except FileNotFoundError:
        return {}


def rows_in_files(store: LocalStore, table: str) -> int:
    total = 0
    for obj in store.list(f"table_name={table}/"):
        with store.open(obj.key) as handle:
            total += pq.read_metadata(handle).num_rows
    return total


def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(
    stream_tables: Any, local_archive: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    table, arn = stream_tables.create()
    store = LocalStore(local_archive)
    args = ["--archive", local_archive, "--table", table]
    args += ["--flush-records", "15", "--flush-interval", "0.3", "--poll-interval", "0.05"]

    # Given traffic flowing into the table the whole time
    stop_writing = threading.Event()

    def traffic() -> None:
        writes = random.Random(seed + 1)
        while not stop_writing.is_set():
            stream_tables.write(table, writes, 3)
            time.sleep(0.03)

    writer = threading.Thread(target=traffic, name="traffic")
    writer.start()
    positions_seen = []
    try:
        # When the poller is killed with SIGKILL at random moments and restarted each time:
        # every fourth time while it starts up, otherwise at a random moment once it is reading
        for kill in range(KILLS):
            log = tmp_path / f"run-{kill}.log"
            proc = start(args, log)
            if kill % 4 == 3:
                time.sleep(rng.uniform(0.0, 1.0))
            else:
                wait_reading(proc, log)
                time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL, f"run {kill} ended by itself (seed {seed})"
            positions_seen.append(tuple(sorted(checkpoint_position(store, arn).items())))
    finally:
        stop_writing.set()
        writer.join(30)

    # (the killed runs did archive and checkpoint; otherwise this would prove nothing)
    assert len(set(positions_seen)) >= KILLS // 2, f"too little progress under kills (seed {seed})"

    # and a last run archives the rest and is stopped with SIGTERM
    expected = stream_tables.history(arn)
    last = expected[-1]["dynamodb"]["SequenceNumber"]
    final = start(args, tmp_path / "run-final.log")
    deadline = time.monotonic() + 60
    while last not in checkpoint_position(store, arn).values():
        assert final.poll() is None, (tmp_path / "run-final.log").read_text()
        assert time.monotonic() < deadline, f"the last run never caught up (seed {seed})"
        time.sleep(0.1)
    final.send_signal(signal.SIGTERM)
    assert final.wait(30) == 0, (tmp_path / "run-final.log").read_text()

    # Then replayer events prints the table's full change history, exactly
    result = subprocess.run(
        [str(BIN / "replayer"), "events", "--archive", local_archive, "--table", table],
        capture_output=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr.decode()
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    duplicates = [i for i, n in Counter(e["eventID"] for e in events).items() if n > 1]
    assert duplicates == [], f"duplicate eventIDs (seed {seed})"
    missing = {e["eventID"] for e in expected} - {e["eventID"] for e in events}
    assert not missing, f"{len(missing)} of {len(expected)} changes lost (seed {seed})"
    for key in {orjson.dumps(e["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS) for e in expected}:

        def of_key(records: list[dict[str, Any]], key: bytes = key) -> list[str]:
            return [
                r["eventID"]
                for r in records
                if orjson.dumps(r["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS) == key
            ]

        assert of_key(events) == of_key(expected), f"order of {key!r} (seed {seed})"
    assert events == expected, f"seed {seed}"
    # and verify finds every shard's sequence in order, nothing conflicting, no gap
    verify = subprocess.run(
        [str(BIN / "replayer"), "verify", "--archive", local_archive, "--table", table],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(
        f"seed {seed}: {len(expected)} changes, {KILLS} kills, {len(set(positions_seen))} "
        f"checkpoints seen, {rows_in_files(store, table)} rows in files (duplicates included)"
    )
