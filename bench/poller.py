"""Benchmark of the poller (``archiver run``) from DynamoDB Local, the Lambda sink and compaction.

Run from the repository root::

    .venv/bin/python bench/poller.py [--items N] [--changes N] [--repeat N] [--seed S]
    .venv/bin/python bench/poller.py --report bench/results/poller.json   # print a saved run

One run starts AWS's DynamoDB Local, creates a table with a NEW_AND_OLD_IMAGES
stream and writes ``--changes`` changes (INSERT/MODIFY/REMOVE of ~500 B items,
with ``batch_write_item`` and ``update_item``) to ``--items`` items. Then, each
in a fresh subprocess so peak RSS (VmHWM) is the variant's own:

- ``lambda``: the stream's records, read once and converted with
  ``to_lambda_record``, through ``archiver.lambda_handler.handler`` at batch
  size 100 into a local folder. Files written and their mean size. (Its read of
  the stream also warms DynamoDB Local's JVM for the poller.)
- ``poller``: an in-process ``archiver.poller.Poller`` over
  ``StreamSource(DynamoDB Local's dynamodbstreams client)`` archives the whole
  stream into another folder with ``FlushPolicy(64 MiB, 100k records, 300 s)``
  and stops once caught up (two empty GetRecords rounds), flushing on the way
  out. Records/s, and the time split between GetRecords (client CPU and
  waiting on DynamoDB Local), the record conversion, the flush (archiving) and
  Python's cyclic garbage collector; the RSS the buffer holds before the flush.
- ``compact``: ``archiver.compact.compact`` over a copy of the Lambda-written
  archive, default target: MB/s of input, files before and after.

The parent then checks that ``iter_events`` replays the compacted archive
exactly as the Lambda-written one, and both as the poller's, and that every
item's change sequence matches what was written. Results go to
``bench/results/poller.json``.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

# As a script, this file's folder (bench/, which holds archiver.py) comes first on
# sys.path and would shadow the ``archiver`` package. Import from the repo root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(ROOT))

from devkit import measure  # noqa: E402 - needs ROOT on sys.path
from devkit.measure import peak_rss_mb, proc_status_mb  # noqa: E402
from devkit.traffic import orders_table  # noqa: E402

RESULTS = HERE / "results" / "poller.json"
TABLE = "orders"
LAMBDA_BATCH = 100  # Lambda's default BatchSize
FLUSH_RECORDS = 100_000
FLUSH_BYTES = 64 * 1024 * 1024
FLUSH_AGE = 300.0
EMPTY_ROUNDS = 2  # caught up: this many GetRecords rounds in a row brought nothing
UPDATE_ITEM_SHARE = 0.2  # of the MODIFYs; the others are batch_write_item puts over the old item
BUSY_LOAD = 0.5
LABELS = {
    "poller": "poller (Poller + StreamSource), 100k / 64 MiB",
    "lambda": f"Lambda handler, batch size {LAMBDA_BATCH}",
    "compact": "compact the Lambda-written archive (128 MiB)",
}


# --------------------------------------------------------------------------- traffic


def make_history(items: int, seed: int) -> Any:
    """A ``TableHistory`` of ~500 B items (as DynamoDB sizes them), deterministic from ``seed``."""
    from devkit.traffic import STATUSES, TableHistory

    letters = "abcdefghij klmnopqrstuvwxyz"
    cities = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Salem"]
    tags = ["red", "blue", "green", "sale", "vip", "new"]

    class MediumItems(TableHistory):
        """17 attributes: S, N, BOOL, B, SS, NS, a map, a list of maps."""

        def _image(self, key: dict[str, Any], version: int) -> dict[str, Any]:
            rng = self.rng
            image = dict(key)
            image.update(
                {
                    "status": {"S": rng.choice(STATUSES)},
                    "customer_id": {"S": f"cust-{rng.randrange(5000):05d}"},
                    "email": {"S": f"user{rng.randrange(10**5)}@example.com"},
                    "amount": {"N": f"{rng.randrange(1, 10**5)}.{rng.randrange(1, 100):02d}"},
                    "qty": {"N": str(rng.randrange(1, 50))},
                    "version": {"N": str(version)},
                    "updated_at": {"N": str(int(self.clock))},
                    "gift": {"BOOL": rng.random() < 0.2},
                    "note": {
                        "S": "".join(rng.choice(letters) for _ in range(rng.randrange(120, 240)))
                    },
                    "tags": {"SS": sorted({rng.choice(tags) for _ in range(3)})},
                    "scores": {"NS": sorted({str(rng.randrange(1, 100)) for _ in range(3)})},
                    "checksum": {"B": base64.b64encode(rng.randbytes(16)).decode()},
                    "address": {
                        "M": {
                            "street": {"S": f"{rng.randrange(1, 999)} Main St"},
                            "city": {"S": rng.choice(cities)},
                            "zip": {"N": str(rng.randrange(10000, 99999))},
                        }
                    },
                    "lines": {
                        "L": [
                            {
                                "M": {
                                    "sku": {"S": f"SKU-{rng.randrange(10**4):04d}"},
                                    "qty": {"N": str(rng.randrange(1, 9))},
                                    "price": {
                                        "N": f"{rng.randrange(1, 999)}.{rng.randrange(1, 100):02d}"
                                    },
                                }
                            }
                            for _ in range(rng.randrange(1, 4))
                        ]
                    },
                }
            )
            return image

    return MediumItems(TABLE, seed=seed, items=items, seconds_per_change=0.01)


def to_boto(value: dict[str, Any]) -> dict[str, Any]:
    """A typed value in Lambda's shape (B as base64 text) as boto3 sends it (B as bytes)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "M":
        return {"M": {k: to_boto(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [to_boto(v) for v in inner]}
    return value


def item_of(image: dict[str, Any]) -> dict[str, Any]:
    return {name: to_boto(value) for name, value in image.items()}


def dynamodb_item_size(image: dict[str, Any]) -> int:
    """DynamoDB's size of an item, approximately: names plus values (numbers: digits / 2 + 1)."""

    def size(value: dict[str, Any]) -> int:
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return len(inner.lstrip("-").replace(".", "")) // 2 + 2
        if kind == "B":
            return len(base64.b64decode(inner))
        if kind in ("BOOL", "NULL"):
            return 1
        if kind in ("SS", "NS"):
            return sum(size({kind[0]: v}) for v in inner)
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(v) + 1 for k, v in inner.items())
        if kind == "L":
            return 3 + sum(size(v) + 1 for v in inner)
        return len(json.dumps(inner))

    return sum(len(name.encode()) + size(value) for name, value in image.items())


def update_arguments(
    key: dict[str, Any], new: dict[str, Any], old: dict[str, Any]
) -> dict[str, Any]:
    """``update_item`` arguments that turn item ``old`` into ``new``: SET what changed, REMOVE."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets, removes = [], []
    for i, (name, value) in enumerate(sorted(new.items())):
        if name in key or old.get(name) == value:
            continue
        names[f"#a{i}"] = name
        values[f":v{i}"] = to_boto(value)
        sets.append(f"#a{i} = :v{i}")
    for j, name in enumerate(sorted(set(old) - set(new))):
        names[f"#r{j}"] = name
        removes.append(f"#r{j}")
    clauses = []
    if sets:
        clauses.append("SET " + ", ".join(sets))
    if removes:
        clauses.append("REMOVE " + ", ".join(removes))
    arguments: dict[str, Any] = {
        "TableName": TABLE,
        "Key": item_of(key),
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": names,
    }
    if values:
        arguments["ExpressionAttributeValues"] = values
    return arguments


def create_table(client: Any) -> str:
    client.create_table(**orders_table(TABLE, stream_view_type="NEW_AND_OLD_IMAGES"))
    return str(client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"])


def write_traffic(client: Any, history: Any, changes: int, jvm_pid: int) -> dict[str, Any]:
    """Apply ``changes`` changes of ``history`` to the table; return what was written.

    Each item's changes keep their order; changes of different items are
    independent. So the changes are cut into waves in which every item appears
    at most once (wave w holds each item's w-th change): a wave's puts and
    deletes fill batch_write_item calls of 25 without two requests for one key,
    and a share of its MODIFYs go through update_item. (More writer threads do
    not help: DynamoDB Local's JVM spends about 1 ms of CPU per change.)
    """
    import orjson

    records = history.changes(changes)
    waves: list[list[dict[str, Any]]] = []
    seen: Counter[bytes] = Counter()
    per_item: dict[str, list[str]] = {}
    sizes = []
    for record in records:
        ddb = record["dynamodb"]
        ident = orjson.dumps(ddb["Keys"], option=orjson.OPT_SORT_KEYS)
        if seen[ident] == len(waves):
            waves.append([])
        waves[seen[ident]].append(record)
        seen[ident] += 1
        per_item.setdefault(ident.decode(), []).append(record["eventName"])
        if "NewImage" in ddb:
            sizes.append(dynamodb_item_size(ddb["NewImage"]))

    calls: Counter[str] = Counter()
    pick = history.rng
    jvm_before = cpu_seconds_of(jvm_pid)
    started = time.perf_counter()
    for wave in waves:
        requests: list[dict[str, Any]] = []
        for record in wave:
            ddb = record["dynamodb"]
            if record["eventName"] == "REMOVE":
                requests.append({"DeleteRequest": {"Key": item_of(ddb["Keys"])}})
                calls["delete (batch)"] += 1
            elif record["eventName"] == "MODIFY" and pick.random() < UPDATE_ITEM_SHARE:
                client.update_item(
                    **update_arguments(ddb["Keys"], ddb["NewImage"], ddb["OldImage"])
                )
                calls["update_item"] += 1
            else:
                requests.append({"PutRequest": {"Item": item_of(ddb["NewImage"])}})
                calls[f"put (batch, {record['eventName']})"] += 1
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {TABLE: requests[start : start + 25]}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
    elapsed = time.perf_counter() - started
    jvm_after = cpu_seconds_of(jvm_pid)
    new_images = [r["dynamodb"]["NewImage"] for r in records if "NewImage" in r["dynamodb"]]
    return {
        "changes": changes,
        "items": history.items,
        "seconds": elapsed,
        "changes_per_s": changes / elapsed,
        "dynamodb_local_cpu_s": None
        if jvm_before is None or jvm_after is None
        else jvm_after - jvm_before,
        "waves": len(waves),
        "event_mix": dict(sorted(Counter(r["eventName"] for r in records).items())),
        "writes": dict(sorted(calls.items())),
        "mean_item_bytes": round(statistics.mean(sizes)),
        "mean_item_json_bytes": round(statistics.mean(len(orjson.dumps(i)) for i in new_images)),
        "per_item": per_item,
    }


# --------------------------------------------------------------------------- measuring


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds of another process (DynamoDB Local's JVM), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GcClock:
    """Wall time spent in Python's cyclic garbage collector, and its full collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2


def archive_files(folder: str) -> dict[str, Any]:
    """Data files of an archive folder (checkpoints and dead letters apart)."""
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("table_name=*/dt=*/hour=*/*.parquet"))
    sizes = [f.stat().st_size for f in files]
    return {
        "files": len(files),
        "rows": sum(pq.read_metadata(f).num_rows for f in files),
        "bytes": sum(sizes),
        "mean_file_bytes": round(statistics.mean(sizes)) if sizes else 0,
        "partitions": len({f.parent for f in files}),
        "dead_letters": len(list(Path(folder).rglob("*.jsonl"))),
    }


def quiet_logs() -> None:
    """JSON log lines at INFO, as ``archiver run`` and the Lambda write them, into /dev/null."""
    import logging

    from archiver.logs import configure

    logging.getLogger().addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    configure("INFO", json=True)


class TimedClient:
    """A dynamodbstreams client adding up the wall and this thread's CPU time of GetRecords."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.empty_calls = 0
        self.wall = 0.0
        self.cpu = 0.0
        self.other_wall = 0.0  # DescribeStream, GetShardIterator

    def get_records(self, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        response = self.client.get_records(**kwargs)
        self.wall += time.perf_counter() - wall
        self.cpu += time.thread_time() - cpu
        self.calls += 1
        self.empty_calls += not response.get("Records")
        return response

    def _other(self, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return method(**kwargs)
        finally:
            self.other_wall += time.perf_counter() - started

    def describe_stream(self, **kwargs: Any) -> Any:
        return self._other(self.client.describe_stream, kwargs)

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        return self._other(self.client.get_shard_iterator, kwargs)


def stream_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    from devkit.servers import ACCESS_KEY, REGION, SECRET_KEY

    return boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(retries={"mode": "standard"}),
    )


def archive_stream(
    args: argparse.Namespace, client: TimedClient, gc_clock: GcClock, folder: str
) -> dict[str, Any]:
    """Archive the whole stream into ``folder`` with a Poller; stop once caught up."""
    from archiver.archive.store import LocalStore
    from archiver.poller import FlushPolicy, Poller, ShardCheckpoints, checkpoint_key
    from archiver.streams import StreamSource

    conversion = [0.0]
    flushes: list[dict[str, Any]] = []

    class TimedSource(StreamSource):
        def read(self, iterator: str, limit: int = 1000) -> Any:
            started, inner = time.perf_counter(), client.wall
            try:
                return super().read(iterator, limit)
            finally:  # converting to the Lambda shape: read() minus get_records()
                conversion[0] += (time.perf_counter() - started) - (client.wall - inner)

    class TimedPoller(Poller):
        def flush(self) -> None:
            if not self.buffer:
                super().flush()
                return
            state = {
                "records": len(self.buffer),
                "buffer_bytes": self.buffer_bytes,
                "rss_mb": proc_status_mb("VmRSS"),
            }
            started, in_gc = time.perf_counter(), gc_clock.seconds
            try:
                super().flush()
            finally:
                state.update(seconds=time.perf_counter() - started, gc_s=gc_clock.seconds - in_gc)
                flushes.append(state)

    store = LocalStore(folder)
    checkpoints = ShardCheckpoints(store, checkpoint_key(args.stream_arn), args.stream_arn)
    empty = [0, -1]  # consecutive empty rounds, records seen at the last one

    def sleep(_: float) -> None:  # run() sleeps only after a round that read nothing
        seen = poller.archived + len(poller.buffer)
        empty[0] = empty[0] + 1 if seen == empty[1] else 1
        empty[1] = seen
        if empty[0] >= EMPTY_ROUNDS:
            poller.stop()

    poller = TimedPoller(
        TimedSource(client, args.stream_arn),
        store,
        checkpoints,
        policy=FlushPolicy(FLUSH_BYTES, FLUSH_RECORDS, FLUSH_AGE),
        sleep=sleep,
    )
    client.reset()
    gc.collect()
    jvm_before, cpu_before, gc_before = cpu_seconds_of(args.jvm_pid), self_cpu(), gc_clock.seconds
    full_before = gc_clock.full
    started = time.perf_counter()
    poller.run()
    elapsed = time.perf_counter() - started
    jvm_after = cpu_seconds_of(args.jvm_pid)
    return {
        "seconds": elapsed,
        "archived": poller.archived,
        "get_records_s": client.wall,
        "get_records_thread_cpu_s": client.cpu,
        "get_records_calls": client.calls,
        "get_records_empty_calls": client.empty_calls,
        "describe_and_iterator_s": client.other_wall,
        "conversion_s": conversion[0],
        "flush_s": sum(f["seconds"] for f in flushes),
        "flushes": flushes,
        "gc_s": gc_clock.seconds - gc_before,
        "gc_full_collections": gc_clock.full - full_before,
        "process_cpu_s": self_cpu() - cpu_before,
        "dynamodb_local_cpu_s": None
        if jvm_before is None or jvm_after is None
        else jvm_after - jvm_before,
    }


def child_poller(args: argparse.Namespace) -> dict[str, Any]:
    import archiver.poller  # noqa: F401  (imports outside the timing)

    quiet_logs()
    client = TimedClient(stream_client(args.endpoint))
    client.describe_stream(StreamArn=args.stream_arn)  # connection and endpoint set-up
    gc_clock = GcClock()
    gc.collect()
    if args.poller_gc == "off":  # a diagnostic: what the cyclic collector costs the poller
        gc.disable()
    rss_start = peak_rss_mb()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-poller-") as scratch:
        for rep in range(args.repeat):
            folder = os.path.join(scratch, f"run-{rep}")
            runs.append(archive_stream(args, client, gc_clock, folder))
            files = archive_files(folder)
            if files["rows"] != args.changes or runs[-1]["archived"] != args.changes:
                raise SystemExit(
                    f"poller archived {runs[-1]['archived']} records in "
                    f"{files['rows']} rows; {args.changes} changes were written"
                )
            if rep < args.repeat - 1:
                shutil.rmtree(folder)
        shutil.copytree(folder, args.keep)
    return {
        "runs": runs,
        "warmup": False,
        "files": files,
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(peak_rss_mb(), 1),
    }


def read_stream(endpoint: str, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream as Lambda would deliver it (``to_lambda_record``)."""
    from archiver.streams import StreamSource, to_lambda_record

    client = stream_client(endpoint)
    _, shards = StreamSource(client, stream_arn).describe()
    records: list[dict[str, Any]] = []
    for shard in shards:  # listed parents first; DynamoDB Local has one shard here
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            records += [to_lambda_record(r, stream_arn) for r in response["Records"]]
            iterator = response.get("NextShardIterator")
            if not response["Records"] and not shard.closed:
                break
    return records


def child_lambda(args: argparse.Namespace) -> dict[str, Any]:
    from archiver import lambda_handler

    started, jvm_before, cpu_before = time.perf_counter(), cpu_seconds_of(args.jvm_pid), self_cpu()
    gc.disable()  # set-up, not measured: the collector would double the read (see the poller's)
    records = read_stream(args.endpoint, args.stream_arn)
    gc.enable()
    jvm_after = cpu_seconds_of(args.jvm_pid)
    read = {
        "seconds": time.perf_counter() - started,
        "process_cpu_s": self_cpu() - cpu_before,
        "dynamodb_local_cpu_s": None
        if jvm_before is None or jvm_after is None
        else jvm_after - jvm_before,
    }
    if len(records) != args.changes:
        raise SystemExit(f"the stream holds {len(records)} records; {args.changes} were written")
    events = [
        {"Records": records[i : i + LAMBDA_BATCH]} for i in range(0, len(records), LAMBDA_BATCH)
    ]
    quiet_logs()
    gc.collect()
    rss_start = peak_rss_mb()
    runs = []
    # The handler prints an EMF metrics line per invocation, as on Lambda; stdout carries
    # this child's result, so the lines go to /dev/null.
    with (
        tempfile.TemporaryDirectory(prefix="bench-lambda-") as scratch,
        open(os.devnull, "w") as devnull,
        redirect_stdout(devnull),
    ):
        for rep in range(args.repeat + 1):
            folder = os.path.join(scratch, f"run-{rep}")
            os.environ["ARCHIVER_ARCHIVE_URI"] = folder
            lambda_handler.reset()
            lambda_handler.handler({"Records": []}, None)  # settings and store, outside the timing
            gc.collect()
            started = time.perf_counter()
            for event in events:
                if lambda_handler.handler(event, None)["batchItemFailures"]:
                    raise SystemExit("the handler reported batch item failures")
            runs.append({"seconds": time.perf_counter() - started})
            files = archive_files(folder)
            if files["rows"] != len(records) or files["dead_letters"]:
                raise SystemExit(f"lambda: archived {files} for {len(records)} records")
            if rep < args.repeat:
                shutil.rmtree(folder)
        shutil.copytree(folder, args.keep)
    return {
        "runs": runs,
        "warmup": True,
        "files": files,
        "invocations": len(events),
        "stream_read": read,
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(peak_rss_mb(), 1),
    }


def child_compact(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import asdict

    from archiver.archive.store import LocalStore
    from archiver.compact import DEFAULT_TARGET, compact

    def listing(folder: str) -> list[tuple[str, int]]:
        return sorted(
            (p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in Path(folder).rglob("*.parquet")
        )

    quiet_logs()
    gc.collect()
    rss_start = peak_rss_mb()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as scratch:
        for rep in range(args.repeat + 1):
            folder = os.path.join(scratch, f"run-{rep}")
            shutil.copytree(args.source, folder)  # a fresh copy each time: compaction deletes
            gc.collect()
            started = time.perf_counter()
            report = compact(LocalStore(folder))
            elapsed = time.perf_counter() - started
            if report.errors:
                raise SystemExit(f"compaction errors: {report.errors}")
            runs.append({"seconds": elapsed, "report": asdict(report)})
            files = archive_files(folder)
            if rep < args.repeat:
                shutil.rmtree(folder)
        shutil.copytree(folder, args.keep)
        before = listing(folder)
        again = compact(LocalStore(folder))  # idempotent: a rerun finds nothing to do
        rerun_unchanged = listing(folder) == before
    return {
        "runs": runs,
        "warmup": True,
        "files": files,
        "target_bytes": DEFAULT_TARGET,
        "rerun_compacted_partitions": again.partitions_compacted,
        "rerun_unchanged": rerun_unchanged,
        "rss_start_mb": round(rss_start, 1),
        "rss_peak_mb": round(peak_rss_mb(), 1),
    }


def run_child(args: argparse.Namespace, mode: str, **extra: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--repeat",
        str(args.repeat),
        "--changes",
        str(args.changes),
        "--endpoint",
        args.endpoint,
        "--stream-arn",
        args.stream_arn,
        "--jvm-pid",
        str(args.jvm_pid),
        "--poller-gc",
        args.poller_gc,
    ]
    for name, value in extra.items():
        command += [f"--{name}", value]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-5000:])
        raise SystemExit(
            f"benchmark child {mode!r} failed with exit code {done.returncode}: "
            f"{done.stdout.strip()[-500:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- checks


def replay(folder: str) -> list[bytes]:
    """``iter_events`` of the archive in ``folder``, each event as canonical JSON."""
    import orjson

    from archiver.archive.reader import iter_events
    from archiver.archive.store import LocalStore

    return [
        orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        for event in iter_events(LocalStore(folder), TABLE)
    ]


def per_item_names(events: list[bytes]) -> dict[str, list[str]]:
    import orjson

    out: dict[str, list[str]] = {}
    for line in events:
        event = orjson.loads(line)
        ident = orjson.dumps(event["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS).decode()
        out.setdefault(ident, []).append(event["eventName"])
    return out


def checks(folders: dict[str, str], written: dict[str, list[str]]) -> dict[str, Any]:
    lam, compacted, poll = (replay(folders[name]) for name in ("lambda", "compacted", "poller"))
    import orjson

    sizes = [orjson.loads(line)["dynamodb"]["SizeBytes"] for line in poll]
    return {
        "replayed_events": len(lam),
        "compacted_replays_identical": compacted == lam,
        "poller_replays_as_lambda": poll == lam,
        # Each item's INSERT/MODIFY/REMOVE sequence, as written to the table.
        "item_histories_match_writes": per_item_names(poll) == written,
        "mean_stream_record_size_bytes": round(statistics.mean(sizes)),
    }


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    from devkit.servers import find_dynamodb_local

    local = find_dynamodb_local()
    java = ""
    if shutil.which("java"):
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        java = (done.stdout or done.stderr).strip()
    return measure.machine(
        dynamodb_local=local.name if local else None,
        java=java.splitlines()[0] if java else None,
    )


def best(row: dict[str, Any]) -> dict[str, Any]:
    """The fastest timed run (a warm-up run, when there is one, is not timed)."""
    timed = row["runs"][1:] if row["warmup"] else row["runs"]
    return min(timed, key=lambda run: run["seconds"])


def mb(value: float) -> str:
    return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.0f} kB"


def print_report(results: dict[str, Any]) -> None:
    host, traffic, check = results["machine"], results["traffic"], results["checks"]
    poll, lam, comp = (results["variants"][name] for name in ("poller", "lambda", "compact"))
    print(
        f"\n{traffic['changes']:,} changes to {traffic['items']:,} items written to DynamoDB "
        f"Local in {traffic['seconds']:.1f} s ({traffic['changes_per_s']:,.0f}/s, "
        f"{traffic['waves']} waves): {traffic['event_mix']}"
    )
    print(f"  calls: {traffic['writes']}")
    print(
        f"  mean item {traffic['mean_item_bytes']} B as DynamoDB sizes it "
        f"({traffic['mean_item_json_bytes']} B of typed JSON); mean stream record "
        f"{check['mean_stream_record_size_bytes']} B (SizeBytes)"
    )
    print(
        f"{host['cpus']} CPUs ({host['cpu']}), Python {host['python']}, pyarrow "
        f"{host['pyarrow']}, {host['dynamodb_local']}, {host['java']}; commit {host['commit']}"
        f"{' + uncommitted changes' if host['uncommitted_changes'] else ''}; 1-minute load "
        f"{host['load_average_at_start']:.2f} at the start\n"
    )

    header = (
        f"{'variant':<54} {'best s':>6} {'1st s':>6} {'rate':>14} {'files':>6} "
        f"{'mean file':>9} {'peak RSS':>8} {'+RSS':>6}"
    )
    print(header)
    print("-" * len(header))
    rows = (
        ("poller", poll, f"{poll['records_per_s']:,.0f} rec/s"),
        ("lambda", lam, f"{lam['records_per_s']:,.0f} rec/s"),
        ("compact", comp, f"{comp['mb_per_s']:.1f} MB/s"),
    )
    for name, row, rate in rows:
        files = row["files"]
        label = LABELS[name] + (
            ", GC off" if name == "poller" and results["poller_gc"] == "off" else ""
        )
        print(
            f"{label:<54} {row['best']['seconds']:>6.2f} "
            f"{row['runs'][0]['seconds']:>6.2f} {rate:>14} {files['files']:>6,} "
            f"{mb(files['mean_file_bytes']):>9} {row['rss_peak_mb']:>5.0f} MB "
            f"{row['rss_added_mb']:>3.0f} MB"
        )
    print(
        f"best of {results['repeat']}. Poller: every run timed (the Lambda child's read of the "
        "stream warmed DynamoDB Local);\nLambda and compact: after a warm-up, which is '1st s'. "
        "+RSS: peak RSS minus the RSS before the first run\n(the Lambda child already holds the "
        "stream's records then). compact: rate is MB of input; files after compaction."
    )

    split = poll["best"]
    total = split["seconds"]
    waiting = split["get_records_s"] - split["get_records_thread_cpu_s"]
    other = total - split["get_records_s"] - split["conversion_s"] - split["flush_s"]
    flush = split["flushes"][-1]
    print(
        f"\nwhere the poller's time goes (best run: {total:.2f} s, "
        f"{split['get_records_calls']} GetRecords calls of up to 1,000 records, "
        f"{split['get_records_empty_calls']} of them empty)"
    )
    parts = (
        ("GetRecords (the boto3 call)", split["get_records_s"]),
        ("  off this thread's CPU: DynamoDB Local, scheduling", waiting),
        ("  this thread's CPU: botocore (sign, send, parse)", split["get_records_thread_cpu_s"]),
        ("to_lambda_record (StreamSource.read minus GetRecords)", split["conversion_s"]),
        (f"flush: archive_records + checkpoint ({len(split['flushes'])})", split["flush_s"]),
        ("discovery, iterators, buffering, loop", other),
        ("Python's cyclic GC, inside the lines above", split["gc_s"]),
        ("  of which during the flush", sum(f["gc_s"] for f in split["flushes"])),
    )
    for label, seconds in parts:
        print(f"  {label:<56} {seconds:>6.2f} s {100 * seconds / total:>5.1f} %")
    jvm = split["dynamodb_local_cpu_s"]
    if jvm is not None:
        print(
            f"  CPU used: DynamoDB Local's JVM {jvm:.2f} s, this process "
            f"{split['process_cpu_s']:.2f} s; {split['gc_full_collections']} full GC collections"
        )
    cold = lam["stream_read"]
    if cold["dynamodb_local_cpu_s"] is not None:
        print(
            f"  for comparison, the Lambda child's first read of the stream (GC off, DynamoDB "
            f"Local's JVM not yet warm): {cold['seconds']:.2f} s,\n    JVM "
            f"{cold['dynamodb_local_cpu_s']:.2f} CPU s, that process {cold['process_cpu_s']:.2f} "
            "CPU s (botocore + to_lambda_record)"
        )
    print(
        f"  the flush archives {poll['archive_only_records_per_s']:,.0f} records/s; GetRecords "
        f"plus conversion read {poll['read_only_records_per_s']:,.0f} records/s"
    )
    buffer_mb = flush["rss_mb"] - poll["rss_start_mb"] if flush["rss_mb"] else float("nan")
    print(
        f"  buffer at the flush: {flush['records']:,} records, {mb(flush['buffer_bytes'])} as "
        f"FlushPolicy counts them (SizeBytes + 200 each); RSS {buffer_mb:,.0f} MB above the "
        f"start ({buffer_mb * 2**20 / max(flush['buffer_bytes'], 1):.1f}x)"
    )

    infos = (poll["files"], lam["files"], comp["files"])
    print(
        f"\nfiles for the same {traffic['changes']:,} changes ({infos[0]['partitions']} hour "
        f"partition(s)):"
    )
    labels = (
        "poller (flush at 100k / 64 MiB / 300 s, or on stop)",
        f"Lambda handler, batch size {LAMBDA_BATCH} ({lam['invocations']} invocations)",
        "the Lambda archive after compact",
    )
    for label, info in zip(labels, infos, strict=True):
        print(
            f"  {label:<58} {info['files']:>5,} files, {mb(info['bytes']):>9}, "
            f"mean {mb(info['mean_file_bytes'])}"
        )
    report = comp["best"]["report"]
    print(
        f"compaction: {report['files_in']} -> {report['files_out']} files, "
        f"{mb(report['bytes_in'])} -> {mb(report['bytes_out'])}, "
        f"{report['duplicates_dropped']} duplicates dropped; a rerun compacted "
        f"{comp['rerun_compacted_partitions']} partition(s) and changed "
        f"{'nothing' if comp['rerun_unchanged'] else 'FILES'}"
    )

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    print(
        f"checks over {check['replayed_events']:,} replayed events: the compacted archive "
        f"replays identically: {ok(check['compacted_replays_identical'])}; the poller's "
        f"archive replays as the Lambda's: {ok(check['poller_replays_as_lambda'])}; every "
        f"item's changes as written: {ok(check['item_histories_match_writes'])}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=4_000, help="distinct items changed")
    parser.add_argument("--changes", type=int, default=20_000, help="changes written")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per variant (best is kept)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic generator")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="print the report of a saved run again, and exit",
    )
    parser.add_argument(
        "--poller-gc",
        choices=["on", "off"],
        default="on",
        help="off: disable Python's cyclic GC in the poller's process (diagnostic)",
    )
    parser.add_argument("--child", choices=["poller", "lambda", "compact"], help=argparse.SUPPRESS)
    for hidden in ("--endpoint", "--stream-arn", "--keep", "--source"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--jvm-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.items < 1 or args.changes < LAMBDA_BATCH:
        parser.error(f"--repeat and --items must be >= 1, --changes >= {LAMBDA_BATCH}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child = {"poller": child_poller, "lambda": child_lambda, "compact": child_compact}
        print(json.dumps(child[args.child](args)))
        return 0

    if args.report:
        print_report(json.loads(args.report.read_text()))
        return 0

    from devkit.servers import DynamoDBLocal

    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "repeat": args.repeat,
        "seed": args.seed,
        "poller_gc": args.poller_gc,
    }
    print("starting DynamoDB Local ...", flush=True)
    with (
        DynamoDBLocal() as server,
        tempfile.TemporaryDirectory(prefix="bench-poller-main-") as scratch,
    ):
        results["dynamodb_local_start_s"] = round(time.perf_counter() - started, 1)
        assert server.proc is not None
        args.endpoint, args.jvm_pid = server.endpoint, server.proc.pid
        client = server.client()
        args.stream_arn = create_table(client)
        print(f"writing {args.changes:,} changes to {args.items:,} items ...", flush=True)
        history = make_history(args.items, args.seed)
        gc.disable()  # set-up, not measured; nothing here makes reference cycles
        traffic = write_traffic(client, history, args.changes, args.jvm_pid)
        gc.enable()
        written = traffic.pop("per_item")
        results["traffic"] = traffic

        folders = {name: os.path.join(scratch, name) for name in ("poller", "lambda", "compacted")}
        print(f"measuring {LABELS['lambda']} ...", flush=True)
        lam = run_child(args, "lambda", keep=folders["lambda"])
        print(f"measuring {LABELS['poller']} ...", flush=True)
        poll = run_child(args, "poller", keep=folders["poller"])
        print(f"measuring {LABELS['compact']} ...", flush=True)
        comp = run_child(args, "compact", keep=folders["compacted"], source=folders["lambda"])
        print("checking what the archives replay ...", flush=True)
        gc.disable()
        results["checks"] = checks(folders, written)
        gc.enable()

    for row in (poll, lam, comp):
        row["best"] = best(row)
        row["rss_added_mb"] = round(row["rss_peak_mb"] - row["rss_start_mb"], 1)
    split = poll["best"]
    poll["records_per_s"] = args.changes / split["seconds"]
    poll["archive_only_records_per_s"] = args.changes / split["flush_s"]
    reading = split["get_records_s"] + split["conversion_s"]
    poll["read_only_records_per_s"] = args.changes / reading
    lam["records_per_s"] = args.changes / lam["best"]["seconds"]
    comp["mb_per_s"] = comp["best"]["report"]["bytes_in"] / 1e6 / comp["best"]["seconds"]
    results["variants"] = {"poller": poll, "lambda": lam, "compact": comp}
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = os.getloadavg()[0]

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    print(f"\nwrote {args.output} in {results['elapsed_s']:.0f} s")
    load = results["machine"].get("load_average_at_start")
    if load is not None and load > BUSY_LOAD:
        print(
            f"warning: the 1-minute load average was {load:.2f} when the run started; other "
            "work on this machine makes the figures noisy"
        )
    failed = [name for name, flag in results["checks"].items() if flag is False]
    if failed or not comp["rerun_unchanged"]:
        print(f"CHECKS FAILED: {', '.join(failed) or 'compaction rerun changed files'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
