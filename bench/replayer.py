"""Benchmark of the replayer's state fold, JSON Lines replay and restore, in one run.

Run from the repository root::

    .venv/bin/python bench/replayer.py [--changes N] [--keys N] [--repeat N] [--skip-dynamodb]

One archive of ``--changes`` changes (default 1,000,000) over ``--keys`` items
(default 100,000), ~380-byte items, spread over ``--hours`` hour partitions
(default 24), is generated once into a temporary folder with the archive's own
encoder (``encode_records``) and shared by every variant. Each variant runs in
a fresh subprocess, so that peak RSS (VmHWM) and timings do not leak between
them:

- ``state``: ``replayer.state.fold_all`` over ``read_partition`` of every hour
  partition, as ``replayer restore --mode state`` computes it (Arrow, column-wise);
- ``python``: the same partitions read the same way, then a plain Python loop
  over every row, ``state[item_key] = last change``;
- ``jsonl``: ``iter_events`` + ``orjson.dumps`` into a file, as ``replayer events
  --output`` does;
- for memory: the state fold and the JSON Lines pass over the first quarter of
  the hours (a quarter of the changes, the same keys), the fold of one
  ``--slice``, and the fold with Arrow's jemalloc pool instead of mimalloc;
- ``fold_all`` alone over every change held in memory, in chunks of N rows,
  to show how its cost depends on the changes per partition;
- ``restore`` into DynamoDB Local (started here) in ``state`` and ``events``
  mode, on a smaller archive (``--restore-changes``/``--restore-keys``),
  because DynamoDB Local writes only a few thousand items per second;
- a ``--dry-run`` state restore of the big archive (everything but the writes).

Results go to ``bench/results/replayer.json``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# This file is bench/replayer.py: as a script, its folder comes first on
# sys.path and would shadow the ``replayer`` package. Import from the repo root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(ROOT))

from devkit.measure import machine, proc_status_mb  # noqa: E402 - needs ROOT on sys.path
from devkit.traffic import orders_table  # noqa: E402

RESULTS = HERE / "results" / "replayer.json"
TABLE = "orders"
ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/2026-11-27T00:00:00.000"
START_S = 1_795_000_000 // 3600 * 3600  # an hour boundary: hour partitions hold whole hours
SEQUENCE_BASE = 10**23  # 24-digit sequence numbers, like DynamoDB's
US_PER_HOUR = 3_600_000_000
GENERATOR_WORKERS = 2  # fixed, so that the archive is the same on any machine
TARGET_RATE = 1_000_000
TARGET_RATIO = 10.0
BUSY_LOAD = 0.5
MB = 2**20


# --------------------------------------------------------------------------- the archive


STATUSES = ("pending", "paid", "packed", "shipped", "delivered", "refunded")
CITIES = ("Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Salem")
TAG_SETS = (["blue", "red"], ["green"], ["sale", "vip"], ["new", "red"], ["blue", "vip"], ["sale"])


def generate_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Write one generator worker's share of the archive; return what it wrote.

    Worker ``w`` of ``W`` makes the changes whose global index ``i`` is ``w``
    modulo ``W``, to the items whose number is ``w`` modulo ``W`` (like one
    stream shard: its keys are its own). Change ``i`` happens at
    ``START_S + i * span / changes`` (whole seconds, as DynamoDB stamps them)
    with a sequence number that grows with ``i``, so the workers' files
    interleave into one history. Each worker writes its own files: one per
    hour partition and at most ``file_records`` records, through
    ``encode_records`` and ``LocalStore.put`` (what the archiver writes).
    Records are built as ``ChangeRecord`` directly, without the decoder's
    validation; the first few are checked against ``decode_record``.
    """
    import orjson

    from archiver.archive.codec import batch_name, encode_records
    from archiver.archive.layout import Partition
    from archiver.archive.record import ChangeRecord, EventName
    from archiver.archive.store import LocalStore
    from archiver.decode import decode_record

    gc.disable()  # millions of small dicts alive: the cyclic collector would dominate
    changes, keys, hours = spec["changes"], spec["keys"], spec["hours"]
    worker, workers = spec["worker"], spec["workers"]
    boundary_us = spec["boundary_us"]
    rng = random.Random(spec["seed"] * 1000 + worker)
    rand = rng.random
    letters = "abcdefghij klmnopqrstuvwxyz"
    notes = [
        "".join(rng.choice(letters) for _ in range(rng.randrange(10, 50))) for _ in range(2048)
    ]
    key_of = [
        {"pk": {"S": f"order#{k:06d}"}, "sk": {"N": str(k % 7)}}
        for k in range(worker, keys, workers)
    ]
    own = len(key_of)
    names = {name: EventName(name) for name in ("INSERT", "MODIFY", "REMOVE")}
    ttl_identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    store = LocalStore(spec["folder"])
    dumps = orjson.dumps
    span_s = hours * 3600

    state: dict[int, dict[str, Any]] = {}
    touched: set[int] = set()
    mix: Counter[str] = Counter()
    image_bytes = images = files = written = 0
    boundary: dict[str, int] | None = None
    batch: list[ChangeRecord] = []
    batch_hour = -1

    def flush() -> None:
        nonlocal files, written
        if batch:
            data = encode_records(batch)
            store.put(Partition(TABLE, batch_hour).key(batch_name(batch)), data)
            files += 1
            written += len(data)
            batch.clear()

    checked = 0
    for i in range(worker, changes, workers):
        second = START_S + i * span_s // changes
        change_us = second * 1_000_000
        if boundary is None and change_us > boundary_us:
            boundary = {"changes": sum(mix.values()), "items": len(touched), "live": len(state)}
        index = int(rand() * own)
        key = key_of[index]
        old = state.get(index)
        identity = None
        if old is None:
            name, version = "INSERT", 1
        elif rand() < 0.15:
            name, version = "REMOVE", 0
            if rand() < 0.3:
                identity = ttl_identity
        else:
            name, version = "MODIFY", int(old["version"]["N"]) + 1
        if name == "REMOVE":
            new = None
            del state[index]
        else:
            new = {
                "pk": key["pk"],
                "sk": key["sk"],
                "status": {"S": STATUSES[int(rand() * 6)]},
                "customer_id": {"S": f"cust-{int(rand() * 500):04d}"},
                "amount": {"N": f"{int(rand() * 99_999) + 1}.{int(rand() * 100):02d}"},
                "qty": {"N": str(int(rand() * 49) + 1)},
                "version": {"N": str(version)},
                "updated_at": {"N": str(second)},
                "gift": {"BOOL": rand() < 0.2},
                "note": {"S": notes[int(rand() * 2048)]},
                "tags": {"SS": TAG_SETS[int(rand() * 6)]},
                "address": {
                    "M": {
                        "city": {"S": CITIES[int(rand() * 6)]},
                        "zip": {"N": str(int(rand() * 89_999) + 10_000)},
                        "apartment": {"NULL": True},
                    }
                },
            }
            state[index] = new
        touched.add(index)
        mix[name] += 1
        sequence = str(SEQUENCE_BASE + i * 1000 + int(rand() * 1000))
        size = len(dumps(new or old or key))
        if new is not None:
            image_bytes += size
            images += 1
        ddb: dict[str, Any] = {"ApproximateCreationDateTime": float(second), "Keys": None}
        if new is not None:
            ddb["NewImage"] = None
        if old is not None:
            ddb["OldImage"] = None
        ddb["SequenceNumber"] = sequence
        ddb["SizeBytes"] = size
        ddb["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        event_id = f"{rng.getrandbits(128):032x}"
        envelope: dict[str, Any] = {
            "eventID": event_id,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
            "eventSourceARN": ARN,
        }
        if identity is not None:
            envelope["userIdentity"] = identity
        record = ChangeRecord(
            TABLE,
            event_id,
            names[name],
            "aws:dynamodb",
            sequence,
            change_us,
            key,
            new,
            old,
            envelope,
            ARN,
            "NEW_AND_OLD_IMAGES",
            size,
            "us-east-1",
            identity,
            None,
        )
        if checked < 200:  # the same record the archiver's decoder would have made
            raw = dict(
                envelope,
                dynamodb={
                    name: (
                        key
                        if name == "Keys"
                        else new
                        if name == "NewImage"
                        else old
                        if name == "OldImage"
                        else value
                    )
                    for name, value in ddb.items()
                },
            )
            if decode_record(raw) != record:
                raise SystemExit(f"generated record {i} differs from its decoded form")
            checked += 1
        hour = change_us - change_us % US_PER_HOUR
        if hour != batch_hour or len(batch) >= spec["file_records"]:
            flush()
            batch_hour = hour
        batch.append(record)
    flush()
    if boundary is None:
        boundary = {"changes": sum(mix.values()), "items": len(touched), "live": len(state)}
    return {
        "changes": sum(mix.values()),
        "items": len(touched),
        "live": len(state),
        "mix": dict(mix),
        "image_bytes": image_bytes,
        "images": images,
        "files": files,
        "bytes": written,
        "boundary": boundary,
    }


def archive_spec(
    changes: int, keys: int, hours: int, seed: int, file_records: int
) -> dict[str, Any]:
    return {
        "changes": changes,
        "keys": keys,
        "hours": hours,
        "seed": seed,
        "file_records": file_records,
        "workers": GENERATOR_WORKERS,
        "boundary_us": START_S * 1_000_000 + max(1, hours // 4) * US_PER_HOUR - 1,
    }


def build_archive(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Generate the archive into ``folder`` (reused when its manifest matches ``spec``)."""
    manifest = folder / "bench-manifest.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("spec") == spec:
            saved["reused"] = True
            return saved  # type: ignore[no-any-return]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    procs = []
    for worker in range(spec["workers"]):
        child = dict(spec, worker=worker, folder=str(folder))
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "generate",
            "--spec",
            json.dumps(child),
        ]
        procs.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True))
    parts = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"archive generator failed with exit code {proc.returncode}")
        parts.append(json.loads(out.strip().splitlines()[-1]))
    mix: Counter[str] = Counter()
    for part in parts:
        mix.update(part["mix"])
    summed = {
        name: sum(p[name] for p in parts)
        for name in ("changes", "items", "live", "image_bytes", "images", "files", "bytes")
    }
    info = {
        "spec": spec,
        **{k: summed[k] for k in ("changes", "items", "live", "files")},
        "mb": round(summed["bytes"] / 1e6, 1),
        "partitions": len({p.parent for p in folder.rglob("*.parquet")}),
        "mix": dict(sorted(mix.items())),
        "mean_image_bytes": round(summed["image_bytes"] / max(1, summed["images"])),
        "boundary": {
            name: sum(p["boundary"][name] for p in parts) for name in ("changes", "items", "live")
        },
        "boundary_us": spec["boundary_us"],
        "seconds": round(time.perf_counter() - started, 1),
        "reused": False,
    }
    manifest.write_text(json.dumps(info, indent=2) + "\n")
    return info


# --------------------------------------------------------------------------- measuring


def runs_of(count: int, run: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """``count`` runs of ``run``, each after a ``gc.collect()``; each returns its own timings."""
    results = []
    for _ in range(count):
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = run()
        after = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        results.append(result)
    return results


def state_digest(keys: list[str], names: list[str], images: list[str | None]) -> str:
    """A digest of a state (item key, last event name, last NewImage), in item-key order."""
    digest = hashlib.blake2b(digest_size=16)
    for key, name, image in zip(keys, names, images, strict=True):
        digest.update(f"{key}\0{name}\0{image or ''}\n".encode())
    return digest.hexdigest()


def selected(spec: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """The store, the filter and the partitions a child reads (the window and slice of ``spec``)."""
    from archiver.archive.reader import EventFilter, list_partitions
    from archiver.archive.store import LocalStore

    store = LocalStore(spec["archive"])
    until = spec.get("until_us")
    flt = EventFilter(None, until, None, None, tuple(spec["slice"]) if spec.get("slice") else None)
    return store, flt, list_partitions(store, TABLE, None, until)


def child_state(spec: dict[str, Any]) -> dict[str, Any]:
    """(1) ``fold_all`` over ``read_partition`` of every partition, reading what restore reads."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from archiver.archive.reader import list_partitions, read_partition
    from archiver.archive.schema import Col
    from replayer.state import STATE_COLUMNS, fold_all

    store, flt, _ = selected(spec)
    columns = (*STATE_COLUMNS, Col.STREAM_VIEW_TYPE)  # replayer.restore reads these in state mode
    rss_ready = proc_status_mb("VmRSS")
    last: dict[str, Any] = {}
    peaks: list[float] = []  # the peak RSS after each partition of the first run

    def run() -> dict[str, Any]:
        last.clear()  # the previous run's state
        gc.collect()
        timing = {"read_s": 0.0, "events": 0, "partitions": 0}
        first = not peaks

        def tables() -> Iterator[Any]:
            started = time.perf_counter()
            partitions = list_partitions(store, TABLE, None, flt.until_us)
            timing["read_s"] += time.perf_counter() - started
            for _, files in partitions:
                started = time.perf_counter()
                table = read_partition(store, files, flt, columns)
                timing["read_s"] += time.perf_counter() - started
                timing["events"] += table.num_rows
                timing["partitions"] += 1
                yield table
                if first:  # fold_all has folded that partition
                    peaks.append(round(proc_status_mb("VmHWM"), 1))

        started = time.perf_counter()
        state = fold_all(tables())
        total = time.perf_counter() - started
        last["state"] = state
        return {"total_s": total, "work_s": total - timing["read_s"], **timing}

    runs = runs_of(spec["runs"], run)
    peak = proc_status_mb("VmHWM")
    state = last.pop("state")
    removes = pc.sum(pc.equal(state.column(Col.EVENT_NAME), "REMOVE")).as_py() or 0
    check = {
        "memory_pool": pa.default_memory_pool().backend_name,
        "state_rows": state.num_rows,
        "live_items": state.num_rows - removes,
        "state_mb": round(state.nbytes / MB, 1),
        "digest": state_digest(
            state.column(Col.ITEM_KEY).to_pylist(),
            state.column(Col.EVENT_NAME).to_pylist(),
            state.column(Col.NEW_IMAGE).to_pylist(),
        ),
    }
    return {
        "runs": runs,
        "check": check,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak,
        "rss_peak_by_partition_mb": peaks,
    }


def child_python(spec: dict[str, Any]) -> dict[str, Any]:
    """(2) The same partitions read the same way; then a Python loop: state[item_key] = last change.

    The state keeps what a restore needs of each item's last change (event
    name, keys, NewImage), as Python strings. Columns are converted with
    ``to_pylist`` and zipped, the quick way to loop over Arrow rows in Python
    (``table.to_pylist()`` row dicts are slower still).
    """
    from archiver.archive.reader import list_partitions, read_partition
    from archiver.archive.schema import Col
    from replayer.state import STATE_COLUMNS

    store, flt, _ = selected(spec)
    columns = (*STATE_COLUMNS, Col.STREAM_VIEW_TYPE)
    rss_ready = proc_status_mb("VmRSS")
    last: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        last.clear()  # the previous run's state
        gc.collect()
        read_s = work_s = 0.0
        events = 0
        started = time.perf_counter()
        state: dict[str, tuple[str, str, str | None]] = {}
        partitions = list_partitions(store, TABLE, None, flt.until_us)
        read_s += time.perf_counter() - started
        for _, files in partitions:
            mark = time.perf_counter()
            table = read_partition(store, files, flt, columns)
            folded = time.perf_counter()
            read_s += folded - mark
            for key, name, keys, image in zip(
                table.column(Col.ITEM_KEY).to_pylist(),
                table.column(Col.EVENT_NAME).to_pylist(),
                table.column(Col.KEYS).to_pylist(),
                table.column(Col.NEW_IMAGE).to_pylist(),
                strict=True,
            ):
                state[key] = (name, keys, image)
            events += table.num_rows
            work_s += time.perf_counter() - folded
        total = time.perf_counter() - started
        last["state"] = state
        return {"total_s": total, "read_s": read_s, "work_s": work_s, "events": events}

    runs = runs_of(spec["runs"], run)
    peak = proc_status_mb("VmHWM")
    state = last.pop("state")
    ordered = sorted(state)
    check = {
        "state_rows": len(state),
        "live_items": sum(1 for name, _, _ in state.values() if name != "REMOVE"),
        "digest": state_digest(
            ordered, [state[k][0] for k in ordered], [state[k][2] for k in ordered]
        ),
    }
    return {"runs": runs, "check": check, "rss_ready_mb": rss_ready, "rss_peak_mb": peak}


def child_jsonl(spec: dict[str, Any]) -> dict[str, Any]:
    """(3) ``iter_events`` + ``orjson.dumps`` into a file, as ``replayer events --output`` does.

    ``read_partition`` is wrapped (in this process only) to time the reads
    without touching the per-record loop.
    """
    import orjson

    from archiver.archive import reader
    from archiver.archive.codec import stream_records

    store, flt, partitions = selected(spec)
    read_partition = reader.read_partition
    timing = {"read_s": 0.0}

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        table = read_partition(*args, **kwargs)
        timing["read_s"] += time.perf_counter() - started
        return table

    reader.read_partition = timed_read
    path = Path(spec["scratch"]) / "events.jsonl"
    rss_ready = proc_status_mb("VmRSS")
    check: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        timing["read_s"] = 0.0
        count = 0
        dumps = orjson.dumps
        started = time.perf_counter()
        with open(path, "wb") as out:
            for record in reader.iter_events(store, TABLE, flt):
                out.write(dumps(record))
                out.write(b"\n")
                count += 1
        total = time.perf_counter() - started
        check.update(lines=count, output_mb=round(path.stat().st_size / 1e6, 1))
        path.unlink()
        return {
            "total_s": total,
            "read_s": timing["read_s"],
            "work_s": total - timing["read_s"],
            "events": count,
        }

    runs = runs_of(spec["runs"], run)
    peak = proc_status_mb("VmHWM")
    reader.read_partition = read_partition
    # The loop's per-record costs, on the first partition, streaming as iter_events does:
    # rebuilding the records alone, + serialising them, + writing them (best of 3 each).
    per_record: dict[str, Any] = {}
    if spec.get("split") and partitions:
        table = read_partition(store, partitions[0][1], flt)
        dumps = orjson.dumps

        def rebuild() -> None:
            for _ in stream_records(table):
                pass

        def rebuild_dumps() -> None:
            for record in stream_records(table):
                dumps(record)

        def rebuild_dumps_write() -> None:
            with open(path, "wb") as out:
                for record in stream_records(table):
                    out.write(dumps(record))
                    out.write(b"\n")
            path.unlink()

        best = {}
        for name, fn in (
            ("rebuild", rebuild),
            ("rebuild_dumps", rebuild_dumps),
            ("rebuild_dumps_write", rebuild_dumps_write),
        ):
            times = []
            for _ in range(3):
                gc.collect()
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            best[name] = min(times) / table.num_rows * 1e6
        per_record = {
            "records": table.num_rows,
            "rebuild_us": round(best["rebuild"], 2),
            "dumps_us": round(best["rebuild_dumps"] - best["rebuild"], 2),
            "write_us": round(best["rebuild_dumps_write"] - best["rebuild_dumps"], 2),
        }
    return {
        "runs": runs,
        "check": check,
        "per_record": per_record,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak,
    }


def child_chunks(spec: dict[str, Any]) -> dict[str, Any]:
    """Fold cost against changes per fold: every change in memory, folded in chunks of N rows.

    ``fold`` concatenates the state with each partition and copies the result,
    so its cost grows with (number of partitions) x (state size). Slicing one
    in-memory table into chunks of N rows stands for archives with N changes
    per hour partition, without generating one archive per N.
    """
    import pyarrow as pa

    from archiver.archive.reader import read_partition
    from archiver.archive.schema import Col
    from replayer.state import STATE_COLUMNS, fold_all

    store, flt, partitions = selected(spec)
    columns = (*STATE_COLUMNS, Col.STREAM_VIEW_TYPE)
    table = pa.concat_tables(
        [read_partition(store, files, flt, columns) for _, files in partitions]
    ).combine_chunks()
    rows = table.num_rows
    out = []
    for chunk in spec["chunks"]:
        chunk = min(chunk, rows)
        gc.collect()
        started = time.perf_counter()
        state = fold_all(table.slice(offset, chunk) for offset in range(0, rows, chunk))
        seconds = time.perf_counter() - started
        out.append(
            {
                "chunk_rows": chunk,
                "folds": -(-rows // chunk),
                "fold_s": seconds,
                "events_per_s": rows / seconds,
                "state_rows": state.num_rows,
            }
        )
        del state
    return {"events": rows, "chunks": out}


def dynamodb_client() -> Any:
    """A client as ``replayer restore`` makes one (endpoint, credentials: the environment)."""
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodb", config=Config(retries={"mode": "standard"}))


def new_table(client: Any, name: str) -> str:
    client.create_table(**orders_table(name))
    client.get_waiter("table_exists").wait(TableName=name)
    return name


def count_items(client: Any, name: str) -> int:
    total = 0
    arguments: dict[str, Any] = {"TableName": name, "Select": "COUNT"}
    while True:
        page = client.scan(**arguments)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def child_restore(spec: dict[str, Any]) -> dict[str, Any]:
    """(4) ``replayer.restore.restore`` + ``TableWriter`` into DynamoDB Local, a new table per run.

    The same call ``replayer restore`` makes, with the CLI's defaults: an
    in-memory checkpoint (no ``--checkpoint``), ``--until`` now, 4 lanes.
    ``dry_run`` does everything but the writes.
    """
    from archiver.archive.reader import EventFilter
    from archiver.archive.store import LocalStore
    from replayer.checkpoint import Checkpoint
    from replayer.dynamo import TableWriter
    from replayer.restore import RestoreOptions, restore
    from replayer.runner import Selection

    client = dynamodb_client()
    store = LocalStore(spec["archive"])
    rss_ready = proc_status_mb("VmRSS")
    check: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        name = new_table(client, f"bench-{spec['mode']}-{os.getpid()}-{random.randrange(10**9)}")
        options = RestoreOptions(
            into=name,
            mode=spec["mode"],
            concurrency=spec["concurrency"],
            dry_run=spec.get("dry_run", False),
        )
        selection = Selection(store, TABLE, EventFilter(None, int(time.time() * 1_000_000)), ())
        started = time.perf_counter()
        summary = restore(
            selection, options, Checkpoint.open(None, {"bench": name}), TableWriter(client, name)
        )
        total = time.perf_counter() - started
        check.update(summary.as_dict())
        check["items_in_table"] = count_items(client, name)
        client.delete_table(TableName=name)
        return {
            "total_s": total,
            "events": summary.changes_read,
            "writes": summary.puts + summary.deletes,
        }

    runs = runs_of(spec["runs"], run)
    return {"runs": runs, "check": check, "rss_ready_mb": rss_ready}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": generate_worker,
    "state": child_state,
    "python": child_python,
    "jsonl": child_jsonl,
    "chunks": child_chunks,
    "restore": child_restore,
}


def run_child(mode: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--spec",
        json.dumps(spec),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark child {mode!r} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the run


LABELS = {
    "state": "(1) state: fold_all over read_partition (Arrow)",
    "python": "(2) Python fold: dict[item_key] = last change",
    "jsonl": "(3) JSON Lines: iter_events + orjson.dumps -> file",
    "state_quarter": "(1q) state, first quarter of the hours",
    "state_slice": "(1s) state, --slice 1/4 (read_partition's slice)",
    "state_jemalloc": "(1j) state, ARROW_DEFAULT_MEMORY_POOL=jemalloc",
    "state_quarter_jemalloc": "(1jq) state, jemalloc, first quarter of the hours",
    "jsonl_quarter": "(3q) JSON Lines, first quarter of the hours",
    "restore_state": "(4a) restore --mode state -> DynamoDB Local",
    "restore_events": "(4b) restore --mode events -> DynamoDB Local",
    "restore_dry_run": "(4c) restore --mode state --dry-run, big archive",
}


def summarize(row: dict[str, Any]) -> dict[str, Any]:
    runs = row["runs"]
    best = min(runs, key=lambda r: r["total_s"])
    row.update(
        best_s=best["total_s"],
        first_s=runs[0]["total_s"],
        median_s=statistics.median(r["total_s"] for r in runs),
        best_read_s=best.get("read_s"),
        best_work_s=best.get("work_s"),
        events=best["events"],
        best_cpu_s=best["cpu_s"],
        events_per_s=best["events"] / best["total_s"] if best["total_s"] else 0.0,
        rss_added_mb=round(row["rss_peak_mb"] - row["rss_ready_mb"], 1),
    )
    if "writes" in best:
        row.update(writes=best["writes"], writes_per_s=best["writes"] / best["total_s"])
    return row


def measure_archive(
    args: argparse.Namespace, results: dict[str, Any], folder: Path, info: dict[str, Any]
) -> None:
    common = {"archive": str(folder), "runs": args.repeat, "scratch": str(folder.parent)}
    # A JSON Lines pass of the whole archive takes ~20 s here: at most 2 of them. The quarter
    # and slice rows are there for their memory: one run each.
    once = {"runs": 1}
    quarter = {"until_us": info["boundary_us"], **once}
    plan = [
        ("state", "state", {}),
        ("python", "python", {}),
        ("jsonl", "jsonl", {"split": True, "runs": min(args.repeat, 2)}),
        ("state_quarter", "state", quarter),
        ("jsonl_quarter", "jsonl", quarter),
        ("state_slice", "state", {"slice": [0, 4], **once}),
        ("state_jemalloc", "state", once),
        ("state_quarter_jemalloc", "state", quarter),
    ]
    for name, mode, extra in plan:
        print(f"measuring {LABELS[name]} ...", flush=True)
        env = None
        if "jemalloc" in name:
            env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}
        results["variants"][name] = summarize(run_child(mode, {**common, **extra}, env))
    print("measuring the fold against changes per partition ...", flush=True)
    per_hour = -(-info["changes"] // info["spec"]["hours"])
    chunks = sorted(
        {info["changes"], -(-info["changes"] // 4), per_hour, min(10_000, info["changes"])},
        reverse=True,
    )
    results["fold_chunks"] = run_child("chunks", {"archive": str(folder), "chunks": chunks})


def measure_restore(
    args: argparse.Namespace, results: dict[str, Any], big: Path, folder: Path
) -> None:
    from devkit.servers import DynamoDBLocal, ServerError, aws_env

    print("starting DynamoDB Local ...", flush=True)
    server = DynamoDBLocal()
    try:
        server.start()
    except ServerError as err:
        results["restore_skipped"] = str(err)
        print(f"restore not measured: {err}", flush=True)
        return
    try:
        env = {**os.environ, **aws_env(), **server.env()}
        common = {"archive": str(folder), "concurrency": args.concurrency, "runs": args.repeat}
        # DynamoDB Local's first thousands of writes run before its JIT has compiled them.
        print("warming up DynamoDB Local (one state restore, not measured) ...", flush=True)
        run_child("restore", {**common, "mode": "state", "runs": 1}, env)
        plan = [
            ("restore_state", {**common, "mode": "state"}),
            ("restore_events", {**common, "mode": "events", "runs": min(args.repeat, 2)}),
            (
                "restore_dry_run",
                {
                    "archive": str(big),
                    "concurrency": args.concurrency,
                    "runs": 1,
                    "mode": "state",
                    "dry_run": True,
                },
            ),
        ]
        for name, spec in plan:
            print(f"measuring {LABELS[name]} ...", flush=True)
            results["variants"][name] = summarize(run_child("restore", spec, env))
    finally:
        server.stop()


# --------------------------------------------------------------------------- report


def checks(results: dict[str, Any]) -> list[str]:
    """What the variants computed, against what the generator knows; a list of failures."""
    big, variants = results["archive"], results["variants"]
    failures = []

    def expect(what: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            failures.append(f"{what}: got {got}, expected {wanted}")

    for name, info in (("state", big), ("state_quarter", big["boundary"])):
        row = variants[name]
        expect(f"{name} state rows", row["check"]["state_rows"], info["items"])
        expect(f"{name} live items", row["check"]["live_items"], info["live"])
        expect(f"{name} events", row["events"], info["changes"])
    expect(
        "python fold == fold_all (digest)",
        variants["python"]["check"]["digest"],
        variants["state"]["check"]["digest"],
    )
    expect("jsonl lines", variants["jsonl"]["check"]["lines"], big["changes"])
    expect(
        "jsonl_quarter lines",
        variants["jsonl_quarter"]["check"]["lines"],
        big["boundary"]["changes"],
    )
    small = results.get("restore_archive")
    for name in ("restore_state", "restore_events"):
        if name in variants and small:
            expect(
                f"{name} items in the table",
                variants[name]["check"]["items_in_table"],
                small["live"],
            )
    if "restore_dry_run" in variants:
        expect(
            "restore_dry_run final items",
            variants["restore_dry_run"]["check"]["final_items"],
            big["live"],
        )
    return failures


def mb(value: float) -> str:
    return f"{value:>5.0f} MB"


def print_report(results: dict[str, Any]) -> None:
    big, host, variants = results["archive"], results["machine"], results["variants"]
    spec = big["spec"]
    made = (
        "reused from --archive-dir"
        if big["reused"]
        else f"generated in {big['seconds']:.0f} s by {spec['workers']} processes"
    )
    print(
        f"\narchive: {big['changes']:,} changes over {spec['keys']:,} keys ({big['items']:,} "
        f"changed, {big['live']:,} present at the end), mean NewImage "
        f"{big['mean_image_bytes']} B of DynamoDB JSON,\n  mix {big['mix']}, "
        f"{big['partitions']} hour partitions, {big['files']} files, {big['mb']} MB of zstd "
        f"Parquet; {made}"
    )
    print(
        f"best of {results['repeat']} runs unless noted; {host['cpus']} CPUs ({host['cpu']}), "
        f"Python {host['python']}, pyarrow {host['pyarrow']}, orjson {host['orjson']}; commit "
        f"{host['commit']}{' + uncommitted changes' if host['uncommitted_changes'] else ''}\n"
    )
    header = (
        f"{'variant':<52} {'events':>9} {'best s':>6} {'1st s':>6} {'cpu s':>5} "
        f"{'read s':>6} {'work s':>6} {'events/s':>10} {'peak RSS':>8} {'+RSS':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in (
        "state",
        "python",
        "jsonl",
        "state_quarter",
        "jsonl_quarter",
        "state_slice",
        "state_jemalloc",
        "state_quarter_jemalloc",
    ):
        row = variants[name]
        first = f"{row['first_s']:>6.2f}" if len(row["runs"]) > 1 else f"{'-':>6}"
        print(
            f"{LABELS[name]:<52} {row['events']:>9,} {row['best_s']:>6.2f} {first} "
            f"{row['best_cpu_s']:>5.2f} {row['best_read_s']:>6.2f} {row['best_work_s']:>6.2f} "
            f"{row['events_per_s']:>10,.0f} {mb(row['rss_peak_mb']):>8} "
            f"{mb(row['rss_added_mb']):>8}"
        )
    print(
        "read s: list_partitions + read_partition (Parquet decode, order by sequence number, "
        "drop repeated\n  event ids); work s: (1) the fold, (2) the Python loop, (3) rebuilding "
        "each stream record +\n  orjson.dumps + write; 1st s: the first run ('-': one run "
        "only; (3) runs at most twice);\n  cpu s: CPU time of the best run (below its wall "
        "time when other work takes the cores);\n  +RSS: peak RSS minus the RSS after imports. "
        f"Arrow's memory pool: {variants['state']['check']['memory_pool']} unless noted."
    )

    state, python, target = variants["state"], variants["python"], results["target"]
    print(
        f"\nstate vs Python fold: end to end (read + fold) {target['x_python']:.2f}x, "
        f"fold alone {target['x_python_fold_only']:.2f}x "
        f"({state['best_work_s']:.2f} s vs {python['best_work_s']:.2f} s)"
    )
    print(
        f"issue target: state >= {TARGET_RATE:,} events/s: end to end "
        f"{state['events_per_s']:,.0f} {'MET' if target['rate_met'] else 'NOT MET'} (fold "
        f"alone {target['fold_only_events_per_s']:,.0f}); >= {TARGET_RATIO:g}x the Python "
        f"fold: {target['x_python']:.2f}x {'MET' if target['ratio_met'] else 'NOT MET'}"
    )
    check = state["check"]
    same = "yes" if python["check"]["digest"] == check["digest"] else "NO"
    print(
        f"state: {check['state_rows']:,} rows ({check['live_items']:,} items, the rest last "
        f"removed), {check['state_mb']} MB of Arrow; the Python fold's state is identical: "
        f"{same}"
    )
    split = variants["jsonl"].get("per_record") or {}
    if split:
        jsonl = variants["jsonl"]
        print(
            f"JSON Lines per record: read {jsonl['best_read_s'] / jsonl['events'] * 1e6:.1f} us "
            f"and the loop {jsonl['best_work_s'] / jsonl['events'] * 1e6:.1f} us in the best "
            f"run; on one partition\n  ({split['records']:,} records, streaming): rebuild the "
            f"stream record {split['rebuild_us']:.1f} us, orjson.dumps {split['dumps_us']:.1f} "
            f"us, write {split['write_us']:.1f} us; output {jsonl['check']['output_mb']:,} MB"
        )

    chunks = results["fold_chunks"]
    print(
        f"\nfold_all against changes per partition ({chunks['events']:,} changes in memory, "
        "folded in chunks of N rows; no reading)"
    )
    print(f"  {'N rows per fold':>15} {'folds':>6} {'fold s':>7} {'events/s':>10}")
    for row in chunks["chunks"]:
        print(
            f"  {row['chunk_rows']:>15,} {row['folds']:>6,} {row['fold_s']:>7.2f} "
            f"{row['events_per_s']:>10,.0f}"
        )

    quarter, sliced = variants["state_quarter"], variants["state_slice"]
    jem, jem_quarter = variants["state_jemalloc"], variants["state_quarter_jemalloc"]
    jsonl, jsonl_quarter = variants["jsonl"], variants["jsonl_quarter"]
    print(
        f"\npeak RSS by archive size ({state['events']:,} vs {quarter['events']:,} changes, the "
        f"same keys; state rows {check['state_rows']:,} vs {quarter['check']['state_rows']:,})"
    )
    print(
        f"  state fold, {check['memory_pool']:<9} {mb(state['rss_peak_mb'])} vs "
        f"{mb(quarter['rss_peak_mb'])}"
    )
    print(
        f"  state fold, {jem['check']['memory_pool']:<9} {mb(jem['rss_peak_mb'])} vs "
        f"{mb(jem_quarter['rss_peak_mb'])}"
    )
    print(
        f"  JSON Lines           {mb(jsonl['rss_peak_mb'])} vs {mb(jsonl_quarter['rss_peak_mb'])}"
    )
    print(
        f"  state fold of --slice 1/4: {mb(sliced['rss_peak_mb'])} "
        f"({sliced['check']['state_rows']:,} state rows)"
    )
    curve = state.get("rss_peak_by_partition_mb") or []
    if curve:
        marks = sorted({1, *(len(curve) * k // 4 for k in (1, 2, 3, 4))} - {0})
        points = ", ".join(f"{n}: {curve[n - 1]:.0f}" for n in marks)
        print(
            f"  state fold ({check['memory_pool']}), peak RSS in MB after N of "
            f"{len(curve)} partitions (first run): {points}"
        )

    if "restore_state" not in variants:
        print(f"\nrestore not measured: {results.get('restore_skipped', '--skip-dynamodb')}")
        return
    small = results["restore_archive"]
    print(
        f"\nrestore into DynamoDB Local: a smaller archive of {small['changes']:,} changes over "
        f"{small['spec']['keys']:,} keys ({small['live']:,} present at the end), "
        f"{results['concurrency']} lanes, after one unmeasured restore"
    )
    header = (
        f"{'variant':<52} {'changes':>9} {'writes':>7} {'best s':>6} {'1st s':>6} "
        f"{'cpu s':>5} {'writes/s':>8} {'changes/s':>9} {'peak RSS':>8} {'+RSS':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in ("restore_state", "restore_events", "restore_dry_run"):
        row = variants[name]
        first = f"{row['first_s']:>6.2f}" if len(row["runs"]) > 1 else f"{'-':>6}"
        rate = f"{'-':>8}" if name == "restore_dry_run" else f"{row['writes_per_s']:>8,.0f}"
        print(
            f"{LABELS[name]:<52} {row['events']:>9,} {row['writes']:>7,} {row['best_s']:>6.2f} "
            f"{first} {row['best_cpu_s']:>5.2f} {rate} {row['events_per_s']:>9,.0f} "
            f"{mb(row['rss_peak_mb']):>8} "
            f"{mb(row['rss_added_mb']):>8}"
        )
    print(
        "writes: puts + deletes (state mode into an empty table sends no deletes); (4b) runs at "
        "most twice;\n  (4c) writes nothing: its writes are the puts it would send; cpu s: CPU "
        "time of the restoring\n  process (its threads included) in the best run; DynamoDB "
        "Local's own CPU is not in it."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1_000_000, help="changes in the archive")
    parser.add_argument("--keys", type=int, default=100_000, help="items they change")
    parser.add_argument(
        "--hours",
        type=int,
        default=24,
        help="hours the changes spread over: one partition each (default 24)",
    )
    parser.add_argument(
        "--file-records",
        type=int,
        default=10_000,
        help="at most this many records per Parquet file (default 10,000)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the generator")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    parser.add_argument(
        "--restore-changes",
        type=int,
        default=20_000,
        help="changes in the archive restored into DynamoDB Local (default 20,000)",
    )
    parser.add_argument(
        "--restore-keys", type=int, default=5_000, help="items they change (default 5,000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="restore lanes (default 4, as the CLI)"
    )
    parser.add_argument("--skip-dynamodb", action="store_true", help="do not measure restore")
    parser.add_argument(
        "--archive-dir",
        type=Path,
        help="keep the generated archives here and reuse them when the options "
        "match (default: a temporary folder, removed at the end)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="print the report of a saved results file; measure nothing",
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.hours < 4 or args.changes < args.hours or args.keys < 2:
        parser.error("--repeat must be >= 1, --hours >= 4, --changes >= --hours, --keys >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        result = CHILDREN[args.child](json.loads(args.spec))
        result.setdefault("rss_peak_mb", proc_status_mb("VmHWM"))
        result["rss_peak_mb"] = round(result["rss_peak_mb"], 1)
        print(json.dumps(result))
        return 0

    if args.report:
        saved = json.loads(args.report.read_text())
        print_report(saved)
        for failure in saved["check_failures"]:
            print(f"CHECK FAILED: {failure}")
        return 0

    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "repeat": args.repeat,
        "concurrency": args.concurrency,
        "variants": {},
    }
    scratch = args.archive_dir or Path(tempfile.mkdtemp(prefix="bench-replayer-"))
    try:
        big_dir = scratch / "archive"
        print(
            f"generating {args.changes:,} changes over {args.keys:,} keys in {big_dir} ...",
            flush=True,
        )
        results["archive"] = build_archive(
            big_dir, archive_spec(args.changes, args.keys, args.hours, args.seed, args.file_records)
        )
        measure_archive(args, results, big_dir, results["archive"])
        if not args.skip_dynamodb:
            small_dir = scratch / "restore-archive"
            print(
                f"generating {args.restore_changes:,} changes over {args.restore_keys:,} keys "
                "for restore ...",
                flush=True,
            )
            results["restore_archive"] = build_archive(
                small_dir,
                archive_spec(
                    args.restore_changes,
                    args.restore_keys,
                    args.hours,
                    args.seed,
                    args.file_records,
                ),
            )
            measure_restore(args, results, big_dir, small_dir)
    finally:
        if args.archive_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    state, python = results["variants"]["state"], results["variants"]["python"]
    fold_rate = state["events"] / state["best_work_s"]
    results["target"] = {
        "events_per_s": state["events_per_s"],
        "fold_only_events_per_s": fold_rate,
        "x_python": state["events_per_s"] / python["events_per_s"],
        "x_python_fold_only": python["best_work_s"] / state["best_work_s"],
        "rate_met": state["events_per_s"] >= TARGET_RATE,
        "ratio_met": state["events_per_s"] / python["events_per_s"] >= TARGET_RATIO,
    }
    results["check_failures"] = checks(results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"\nwrote {args.output} in {results['elapsed_s']:.0f} s")
    for failure in results["check_failures"]:
        print(f"CHECK FAILED: {failure}")
    load = results["machine"].get("load_average_at_start")
    if load is not None and load > BUSY_LOAD:
        print(
            f"warning: the 1-minute load average was {load:.2f} when the run started; other work "
            "on this machine makes the figures noisy"
        )
    return 1 if results["check_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
