"""Benchmark of ``archiver iceberg-sync``: how a sync's time grows with new files and with the table.

Run from the repository root::

    .venv/bin/python -m bench.iceberg [--files N] [--step N] [--first N] [--seed S] [--repeat N]
    .venv/bin/python -m bench.iceberg --jobs 1 --skip-profile   # one writing process, no profile
    .venv/bin/python -m bench.iceberg --report bench/results/iceberg.json   # print a saved run

The archive: ``--files`` (10,000) small data files of one table (devkit's orders
table, 10 to 50 changes each, 5 to 25 files per hour partition, so a few hundred
hours), as a Lambda sink with a small batch size leaves them, in a local folder.
A handful of distinct batches are written by the archiver itself
(``archiver.write.archive_records``) and read back; every file is then one of
them with fresh event ids, sequence numbers (increasing over the whole archive),
change times (inside its hour) and envelopes to match, encoded by the codec
(``codec.write_parquet``) and named by it (``codec.table_name``): a valid,
distinct archive file whose name, statistics and rows agree, for 2-3 ms of CPU
each (Parquet's writer is most of it), by ``--jobs`` (2) processes. A sample is
read back and checked (name, hour, the records its rows rebuild to).

The catalog: pyiceberg's SQL catalog on SQLite with a local warehouse folder,
configured through ``PYICEBERG_CATALOG__BENCH__*`` variables as a user would.

The syncs: the files move into the archive in time order, ``--first`` (default
``--step``) of them, then ``--step`` (1,000) more at a time; after each move one
``archiver iceberg-sync --archive DIR --catalog bench --table orders`` runs in a
fresh interpreter (``archiver.cli.main``), so that its wall time (spawn to the
end of the sync; the stages below add up to it), its CPU time (user + system,
its threads included) and its peak RSS (VmHWM) are that one sync's, start-up
included. A sync with nothing new runs on the
first table (``--first`` files) and on the full one. The first and last steps
and both no-op syncs run ``--repeat`` (3) times each, the catalog, warehouse and
registration restored in between (the best counts); the other steps once.

Where the time goes: in every child the sync's stages are timed, each the time
in its own functions less that of stages called inside it (wall time of the
main thread; work it hands to threads counts where it waits for it):
start-up (interpreter and imports), loading the catalog, listing the archive,
loading the table's metadata, finding the files it already holds (the listing
against the one the last commit recorded, then the manifests that can hold the
others), reading the new files' footers (the sync's own checks), making each
new file's ``DataFile`` from its footer (the statistics), writing the
manifests and the manifest list, the catalog commit (metadata JSON and the SQL
row), and the rest. One more run of the last step, on the restored state, runs
under cProfile (every thread) for the functions inside those stages.

The target (issue 10): the sync time for 10,000 files, growing with new files,
not with the table's size: the last step (``--step`` new files into a table of
N - step) within 25% of the first step (``--step`` new files into an empty
table). Results go to ``bench/results/iceberg.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# As a script, this file's folder would come first on sys.path: import from the repo root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(ROOT))

RESULTS = HERE / "results" / "iceberg.json"
TABLE = "orders"
CATALOG = "bench"
NAMESPACE = "dynamodb_archive"
TARGET_RATIO = 1.25  # the last step's time over the first's: "nearly flat in table size"
HOUR_S = 3600
START_S = 1_795_000_000 // HOUR_S * HOUR_S
BASES = 24  # distinct batches written by the archiver, that every file is a variant of

# The stages of a sync, in the order they happen, with the functions whose time is theirs.
STAGES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "catalog": ("load catalog", [("archiver.iceberg", "", "load_catalog")]),
    "list": (
        "list the archive",
        [
            ("archiver.iceberg", "", "list_partitions"),
            ("archiver.archive.reader", "", "list_tables"),
        ],
    ),
    "load": (
        "load the table (metadata JSON)",
        [("archiver.iceberg", "", "load_table")],
    ),
    "known": (
        "files already in the table: listing digest, manifests",
        [
            ("archiver.iceberg_listing", "Listing", "of"),
            ("archiver.iceberg", "", "_new_files"),
            ("archiver.iceberg", "", "live_files"),
            ("archiver.iceberg", "", "referenced_files"),
        ],
    ),
    "footers": ("read new files' footers (sync's checks)", [("archiver.iceberg", "", "_footers")]),
    "stats": (
        "DataFiles from the footers (statistics)",
        [("archiver.iceberg", "", "_data_files")],
    ),
    "create": (
        "create the table",
        [("pyiceberg.catalog.sql", "SqlCatalog", "create_table_transaction")],
    ),
    "manifests": (
        "write manifest + manifest list",
        [("pyiceberg.table.update.snapshot", "_SnapshotProducer", "_commit")],
    ),
    "commit": (
        "catalog commit (metadata JSON, SQL)",
        [("pyiceberg.catalog.sql", "SqlCatalog", "commit_table")],
    ),
}
COLUMNS = ("startup", *STAGES, "other")
LEGEND = {"startup": "interpreter and imports", "other": "the rest of the CLI and sync"}
SHORT = {
    "startup": "start",
    "catalog": "catlg",
    "list": "list",
    "load": "load",
    "known": "known",
    "footers": "footr",
    "stats": "stats",
    "create": "creat",
    "manifests": "manif",
    "commit": "commt",
    "other": "other",
}


# --------------------------------------------------------------------------- the child: one sync


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    return 0.0


class Stages:
    """Exclusive wall time per stage, on the main thread (a stage inside another is its own)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.missing: list[str] = []
        self._nested: list[float] = []

    def wrap(self, stage: str, module: str, owner: str, attr: str) -> None:
        import importlib
        import threading

        target: Any = importlib.import_module(module)
        if owner:
            target = getattr(target, owner, None)
        original = getattr(target, attr, None) if target is not None else None
        if original is None:  # the code moved: say so rather than time nothing
            self.missing.append(f"{module}.{owner + '.' if owner else ''}{attr}")
            return
        main = threading.main_thread()
        nested = self._nested

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not main:
                return original(*args, **kwargs)
            started = time.perf_counter()
            nested.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = nested.pop()
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner
                self.calls[stage] = self.calls.get(stage, 0) + 1
                if nested:
                    nested[-1] += elapsed

        setattr(target, attr, timed)


