"""Benchmark of ``archiver run`` from DynamoDB Local against a raw read of the same stream.

Run from the repository root::

    .venv/bin/python bench/poller.py [--items N] [--changes N] [--repeat N] [--seed S]
    .venv/bin/python bench/poller.py --report bench/results/poller.json   # print a saved run

One run starts AWS's DynamoDB Local, creates a table with a NEW_AND_OLD_IMAGES
stream and writes ``--changes`` changes (INSERT/MODIFY/REMOVE of ~500 B items,
with ``batch_write_item`` and ``update_item``) to ``--items`` items. Then each
of these runs in a fresh process, measured from outside: CPU seconds are the
child's user + system time from ``wait4`` (start-up included), peak RSS its
VmHWM.

- ``raw``: the least any reader of the stream does. A fresh Python that
  creates a boto3 ``dynamodbstreams`` client, signs and sends GetRecords
  through botocore (standard retries), takes each response body before
  botocore parses it (``before-parse``) and ``orjson.loads`` it into Python
  objects, nothing else, until it has read every change.
- ``poller``: the real ``archiver run`` console script, with
  ``--flush-records`` set to the number of changes (and ``--flush-bytes``
  1 GiB), so that it reads the whole stream into its buffer and then flushes
  once; stopped with SIGTERM once its checkpoint is written. The ``flushed``
  log line says how many bytes it buffered and how long the flush took.
- ``profile``: ``archiver run`` once more, under cProfile with a CPU clock,
  start-up included, grouped by stage: where the poller's time goes.
- ``lambda``: the stream's records (read raw, with ``eventSourceARN``, as
  Lambda delivers them) through ``archiver.lambda_handler.handler`` at batch
  size 100 into a local folder; its read of the stream also warms DynamoDB
  Local's JVM before the poller and the raw read are measured.
- ``compact``: ``archiver.compact.compact`` over a copy of the Lambda-written
  archive, default target: MB/s of input, files before and after.

``raw`` and ``poller`` alternate, ``--repeat`` times each. The targets: the
poller uses no more CPU than the raw read (ratio raw / poller >= 1.0), and its
peak RSS is at most 3 times the bytes it buffers. The parent then checks that
``iter_events`` replays the poller's archive exactly as the Lambda-written
one, the compacted one likewise, and every item's change sequence as written.
Results go to ``bench/results/poller.json``.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import pstats
import shutil
import signal
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
from devkit.measure import peak_rss_mb  # noqa: E402
from devkit.traffic import orders_table  # noqa: E402

RESULTS = HERE / "results" / "poller.json"
BIN = Path(sys.executable).parent
TABLE = "orders"
LAMBDA_BATCH = 100  # Lambda's default BatchSize
BUSY_LOAD = 0.5
UPDATE_ITEM_SHARE = 0.2  # of the MODIFYs; the others are batch_write_item puts over the old item
CPU_TARGET = 1.0  # raw read CPU / poller CPU, at least
RSS_TARGET = 3.0  # poller peak RSS / bytes buffered, at most
LABELS = {
    "raw": "raw read: botocore GetRecords + orjson.loads",
    "poller": "archiver run (one flush of everything)",
    "lambda": f"Lambda handler, batch size {LAMBDA_BATCH}",
    "compact": "compact the Lambda-written archive (128 MiB)",
}

# The raw read, as a program of its own: nothing of this repository is imported.
RAW_READ = r"""
import json, sys
import boto3, orjson
from botocore.config import Config

arn, changes = sys.argv[1], int(sys.argv[2])
# Endpoint, credentials and region from the environment, as archiver run takes them.
client = boto3.client("dynamodbstreams", config=Config(retries={"mode": "standard"}))

def take_body(response_dict, customized_response_dict, **_):
    if 200 <= response_dict["status_code"] < 300:
        customized_response_dict["Body"] = response_dict["body"]
        response_dict["body"] = b"{}"

client.meta.events.register("before-parse.dynamodb-streams.GetRecords", take_body)
shards = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
iterator = client.get_shard_iterator(
    StreamArn=arn, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
)["ShardIterator"]
records = calls = body_bytes = 0
while records < changes:
    body = client.get_records(ShardIterator=iterator, Limit=1000)["Body"]
    page = orjson.loads(body)
    records += len(page["Records"])
    calls += 1
    body_bytes += len(body)
    iterator = page["NextShardIterator"]
