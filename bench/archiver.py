"""Benchmark of the Lambda archival sink against a hand-written baseline, in one run.

Run from the repository root::

    .venv/bin/python bench/archiver.py [--repeat N] [--records N] [--seed S]

Every variant archives the same deterministic batch of ~2.1 KB DynamoDB Streams
records (mostly MODIFY with NEW_AND_OLD_IMAGES, some INSERT and REMOVE), each in
a fresh subprocess, so that peak RSS and timings do not leak between variants:

- ``baseline``: a straightforward hand-written Lambda (bench/handwritten.py: boto3
  TypeDeserializer, ``json.dumps``, ``pa.Table.from_pylist``, ``pq.write_table`` zstd);
- ``handler``: ``archiver.lambda_handler.handler`` on the event as dicts, into a
  fresh local folder; ``handler-full`` with ``ARCHIVER_IMAGE_CHECK=full``;
- ``bytes``: ``archiver.lambda_handler.handle_bytes`` on the event's JSON text
  (what our runtime, ``python -m archiver.runtime``, calls); ``bytes-full`` likewise;
- ``plain``: the handler with ``ARCHIVER_PLAIN_IMAGES=true``;
- ``ceiling``: ``orjson.dumps`` of the typed images alone (Keys, NewImage,
  OldImage), the least per-record Python work any archiver of typed images does.

It also measures start-up (``-X importtime``, a cold ``import`` in a new
interpreter, the first invocation including settings and store setup) and
prints where the handler's time goes (cProfile grouped by stage, plus an
unprofiled wall-clock split). Results go to ``bench/results/archiver.json``.
A whole invocation under a Runtime API, against awslambdaric, is bench/runtime.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is bench/archiver.py: as a script, its folder comes first on
# sys.path and would shadow the ``archiver`` package. Import from the repo root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(ROOT))

from devkit.measure import machine, peak_rss_mb  # noqa: E402 - needs ROOT on sys.path

RESULTS = HERE / "results" / "archiver.json"
VARIANTS = ("baseline", "handler", "ceiling", "handler-full", "bytes", "bytes-full", "plain")
LABELS = {
    "baseline": "(a) baseline Lambda: TypeDeserializer + json + from_pylist + zstd",
    "handler": "(b) archiver handler(event dict) -> local folder (light check)",
    "handler-full": "(e) the same, ARCHIVER_IMAGE_CHECK=full",
    "bytes": "(f) archiver handle_bytes(event JSON) (our runtime's path)",
    "bytes-full": "(g) the same, ARCHIVER_IMAGE_CHECK=full",
    "plain": "(d) archiver handler, ARCHIVER_PLAIN_IMAGES=true",
    "ceiling": "(c) ceiling: orjson.dumps of typed images only",
}
TARGET_RATIO = 2.5  # issue 8: handler(event dict) against the hand-written handler on dicts
TARGET_RATE = 40_000
COLD_BATCH = 100  # Lambda's default BatchSize
BUSY_LOAD = 0.5


# --------------------------------------------------------------------------- records


def make_records(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` stream records as Lambda delivers them, ~1.8 KB of JSON each, from ``seed``.

    devkit's orders table: 15 attributes with nested maps and lists, string and
    number sets, a binary and 38-digit numbers.
    """
    from devkit.traffic import TableHistory

    # 500 items: after the first inserts, most changes modify an existing item.
    # 0.01 s per change: a batch spans well under an hour, one hour partition, as a
    # Lambda batch (batching window <= 300 s) usually does.
    history = TableHistory("orders", seed=seed, items=500, seconds_per_change=0.01)
    return history.changes(count)


def describe_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    import orjson

    sizes = [len(orjson.dumps(r)) for r in records]
    by_name: dict[str, list[int]] = {}
    for record, size in zip(records, sizes, strict=True):
        by_name.setdefault(record["eventName"], []).append(size)
    return {
        "count": len(records),
        "mean_json_bytes": round(statistics.mean(sizes)),
        "mean_json_bytes_by_event": {
            name: round(statistics.mean(values)) for name, values in sorted(by_name.items())
        },
        "event_mix": dict(sorted(Counter(r["eventName"] for r in records).items())),
        "ttl_deletes": sum(1 for r in records if "userIdentity" in r),
        "total_json_mb": round(sum(sizes) / 1e6, 2),
    }


