"""Benchmark of a whole Lambda invocation, bytes in to response out, in one run.

Run from the repository root::

    .venv/bin/python -m bench.runtime [--records N] [--invocations N] [--seed S]

Each runtime runs as Lambda runs it, a process polling a Runtime API (devkit's
local stand-in, over loopback HTTP), and gets the same ~6 MB event of ~1.8 KB
DynamoDB Streams records (devkit's orders table: 15 attributes, nested maps and
lists, sets, a binary) several times:

- ``baseline``: AWS's runtime interface client (``awslambdaric``, the managed
  Python runtime's loop, which parses each event with simplejson) running the
  hand-written handler of bench/handwritten.py;
- ``ours``: ``python -m archiver.runtime``, which hands the body bytes to the
  archiver (light image check, the default for records from the service);
- ``ours-full``: the same with ``ARCHIVER_IMAGE_CHECK=full``.

An invocation's time runs from queueing the event to receiving the runtime's
response; the first invocation of each process is a warm-up. The ratio is the
baseline's median over ours. Peak RSS is the runtime process's VmHWM.

Cold start: a new process until it waits for its first invocation, plus that
first invocation of one record, written to S3 (SeaweedFS on loopback), for
today's deployment before this runtime (awslambdaric with
``archiver.lambda_handler.handler``) and for ``python -m archiver.runtime``;
best of several starts. Results go to ``bench/results/runtime.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.measure import machine  # noqa: E402
from devkit.runtime_api import RuntimeApi  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "runtime.json"
TARGET_RATIO = (
    8.0  # issue 8: a whole invocation against the hand-written handler under awslambdaric
)
RUNTIMES = ("baseline", "ours", "ours-full")
LABELS = {
    "baseline": "(a) awslambdaric + hand-written handler",
    "ours": "(b) python -m archiver.runtime (light image check)",
    "ours-full": "(c) the same, ARCHIVER_IMAGE_CHECK=full",
}


def make_body(count: int, seed: int) -> bytes:
    """A Lambda event of ``count`` records, as the bytes Lambda would send."""
    import orjson

    from devkit.traffic import TableHistory

    history = TableHistory("orders", seed=seed, items=500, seconds_per_change=0.01)
    return orjson.dumps({"Records": history.changes(count)})


def vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_runtime(name: str, body: bytes, invocations: int, scratch: str) -> dict[str, Any]:
    output = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "AWS_LAMBDA_"))}
    env.update(PYTHONPATH=str(ROOT), AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    if name == "baseline":
        command = [sys.executable, "-m", "awslambdaric", "bench.handwritten.handler"]
        env.update(BASELINE_OUTPUT=str(output), LAMBDA_TASK_ROOT=str(ROOT))
    else:
        command = [sys.executable, "-m", "archiver.runtime"]
        env.update(
            ARCHIVER_ARCHIVE_URI=str(output),
            ARCHIVER_METRICS="false",
            ARCHIVER_IMAGE_CHECK="full" if name == "ours-full" else "light",
        )
    times: list[float] = []
    cpus: list[float] = []
    with RuntimeApi() as api:
        env.update(api.env())
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            api.wait_idle(timeout=120)
            ready_s = time.perf_counter() - started
            for _ in range(invocations + 1):
                before_cpu = cpu_seconds(process.pid)
                begin = time.perf_counter()
                request = api.queue(body)
                answer = api.wait_answer(request, timeout=600)
                times.append(time.perf_counter() - begin)
                api.wait_idle(timeout=120)
                cpus.append(cpu_seconds(process.pid) - before_cpu)
                if answer.kind != "response" or answer.json() != {"batchItemFailures": []}:
                    raise SystemExit(f"{name}: {answer.kind} {answer.body[:300]!r}")
            peak = vm_hwm_mb(process.pid)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=30)
    rows = _rows(output, newest_only=name == "baseline")
    return {
        "ready_s": ready_s,
        "warmup_s": times[0],
        "times_s": times[1:],
        "median_s": statistics.median(times[1:]),
        "best_s": min(times[1:]),
        "cpu_median_s": statistics.median(cpus[1:]),
        "rss_peak_mb": round(peak, 1),
        "rows_last": rows,
        "stderr_tail": stderr.decode(errors="replace")[-500:] if rows == 0 else "",
    }


def cold_start(kind: str, record: bytes, env: dict[str, str]) -> dict[str, float]:
    """A new runtime process: seconds until it waits for work, then its first invocation."""
    if kind == "handler":
        command = [sys.executable, "-m", "awslambdaric", "archiver.lambda_handler.handler"]
    else:
        command = [sys.executable, "-m", "archiver.runtime"]
    with RuntimeApi() as api:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, **api.env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            api.wait_idle(timeout=120)
            ready = time.perf_counter() - started
            begin = time.perf_counter()
            answer = api.wait_answer(api.queue(record), timeout=120)
            first = time.perf_counter() - begin
        finally:
            process.terminate()
            process.wait(timeout=30)
    if answer.kind != "response" or answer.json() != {"batchItemFailures": []}:
        raise SystemExit(f"cold start of {kind}: {answer.kind} {answer.body[:300]!r}")
    return {"ready_s": ready, "first_invocation_s": first, "total_s": ready + first}


def cold_starts(seed: int, runs: int) -> dict[str, Any]:
    """Best-of-``runs`` cold starts of today's handler and of our runtime, archiving to S3."""
    from devkit.servers import SeaweedS3

    record = make_body(1, seed)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-runtime-s3-") as data, SeaweedS3(data) as s3:
        bucket = s3.create_bucket("bench-cold")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
        env.update(
            s3.env(),
            PYTHONPATH=str(ROOT),
            LAMBDA_TASK_ROOT=str(ROOT),
            ARCHIVER_ARCHIVE_URI=f"s3://{bucket}/archive",
            ARCHIVER_METRICS="false",
        )
        for kind in ("handler", "runtime"):
            starts = [cold_start(kind, record, env) for _ in range(runs)]
            out[kind] = min(starts, key=lambda start: start["total_s"])
    return out