peak = 0.0
with open("/proc/self/status") as status:  # VmHWM, read once at the end
    for line in status:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 2**10
print(json.dumps({"records": records, "calls": calls, "body_bytes": body_bytes, "peak": peak}))
"""

# Start-up alone, in a fresh process: what each of the two imports and builds before reading.
STARTUPS = {
    "raw": "import boto3, orjson; boto3.client('dynamodbstreams')",
    "poller": "from archiver.cli import main; import archiver.service, archiver.archive.s3store, "
    "archiver.metrics, archiver.logs; archiver.service.streams_client()",
}

# archiver run under cProfile, on a CPU clock, from before its first import; also the time
# spent in the cyclic GC's collections (gc.callbacks), per generation, into PROFILE.gc.json.
PROFILED_RUN = r"""
import cProfile, gc, json, sys, time
collections = {"seconds": [0.0, 0.0, 0.0], "count": [0, 0, 0], "started": 0.0}

def clock(phase, info):
    if phase == "start":
        collections["started"] = time.process_time()
    else:
        collections["seconds"][info["generation"]] += time.process_time() - collections["started"]
        collections["count"][info["generation"]] += 1

gc.callbacks.append(clock)
profile = cProfile.Profile(time.process_time)
profile.enable()
from archiver.cli import main
try:
    status = main(sys.argv[2:])
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
    del collections["started"]
    collections["frozen"] = gc.get_freeze_count()
    with open(sys.argv[1] + ".gc.json", "w") as out:
        json.dump(collections, out)
sys.exit(status)
"""


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


def vm_hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a running process, in MiB; 0 once it has exited.

    Not ``wait4``'s ``ru_maxrss``: on Linux that carries the parent's peak
    across fork and exec, and the parent here holds the whole history.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return 0.0


def child_env(endpoint: str) -> dict[str, str]:
    """The environment of every child: DynamoDB Local through the standard endpoint variables."""
    from devkit.servers import aws_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ARCHIVER_"))}
    env.update(aws_env())
    env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = endpoint
    return env


def measured(
    command: list[str],
    env: dict[str, str],
    *,
    stop_when: Callable[[], bool] | None = None,
    stderr: Path | None = None,
    jvm_pid: int = 0,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Run ``command`` to its end (SIGTERM once ``stop_when()`` holds): CPU, peak RSS, stdout."""
    jvm_before = cpu_seconds_of(jvm_pid)
    with tempfile.TemporaryFile() as out, open(stderr or os.devnull, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        peak = 0.0
        stopped_at: float | None = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vm_hwm_mb(proc.pid))
            if stop_when is not None and stopped_at is None and stop_when():
                peak = max(peak, vm_hwm_mb(proc.pid))
                proc.send_signal(signal.SIGTERM)
                stopped_at = time.perf_counter()
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise SystemExit(f"{command[:3]} ran for more than {timeout:.0f} s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    jvm_after = cpu_seconds_of(jvm_pid)
    if proc.returncode != 0:
        detail = stderr.read_text()[-3000:] if stderr else ""
        raise SystemExit(f"{command[:3]} exited with {proc.returncode}: {detail}")
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "wall_s": wall,
        "until_stop_s": None if stopped_at is None else stopped_at - started,
        "peak_rss_mb": round(peak, 1),
        "dynamodb_local_cpu_s": None
        if jvm_before is None or jvm_after is None
        else jvm_after - jvm_before,
        "stdout": stdout,
    }


def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    """The raw read in a fresh process."""
    result = measured(
        [sys.executable, "-c", RAW_READ, args.stream_arn, str(args.changes)],
        child_env(args.endpoint),
        jvm_pid=args.jvm_pid,
    )
    result.update(json.loads(result.pop("stdout").strip().splitlines()[-1]))
    result["peak_rss_mb"] = round(max(result["peak_rss_mb"], result.pop("peak")), 1)
    if result["records"] != args.changes:
        raise SystemExit(f"the raw read got {result['records']} records of {args.changes}")
    return result