# --------------------------------------------------------------------------- variants


def baseline_lambda(records: list[dict[str, Any]], path: str) -> int:
    """What a hand-written archiving Lambda does (bench/handwritten.py)."""
    from bench.handwritten import archive

    return archive(records, path)


def orjson_ceiling(records: list[dict[str, Any]]) -> list[bytes]:
    """orjson.dumps of every typed image: no validation, no envelope, no Arrow, no Parquet."""
    import orjson

    dumps = orjson.dumps
    out = []
    for record in records:
        ddb = record["dynamodb"]
        for source in ("Keys", "NewImage", "OldImage"):
            image = ddb.get(source)
            if image is not None:
                out.append(dumps(image))
    return out


def quiet_logging() -> None:
    """Give the root logger a handler into /dev/null: the handler still formats its log lines."""
    import logging

    logging.getLogger().addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115


def use_archive(folder: str, plain: bool, full: bool = False) -> None:
    """Point the handler at ``folder`` and make it re-read its settings."""
    from archiver import lambda_handler

    os.environ["ARCHIVER_ARCHIVE_URI"] = folder
    os.environ["ARCHIVER_PLAIN_IMAGES"] = "true" if plain else "false"
    os.environ["ARCHIVER_IMAGE_CHECK"] = "full" if full else "light"
    lambda_handler.reset()


def invoke(records: list[dict[str, Any]]) -> None:
    from archiver import lambda_handler

    result = lambda_handler.handler({"Records": records}, None)
    if result != {"batchItemFailures": []}:
        raise SystemExit(f"handler reported failures: {str(result)[:300]}")


def invoke_bytes(body: bytes) -> None:
    from archiver import lambda_handler

    result = lambda_handler.handle_bytes(body, None)
    if result != {"batchItemFailures": []}:
        raise SystemExit(f"handle_bytes reported failures: {str(result)[:300]}")


def archive_summary(folder: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    files = sorted(Path(folder).rglob("*.parquet"))
    return {
        "files": len(files),
        "rows": sum(pq.read_metadata(f).num_rows for f in files),
        "mb": round(sum(f.stat().st_size for f in files) / 1e6, 3),
        "dead_letters": len(list(Path(folder).rglob("*.jsonl"))),
    }


def measure(fn: Callable[[], Any]) -> tuple[float, float, int]:
    """Wall seconds, system CPU seconds and minor page faults of one call of ``fn``."""
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return elapsed, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def timed(fn: Callable[[], Any]) -> float:
    return measure(fn)[0]


def run_variant(
    name: str, records: list[dict[str, Any]], repeat: int, scratch: str
) -> dict[str, Any]:
    """Time ``repeat + 1`` runs of one variant over ``records``; the first is the warm-up."""
    runs: list[tuple[float, float, int]] = []
    check: dict[str, Any] = {}
    if name == "ceiling":
        runs = [measure(lambda: orjson_ceiling(records)) for _ in range(repeat + 1)]
        check = {"images": len(orjson_ceiling(records))}
    elif name == "baseline":
        import boto3.dynamodb.types  # noqa: F401  (imported before the warm-up, as the handler's are)
        import pyarrow.parquet as pq

        for rep in range(repeat + 1):
            path = os.path.join(scratch, f"baseline-{rep}.parquet")
            runs.append(measure(lambda path=path: baseline_lambda(records, path)))
            check = {
                "files": 1,
                "rows": pq.read_metadata(path).num_rows,
                "mb": round(os.path.getsize(path) / 1e6, 3),
            }
            os.remove(path)
        if check["rows"] != len(records):
            raise SystemExit(f"baseline wrote {check['rows']} rows for {len(records)} records")
    else:
        import orjson

        quiet_logging()
        plain = name == "plain"
        body = orjson.dumps({"Records": records}) if name.startswith("bytes") else b""
        for rep in range(repeat + 1):
            folder = tempfile.mkdtemp(prefix=f"{name}-{rep}-", dir=scratch)
            use_archive(folder, plain, full=name.endswith("-full"))
            invoke([])  # settings + store setup, outside the timing
            if body:
                runs.append(measure(lambda: invoke_bytes(body)))
            else:
                runs.append(measure(lambda: invoke(records)))
            check = archive_summary(folder)
            shutil.rmtree(folder)
        if check["rows"] != len(records) or check["dead_letters"]:
            raise SystemExit(f"{name}: archived {check} for {len(records)} records")
    best = min(runs[1:])
    return {
        "warmup_s": runs[0][0],
        "times_s": [run[0] for run in runs[1:]],
        "best_run_sys_s": best[1],
        "best_run_minor_faults": best[2],
        "check": check,
    }


# --------------------------------------------------------------------------- children


def child_variant(args: argparse.Namespace) -> dict[str, Any]:
    records = make_records(args.records, args.seed)
    gc.collect()
    rss_input = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="bench-archiver-") as scratch:
        result = run_variant(args.child, records, args.repeat, scratch)
    result.update(rss_input_mb=round(rss_input, 1), rss_peak_mb=round(peak_rss_mb(), 1))
    return result


