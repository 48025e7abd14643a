"""Benchmark of reads from S3 at S3's small-object latency: the one-after-another floor
against ``replayer events``.

Run from the repository root::

    .venv/bin/python bench/reads.py [--files N] [--records-per-file N] [--delay S] [--repeat N]
    .venv/bin/python bench/reads.py --skip-serial      # without the one-request-at-a-time row
    .venv/bin/python bench/reads.py --report bench/results/reads.json   # print a saved run

SeaweedFS serves S3 on loopback; a local TCP proxy (``devkit.proxy.DelayProxy``)
in front of it holds the first bytes of every request for ``--delay`` seconds
(default 0.020, S3's latency for a small object), per request, so kept-alive
connections pay it every time. An archive of ``--files`` small files (default
800, ``--records-per-file`` changes each, about 6 KB of zstd Parquet, over about
53 hour partitions, as a Lambda sink with a small batch size writes them) is
written straight to SeaweedFS, then each of these runs in a fresh process, every
request through the proxy:

- ``floor``: each file fetched once, one after another, with a boto3 client
  (``get_object`` and read the body), nothing else: the least a reader that
  waits for each file in turn can take. Only the loop is timed (start-up and
  the first connection excluded).
- ``events``: ``replayer events --archive s3://... --table orders --output FILE``
  (``replayer.cli.main`` in a fresh interpreter), timed from outside, start-up
  included; ``--repeat`` (3) runs, the best counts. Peak RSS is the child's
  VmHWM.
- ``events_sdk``: the same with ``ARCHIVER_S3_READS=sdk``, every GET through
  s3fs rather than AWS's Common Runtime (``archiver.archive.crt``); its runs
  take turns with those of ``events``.
- ``compact`` and ``compact_sdk``: ``archiver compact`` on a copy of the
  archive each (it replaces the files it merges), its GETs through the
  Common Runtime and through boto3 (``ARCHIVER_S3_READS=sdk``).
- ``serial``: the same with one request in flight
  (``archiver.archive.fetch.IN_FLIGHT = 1`` in the child): what the overlap brings.
- ``ls`` and ``verify``: ``replayer ls`` (footers) and ``replayer verify``
  (every page of every file) over the same archive, once each.
- ``no_delay``: ``events`` once more with the proxy adding nothing: what the
  work itself takes on this machine (the CPU of the client, the proxy and
  SeaweedFS), the least any overlap of requests can bring ``events`` down to.
- ``timeline``: one more ``events`` run with every store read timed (in the child
  only), to say where the time goes: start-up, listing, the requests (how many
  were in flight on average, their mean latency as the client saw it), decoding
  (on the fetch threads, summed).

The target (issue 9 point 4): ``events`` at least 8 times faster than the floor,
with the output unchanged (the run checks that every run wrote the same bytes,
one line per change) and memory bounded. Results go to ``bench/results/reads.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# As a script, this file's folder (bench/, which holds archiver.py and replayer.py) comes
# first on sys.path and would shadow those packages. Import from the repo root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]
sys.path.insert(0, str(ROOT))

RESULTS = HERE / "results" / "reads.json"
TABLE = "orders"
TARGET_RATIO = 8.0
START_S = 1_795_000_000 // 3600 * 3600

# The floor, as a program of its own: nothing of this repository is imported.
FLOOR = r"""
import json, os, sys, time
import boto3
from botocore.config import Config

bucket, keys_file = sys.argv[1], sys.argv[2]
with open(keys_file) as handle:
    keys = handle.read().split()
client = boto3.client("s3", config=Config(retries={"mode": "standard"}))
client.head_bucket(Bucket=bucket)  # credentials and the first connection, outside the timing
cpu = os.times()
started = time.perf_counter()
size = 0
for key in keys:
    size += len(client.get_object(Bucket=bucket, Key=key)["Body"].read())
seconds = time.perf_counter() - started
done = os.times()
print(json.dumps({"seconds": seconds, "files": len(keys), "bytes": size,
                  "cpu_s": done.user - cpu.user + done.system - cpu.system}))