def run_startup(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The imports and client of the raw read or of ``archiver run``, alone, in a fresh process."""
    result = measured([sys.executable, "-c", STARTUPS[name]], child_env(args.endpoint))
    result.pop("stdout")
    return result


def poller_command(args: argparse.Namespace, folder: str) -> list[str]:
    return [
        "run",
        "--archive",
        folder,
        "--stream-arn",
        args.stream_arn,
        "--flush-records",
        str(args.changes),
        "--flush-bytes",
        str(2**30),
        "--flush-interval",
        "3600",
    ]


def run_poller(
    args: argparse.Namespace, folder: str, logs: Path, profile: Path | None = None
) -> dict[str, Any]:
    """``archiver run`` in a fresh process until its one flush is checkpointed, then SIGTERM."""
    from archiver.poller import checkpoint_key

    checkpoint = Path(folder) / checkpoint_key(args.stream_arn)
    command = [str(BIN / "archiver"), *poller_command(args, folder)]
    if profile is not None:
        command = [sys.executable, "-c", PROFILED_RUN, str(profile), *poller_command(args, folder)]
    result = measured(
        command,
        child_env(args.endpoint),
        stop_when=checkpoint.exists,
        stderr=logs,
        jvm_pid=args.jvm_pid,
    )
    result.pop("stdout")  # EMF metrics lines
    lines = [json.loads(line) for line in logs.read_text().splitlines() if line.startswith("{")]
    flushes = [line for line in lines if line.get("message") == "flushed"]
    if len(flushes) != 1 or flushes[0]["records"] != args.changes:
        raise SystemExit(f"expected one flush of {args.changes} records: {flushes}")
    files = archive_files(folder)
    if files["rows"] != args.changes or files["dead_letters"]:
        raise SystemExit(f"poller: archived {files} for {args.changes} changes")
    flush = flushes[0]
    result.update(
        buffered_bytes=flush["buffered_bytes"],
        flush_s=flush["seconds"],
        written_bytes=flush["bytes"],
        files=files,
    )
    return result


# The stages of ``archiver run`` in the profile: (label, file, function), cumulative CPU.
STAGES = [
    ("archiver run, from its first import to exit", "archiver/cli.py", "main"),
    ("imports, wherever they happen", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("boto3 client (botocore's models, endpoint rules)", "botocore/session.py", "create_client"),
    ("Poller.run: the loop", "archiver/poller.py", "run"),
    ("  DescribeStream (discover)", "archiver/poller.py", "discover"),
    ("  StreamSource.read", "archiver/streams.py", "read"),
    ("    GetRecords through botocore (sign, send, receive)", "archiver/streams.py", "__call__"),
    ("    split_page: the records' text", "archiver/split.py", "split_page"),
    ("  last_position: the page's last record", "archiver/streams.py", "last_position"),
    ("  Poller._buffer: each page decoded as it arrives", "archiver/poller.py", "_buffer"),
    ("    decode_record", "archiver/decode.py", "decode_record"),
    ("    records_table: the page's Arrow columns", "archiver/archive/codec.py", "records_table"),
    ("    _compressed: those columns, zstd", "archiver/spool.py", "_compressed"),
    ("  Poller.flush", "archiver/poller.py", "flush"),
    ("    _batches: the spool's archive order", "archiver/spool.py", "_batches"),
    ("    _opened: pages decompressed", "archiver/spool.py", "_opened"),
    ("    write_row_groups (Parquet)", "archiver/archive/codec.py", "write_row_groups"),
    ("    store.put (write, fsync)", "archiver/archive/store.py", "put"),
    ("    checkpoint save", "archiver/poller.py", "save"),
]


def profile_report(path: Path) -> dict[str, Any]:
    """Cumulative CPU of each stage, and the functions with the most CPU of their own."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values())

    def cumulative(file: str, function: str) -> float:
        return sum(
            entry[3]
            for (name, _, func), entry in table.items()
            if name.replace(os.sep, "/").endswith(file) and func == function
        )

    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:15]
    return {
        "total_s": total,
        "stages": [
            {"label": label, "seconds": cumulative(file, function)}
            for label, file, function in STAGES
        ],
        "own_time": [
            {
                "function": f"{Path(name).name}:{line}({func})" if name != "~" else func,
                "seconds": entry[2],
                "calls": entry[1],
            }
            for (name, line, func), entry in own
        ],
    }


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