INGEST_SIZES = (4, 8)  # JSON Lines files of this many batches: memory must not grow with it


def child_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """``archiver ingest`` of a JSON Lines file, as its CLI runs, with each image check."""
    import orjson

    from archiver.cli import main as archiver_main

    quiet_logging()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-archiver-ingest-") as scratch:
        for size in INGEST_SIZES:
            path = os.path.join(scratch, f"changes-{size}.jsonl")
            with open(path, "wb") as handle:
                for part in range(size):  # a batch at a time: the file, not the list, grows
                    for record in make_records(args.records, args.seed + part):
                        handle.write(orjson.dumps(record) + b"\n")
            gc.collect()
            for check in ("full", "light"):
                # Best of --repeat runs, as for the variants it is compared with (the first run
                # of a process pays for warming caches the others find warm); peak RSS is the
                # first run's, from the RSS it started at.
                times, rss_peak, rss_before, rows = [], 0.0, 0.0, 0
                for run in range(args.repeat):
                    folder = tempfile.mkdtemp(prefix=f"ingest-{check}-", dir=scratch)
                    argv = ["ingest", "--archive", folder, "--image-check", check, "-q", path]
                    if not run:
                        with open("/proc/self/clear_refs", "w") as refs:
                            refs.write("5")  # Linux: the peak RSS starts again from the current RSS
                        rss_before = peak_rss_mb()
                    started = time.perf_counter()
                    code = archiver_main(argv, stdin=sys.stdin.buffer)
                    times.append(time.perf_counter() - started)
                    if code != 0:
                        raise SystemExit(f"archiver ingest exited {code}")
                    if not run:
                        rss_peak = peak_rss_mb()
                        rows = archive_summary(folder)["rows"]
                    shutil.rmtree(folder)
                elapsed = min(times)
                out[f"{check}-{size}"] = {
                    "records": args.records * size,
                    "seconds": elapsed,
                    "seconds_first": times[0],
                    "records_per_s": args.records * size / elapsed,
                    "rss_peak_mb": round(rss_peak, 1),
                    "rss_peak_before_mb": round(rss_before, 1),
                    "rows": rows,
                }
    return out


def child_cold(args: argparse.Namespace) -> dict[str, Any]:
    """A new interpreter: import the handler, then invoke it (as a cold Lambda would)."""
    started = time.perf_counter()
    import archiver.lambda_handler  # noqa: F401

    imported = time.perf_counter() - started
    records = make_records(3 * COLD_BATCH, args.seed)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="bench-archiver-cold-") as folder:
        use_archive(folder, plain=False)
        setup = timed(lambda: invoke([]))
        first = timed(lambda: invoke(records[:COLD_BATCH]))
        second = timed(lambda: invoke(records[COLD_BATCH : 2 * COLD_BATCH]))
        third = timed(lambda: invoke(records[2 * COLD_BATCH :]))
    return {
        "import_s": imported,
        "setup_s": setup,
        "first_batch_s": first,
        "warm_batch_s": min(second, third),
        "modules": len(sys.modules),
    }