def child_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``archiver iceberg-sync`` in this fresh interpreter; what it took, as JSON."""
    began = time.time()
    import archiver.iceberg as iceberg
    from archiver import cli

    imported = time.time()
    stages = Stages()
    for stage, (_, functions) in STAGES.items():
        for module, owner, attr in functions:
            stages.wrap(stage, module, owner, attr)
    seen: dict[str, Any] = {}
    sync, referenced = iceberg.sync, iceberg.referenced_files

    def counted_sync(*args: Any, **kwargs: Any) -> Any:
        report = sync(*args, **kwargs)
        seen["registered"] = report.files_registered
        seen["errors"] = report.errors
        return report

    def counted_referenced(*args: Any, **kwargs: Any) -> Any:
        known = referenced(*args, **kwargs)
        seen["known"] = len(known)
        return known

    iceberg.sync, iceberg.referenced_files = counted_sync, counted_referenced
    profiles: list[Any] = []
    if spec.get("profile"):
        import cProfile
        import threading

        def per_thread(*_: Any) -> None:
            # Called once in every new thread: from then on that thread has its own profiler.
            profile = cProfile.Profile(time.thread_time)
            profiles.append(profile)
            profile.enable()

        # Each thread's own CPU time: with wall time, the threads that wait for the GIL would
        # count their waits as the time of whatever they were calling.
        threading.setprofile(per_thread)
        main_profile = cProfile.Profile(time.thread_time)
        profiles.append(main_profile)
        main_profile.enable()
    argv = ["iceberg-sync", "--archive", spec["archive"], "--catalog", CATALOG]
    started = time.time()
    code = cli.main([*argv, "--namespace", NAMESPACE, "--table", TABLE, "-q"])
    returned = time.time()
    times = os.times()
    peak = vm_hwm_mb()
    if profiles:
        import pstats
        import threading

        threading.setprofile(None)  # type: ignore[arg-type]
        main_profile.disable()
        stats = pstats.Stats(*profiles)
        stats.dump_stats(spec["profile"])
    stage_s = dict(stages.seconds)
    stage_s["startup"] = started - spec["spawned"]
    stage_s["other"] = (returned - started) - sum(stages.seconds.values())
    # After the timing: what the table holds now, from the current snapshot's summary.
    table = iceberg.load_table(iceberg.load_catalog(CATALOG), NAMESPACE, TABLE)
    snapshot = table.current_snapshot() if table is not None else None
    summary = snapshot.summary if snapshot is not None and snapshot.summary is not None else None
    return {
        "code": code,
        "registered": seen.get("registered"),
        "known": seen.get("known", 0),
        "errors": seen.get("errors", []),
        "total_data_files": int(summary["total-data-files"]) if summary else 0,
        "snapshots": len(table.snapshots()) if table is not None else 0,
        "cpu_s": times.user + times.system,
        "user_s": times.user,
        "system_s": times.system,
        "peak_rss_mb": peak,
        "interpreter_s": began - spec["spawned"],
        "imports_s": imported - began,
        "sync_s": returned - started,
        "stages_s": stage_s,
        "stage_calls": stages.calls,
        "missing_hooks": stages.missing,
    }


# --------------------------------------------------------------------------- the archive


class ArchiveMaker:
    """Valid, distinct archive files, fast: variants of a few batches the archiver wrote."""

    def __init__(self, seed: int, scratch: Path) -> None:
        import pyarrow as pa

        from archiver.archive.codec import read_archive_file
        from archiver.archive.schema import Col
        from archiver.archive.store import LocalStore
        from archiver.write import archive_records
        from devkit.traffic import TableHistory

        self.rng = random.Random(seed)
        self.pa = pa
        self.col = Col
        history = TableHistory(TABLE, seed=seed, start=float(START_S), seconds_per_change=1.0)
        store = LocalStore(scratch)
        self.bases: list[tuple[Any, list[tuple[bytes, bytes, bytes]], list[bytes]]] = []
        for _ in range(BASES):
            batch = history.changes(self.rng.randrange(10, 51))
            report = archive_records(batch, store)
            if not report.ok or len(report.files) != 1:
                raise SystemExit(f"a base batch did not make one file: {report.files}")
            base = read_archive_file(str(scratch / report.files[0]), report.files[0])
            # The three envelope values a variant changes, as the envelope spells them.
            tokens = [
                (
                    f'"eventID":"{record["eventID"]}"'.encode(),
                    b'"ApproximateCreationDateTime":'
                    + _number(record["dynamodb"]["ApproximateCreationDateTime"]),
                    f'"SequenceNumber":"{record["dynamodb"]["SequenceNumber"]}"'.encode(),
                )
                for record in _in_archive_order(batch)
            ]
            envelopes = [text.encode() for text in base.column(Col.ENVELOPE).to_pylist()]
            self.bases.append((base, tokens, envelopes))
            history.clock = float(START_S)  # every base within one hour (their own is not kept)
        self.sequence = 10**20 + self.rng.randrange(10**6)

    def file(self, hour_s: int, slot: int, slots: int) -> tuple[str, bytes]:
        """The next file (its key and bytes): one base, its changes inside one slot of the hour."""
        from archiver.archive.codec import table_name, write_parquet
        from archiver.archive.layout import partition_of

        pa, col, rng = self.pa, self.col, self.rng
        base, tokens, texts = self.bases[rng.randrange(len(self.bases))]
        rows = base.num_rows
        width = HOUR_S // slots
        times = sorted(hour_s + slot * width + rng.randrange(width) for _ in range(rows))
        ids, sequences, envelopes = [], [], []
        for (id_token, time_token, sequence_token), envelope, second in zip(
            tokens, texts, times, strict=True
        ):
            self.sequence += rng.randrange(1, 1000)
            event_id = f"{rng.getrandbits(128):032x}"
            sequence = str(self.sequence)
            ids.append(event_id)
            sequences.append(sequence.rjust(40, "0"))
            text = (
                envelope.replace(id_token, f'"eventID":"{event_id}"'.encode(), 1)
                .replace(time_token, b'"ApproximateCreationDateTime":' + _number(second), 1)
                .replace(sequence_token, f'"SequenceNumber":"{sequence}"'.encode(), 1)
            )
            envelopes.append(text.decode())
        table = base
        for name, values in (
            (col.EVENT_ID, ids),
            (col.SEQUENCE_NUMBER, sequences),
            (col.CHANGE_TIME, [s * 1_000_000 for s in times]),
            (col.ENVELOPE, envelopes),
        ):
            index = table.schema.get_field_index(name)
            field = table.schema.field(index)
            table = table.set_column(index, field, pa.array(values, type=field.type))
        partition = partition_of(TABLE, hour_s * 1_000_000)
        return partition.key(table_name(table)), write_parquet(table, kinesis=False)


def _number(value: float) -> bytes:
    import orjson

    return orjson.dumps(float(value))


def _in_archive_order(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as the archive stores them: by sequence number (DynamoDB Streams)."""
    return sorted(batch, key=lambda r: r["dynamodb"]["SequenceNumber"].rjust(40, "0"))