def read_stream(endpoint: str, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream as Lambda would deliver it: GetRecords' JSON, eventSourceARN."""
    import boto3
    import orjson
    from botocore.config import Config

    from devkit.servers import ACCESS_KEY, REGION, SECRET_KEY

    client = boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(retries={"mode": "standard"}),
    )
    bodies: list[bytes] = []
    client.meta.events.register(
        "before-parse.dynamodb-streams.GetRecords",
        lambda response_dict, **_: bodies.append(response_dict["body"]),
    )
    shards = client.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    records: list[dict[str, Any]] = []
    for shard in shards:  # listed parents first; DynamoDB Local has one shard here
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            page = orjson.loads(bodies[-1])
            records += [{**r, "eventSourceARN": stream_arn} for r in page["Records"]]
            iterator = response.get("NextShardIterator")
            if not page["Records"]:
                break
    return records


def child_lambda(args: argparse.Namespace) -> dict[str, Any]:
    from archiver import lambda_handler

    started, jvm_before = time.perf_counter(), cpu_seconds_of(args.jvm_pid)
    gc.disable()  # set-up, not measured
    records = read_stream(args.endpoint, args.stream_arn)
    gc.enable()
    jvm_after = cpu_seconds_of(args.jvm_pid)
    read = {
        "seconds": time.perf_counter() - started,
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


def summary(runs: list[dict[str, Any]], name: str) -> dict[str, float]:
    values = [run[name] for run in runs]
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def print_report(results: dict[str, Any]) -> None:
    host, traffic, check = results["machine"], results["traffic"], results["checks"]
    raw, poll = results["raw"], results["poller"]
    lam, comp = results["variants"]["lambda"], results["variants"]["compact"]
    print(
        f"\n{traffic['changes']:,} changes to {traffic['items']:,} items written to DynamoDB "
        f"Local in {traffic['seconds']:.1f} s ({traffic['changes_per_s']:,.0f}/s, "
        f"{traffic['waves']} waves): {traffic['event_mix']}"
    )
    print(f"  calls: {traffic['writes']}")
    print(
        f"  mean item {traffic['mean_item_bytes']} B as DynamoDB sizes it "
        f"({traffic['mean_item_json_bytes']} B of typed JSON); mean stream record "
        f"{check['mean_stream_record_size_bytes']} B (SizeBytes), "
        f"{poll['runs'][0]['buffered_bytes'] / traffic['changes']:,.0f} B of JSON text"
    )
    print(
        f"{host['cpus']} CPUs ({host['cpu']}), Python {host['python']}, pyarrow "
        f"{host['pyarrow']}, boto3 {host['boto3']}, {host['dynamodb_local']}, {host['java']}; "
        f"commit {host['commit']}"
        f"{' + uncommitted changes' if host['uncommitted_changes'] else ''}; 1-minute load "
        f"{host['load_average_at_start']:.2f} at the start\n"
    )

    header = (
        f"{'fresh process, start-up included':<46} {'CPU s':>6} {'(med)':>6} {'user':>6} "
        f"{'sys':>5} {'wall s':>6} {'peak RSS':>9} {'JVM CPU s':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, row in (("raw", raw), ("poller", poll)):
        fastest = min(row["runs"], key=lambda run: run["cpu_s"])
        print(
            f"{LABELS[name]:<46} {row['cpu_s']['min']:>6.2f} {row['cpu_s']['median']:>6.2f} "
            f"{fastest['user_s']:>6.2f} {fastest['sys_s']:>5.2f} {fastest['wall_s']:>6.2f} "
            f"{row['peak_rss_mb']['max']:>6.0f} MB {fastest['dynamodb_local_cpu_s'] or 0:>9.2f}"
        )
    for name, row in (("raw", raw), ("poller", poll)):
        start = row["startup"]
        print(
            f"{'  its start-up alone (imports, client)':<46} {start['cpu_s']['min']:>6.2f} "
            f"{start['cpu_s']['median']:>6.2f} {'':>6} {'':>5} {'':>6} "
            f"{start['peak_rss_mb']['max']:>6.0f} MB   ({name})"
        )
    target = results["targets"]
    print(
        f"{results['repeat']} runs each, alternating; CPU s: the lowest (and the median) of "
        "user + sys from wait4; peak RSS: the highest VmHWM.\n"
        f"  CPU ratio raw / poller: {target['cpu_ratio']:.2f} (medians "
        f"{target['cpu_ratio_median']:.2f}); target >= {CPU_TARGET:.1f}: "
        f"{'met' if target['cpu_ratio'] >= CPU_TARGET else 'NOT MET'}; start-up apart: "
        f"{target['cpu_ratio_after_startup']:.2f}"
    )
    print(
        f"  the poller buffered {mb(poll['runs'][0]['buffered_bytes'])} ({traffic['changes']:,} "
        f"records' text); peak RSS / buffered bytes: {target['rss_ratio']:.2f}; target <= "
        f"{RSS_TARGET:.0f}: {'met' if target['rss_ratio'] <= RSS_TARGET else 'NOT MET'}; "
        f"above the raw read's peak: {target['rss_above_raw_mb']:.0f} MB "
        f"({target['rss_above_raw_ratio']:.2f}x the buffer)"
    )
    print(
        f"  the poller's one flush (archive_records + checkpoint, from its log line): "
        f"{statistics.median(r['flush_s'] for r in poll['runs']):.2f} s median, "
        f"{traffic['changes'] / min(r['flush_s'] for r in poll['runs']):,.0f} records/s at best; "
        f"the raw read made {raw['runs'][0]['calls']} GetRecords calls"
    )

    prof = results["profile"]
    print(
        f"\nwhere archiver run's CPU goes (cProfile on a CPU clock, one run: {prof['total_s']:.2f} "
        f"CPU s profiled, {prof['cpu_s']:.2f} s by wait4 with the profiler; shares of the profiled "
        "time; stages nest)"
    )
    for stage in prof["stages"]:
        print(
            f"  {stage['label']:<58} {stage['seconds']:>6.2f} s "
            f"{100 * stage['seconds'] / prof['total_s']:>5.1f} %"
        )
    collected = prof["gc"]
    print(
        f"  cyclic GC, inside the lines above: {sum(collected['seconds']):.2f} s in "
        f"{collected['count']} collections (generations 0, 1, 2); "
        f"{collected['frozen']:,} objects frozen by gc.freeze()"
    )
    print("  most CPU of their own:")
    for entry in prof["own_time"]:
        print(f"    {entry['function'][:70]:<70} {entry['seconds']:>6.2f} s {entry['calls']:>9,}")

    print(
        f"\n{'in-process rows':<54} {'best s':>6} {'1st s':>6} {'rate':>14} {'files':>6} "
        f"{'mean file':>9} {'peak RSS':>8}"
    )
    for name, row, rate in (
        ("lambda", lam, f"{lam['records_per_s']:,.0f} rec/s"),
        ("compact", comp, f"{comp['mb_per_s']:.1f} MB/s"),
    ):
        files = row["files"]
        print(
            f"{LABELS[name]:<54} {row['best']['seconds']:>6.2f} {row['runs'][0]['seconds']:>6.2f} "
            f"{rate:>14} {files['files']:>6,} {mb(files['mean_file_bytes']):>9} "
            f"{row['rss_peak_mb']:>5.0f} MB"
        )
    report = comp["best"]["report"]
    print(
        f"compaction: {report['files_in']} -> {report['files_out']} files, "
        f"{mb(report['bytes_in'])} -> {mb(report['bytes_out'])}, "
        f"{report['duplicates_dropped']} duplicates dropped; a rerun compacted "
        f"{comp['rerun_compacted_partitions']} partition(s) and changed "
        f"{'nothing' if comp['rerun_unchanged'] else 'FILES'}; the poller wrote "
        f"{poll['runs'][0]['files']['files']} file(s), {mb(poll['runs'][0]['files']['bytes'])}"
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
    parser.add_argument("--items", type=int, default=8_000, help="distinct items changed")
    parser.add_argument("--changes", type=int, default=40_000, help="changes written")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the raw read and of the poller each"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic generator")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="print the report of a saved run again, and exit",
    )
    parser.add_argument("--child", choices=["lambda", "compact"], help=argparse.SUPPRESS)
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
        child = {"lambda": child_lambda, "compact": child_compact}
        print(json.dumps(child[args.child](args)))
        return 0

    if args.report:
        print_report(json.loads(args.report.read_text()))
        return 0

    from devkit.servers import DynamoDBLocal

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "repeat": args.repeat, "seed": args.seed}
    print("starting DynamoDB Local ...", flush=True)
    with (
        DynamoDBLocal() as server,
        tempfile.TemporaryDirectory(prefix="bench-poller-main-") as scratch_name,
    ):
        scratch = Path(scratch_name)
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
        del history, client

        folders = {name: str(scratch / name) for name in ("poller", "lambda", "compacted")}
        print(f"measuring {LABELS['lambda']} (it also warms DynamoDB Local) ...", flush=True)
        lam = run_child(args, "lambda", keep=folders["lambda"])
        raws, polls = [], []
        startups: dict[str, list[dict[str, Any]]] = {"raw": [], "poller": []}
        for rep in range(args.repeat):
            print(f"measuring {LABELS['raw']} and {LABELS['poller']}, {rep + 1} ...", flush=True)
            for name in startups:
                startups[name].append(run_startup(args, name))
            raws.append(run_raw(args))
            folder = folders["poller"] if rep == args.repeat - 1 else str(scratch / f"p{rep}")
            polls.append(run_poller(args, folder, scratch / f"poller-{rep}.log"))
            if folder != folders["poller"]:
                shutil.rmtree(folder)
        print("profiling archiver run ...", flush=True)
        profiled = run_poller(
            args, str(scratch / "profiled"), scratch / "profiled.log", scratch / "poller.prof"
        )
        profile = profile_report(scratch / "poller.prof")
        profile["gc"] = json.loads((scratch / "poller.prof.gc.json").read_text())
        profile["cpu_s"] = profiled["cpu_s"]
        results["profile"] = profile
        print(f"measuring {LABELS['compact']} ...", flush=True)
        comp = run_child(args, "compact", keep=folders["compacted"], source=folders["lambda"])
        print("checking what the archives replay ...", flush=True)
        gc.disable()
        results["checks"] = checks(folders, written)
        gc.enable()

    for row in (lam, comp):
        row["best"] = best(row)
    lam["records_per_s"] = args.changes / lam["best"]["seconds"]
    comp["mb_per_s"] = comp["best"]["report"]["bytes_in"] / 1e6 / comp["best"]["seconds"]
    results["variants"] = {"lambda": lam, "compact": comp}
    for name, runs in (("raw", raws), ("poller", polls)):
        results[name] = {
            "runs": runs,
            "cpu_s": summary(runs, "cpu_s"),
            "peak_rss_mb": summary(runs, "peak_rss_mb"),
            "startup": {
                "runs": startups[name],
                "cpu_s": summary(startups[name], "cpu_s"),
                "peak_rss_mb": summary(startups[name], "peak_rss_mb"),
            },
        }
    raw_cpu, poll_cpu = results["raw"]["cpu_s"], results["poller"]["cpu_s"]
    buffered = polls[0]["buffered_bytes"]
    poll_peak = results["poller"]["peak_rss_mb"]["max"] * 2**20
    raw_peak = results["raw"]["peak_rss_mb"]["max"] * 2**20
    results["targets"] = {
        "cpu_ratio": raw_cpu["min"] / poll_cpu["min"],
        "cpu_ratio_median": raw_cpu["median"] / poll_cpu["median"],
        "rss_ratio": poll_peak / buffered,
        "rss_above_raw_mb": (poll_peak - raw_peak) / 2**20,
        "rss_above_raw_ratio": (poll_peak - raw_peak) / buffered,
        "cpu_ratio_after_startup": (raw_cpu["min"] - results["raw"]["startup"]["cpu_s"]["min"])
        / (poll_cpu["min"] - results["poller"]["startup"]["cpu_s"]["min"]),
    }
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