def stage_of(filename: str, funcname: str) -> str | None:
    """The pipeline stage a profiled function belongs to; None: inherit it from the callers."""
    path = filename.replace("\\", "/")
    if path.endswith(("archiver/decode.py", "archiver/archive/errors.py")):
        return "decode + validate"
    if path.endswith("archiver/archive/dynamojson.py"):
        if funcname in ("plain_json", "plain_value", "json_number"):
            return "encode: plain JSON (keys_plain, plain images)"
        return "decode + validate"
    if funcname == "batch_name" or path.endswith(("/batch.py", "archiver/archive/layout.py")):
        return "batch: group, sort, dedupe, name"
    if path.endswith(("archiver/archive/codec.py", "archiver/archive/schema.py")):
        return "encode: rows -> orjson -> Arrow arrays"
    if "/pyarrow/parquet/" in path or "parquet" in funcname.lower():
        return "Parquet write (zstd)"
    if path.endswith("archiver/archive/store.py"):
        return "store put (temp file, fsync, rename)"
    if "/logging/" in path or path.endswith("archiver/logs.py"):
        return "logging"
    if path.endswith(("archiver/write.py", "archiver/lambda_handler.py")):
        return "orchestration (write.py, handler)"
    return None


def profile_stages(stats: dict[Any, Any]) -> dict[str, float]:
    """Self time of every function by stage; library and builtin calls count for their callers."""
    memo: dict[Any, dict[str, float]] = {}

    def distribution(func: Any, visiting: frozenset[Any]) -> dict[str, float]:
        stage = stage_of(func[0], func[2])
        if stage is not None:
            return {stage: 1.0}
        if func in memo:
            return memo[func]
        callers = {c: edge for c, edge in stats[func][4].items() if c != func and c not in visiting}
        weights = {c: edge[2] or edge[3] or edge[1] for c, edge in callers.items()}
        total = sum(weights.values())
        if not total:
            return {"other": 1.0}
        result: dict[str, float] = {}
        for caller, weight in weights.items():
            for name, share in distribution(caller, visiting | {func}).items():
                result[name] = result.get(name, 0.0) + share * weight / total
        memo[func] = result
        return result

    seconds: dict[str, float] = {}
    for func, (_, _, tottime, _, _) in stats.items():
        if "_lsprof.Profiler" in func[2]:
            continue
        for name, share in distribution(func, frozenset()).items():
            seconds[name] = seconds.get(name, 0.0) + tottime * share
    return seconds


def child_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Where the handler's time goes: an unprofiled split by stage, then cProfile by stage."""
    import cProfile
    import pstats

    from archiver.archive.codec import batch_name, encode_records
    from archiver.archive.store import open_store
    from archiver.batch import make_batches
    from archiver.decode import decode_record

    records = make_records(args.records, args.seed)
    quiet_logging()
    # 1. Wall clock per stage without a profiler, calling the stage functions the
    #    way archiver/write.py does (keep in step with archive_records).
    split: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-archiver-split-") as scratch:
        for rep in range(args.repeat + 1):
            store = open_store(tempfile.mkdtemp(dir=scratch))
            marks = [time.perf_counter()]
            decoded = [(i, decode_record(raw)) for i, raw in enumerate(records)]
            marks.append(time.perf_counter())
            batches = make_batches(decoded)
            keys = [b.partition.key(batch_name(b.records)) for b in batches]
            marks.append(time.perf_counter())
            files = [encode_records(b.records) for b in batches]
            marks.append(time.perf_counter())
            for key, data in zip(keys, files, strict=True):
                store.put(key, data)
            marks.append(time.perf_counter())
            if rep:
                for name, start, end in zip(
                    ("decode + validate", "batch", "encode + Parquet write", "store put"),
                    marks,
                    marks[1:],
                    strict=False,
                ):
                    split.setdefault(name, []).append(end - start)
            del decoded, batches, files
            gc.collect()
    best_split = {name: min(values) for name, values in split.items()}

    # 2. cProfile of one handler call (after a warm-up call).
    with tempfile.TemporaryDirectory(prefix="bench-archiver-profile-") as scratch:
        use_archive(os.path.join(scratch, "warm"), plain=False)
        invoke(records)
        use_archive(os.path.join(scratch, "profiled"), plain=False)
        invoke([])
        gc.collect()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        invoke(records)
        profiler.disable()
        profiled_wall = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    stages = profile_stages(stats)
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:10]
    return {
        "split_s": best_split,
        "profile_s": stages,
        "profiled_wall_s": profiled_wall,
        "top_self": [
            {
                "function": f"{Path(f[0]).name}:{f[1]}({f[2]})" if f[0] != "~" else f[2],
                "calls": v[1],
                "self_s": v[2],
                "cumulative_s": v[3],
            }
            for f, v in top
        ],
    }