def _rows(folder: Path, newest_only: bool) -> int:
    """Rows of the last invocation's output.

    The baseline writes one file per invocation; ours rewrites the same
    deterministic files each time.
    """
    import pyarrow.parquet as pq

    files = sorted(folder.rglob("*.parquet"), key=lambda f: f.stat().st_mtime)
    if newest_only:
        files = files[-1:]
    return sum(pq.read_metadata(f).num_rows for f in files)


def print_report(results: dict[str, Any]) -> None:
    data, host = results["event"], results["machine"]
    print(
        f"\none event of {data['records']:,} records, {data['mb']:.2f} MB; "
        f"{results['invocations']} invocations after a warm-up; {host['cpus']} CPUs ({host['cpu']}), "
        f"Python {host['python']}; commit {host['commit']}"
        f"{' + uncommitted changes' if host['uncommitted_changes'] else ''}\n"
    )
    header = (
        f"{'runtime':<52} {'median':>8} {'best':>8} {'1st':>8} {'CPU':>8} {'rec/s':>8} "
        f"{'x(a)':>6} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    base = results["runtimes"]["baseline"]["median_s"]
    for name in RUNTIMES:
        row = results["runtimes"][name]
        print(
            f"{LABELS[name]:<52} {row['median_s'] * 1000:>6.0f}ms {row['best_s'] * 1000:>6.0f}ms "
            f"{row['warmup_s'] * 1000:>6.0f}ms {row['cpu_median_s'] * 1000:>6.0f}ms "
            f"{data['records'] / row['median_s']:>8,.0f} {base / row['median_s']:>6.2f} "
            f"{row['rss_peak_mb']:>6.0f} MB"
        )
    ours = base / results["runtimes"]["ours"]["median_s"]
    print(
        f"issue target: a whole invocation >= {TARGET_RATIO:g}x the baseline: {ours:.2f}x "
        f"{'MET' if ours >= TARGET_RATIO else 'NOT MET'}"
    )
    cold = results["cold_start"]
    print("\ncold start to S3, best of several new processes   ready   1st invocation    total")
    for kind, label in (
        ("handler", "awslambdaric + archiver.lambda_handler.handler"),
        ("runtime", "python -m archiver.runtime"),
    ):
        row = cold[kind]
        print(
            f"  {label:<48} {row['ready_s'] * 1000:>5.0f} ms {row['first_invocation_s'] * 1000:>8.0f} ms "
            f"{row['total_s'] * 1000:>8.0f} ms"
        )
    slower = cold["runtime"]["total_s"] <= cold["handler"]["total_s"]
    print(f"issue target: cold start no slower than today: {'MET' if slower else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records",
        type=int,
        default=2_800,
        help="records in the event (2,800 of ~2.1 KB: 6 MB, Lambda's largest)",
    )
    parser.add_argument("--invocations", type=int, default=10, help="timed invocations")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cold-runs", type=int, default=5, help="new processes per cold start")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    body = make_body(args.records, args.seed)
    results: dict[str, Any] = {
        "event": {"records": args.records, "mb": len(body) / 1e6},
        "invocations": args.invocations,
        "machine": machine(),
        "runtimes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as scratch:
        for name in RUNTIMES:
            print(f"measuring {LABELS[name]} ...", flush=True)
            row = run_runtime(name, body, args.invocations, scratch)
            if row["rows_last"] != args.records:
                raise SystemExit(f"{name} archived {row['rows_last']} rows: {row['stderr_tail']}")
            results["runtimes"][name] = row
    base = results["runtimes"]["baseline"]["median_s"]
    for row in results["runtimes"].values():
        row["x_baseline"] = base / row["median_s"]
    print("measuring cold starts ...", flush=True)
    results["cold_start"] = cold_starts(args.seed, args.cold_runs)
    results["target"] = {
        "ratio": results["runtimes"]["ours"]["x_baseline"],
        "met": results["runtimes"]["ours"]["x_baseline"] >= TARGET_RATIO,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