"""


# --------------------------------------------------------------------------- children


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    return 0.0


def child_command(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``replayer`` command in this fresh process; what it took, as JSON."""
    began = time.time()
    from archiver.archive import fetch

    if spec.get("in_flight"):
        fetch.IN_FLIGHT = int(spec["in_flight"])
    marks: dict[str, Any] = {"spawned": spec["spawned"], "interpreter": began}
    if spec.get("timeline"):
        _instrument(marks)
    if spec.get("program") == "archiver":
        from archiver.cli import main
    else:
        from replayer.cli import main

    marks["main"] = time.time()
    code = main(spec["argv"])
    marks["returned"] = time.time()
    times = os.times()
    return {
        "code": code,
        "peak_rss_mb": vm_hwm_mb(),
        "cpu_s": times.user + times.system,
        "user_s": times.user,
        "system_s": times.system,
        "marks": marks,
    }


def _instrument(marks: dict[str, Any]) -> None:
    """Time every listing, store read and file decode of this process (the timeline run)."""
    import threading

    from archiver.archive import reader
    from archiver.archive.store import FsspecStore

    lock = threading.Lock()
    gets: list[tuple[float, float]] = []
    decodes: list[float] = []
    marks["gets"], marks["decode_s"], marks["listing"] = gets, decodes, []
    get, read_file, list_partitions = (
        FsspecStore.get,
        reader.read_archive_file,
        reader.list_partitions,
    )

    def timed_get(self: Any, key: str) -> bytes:
        started = time.time()
        try:
            return get(self, key)
        finally:
            with lock:
                gets.append((started, time.time()))

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return read_file(*args, **kwargs)
        finally:
            decodes.append(time.perf_counter() - started)

    def timed_list(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return list_partitions(*args, **kwargs)
        finally:
            marks["listing"].append((started, time.time()))

    FsspecStore.get = timed_get
    reader.read_archive_file = timed_read
    reader.list_partitions = timed_list


def run_command(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """``child_command`` in a fresh interpreter, timed from outside (spawn to exit)."""
    spec = dict(spec, spawned=time.time())
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark child failed with exit code {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"replayer {spec['argv'][0]} exited {result['code']}")
    result["wall_s"] = wall
    return result


# --------------------------------------------------------------------------- the archive


def write_archive(store: Any, files: int, per_file: int, seed: int) -> dict[str, Any]:
    """``files`` Lambda-sized batches of ``per_file`` changes, each within one hour: one file each."""
    from archiver.write import archive_records
    from devkit.traffic import TableHistory

    # 30 s apart on average: about 120 changes per hour, 15 files per hour partition.
    history = TableHistory(TABLE, seed=seed, start=float(START_S), seconds_per_change=30.0)
    written = records = 0
    pending = history.change()
    while written < files:
        batch = [pending]
        hour = int(pending["dynamodb"]["ApproximateCreationDateTime"]) // 3600
        pending = history.change()
        while (
            len(batch) < per_file
            and int(pending["dynamodb"]["ApproximateCreationDateTime"]) // 3600 == hour
        ):
            batch.append(pending)
            pending = history.change()
        report = archive_records(batch, store)
        if not report.ok:
            raise SystemExit(f"could not write the archive: {report.errors}")
        written += 1
        records += len(batch)
    objects = list(store.list(f"table_name={TABLE}/"))
    if len(objects) != files:
        raise SystemExit(f"expected {files} files, found {len(objects)}")
    partitions = {obj.key.rsplit("/", 1)[0] for obj in objects}
    return {
        "files": len(objects),
        "records": records,
        "bytes": sum(obj.size for obj in objects),
        "partitions": len(partitions),
        "keys": [getattr(store, "prefix", "") + obj.key for obj in objects],
    }


# --------------------------------------------------------------------------- the run


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def timeline(result: dict[str, Any]) -> dict[str, float]:
    """Where one instrumented ``events`` run's time went, in seconds from its spawn."""
    marks = result["marks"]
    spawned = marks["spawned"]
    gets = marks["gets"]
    first_get, last_get = min(s for s, _ in gets), max(e for _, e in gets)
    busy = sum(e - s for s, e in gets)
    listing = marks["listing"]
    return {
        "interpreter_s": marks["interpreter"] - spawned,
        "imports_to_main_s": marks["main"] - marks["interpreter"],
        "start_to_first_list_s": listing[0][0] - spawned if listing else 0.0,
        "listing_s": sum(e - s for s, e in listing),
        "first_get_s": first_get - spawned,
        "gets_span_s": last_get - first_get,
        "after_last_get_s": marks["returned"] - last_get,
        "exit_s": result["wall_s"] - (marks["returned"] - spawned),
        "requests": len(gets),
        "mean_in_flight": busy / (last_get - first_get) if last_get > first_get else 1.0,
        "mean_get_ms": busy / len(gets) * 1000,
        "decode_s": sum(marks["decode_s"]),
        "cpu_s": result["cpu_s"],
        "total_s": result["wall_s"],
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from archiver.archive.fetch import IN_FLIGHT
    from devkit.measure import machine
    from devkit.servers import SeaweedS3

    results: dict[str, Any] = {
        "machine": machine(),
        "files": args.files,
        "records_per_file": args.records_per_file,
        "delay_s": args.delay,
        "in_flight": IN_FLIGHT,
        "awscrt": _version("awscrt"),
        "runs": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="reads-bench-"))
    try:
        with SeaweedS3() as seaweed:
            _measure_on(seaweed, args, scratch, results)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return results


def _measure_on(
    seaweed: Any, args: argparse.Namespace, scratch: Path, results: dict[str, Any]
) -> None:
    from archiver.archive.s3store import S3Store
    from devkit.proxy import DelayProxy

    bucket = seaweed.create_bucket("reads-bench")
    uri = f"s3://{bucket}/changes"
    direct = dict(os.environ, **seaweed.env())

    def written(archive_uri: str) -> dict[str, Any]:
        """The bench's archive, written straight to SeaweedFS (not through the proxy)."""
        saved = dict(os.environ)
        os.environ.update(direct)
        try:
            return write_archive(S3Store(archive_uri), args.files, args.records_per_file, args.seed)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    started = time.perf_counter()
    archive = written(uri)
    archive["write_s"] = time.perf_counter() - started
    keys_file = scratch / "keys.txt"
    keys_file.write_text("\n".join(archive.pop("keys")))
    results["archive"] = archive
    print(
        f"archive: {archive['files']} files, {archive['records']} changes, "
        f"{archive['bytes'] / 1e6:.1f} MB in {archive['partitions']} hour partitions "
        f"(written in {archive['write_s']:.1f} s)",
        file=sys.stderr,
    )
    with DelayProxy(seaweed.endpoint, delay=args.delay) as proxy:
        env = dict(direct, AWS_ENDPOINT_URL_S3=proxy.endpoint, PYTHONPATH=str(ROOT))
        runs = results["runs"]

        def counted(name: str, run: Any) -> dict[str, Any]:
            proxy.reset_counts()
            own, server = os.times(), process_cpu_s(seaweed.proc.pid)
            result: dict[str, Any] = run()
            # This process does nothing but proxy meanwhile: its CPU is the proxy's.
            done = os.times()
            result["proxy_cpu_s"] = done.user + done.system - own.user - own.system
            result["s3_server_cpu_s"] = process_cpu_s(seaweed.proc.pid) - server
            result["requests"], result["max_in_flight"] = proxy.requests, proxy.max_in_flight
            result["connections"] = proxy.connections
            runs.setdefault(name, []).append(result)
            print(
                f"  {name}: {result.get('wall_s', result.get('seconds')):.2f} s",
                file=sys.stderr,
            )
            return result

        def floor() -> dict[str, Any]:
            done = subprocess.run(
                [sys.executable, "-c", FLOOR, bucket, str(keys_file)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            result: dict[str, Any] = json.loads(done.stdout)
            return result

        def events(output: Path, *, sdk: bool = False, **extra: Any) -> Any:
            argv = ["events", "--archive", uri, "--table", TABLE, "--output", str(output)]
            # sdk: every GET through s3fs (ARCHIVER_S3_READS=sdk), not the Common Runtime
            child_env = dict(env, ARCHIVER_S3_READS="sdk") if sdk else env
            return lambda: run_command({"argv": argv, **extra}, child_env)

        outputs: dict[str, str] = {}
        counted("floor", floor)
        for i in range(args.repeat):  # the two ways to GET take turns
            for name, sdk in (("events", False), ("events_sdk", True)):
                path = scratch / f"{name}-{i}.jsonl"
                counted(name, events(path, sdk=sdk))
                outputs[f"{name} {i}"] = digest(path)
                lines = path.read_bytes().count(b"\n")
                if lines != archive["records"]:
                    raise SystemExit(f"{name} wrote {lines} lines for {archive['records']} changes")
                path.unlink()
        path = scratch / "timeline.jsonl"
        results["timeline"] = timeline(counted("timeline", events(path, timeline=True)))
        outputs["timeline"] = digest(path)
        if not args.skip_serial:
            path = scratch / "serial.jsonl"
            counted("serial", events(path, in_flight=1))
            outputs["serial"] = digest(path)
        counted("ls", lambda: run_command({"argv": ["ls", "--archive", uri]}, env))
        counted("verify", lambda: run_command({"argv": ["verify", "--archive", uri]}, env))
        # archiver compact changes the archive it runs on: each way gets a copy of its own.
        for name, sdk in (("compact", False), ("compact_sdk", True)):
            copy = f"s3://{seaweed.create_bucket(f'reads-bench-{name}'.replace('_', '-'))}/changes"
            written(copy)
            spec = {"program": "archiver", "argv": ["compact", "--archive", copy]}
            child_env = dict(env, ARCHIVER_S3_READS="sdk") if sdk else env
            counted(name, lambda spec=spec, child_env=child_env: run_command(spec, child_env))
        # With no latency at all, what is left is the work itself: the least overlap can reach.
        proxy.delay = 0.0
        path = scratch / "no-delay.jsonl"
        counted("no_delay", events(path))
        outputs["no delay"] = digest(path)
        results["outputs_identical"] = len(set(outputs.values())) == 1


def report(results: dict[str, Any]) -> bool:
    runs = results["runs"]
    floor = runs["floor"][0]["seconds"]
    events = [r["wall_s"] for r in runs["events"]]
    best = min(events)
    ratio = floor / best
    archive = results["archive"]
    print()
    print(
        f"{archive['files']} files ({archive['bytes'] / 1e6:.1f} MB, {archive['records']:,} changes, "
        f"{archive['partitions']} hour partitions) on SeaweedFS, {results['delay_s'] * 1000:.0f} ms "
        f"added to every request; {results['in_flight']} requests in flight"
    )
    print()
    print(
        f"{'row':<54} {'best s':>7} {'median':>7} {'x(a)':>6} {'reqs':>5} {'max':>4} "
        f"{'CPU s':>6} {'S3 CPU':>6} {'proxy':>6} {'peak RSS':>9}"
    )
    print("-" * 118)

    def row(label: str, seconds: list[float], result: dict[str, Any]) -> None:
        peak = f"{result['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in result else "-"
        print(
            f"{label:<54} {min(seconds):>7.2f} {statistics.median(seconds):>7.2f} "
            f"{floor / min(seconds):>6.2f} {result['requests']:>5} {result['max_in_flight']:>4} "
            f"{result['cpu_s']:>6.2f} {result['s3_server_cpu_s']:>6.2f} "
            f"{result['proxy_cpu_s']:>6.2f} {peak:>9}"
        )

    row("(a) floor: each file once, one after another (boto3)", [floor], runs["floor"][0])
    fastest = min(runs["events"], key=lambda r: r["wall_s"])
    peak = max(r["peak_rss_mb"] for r in runs["events"])
    row(
        "(b) replayer events --output FILE (start-up included)",
        events,
        dict(fastest, peak_rss_mb=peak),
    )
    if "serial" in runs:
        serial = runs["serial"][0]
        row("(c) the same, one request in flight", [serial["wall_s"]], serial)
    if "events_sdk" in runs:
        sdk_runs = runs["events_sdk"]
        row(
            "(g) (b) with ARCHIVER_S3_READS=sdk (GETs via s3fs)",
            [r["wall_s"] for r in sdk_runs],
            min(sdk_runs, key=lambda r: r["wall_s"]),
        )
    for name, label in (
        ("ls", "(d) replayer ls (footers)"),
        ("verify", "(e) replayer verify (every page)"),
        ("compact", "(h) archiver compact (a copy of the archive)"),
        ("compact_sdk", "(i) (h) with ARCHIVER_S3_READS=sdk"),
        ("no_delay", "(f) (b) with no delay added: the work alone"),
    ):
        if name in runs:  # a saved run from before a row was added has none
            result = runs[name][0]
            row(label, [result["wall_s"]], result)
    met = ratio >= TARGET_RATIO
    if "events_sdk" in runs:
        sdk_best = min(r["wall_s"] for r in runs["events_sdk"])
        sdk_cpu = min(runs["events_sdk"], key=lambda r: r["wall_s"])["cpu_s"]
        crt = results.get("awscrt")
        print(
            f"(b) against (g): {sdk_best / best:.2f}x faster, "
            f"{fastest['cpu_s'] / sdk_cpu:.2f}x the CPU "
            f"({'awscrt ' + crt if crt else 'awscrt not installed: both through s3fs'})"
        )
    print(
        f"issue target: replayer events >= {TARGET_RATIO:.0f}x the floor: {ratio:.2f}x "
        f"{'MET' if met else 'NOT MET'}; outputs identical: {results['outputs_identical']}"
    )
    t = results["timeline"]
    print()
    print(
        f"where the time of one instrumented events run goes ({t['total_s']:.2f} s, from its spawn)"
    )
    print(f"  interpreter up                              {t['interpreter_s']:6.2f} s")
    setup = t["start_to_first_list_s"] - t["interpreter_s"]
    print(f"  imports, settings, store, bucket check      {setup:6.2f} s")
    print(f"  listing (days, then files)                  {t['listing_s']:6.2f} s")
    print(
        f"  {str(t['requests']) + ' GETs, first to last':<44}{t['gets_span_s']:6.2f} s"
        f"   ({t['mean_in_flight']:.1f} in flight on average, "
        f"{t['mean_get_ms']:.1f} ms each as the client saw them)"
    )
    print(f"  after the last GET (last partition, write)  {t['after_last_get_s']:6.2f} s")
    print(f"  interpreter exit                            {t['exit_s']:6.2f} s")
    print(
        f"  decoding files, wall time summed over the fetch threads (waits for the GIL "
        f"included) {t['decode_s']:6.2f} s"
    )
    print(f"  CPU, user + system, of the whole process    {t['cpu_s']:6.2f} s")
    files = archive["files"]
    cores = results["machine"].get("cpus") or 1
    print(
        f"CPU per file in (b), start-up included: replayer {fastest['cpu_s'] / files * 1000:.1f} ms, "
        f"SeaweedFS {fastest['s3_server_cpu_s'] / files * 1000:.1f} ms, proxy "
        f"{fastest['proxy_cpu_s'] / files * 1000:.1f} ms, on {cores} cores; 1-minute load "
        f"{results['machine']['load_average_at_start']:.2f} at the start, "
        f"{results['machine']['load_average_at_end']:.2f} at the end"
    )
    return met and bool(results["outputs_identical"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=800)
    parser.add_argument("--records-per-file", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.020, help="seconds added to each request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-serial", action="store_true")
    parser.add_argument("--report", metavar="JSON", help="print a saved run and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_command(json.loads(args.child))), flush=True)
        from archiver.archive.exits import exit_quickly

        exit_quickly(0)  # as the console command ends (replayer.cli.console)
    if args.report:
        return 0 if report(json.loads(Path(args.report).read_text())) else 1
    results = measure(args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