def run_child(
    args: argparse.Namespace, mode: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--records",
        str(args.records),
        "--repeat",
        str(args.repeat),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark child {mode!r} failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- start-up


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_time(runs: int, env: dict[str, str]) -> dict[str, Any]:
    """``python -X importtime``: the handler import's total and its heaviest packages (best run)."""
    code = "import sys; sys.stderr.write('--MARK--\\n'); import archiver.lambda_handler"
    best: dict[str, Any] | None = None
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = done.stderr.split("--MARK--\n", 1)[1].splitlines()
        total_us = 0
        by_package: Counter[str] = Counter()
        modules = 0
        for line in lines:
            match = _IMPORTTIME.match(line)
            if not match:
                continue
            self_us, cumulative_us, indent, module = match.groups()
            modules += 1
            by_package[module.split(".")[0]] += int(self_us)
            if len(indent) == 1:  # a top-level import of the -c statement
                total_us += int(cumulative_us)
        if best is None or total_us < best["total_ms"] * 1000:
            best = {
                "total_ms": total_us / 1000,
                "modules": modules,
                "self_ms_by_package": {k: round(v / 1000, 1) for k, v in by_package.most_common(8)},
            }
    assert best is not None
    return best


def wall_of(code: str, runs: int, env: dict[str, str]) -> float:
    """Best wall time of a new interpreter running ``code``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
        times.append(time.perf_counter() - started)
    return min(times)


def startup(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Import time, cold import wall time and the first invocations, in new interpreters."""
    cold = run_child(args, "cold", env)
    cold["first_invocation_s"] = cold["setup_s"] + cold["first_batch_s"]
    return {
        "importtime": import_time(runs=3, env=env),
        "cold_import_wall_s": wall_of("import archiver.lambda_handler", runs=5, env=env),
        "interpreter_wall_s": wall_of("pass", runs=5, env=env),
        "cold_invocation": cold,
    }


def startup_modes(args: argparse.Namespace) -> dict[str, Any]:
    """Start-up as this environment runs it, and with every module's bytecode already cached.

    Python compiles a module without a cached ``.pyc`` at each import; where
    PYTHONDONTWRITEBYTECODE is set (or the code is read-only, as in a Lambda
    package shipped without ``.pyc`` files) that happens at every cold start.
    The second mode caches bytecode under a temporary PYTHONPYCACHEPREFIX first.
    """
    as_is = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-archiver-pyc-") as prefix:
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = prefix
        run_child(args, "cold", cached)  # compiles and caches everything the cold path imports
        return {
            "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
            "as_is": startup(args, as_is),
            "bytecode_cached": startup(args, cached),
        }


# --------------------------------------------------------------------------- report


def orjson_retained(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Heap kept alive by one ``orjson.dumps`` result, per image size (tracemalloc)."""
    import tracemalloc

    import orjson

    images = [r["dynamodb"]["NewImage"] for r in records[:200] if "NewImage" in r["dynamodb"]]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [orjson.dumps(image) for image in images]
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "orjson": orjson.__version__,
        "mean_json_bytes": round(sum(map(len, kept)) / len(kept)),
        "mean_retained_bytes": round(retained / len(kept)),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def print_report(results: dict[str, Any]) -> None:
    data, host = results["records"], results["machine"]
    print(
        f"\n{data['count']:,} records, mean {data['mean_json_bytes']} B of JSON "
        f"(by event: {data['mean_json_bytes_by_event']}), mix {data['event_mix']}"
    )
    print(
        f"best of {results['repeat']} after a warm-up; {host['cpus']} CPUs ({host['cpu']}), "
        f"Python {host['python']}, pyarrow {host['pyarrow']}, orjson {host['orjson']}; commit "
        f"{host['commit']}{' + uncommitted changes' if host['uncommitted_changes'] else ''}\n"
    )
    header = (
        f"{'variant':<66} {'best s':>6} {'1st s':>6} {'records/s':>9} {'x(a)':>5} "
        f"{'x(c)':>5} {'faults':>6} {'peak RSS':>8} {'+RSS':>6} {'output':>7}"
    )
    print(header)
    print("-" * len(header))
    for name in VARIANTS:
        row = results["variants"][name]
        output = f"{row['check']['mb']:.2f}MB" if "mb" in row["check"] else "-"
        print(
            f"{LABELS[name]:<66} {row['best_s']:>6.3f} {row['warmup_s']:>6.3f} "
            f"{row['records_per_s']:>9,.0f} {row['x_baseline']:>5.2f} {row['x_ceiling']:>5.2f} "
            f"{row['best_run_minor_faults'] / 1000:>5.1f}k "
            f"{row['rss_peak_mb']:>5.0f} MB {row['rss_added_mb']:>3.0f} MB {output:>7}"
        )
    print(
        "x(a), x(c): records/s relative to (a) and to (c); 1st s: the warm-up run (first in "
        "its process);\nfaults: minor page faults during the best run; +RSS: peak RSS minus "
        "the RSS holding the generated input batch."
    )
    target = results["target"]
    print(
        f"issue target for (b): >= {TARGET_RATIO:g}x baseline: {target['x_baseline']:.2f}x "
        f"{'MET' if target['ratio_met'] else 'NOT MET'}; >= {TARGET_RATE:,} records/s: "
        f"{target['records_per_s']:,.0f} {'MET' if target['rate_met'] else 'NOT MET'}"
    )
    # Each check against the Lambda path with the same check: (f) light, (g) full.
    lambda_rates = {
        "light": results["variants"]["bytes"]["records_per_s"],
        "full": results["variants"]["bytes-full"]["records_per_s"],
    }
    print(
        "\narchiver ingest of JSON Lines (a fresh folder each; CLI in process, files read line by "
        "line; best of --repeat, 1st: the process's first run; against the Lambda path with "
        "the same check: (f) light, (g) full)"
    )
    for name, row in results["ingest"].items():
        check = name.split("-")[0]
        label = "(f)" if check == "light" else "(g)"
        print(
            f"  {row['records']:>7,} records, --image-check {check:<5} {row['seconds']:>6.2f} s "
            f"(1st {row.get('seconds_first', row['seconds']):.2f} s) "
            f"{row['records_per_s']:>9,.0f} records/s  "
            f"{row['records_per_s'] / lambda_rates[check]:>5.2f}x {label}  "
            f"{row['records_per_s'] / lambda_rates['light']:>5.2f}x (f)"
            f"  peak RSS {row['rss_peak_mb']:>5.0f} MB"
        )
    ratios = {
        check: min(
            row["records_per_s"] / lambda_rates[check]
            for name, row in results["ingest"].items()
            if name.startswith(check)
        )
        for check in lambda_rates
    }
    light = [row for name, row in results["ingest"].items() if name.startswith("light")]
    print(
        f"issue target: ingest at least as fast per record as the Lambda path, the same check: "
        f"light {ratios['light']:.2f}x (f), full {ratios['full']:.2f}x (g); memory flat in the "
        f"records: peak {light[0]['rss_peak_mb']:.0f} MB for {light[0]['records']:,}, "
        f"{light[-1]['rss_peak_mb']:.0f} MB for {light[-1]['records']:,}"
    )
    probe = results["orjson_retained"]
    print(
        f"orjson {probe['orjson']}: one dumps() of a {probe['mean_json_bytes']} B image keeps "
        f"{probe['mean_retained_bytes']:,} B of heap alive (tracemalloc)"
    )

    start = results["startup"]
    modes = (start["as_is"], start["bytecode_cached"])
    rows = [
        (
            "-X importtime total of import archiver.lambda_handler",
            [m["importtime"]["total_ms"] / 1000 for m in modes],
        ),
        (
            "wall of python -c 'import archiver.lambda_handler'",
            [m["cold_import_wall_s"] for m in modes],
        ),
        ("wall of python -c pass", [m["interpreter_wall_s"] for m in modes]),
        ("cold process: the import", [m["cold_invocation"]["import_s"] for m in modes]),
        (
            f"cold process: first invocation ({COLD_BATCH} records)",
            [m["cold_invocation"]["first_invocation_s"] for m in modes],
        ),
        ("  of which settings + store setup", [m["cold_invocation"]["setup_s"] for m in modes]),
        ("  of which the batch", [m["cold_invocation"]["first_batch_s"] for m in modes]),
        (
            f"warm invocation ({COLD_BATCH} records)",
            [m["cold_invocation"]["warm_batch_s"] for m in modes],
        ),
    ]
    print(
        f"\nstart-up, a new interpreter each time (warm page cache)  {'as run here':>12} "
        f"{'.pyc cached':>12}"
    )
    for label, values in rows:
        print(f"  {label:<54}" + "".join(f"{v * 1000:>10.1f} ms" for v in values))
    flag = start["pythondontwritebytecode"] or "unset"
    print(
        f"  as run here: PYTHONDONTWRITEBYTECODE={flag}; .pyc cached: under a warmed "
        "PYTHONPYCACHEPREFIX"
    )
    for title, mode in (("as run here", modes[0]), (".pyc cached", modes[1])):
        by_package = mode["importtime"]["self_ms_by_package"]
        packages = ", ".join(f"{name} {value:g}" for name, value in by_package.items())
        print(f"  import self ms by package, {title}: {packages}")

    profile = results["profile"]
    print(f"\nwhere the handler's time goes ({data['count']:,} records)")
    split_total = sum(profile["split_s"].values())
    print(
        f"  wall clock, no profiler: stage functions called as write.py does "
        f"(best of {results['repeat']} each, total {split_total:.3f} s)"
    )
    for name, seconds in profile["split_s"].items():
        print(f"    {name:<48} {seconds:>6.3f} s {100 * seconds / split_total:>5.1f} %")
    prof_total = sum(profile["profile_s"].values())
    print(
        f"  cProfile of one handler call: self time by stage ({prof_total:.3f} s under the "
        f"profiler, which inflates Python-heavy stages)"
    )
    for name, seconds in sorted(profile["profile_s"].items(), key=lambda kv: -kv[1]):
        print(f"    {name:<48} {seconds:>6.3f} s {100 * seconds / prof_total:>5.1f} %")
    print("  heaviest functions by self time (profiled)")
    for item in profile["top_self"][:6]:
        print(f"    {item['function'][:48]:<48} {item['self_s']:>6.3f} s {item['calls']:>8,} calls")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed repetitions per variant, after one warm-up (best is kept)",
    )
    parser.add_argument(
        "--records",
        type=int,
        default=2_800,
        help="records in the batch (2,800 of ~2.1 KB: a 6 MB event, Lambda's largest)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the record generator")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--child", choices=[*VARIANTS, "cold", "profile", "ingest"], help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.records < COLD_BATCH:
        parser.error(f"--repeat must be >= 1 and --records >= {COLD_BATCH}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child = {"cold": child_cold, "profile": child_profile, "ingest": child_ingest}.get(
            args.child, child_variant
        )
        print(json.dumps(child(args)))
        return 0

    started = time.perf_counter()
    print(f"generating {args.records:,} records (seed {args.seed}) ...", flush=True)
    records = make_records(args.records, args.seed)
    results: dict[str, Any] = {
        "records": describe_records(records),
        "seed": args.seed,
        "repeat": args.repeat,
        "machine": machine(),
        "orjson_retained": orjson_retained(records),
        "variants": {},
    }
    del records
    for name in VARIANTS:
        print(f"measuring {LABELS[name]} ...", flush=True)
        row = run_child(args, name)
        row["best_s"] = min(row["times_s"])
        row["median_s"] = statistics.median(row["times_s"])
        row["records_per_s"] = args.records / row["best_s"]
        row["rss_added_mb"] = round(row["rss_peak_mb"] - row["rss_input_mb"], 1)
        results["variants"][name] = row
    base = results["variants"]["baseline"]["records_per_s"]
    ceiling = results["variants"]["ceiling"]["records_per_s"]
    for row in results["variants"].values():
        row["x_baseline"] = row["records_per_s"] / base
        row["x_ceiling"] = row["records_per_s"] / ceiling
    ours = results["variants"]["handler"]
    results["target"] = {
        "x_baseline": ours["x_baseline"],
        "records_per_s": ours["records_per_s"],
        "ratio_met": ours["x_baseline"] >= TARGET_RATIO,
        "rate_met": ours["records_per_s"] >= TARGET_RATE,
    }

    print("measuring archiver ingest of JSON Lines ...", flush=True)
    results["ingest"] = run_child(args, "ingest")
    print("measuring start-up ...", flush=True)
    results["startup"] = startup_modes(args)
    print("profiling the handler ...", flush=True)
    results["profile"] = run_child(args, "profile")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
