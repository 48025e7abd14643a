"""Benchmark of the replayer's state fold, JSON Lines replay, redrive and restore, in one run.

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
- ``events``: ``replayer events --output FILE`` (``replayer.cli.main``), and
  one more run of it under cProfile, to say where its time goes;
- ``envelope_lines``: the baseline for it, every file's ``envelope`` column read
  with pyarrow and written as lines (no order, no images);
- ``redrive``: ``replayer.redrive.redrive`` as ``replayer redrive --dry-run``
  calls it, then with a consumer that answers at once (every payload built);
- for memory: the state fold and ``replayer events`` over the first quarter of
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
TARGET_EVENTS_RATIO = 0.5  # replayer events at least half the baseline's speed
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
    Each record goes through the archiver's ``decode_record`` (its JSON text
    in, a ``ChangeRecord`` out), as the archiver's sink would take it.
    """
    import orjson

    from archiver.archive.codec import batch_name, encode_records
    from archiver.archive.layout import Partition
    from archiver.archive.record import ChangeRecord
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
        ddb: dict[str, Any] = {"ApproximateCreationDateTime": float(second), "Keys": key}
        if new is not None:
            ddb["NewImage"] = new
        if old is not None:
            ddb["OldImage"] = old
        ddb["SequenceNumber"] = sequence
        ddb["SizeBytes"] = size
        ddb["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        event_id = f"{rng.getrandbits(128):032x}"
        raw: dict[str, Any] = {
            "eventID": event_id,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": ddb,
            "eventSourceARN": ARN,
        }
        if identity is not None:
            raw["userIdentity"] = identity
        record = decode_record(dumps(raw))
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


class GcTimer:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), and full collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info["generation"] == 2

    def __enter__(self) -> GcTimer:
        self.seconds, self.full = 0.0, 0
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def events_argv(spec: dict[str, Any], path: Path) -> list[str]:
    """``replayer events`` as a user would type it for this spec."""
    argv = ["events", "--archive", spec["archive"], "--table", TABLE, "--output", str(path)]
    if spec.get("until_us") is not None:
        # changes are stamped in whole seconds: the last whole second is the same window
        argv += ["--until", str(spec["until_us"] // 1_000_000)]
    return argv


# Where replayer events spends its time, by the product function that owns it.
OWNERS = (
    ("archive/codec.py:read_archive_file", "read Parquet (pyarrow.parquet)"),
    ("archive/reader.py:_selected", "concat + window/name/key filters"),
    ("archive/codec.py:archive_order", "order: sort, check event ids"),
    ("archive/reader.py:iter_record_texts", "take each piece in order"),
    ("archive/rebuild.py", "rebuild: Arrow string kernels"),
    ("replayer/jsonl.py:write_texts", "write the lines"),
)


def owner_of(func: tuple[str, int, str]) -> str | None:
    name = f"{func[0]}:{func[2]}"
    for prefix, label in OWNERS:
        if prefix in name:
            return label
    return None


def profile_by_owner(stats: Any) -> dict[str, float]:
    """cProfile self time, each library or builtin function's time given to the product
    function above it (by the share of its time each caller accounts for)."""
    table = stats.stats  # func -> (cc, nc, tt, ct, callers)
    shares: dict[Any, dict[str, float]] = {}

    def owners(func: Any, depth: int = 0) -> dict[str, float]:
        if func in shares:
            return shares[func]
        own = owner_of(func)
        if own is not None or depth > 30 or func not in table:
            result = {own or "other (imports, CLI, listing)": 1.0}
        else:
            callers = table[func][4]
            total = sum(ct for _, _, _, ct in callers.values()) or 1.0
            result = {}
            for caller, (_, _, _, ct) in callers.items():
                for label, share in owners(caller, depth + 1).items():
                    result[label] = result.get(label, 0.0) + share * ct / total
            result = result or {"other (imports, CLI, listing)": 1.0}
        shares[func] = result
        return result

    out: dict[str, float] = {}
    for func, (_, _, tt, _, _) in table.items():
        for label, share in owners(func).items():
            out[label] = out.get(label, 0.0) + tt * share
    return dict(sorted(out.items(), key=lambda item: -item[1]))


class SerialWriter:
    """``replayer.jsonl.LineWriter`` without its thread: for the serial rows and the profile."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def __enter__(self) -> SerialWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def put(self, texts: Any) -> None:
        from replayer.jsonl import write_texts

        write_texts(self.out, texts)


def child_events(spec: dict[str, Any]) -> dict[str, Any]:
    """(3) ``replayer events --output FILE``: ``replayer.cli.main`` as the command runs it.

    ``reader._selected`` (read one partition's files, filter on columns; on
    the read-ahead thread) is wrapped in this process only, to time the
    reading. With ``serial``, everything runs on one thread. With
    ``profile``, one more run goes under cProfile, on one thread (cProfile
    sees only the thread that starts it).
    """
    from archiver.archive import reader
    from replayer import jsonl
    from replayer.cli import main

    threaded = (reader._read_ahead, jsonl.LineWriter)

    def one_thread(on: bool) -> None:
        reader._read_ahead, jsonl.LineWriter = (
            (lambda items: items, SerialWriter) if on else threaded
        )

    path = Path(spec["scratch"]) / "events.jsonl"
    selected_rows = reader._selected
    timing = {"read_s": 0.0}

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        table = selected_rows(*args, **kwargs)
        timing["read_s"] += time.perf_counter() - started
        return table

    reader._selected = timed
    one_thread(bool(spec.get("serial")))
    rss_ready = proc_status_mb("VmRSS")
    check: dict[str, Any] = {}
    argv = events_argv(spec, path)

    def run() -> dict[str, Any]:
        timing["read_s"] = 0.0
        path.unlink(missing_ok=True)
        with GcTimer() as collector:
            started = time.perf_counter()
            code = main(argv)
            total = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"replayer events exited {code}")
        with open(path, "rb") as lines:
            count = sum(block.count(b"\n") for block in iter(lambda: lines.read(1 << 24), b""))
        check.update(lines=count, output_mb=round(path.stat().st_size / 1e6, 1))
        path.unlink()
        return {
            "total_s": total,
            "read_s": timing["read_s"],
            "work_s": total - timing["read_s"] if spec.get("serial") else None,
            "events": count,
            "gc_s": collector.seconds,
            "gc_full": collector.full,
        }

    runs = runs_of(spec["runs"], run)
    peak = proc_status_mb("VmHWM")
    reader._selected = selected_rows
    split = rebuild_both_ways(spec) if spec.get("split") else {}
    profile: dict[str, float] = {}
    if spec.get("profile"):
        import cProfile
        import pstats

        one_thread(True)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(main, argv)
        profile = {"wall_s": time.perf_counter() - started}
        profile.update(profile_by_owner(pstats.Stats(profiler)))
        path.unlink()
    return {
        "runs": runs,
        "check": check,
        "profile": profile,
        "rebuild_both_ways": split,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak,
    }


def rebuild_both_ways(spec: dict[str, Any]) -> dict[str, Any]:
    """The rebuild of one partition's ordered rows to JSON Lines, best of 3: Arrow's string
    kernels (``record_texts``, what the product runs) against a Python loop of ``splice``
    over the columns as lists, joined into one ``bytes``."""
    from archiver.archive import reader
    from archiver.archive.codec import archive_order
    from archiver.archive.rebuild import record_texts, splice
    from archiver.archive.schema import Col

    store, flt, partitions = selected(spec)
    rows = reader._selected(store, partitions[0][1], flt, reader.REBUILD_COLUMNS)
    rows = rows.take(archive_order(rows))

    def kernels() -> None:
        for start in range(0, rows.num_rows, 8192):
            record_texts(rows.slice(start, 8192), "\n")

    def python_loop() -> None:
        names = (Col.ENVELOPE, Col.KEYS, Col.NEW_IMAGE, Col.OLD_IMAGE)
        columns = [rows.column(name).to_pylist() for name in names]
        lines = [splice(*row) for row in zip(*columns, strict=True)]
        ("\n".join(lines) + "\n").encode()

    best = {}
    for name, fn in (("kernels", kernels), ("python", python_loop)):
        times = []
        for _ in range(3):
            gc.collect()
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        best[name] = min(times) / rows.num_rows * 1e6
    return {"records": rows.num_rows, "kernels_us": best["kernels"], "python_us": best["python"]}


def child_envelope_lines(spec: dict[str, Any]) -> dict[str, Any]:
    """(3b) The baseline: every Parquet file's ``envelope`` column, read with pyarrow, as lines.

    No ordering, no duplicates dropped, no images: the least a reader of this
    archive can do to write one line per change.
    """
    import pyarrow.parquet as pq

    from archiver.archive.schema import Col

    files = sorted(Path(spec["archive"]).rglob("*.parquet"))
    path = Path(spec["scratch"]) / "envelopes.jsonl"
    rss_ready = proc_status_mb("VmRSS")
    check: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        path.unlink(missing_ok=True)
        count = 0
        started = time.perf_counter()
        with open(path, "wb") as out:
            for name in files:
                texts = pq.read_table(name, columns=[Col.ENVELOPE]).column(Col.ENVELOPE).to_pylist()
                out.write(("\n".join(texts) + "\n").encode())
                count += len(texts)
        total = time.perf_counter() - started
        check.update(lines=count, output_mb=round(path.stat().st_size / 1e6, 1), files=len(files))
        path.unlink()
        return {"total_s": total, "events": count}

    runs = runs_of(spec["runs"], run)
    return {"runs": runs, "check": check, "rss_ready_mb": rss_ready}


def child_redrive(spec: dict[str, Any]) -> dict[str, Any]:
    """(5) ``replayer.redrive.redrive`` as ``replayer redrive`` calls it, without a network.

    ``dry_run``: what ``--dry-run`` does (every record's text, identifier and
    batch; nothing sent). Otherwise the invoker is a consumer that answers at
    once, so every payload is built (``{"Records":[...]}``) and every batch
    acknowledged in an in-memory checkpoint.
    """
    from archiver.archive.reader import REPLAY_COLUMNS, EventFilter
    from archiver.archive.store import LocalStore
    from replayer.checkpoint import Checkpoint
    from replayer.redrive import Delivery, RedriveOptions, redrive
    from replayer.runner import Selection

    store = LocalStore(spec["archive"])
    rss_ready = proc_status_mb("VmRSS")
    check: dict[str, Any] = {"payload_mb": 0.0, "invocations": 0}
    sent = {"bytes": 0}

    def consumer(payload: bytes, identifiers: Any) -> Delivery:
        sent["bytes"] += len(payload)
        return Delivery(None)

    def run() -> dict[str, Any]:
        sent["bytes"] = 0
        options = RedriveOptions(function="bench", dry_run=spec["dry_run"])
        selection = Selection(store, TABLE, EventFilter(), tuple(REPLAY_COLUMNS))
        with GcTimer() as collector:
            started = time.perf_counter()
            summary = redrive(selection, options, Checkpoint.open(None, {"bench": 1}), consumer)
            total = time.perf_counter() - started
        check.update(
            records=summary.records,
            batches=summary.batches,
            invocations=summary.invocations,
            payload_mb=round(sent["bytes"] / 1e6, 1),
        )
        return {
            "total_s": total,
            "events": summary.records,
            "gc_s": collector.seconds,
            "gc_full": collector.full,
        }

    runs = runs_of(spec["runs"], run)
    return {"runs": runs, "check": check, "rss_ready_mb": rss_ready}


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
    "events": child_events,
    "envelope_lines": child_envelope_lines,
    "redrive": child_redrive,
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
    "events": "(3) replayer events --output FILE",
    "events_serial": "(3s) the same on one thread",
    "envelope_lines": "(3b) baseline: pyarrow, envelope column as lines",
    "redrive_dry_run": "(5) redrive --dry-run: records and batches",
    "redrive_payloads": "(5b) redrive, consumer answers at once: payloads",
    "state_quarter": "(1q) state, first quarter of the hours",
    "state_slice": "(1s) state, --slice 1/4 (read_partition's slice)",
    "state_jemalloc": "(1j) state, ARROW_DEFAULT_MEMORY_POOL=jemalloc",
    "state_quarter_jemalloc": "(1jq) state, jemalloc, first quarter of the hours",
    "events_quarter": "(3q) replayer events, first quarter of the hours",
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
    # A redrive pass of the whole archive takes ~10 s here: at most 2 of each. The quarter
    # and slice rows are there for their memory: one run each.
    once = {"runs": 1}
    quarter = {"until_us": info["boundary_us"], **once}
    twice = {"runs": min(args.repeat, 2)}
    plan = [
        ("state", "state", {}),
        ("python", "python", {}),
        ("events", "events", {"profile": True, "split": True}),
        ("events_serial", "events", {"serial": True}),
        ("envelope_lines", "envelope_lines", {}),
        ("redrive_dry_run", "redrive", {"dry_run": True, **twice}),
        ("redrive_payloads", "redrive", {"dry_run": False, **twice}),
        ("state_quarter", "state", quarter),
        ("events_quarter", "events", quarter),
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
    expect("events lines", variants["events"]["check"]["lines"], big["changes"])
    expect("events_serial lines", variants["events_serial"]["check"]["lines"], big["changes"])
    expect("baseline lines", variants["envelope_lines"]["check"]["lines"], big["changes"])
    expect(
        "events_quarter lines",
        variants["events_quarter"]["check"]["lines"],
        big["boundary"]["changes"],
    )
    for name in ("redrive_dry_run", "redrive_payloads"):
        expect(f"{name} records", variants[name]["check"]["records"], big["changes"])
    payloads = variants["redrive_payloads"]["check"]
    expect("redrive_payloads invocations", payloads["invocations"], payloads["batches"])
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


def print_events(results: dict[str, Any]) -> None:
    """replayer events against the baseline, redrive, and where the events' time goes."""
    variants, target = results["variants"], results["events_target"]
    events, base = variants["events"], variants["envelope_lines"]
    dry, payloads = variants["redrive_dry_run"], variants["redrive_payloads"]
    print(
        f"\nreplayer events vs the baseline (3b): {target['x_baseline']:.2f}x the baseline's speed "
        f"({events['best_s']:.2f} s vs {base['best_s']:.2f} s; first runs {events['first_s']:.2f} "
        f"vs {base['first_s']:.2f} s); target >= {TARGET_EVENTS_RATIO:g}x: "
        f"{'MET' if target['met'] else 'NOT MET'}"
    )
    print(
        f"  output {events['check']['output_mb']:,} MB vs {base['check']['output_mb']:,} MB; "
        f"peak RSS {mb(events['rss_peak_mb'])} vs {mb(base['rss_peak_mb'])}; cyclic GC in the "
        f"first run {events['runs'][0]['gc_s'] * 1e3:.0f} ms, {events['runs'][0]['gc_full']} "
        "full collections"
    )
    print(
        f"redrive: --dry-run {dry['events_per_s']:,.0f} records/s, with payloads "
        f"{payloads['events_per_s']:,.0f} records/s ({payloads['check']['invocations']:,} "
        f"payloads, {payloads['check']['payload_mb']:,} MB), against replayer events' "
        f"{events['events_per_s']:,.0f}; cyclic GC {dry['runs'][0]['gc_s']:.2f} s and "
        f"{payloads['runs'][0]['gc_s']:.2f} s (first runs)"
    )
    split = events.get("rebuild_both_ways") or {}
    if split:
        print(
            f"rebuilding one partition's text ({split['records']:,} records, to JSON Lines): "
            f"Arrow string kernels {split['kernels_us']:.2f} us per record, a Python loop of "
            f"splice() {split['python_us']:.2f} us"
        )
    profile = dict(events.get("profile") or {})
    if profile:
        wall = profile.pop("wall_s")
        total = sum(profile.values()) or 1.0
        print(
            f"where replayer events' time goes (cProfile of one more run, on one thread: "
            f"{wall:.2f} s under\n  the profiler; self time, library and builtin calls given to "
            "the product function that made them)"
        )
        for label, seconds in profile.items():
            print(f"  {label:<44} {seconds:>6.2f} s {seconds / total * 100:>5.1f} %")


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
        "events",
        "events_serial",
        "envelope_lines",
        "redrive_dry_run",
        "redrive_payloads",
        "state_quarter",
        "events_quarter",
        "state_slice",
        "state_jemalloc",
        "state_quarter_jemalloc",
    ):
        row = variants[name]
        first = f"{row['first_s']:>6.2f}" if len(row["runs"]) > 1 else f"{'-':>6}"
        read = "-" if row["best_read_s"] is None else f"{row['best_read_s']:.2f}"
        work = "-" if row["best_work_s"] is None else f"{row['best_work_s']:.2f}"
        print(
            f"{LABELS[name]:<52} {row['events']:>9,} {row['best_s']:>6.2f} {first} "
            f"{row['best_cpu_s']:>5.2f} {read:>6} {work:>6} "
            f"{row['events_per_s']:>10,.0f} {mb(row['rss_peak_mb']):>8} "
            f"{mb(row['rss_added_mb']):>8}"
        )
    print(
        "read s: (1) (2) list_partitions + read_partition (Parquet decode, order by sequence "
        "number, drop\n  repeated event ids), (3) reading and filtering the partitions' files "
        "(in (3) on the read-ahead\n  thread, beside the rest); work s: (1) the fold, (2) the "
        "Python loop, (3s) ordering, rebuilding\n  the text, writing; (3b) reads and writes only "
        "the envelopes: no order, no images; (5) (5b)\n  run at most twice, (5b) builds every "
        "payload; 1st s: the first run ('-': one run only);\n  cpu s: CPU time of the best run "
        "(threads included; below its wall time when other work\n  takes the cores); +RSS: "
        "peak RSS minus the RSS after imports. Arrow's memory pool:\n  "
        f"{variants['state']['check']['memory_pool']} unless noted."
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
    print_events(results)

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
    events, events_quarter = variants["events"], variants["events_quarter"]
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
        f"  replayer events      {mb(events['rss_peak_mb'])} vs {mb(events_quarter['rss_peak_mb'])}"
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
    events, base = results["variants"]["events"], results["variants"]["envelope_lines"]
    results["events_target"] = {
        "x_baseline": base["best_s"] / events["best_s"],
        "met": base["best_s"] / events["best_s"] >= TARGET_EVENTS_RATIO,
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