CHUNK = 500  # files a generating worker makes with one random stream (any --jobs, same files)
_MAKER: ArchiveMaker | None = None


def _start_worker(seed: int, scratch: str) -> None:
    global _MAKER
    _MAKER = ArchiveMaker(seed, Path(scratch) / f"bases-{os.getpid()}")


def _write_chunk(
    task: tuple[int, int, list[tuple[int, int, int]], str],
) -> tuple[list[tuple[str, int]], float]:
    """One chunk's files, each (hour, slot, slots), under ``pool``: their keys and sizes, and
    the CPU seconds they took."""
    seed, chunk, layout, pool = task
    assert _MAKER is not None
    _MAKER.rng = random.Random(f"{seed}/{chunk}")
    _MAKER.sequence = 10**20 + chunk * 10**11  # increasing over the archive, chunk after chunk
    written = []
    cpu = time.process_time()
    for hour_s, slot, slots in layout:
        key, data = _MAKER.file(hour_s, slot, slots)
        path = Path(pool) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # not fsync'd: scratch data for the bench
        written.append((key, len(data)))
    return written, time.process_time() - cpu


def write_pool(files: int, seed: int, scratch: Path, jobs: int) -> dict[str, Any]:
    """``files`` archive files under ``scratch/pool`` (their archive keys), in time order."""
    import multiprocessing

    started = time.perf_counter()
    rng = random.Random(seed)
    layout: list[tuple[int, int, int]] = []  # (hour, slot, slots in the hour) of every file
    hour = START_S
    while len(layout) < files:
        slots = min(rng.randrange(5, 26), files - len(layout))
        layout += [(hour, slot, slots) for slot in range(slots)]
        hour += HOUR_S
    pool = scratch / "pool"
    tasks = [
        (seed, index, layout[start : start + CHUNK], str(pool))
        for index, start in enumerate(range(0, files, CHUNK))
    ]
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_start_worker, initargs=(seed, str(scratch))) as workers:
        chunks = workers.map(_write_chunk, tasks, chunksize=1)
    written = [item for chunk, _ in chunks for item in chunk]
    write_s = time.perf_counter() - started
    keys = [key for key, _ in written]
    if len(set(keys)) != len(keys):
        raise SystemExit("two generated files have the same name")
    checked = check_sample(pool, [*keys[:: max(1, len(keys) // 100)], keys[-1]])
    return {
        "files": len(keys),
        "bytes": sum(size for _, size in written),
        "partitions": len({key.rsplit("/", 1)[0] for key in keys}),
        "bases": BASES,
        "jobs": jobs,
        "write_s": write_s,
        "write_cpu_s": sum(cpu for _, cpu in chunks),
        "check_s": time.perf_counter() - started - write_s,
        "sample_checked": checked,
        "keys": keys,
    }


def check_sample(pool: Path, keys: list[str]) -> int:
    """Each sampled file: an archive file named by its rows, whose records rebuild to its rows."""
    import orjson

    from archiver.archive.codec import order_rows, read_archive_file, table_name
    from archiver.archive.layout import parse_data_key
    from archiver.archive.rebuild import record_texts
    from archiver.archive.schema import Col

    checked = 0
    for key in keys:
        table = read_archive_file(str(pool / key), key)
        parsed = parse_data_key(key)
        if parsed is None or parsed[1] != table_name(table):
            raise SystemExit(f"{key}: not named by its rows")
        partition = parsed[0]
        times = table.column(Col.CHANGE_TIME).cast("int64").to_pylist()
        if not all(
            partition.hour_start_us <= t < partition.hour_start_us + 3600 * 10**6 for t in times
        ):
            raise SystemExit(f"{key}: changes outside its hour")
        for text, event_id, sequence, micros in zip(
            record_texts(order_rows(table)).to_pylist(),
            table.column(Col.EVENT_ID).to_pylist(),
            table.column(Col.SEQUENCE_NUMBER).to_pylist(),
            times,
            strict=True,
        ):
            record = orjson.loads(text)
            ddb = record["dynamodb"]
            if (
                record["eventID"] != event_id
                or ddb["SequenceNumber"] != sequence.lstrip("0")
                or int(ddb["ApproximateCreationDateTime"] * 1_000_000) != micros
            ):
                raise SystemExit(f"{key}: a record does not rebuild to its row ({event_id})")
            checked += 1
    return checked


# --------------------------------------------------------------------------- the run


class Scene:
    """The archive folder, the catalog and its warehouse, and a saved copy of their state."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.archive = scratch / "archive"
        self.archive.mkdir()
        self.warehouse = scratch / "warehouse"
        self.warehouse.mkdir()
        self.database = scratch / "catalog.db"
        self.saved = scratch / "saved"
        prefix = f"PYICEBERG_CATALOG__{CATALOG.upper()}__"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYICEBERG_", "ARCHIVER_"))
        }
        self.env.update(
            {
                "PYICEBERG_HOME": str(scratch),  # no user's ~/.pyiceberg.yaml
                prefix + "TYPE": "sql",
                prefix + "URI": f"sqlite:///{self.database}",
                prefix + "WAREHOUSE": f"file://{self.warehouse}",
                "PYTHONPATH": str(ROOT),
            }
        )

    def add(self, pool: Path, keys: list[str]) -> None:
        for key in keys:
            target = self.archive / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(pool / key, target)

    def save(self) -> None:
        """The catalog's database, the warehouse and the registration, as they are now."""
        shutil.rmtree(self.saved, ignore_errors=True)
        self.saved.mkdir()
        if self.database.exists():
            shutil.copy2(self.database, self.saved / "catalog.db")
        shutil.copytree(self.warehouse, self.saved / "warehouse")
        if (self.archive / "_iceberg").exists():
            shutil.copytree(self.archive / "_iceberg", self.saved / "_iceberg")

    def restore(self) -> None:
        self.database.unlink(missing_ok=True)
        if (self.saved / "catalog.db").exists():
            shutil.copy2(self.saved / "catalog.db", self.database)
        shutil.rmtree(self.warehouse)
        shutil.copytree(self.saved / "warehouse", self.warehouse)
        shutil.rmtree(self.archive / "_iceberg", ignore_errors=True)
        if (self.saved / "_iceberg").exists():
            shutil.copytree(self.saved / "_iceberg", self.archive / "_iceberg")

    def sync(self, profile: Path | None = None) -> dict[str, Any]:
        """One ``archiver iceberg-sync`` in a fresh interpreter, timed from outside."""
        spec: dict[str, Any] = {"archive": str(self.archive), "spawned": time.time()}
        if profile is not None:
            spec["profile"] = str(profile)
        command = [sys.executable, "-m", "bench.iceberg", "--child", json.dumps(spec)]
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"benchmark child failed with exit code {done.returncode}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if result["code"] != 0 or result["errors"]:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"iceberg-sync exited {result['code']}: {result['errors']}")
        if result["missing_hooks"]:
            print(f"  (not timed, moved: {', '.join(result['missing_hooks'])})", file=sys.stderr)
        # Spawn to the end of the sync: the stages add up to it. Outside, the child's check of
        # the table afterwards and the interpreter's exit count too.
        result["wall_s"] = result["stages_s"]["startup"] + result["sync_s"]
        result["outside_s"] = wall
        return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    from devkit.measure import machine

    results: dict[str, Any] = {
        "machine": machine(pyiceberg=version("pyiceberg"), sqlalchemy=version("sqlalchemy")),
        "files": args.files,
        "step": args.step,
        "first": args.first,
        "seed": args.seed,
        "repeat": args.repeat,
        "syncs": [],
    }
    scratch = Path(tempfile.mkdtemp(prefix="iceberg-bench-"))
    try:
        _measure_in(scratch, args, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return results


def _measure_in(scratch: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    archive = write_pool(args.files, args.seed, scratch, args.jobs)
    keys = archive.pop("keys")
    results["archive"] = archive
    print(
        f"archive: {archive['files']:,} files, {archive['bytes'] / 1e6:.1f} MB in "
        f"{archive['partitions']} hour partitions, written in {archive['write_s']:.1f} s by "
        f"{archive['jobs']} processes ({archive['write_cpu_s'] / archive['files'] * 1000:.2f} "
        f"CPU ms a file; "
        f"{archive['sample_checked']} sampled records checked)",
        file=sys.stderr,
    )
    scene = Scene(scratch)
    pool = scratch / "pool"
    syncs: list[dict[str, Any]] = results["syncs"]
    bounds = [min(args.first, args.files)]
    while bounds[-1] < args.files:
        bounds.append(min(bounds[-1] + args.step, args.files))

    def run(kind: str, new: int, in_table: int, times: int) -> None:
        runs = []
        scene.save()
        for attempt in range(times):
            if attempt:
                scene.restore()
            result = scene.sync()
            expected = in_table + new
            if result["registered"] != new or result["total_data_files"] != expected:
                raise SystemExit(
                    f"a sync registered {result['registered']} files for {new} new; the table "
                    f"holds {result['total_data_files']}, expected {expected}"
                )
            runs.append(result)
        best = min(runs, key=lambda r: r["wall_s"])
        entry = {"kind": kind, "new": new, "in_table": in_table, "runs": runs, "best": best}
        syncs.append(entry)
        print(
            f"  {kind}: {new:,} new into {in_table:,}: "
            + ", ".join(f"{r['wall_s']:.2f}" for r in runs)
            + " s",
            file=sys.stderr,
        )

    done = 0
    for index, bound in enumerate(bounds):
        scene.add(pool, keys[done:bound])
        last = index == len(bounds) - 1
        repeat = args.repeat if index == 0 or last else 1
        if last and not args.skip_profile:
            scene.save()
            pre_last = scratch / "pre-last"
            shutil.rmtree(pre_last, ignore_errors=True)
            shutil.copytree(scene.saved, pre_last)
        run("step", bound - done, done, repeat)
        if index == 0:
            run("noop", 0, bound, args.repeat)
        done = bound
    run("noop", 0, done, args.repeat)
    if not args.skip_profile:
        # The last step once more, on the state before it, under cProfile.
        shutil.rmtree(scene.saved)
        shutil.copytree(scratch / "pre-last", scene.saved)
        scene.restore()
        profile_path = scratch / "last-step.prof"
        result = scene.sync(profile=profile_path)
        results["profile"] = {
            "new": bounds[-1] - (bounds[-2] if len(bounds) > 1 else 0),
            "in_table": bounds[-2] if len(bounds) > 1 else 0,
            "wall_s": result["wall_s"],
            "cpu_s": result["cpu_s"],
            "stages_s": result["stages_s"],
            "functions": top_functions(profile_path),
            "inside": {name: callees(profile_path, name) for name in INSIDE},
        }


def top_functions(path: Path, count: int = 25) -> list[dict[str, Any]]:
    """The functions of the profile that took the most time of their own (every thread)."""
    import pstats

    stats = pstats.Stats(str(path))
    rows = []
    for func, (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _where(func),
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:count]


# The functions that do the per-file work of a sync, whose callees the profile breaks down.
INSIDE = {
    "_data_files": "the DataFiles of the new files, from their footers",
    "footer": "the sync's own check of one new file's footer",
    "fetch_manifest_entry": "reading one manifest's entries (the files already in the table)",
}


def callees(path: Path, name: str, count: int = 8) -> dict[str, Any]:
    """What the function ``name`` spent its time in: its callees' cumulative time from it."""
    import pstats

    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    found = [func for func in stats if func[2] == name]
    if not found:
        return {}
    target = max(found, key=lambda func: stats[func][3])
    _, calls, tottime, cumtime, _ = stats[target]
    inner = [
        {"function": _where(func), "calls": callers[target][1], "cumtime_s": callers[target][3]}
        for func, (_, _, _, _, callers) in stats.items()
        if target in callers
    ]
    inner.sort(key=lambda row: row["cumtime_s"], reverse=True)
    return {
        "function": _where(target),
        "calls": calls,
        "tottime_s": tottime,
        "cumtime_s": cumtime,
        "callees": inner[:count],
    }


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


# --------------------------------------------------------------------------- the report


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares: (intercept, slope) of y over x."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def _wrapped(text: str, width: int = 110) -> None:
    import textwrap

    print("\n".join(textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)))


def report(results: dict[str, Any]) -> bool:
    archive = results["archive"]
    syncs = results["syncs"]
    steps = [s for s in syncs if s["kind"] == "step"]
    noops = [s for s in syncs if s["kind"] == "noop"]
    print()
    _wrapped(
        f"{archive['files']:,} archive files ({archive['bytes'] / 1e6:.1f} MB, "
        f"{archive['partitions']} hour partitions of one table) in a local folder, written in "
        f"{archive['write_s']:.1f} s by {archive['jobs']} processes "
        f"({archive['write_cpu_s'] / archive['files'] * 1000:.2f} CPU ms a file); "
        f"SQL catalog on SQLite, local warehouse; each sync a fresh `archiver iceberg-sync`, "
        f"best of {results['repeat']} for the first and last steps and the no-op syncs"
    )
    print()
    header = f"{'sync':<24} {'wall s':>6} {'CPU s':>6} {'RSS MB':>6}  " + " ".join(
        f"{SHORT[c]:>5}" for c in COLUMNS
    )
    print(header)
    print("-" * len(header))
    for entry in syncs:
        best = entry["best"]
        label = (
            f"+{entry['new']:,} into {entry['in_table']:,}"
            if entry["kind"] == "step"
            else f"nothing new, {entry['in_table']:,}"
        )
        stages = best["stages_s"]
        print(
            f"{label:<24} {best['wall_s']:>6.2f} {best['cpu_s']:>6.2f} {best['peak_rss_mb']:>6.0f}  "
            + " ".join(f"{stages.get(c, 0.0):>5.2f}" for c in COLUMNS)
        )
    _wrapped(
        "stages (wall s): "
        + "; ".join(f"{SHORT[c]} {STAGES[c][0] if c in STAGES else LEGEND[c]}" for c in COLUMNS)
    )
    first, last = steps[0]["best"], steps[-1]["best"]
    ratio = last["wall_s"] / first["wall_s"]
    cpu_ratio = last["cpu_s"] / first["cpu_s"]
    small, full = noops[0], noops[-1]
    noop_ratio = full["best"]["wall_s"] / small["best"]["wall_s"]
    fit_points = [(s["in_table"], s["best"]["wall_s"]) for s in steps]
    intercept, slope = _fit(fit_points) if len(fit_points) > 1 else (first["wall_s"], 0.0)
    print()
    _wrapped(
        f"step time against table size (least squares over {len(steps)} steps of "
        f"{results['step']:,} new files): {intercept:.2f} s + {slope * 1000:.3f} s per 1,000 "
        f"files already in the table"
    )
    per_new = (first["wall_s"] - small["best"]["wall_s"]) / steps[0]["new"] * 1000
    _wrapped(
        f"per new file: {per_new:.2f} ms (first step less the no-op sync of its table); "
        f"no-op sync: {small['best']['wall_s']:.2f} s on {small['in_table']:,} files, "
        f"{full['best']['wall_s']:.2f} s on {full['in_table']:,} ({noop_ratio:.2f}x)"
    )
    # What the table's size costs: the stages that look at every file the table or archive holds.
    grows = ("list", "known", "load")
    table_points = [
        (s["in_table"], sum(s["best"]["stages_s"].get(g, 0.0) for g in grows)) for s in syncs
    ]
    table_at, table_slope = _fit(table_points)
    per_new_s = per_new / 1000
    _wrapped(
        f"the stages that grow with the table (list, known files, load), over every sync: "
        f"{table_at:.2f} s + {table_slope * 1000:.3f} s per 1,000 files in the table; they "
        f"would match the cost of {results['step']:,} new files at "
        + (
            f"{per_new_s * results['step'] / table_slope:,.0f} files in the table"
            if table_slope > 0
            else "no table size"
        )
    )
    results["growth"] = {
        "step_intercept_s": intercept,
        "step_slope_s_per_file_in_table": slope,
        "table_stages_intercept_s": table_at,
        "table_stages_slope_s_per_file": table_slope,
        "per_new_file_s": per_new_s,
    }
    for stage in ("list", "known", "load", "manifests", "commit"):
        a, b = first["stages_s"].get(stage, 0.0), last["stages_s"].get(stage, 0.0)
        print(
            f"  {STAGES[stage][0]:<45} first step {a:5.2f} s, last step {b:5.2f} s ({b - a:+.2f})"
        )
    profile = results.get("profile")
    if profile:
        print()
        _wrapped(
            f"cProfile of the last step once more ({profile['new']:,} new into "
            f"{profile['in_table']:,}, {profile['wall_s']:.2f} s under the profiler): CPU time "
            "of every thread, by functions' own time:"
        )
        for row in profile["functions"][:12]:
            print(
                f"  {row['tottime_s']:6.2f} s {row['cumtime_s']:6.2f} s cum {row['calls']:>8}  "
                f"{row['function']}"
            )
        for name, label in INSIDE.items():
            inside = profile["inside"].get(name)
            if not inside:
                continue
            per_call = inside["cumtime_s"] / inside["calls"] * 1000
            _wrapped(
                f"{label}, {name}: {inside['calls']} calls, {per_call:.2f} ms each (CPU under "
                "the profiler), in:"
            )
            for row in inside["callees"]:
                share = row["cumtime_s"] / inside["cumtime_s"] if inside["cumtime_s"] else 0.0
                if share < 0.005:
                    continue
                print(
                    f"  {share:5.0%} {row['cumtime_s']:6.2f} s {row['calls']:>7}  {row['function']}"
                )
    met = ratio <= TARGET_RATIO
    print()
    print(
        f"issue target: +{steps[-1]['new']:,} into {steps[-1]['in_table']:,} within "
        f"{TARGET_RATIO:.2f}x of +{steps[0]['new']:,} into {steps[0]['in_table']:,}: "
        f"{last['wall_s']:.2f} s / {first['wall_s']:.2f} s = {ratio:.2f}x (CPU {cpu_ratio:.2f}x; "
        f"no-op sync {full['best']['wall_s']:.2f} s / {small['best']['wall_s']:.2f} s = "
        f"{noop_ratio:.2f}x) {'MET' if met else 'NOT MET'}"
    )
    total = sum(s["best"]["wall_s"] for s in steps)
    print(
        f"syncing {archive['files']:,} files in {len(steps)} steps took {total:.1f} s of syncs; "
        f"1-minute load {results['machine']['load_average_at_start']:.2f} at the start, "
        f"{results['machine']['load_average_at_end']:.2f} at the end"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=1_000, help="new files per sync")
    parser.add_argument(
        "--first", type=int, help="files of the first sync, into an empty table (default: --step)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the first and last steps and no-op syncs"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes that write the archive (not the syncs)"
    )
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--report", metavar="JSON", help="print a saved run and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_sync(json.loads(args.child))))
        return 0
    if args.report:
        return 0 if report(json.loads(Path(args.report).read_text())) else 1
    if args.first is None:
        args.first = args.step
    results = measure(args)
    met = report(results)  # (adds the fitted growth to the results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
