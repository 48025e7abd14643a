"""Our Lambda runtime end to end: ``python -m archiver.runtime`` as a real process.

Each test starts the loop as Lambda would, with ``AWS_LAMBDA_RUNTIME_API``
pointing at the Runtime API stand-in (``devkit/runtime_api.py``) and the
``ARCHIVER_*`` settings in its environment, queues invocations and asserts
what the process posted back, what it logged and what it wrote: Parquet files
in a local folder (or objects in S3 on SeaweedFS), read back with pyarrow.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pyarrow.parquet as pq
import pytest

from archiver.archive.layout import partition_of
from archiver.archive.store import open_store
from archiver.lambda_handler import handler
from archiver.runtime import Invocation, LambdaContext, RuntimeClient, Stopped
from devkit.runtime_api import RuntimeApi
from devkit.servers import SeaweedS3
from devkit.traffic import TableHistory, lambda_events

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EVENTS = ROOT / "tests" / "events"
NO_FAILURES: dict[str, list[Any]] = {"batchItemFailures": []}
TRACE = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e7{:02d};Parent=9a9197af755a6419;Sampled=1"


def history(count: int, *, seed: int = 1, seconds_per_change: float = 20.0) -> list[Any]:
    """An ``orders`` table's stream records, as Lambda delivers them."""
    records: list[Any] = TableHistory(
        "orders", seed=seed, seconds_per_change=seconds_per_change
    ).changes(count)
    return records


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def archived(archive: str | Path) -> dict[str, bytes]:
    """Every object of the archive, key -> bytes."""
    store = open_store(str(archive))
    return {obj.key: store.get(obj.key) for obj in store.list("")}


def parquet_event_ids(archive: str | Path) -> list[str]:
    """The ``event_id`` column of every Parquet file of the archive, read back with pyarrow."""
    store = open_store(str(archive))
    ids: list[str] = []
    for obj in store.list("table_name=orders/"):
        if obj.key.endswith(".parquet"):
            with store.open(obj.key) as handle:
                ids += pq.read_table(handle, columns=["event_id"]).column("event_id").to_pylist()
    return ids


class Runtime:
    """One runtime process; its log lines (stderr) are kept in a file."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def logs(self) -> str:
        return self.log_path.read_bytes().decode()  # as written: a \r stays a \r

    def log_lines(self) -> list[str]:
        """One entry per log event: lines end at ``\\n`` only, as Lambda's log capture splits them."""
        return self.logs().rstrip("\n").split("\n")

    def json_logs(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log_lines()]
        assert all(isinstance(line, dict) for line in lines)
        return lines

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)


StartRuntime = Callable[..., Runtime]


@pytest.fixture
def api() -> Iterator[RuntimeApi]:
    with RuntimeApi() as server:
        yield server


@pytest.fixture
def start_runtime(api: RuntimeApi, tmp_path: Path) -> Iterator[StartRuntime]:
    """Start ``python -m archiver.runtime`` (or ``command``) against the stand-in, as Lambda would.

    ``env`` values override the environment; ``None`` removes a variable.
    """
    started: list[Runtime] = []

    def start(
        archive: str | Path | None, *, command: list[str] | None = None, **env: str | None
    ) -> Runtime:
        environ = {k: v for k, v in os.environ.items() if k != "_X_AMZN_TRACE_ID"}
        environ.update(api.env())
        environ.update(
            {
                "ARCHIVER_METRICS": "false",
                "AWS_LAMBDA_FUNCTION_NAME": "archiver",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            }
        )
        if archive is not None:
            environ["ARCHIVER_ARCHIVE_URI"] = str(archive)
        for name, value in env.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        log_path = tmp_path / f"runtime-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command or [sys.executable, "-m", "archiver.runtime"],
                cwd=ROOT,
                env=environ,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        runtime = Runtime(proc, log_path)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        if runtime.proc.poll() is None:
            runtime.proc.kill()
            runtime.proc.wait(10)


# --- invocations -------------------------------------------------------------------------------


def test_invocations_in_a_row_are_each_archived_and_answered(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    # Given a runtime, and six batches of a table's stream spanning several hours
    archive = tmp_path / "archive"
    records = history(600)
    start_runtime(archive)
    # When Lambda delivers them one after the other
    request_ids = [api.queue(event) for event in lambda_events(records, 100)]
    answers = [api.wait_answer(request_id) for request_id in request_ids]
    # Then each invocation is answered with no failures, as JSON, in delivery order
    assert api.delivered == request_ids
    assert [(a.kind, a.json()) for a in answers] == [("response", NO_FAILURES)] * 6
    assert {a.headers["Content-Type"] for a in answers} == {"application/json"}
    # and every record is in the Parquet files, once
    ids = parquet_event_ids(archive)
    assert len(ids) == len(records)
    assert sorted(ids) == sorted(r["eventID"] for r in records)
    hours = {key.rsplit("/", 1)[0] for key in archived(archive)}
    assert len(hours) >= 3


def test_an_event_that_is_not_a_stream_event_fails_only_its_own_invocation(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    records = history(200)
    runtime = start_runtime(archive)
    # Given a good batch, an object without Records, a body that is not JSON, a good batch
    first = api.queue({"Records": records[:100]})
    shapeless = api.queue({"foo": 1})
    garbage = api.queue(b"this is not JSON")
    last = api.queue({"Records": records[100:]})
    # Then the two bad invocations are failed, each with Lambda's error document
    assert api.wait_answer(first).json() == NO_FAILURES
    error = api.wait_answer(shapeless)
    assert error.kind == "error"
    document = error.json()
    assert set(document) == {"errorMessage", "errorType", "stackTrace"}
    assert document["errorType"] == "EventShapeError"
    assert error.headers["Lambda-Runtime-Function-Error-Type"] == "EventShapeError"
    assert "'Records' list" in document["errorMessage"] and "foo" in document["errorMessage"]
    assert document["stackTrace"] and all(isinstance(f, str) for f in document["stackTrace"])
    not_json = api.wait_answer(garbage)
    assert not_json.kind == "error"
    assert not_json.headers["Lambda-Runtime-Function-Error-Type"] == not_json.json()["errorType"]
    # and the loop goes on: the next invocation succeeds, and only good records are archived
    assert api.wait_answer(last).json() == NO_FAILURES
    assert runtime.proc.poll() is None
    assert sorted(parquet_event_ids(archive)) == sorted(r["eventID"] for r in records)
    # and each failure is logged with its traceback
    failures = [line for line in runtime.log_lines() if "invocation failed" in line]
    assert len(failures) == 2
    assert all("Traceback (most recent call last)" in line for line in failures)
    assert shapeless in failures[0] and garbage in failures[1]


def test_a_write_that_fails_reports_the_first_unstored_record_and_every_one_after_it(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    # Given a batch over several hours, and one of those hours' folders taken by a plain
    # file, so that the archive cannot write into that partition (and only that one)
    archive = tmp_path / "archive"
    records = history(300, seconds_per_change=60.0)
    hours = [
        partition_of("orders", int(r["dynamodb"]["ApproximateCreationDateTime"]) * 10**6)
        for r in records
    ]
    blocked = hours[len(records) // 2]
    assert len(set(hours)) >= 3 and blocked not in (hours[0], hours[-1])
    blocker = archive / blocked.prefix.rstrip("/")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    runtime = start_runtime(archive)
    # When it is delivered
    answer = api.wait_answer(api.queue({"Records": records}))
    # Then the invocation succeeds, naming the first record of that hour and every later one
    first = hours.index(blocked)
    assert answer.kind == "response"
    assert answer.json() == {
        "batchItemFailures": [{"itemIdentifier": sequence(r)} for r in records[first:]]
    }
    # and every other hour is archived
    stored = [r["eventID"] for r, hour in zip(records, hours, strict=True) if hour != blocked]
    assert sorted(parquet_event_ids(archive)) == sorted(stored)
    assert "write failed" in runtime.logs()
    # and once the folder is free, Lambda's re-delivery from that record completes the archive
    blocker.unlink()
    assert api.wait_answer(api.queue({"Records": records[first:]})).json() == NO_FAILURES
    assert set(parquet_event_ids(archive)) == {r["eventID"] for r in records}


def test_the_runtime_writes_the_same_files_as_the_handler(
    api: RuntimeApi,
    start_runtime: StartRuntime,
    tmp_path: Path,
    lambda_env: Callable[..., None],
) -> None:
    # Given the same batches, through handler(event dict) in this process and through the runtime
    records = history(500, seconds_per_change=30.0)
    recorded = orjson.loads((EVENTS / "dynamodb_event.json").read_bytes())
    events = [*lambda_events(records, 125), recorded]
    lambda_env(str(tmp_path / "by-handler"))
    assert [handler(orjson.loads(orjson.dumps(e)), None) for e in events] == [NO_FAILURES] * 5
    start_runtime(tmp_path / "by-runtime")
    answers = [api.wait_answer(api.queue(orjson.dumps(e))) for e in events]
    assert [a.json() for a in answers] == [NO_FAILURES] * 5
    # Then both archives hold the same objects, name for name and byte for byte
    by_handler, by_runtime = archived(tmp_path / "by-handler"), archived(tmp_path / "by-runtime")
    assert len(by_handler) >= 6
    assert sorted(by_runtime) == sorted(by_handler)
    assert by_runtime == by_handler


# --- init --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"ARCHIVER_PROMOTED_COLUMNS": "amount:money"}, r"ARCHIVER_PROMOTED_COLUMNS.*amount:money"),
        ({"ARCHIVER_ARCHIVE_URI": None}, r"ARCHIVER_ARCHIVE_URI"),
    ],
    ids=["bad-promoted-columns", "no-archive-uri"],
)
def test_invalid_settings_are_an_init_error_and_the_process_exits(
    api: RuntimeApi,
    start_runtime: StartRuntime,
    tmp_path: Path,
    settings: dict[str, str | None],
    named: str,
) -> None:
    waiting = api.queue({"Records": history(5)})
    runtime = start_runtime(tmp_path / "archive", **settings)
    # The process exits non-zero after posting an init error that names the setting
    assert runtime.wait() != 0
    [error] = api.init_errors
    assert error.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ConfigurationError"
    document = error.json()
    assert document["errorType"] == "Runtime.ConfigurationError"
    assert re.search(named, document["errorMessage"])
    assert isinstance(document["stackTrace"], list)
    # and it never asked for an invocation, nor wrote anything
    assert api.delivered == [] and waiting not in api.answers
    assert not (tmp_path / "archive").exists()
    assert re.search(named, runtime.logs())


def test_a_module_that_does_not_import_is_an_init_error(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    # Given a deployment whose pyarrow is broken (a package of that name that fails to import)
    broken = tmp_path / "broken" / "pyarrow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('pyarrow built for another platform')\n")
    runtime = start_runtime(tmp_path / "archive", PYTHONPATH=str(broken.parent))
    # Then init fails with the exception's type and message, and the process exits non-zero
    assert runtime.wait() == 1
    [error] = api.init_errors
    assert error.json()["errorType"] == "ImportError"
    assert error.headers["Lambda-Runtime-Function-Error-Type"] == "ImportError"
    assert "pyarrow built for another platform" in error.json()["errorMessage"]
    assert api.delivered == []


def test_without_a_runtime_api_the_loop_says_where_it_belongs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    done = subprocess.run(
        [sys.executable, "-m", "archiver.runtime"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "AWS_LAMBDA_RUNTIME_API is not set" in done.stderr


# --- tracing and logs --------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy in front of S3 on SeaweedFS that records each request's X-Amzn-Trace-Id."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, trace header)
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.seen.append((self.command, self.path, self.headers.get("X-Amzn-Trace-Id")))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                connection = http.client.HTTPConnection(target.netloc, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                finally:
                    connection.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def puts(self) -> list[str | None]:
        """The trace header of each PUT since the last call."""
        found = [trace for method, _, trace in self.seen if method == "PUT"]
        self.seen.clear()
        return found

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_each_invocations_trace_id_reaches_its_s3_writes(
    api: RuntimeApi, start_runtime: StartRuntime, seaweed: SeaweedS3, s3_endpoint: str
) -> None:
    # Given a runtime archiving to S3 through a proxy that records every request's trace header
    bucket = seaweed.create_bucket(f"trace-{os.getpid()}-{time.monotonic_ns()}")
    proxy = RecordingProxy(seaweed.endpoint)
    try:
        start_runtime(
            f"s3://{bucket}/archive",
            **{**seaweed.env(), "AWS_ENDPOINT_URL_S3": proxy.endpoint},
            ARCHIVER_SSE="none",
        )
        records = history(300, seconds_per_change=60.0)
        batches = list(lambda_events(records, 100))
        # When three invocations arrive: traced, not traced, traced with another id
        traces = [TRACE.format(1), None, TRACE.format(3)]
        seen = []
        for batch, trace in zip(batches, traces, strict=True):
            answer = api.wait_answer(api.queue(batch, trace_id=trace))
            assert answer.json() == NO_FAILURES
            seen.append(proxy.puts())
    finally:
        proxy.stop()
    # Then botocore sent each invocation's own trace header with its writes, and none without
    assert all(seen)
    assert [set(puts) for puts in seen] == [{traces[0]}, {None}, {traces[2]}]
    assert len(parquet_event_ids(f"s3://{bucket}/archive")) == len(records)


def test_json_log_lines_carry_the_request_id_of_their_invocation(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime(tmp_path / "archive", AWS_LAMBDA_LOG_FORMAT="JSON")
    good = api.queue({"Records": history(150, seconds_per_change=60.0)})
    bad = api.queue({"Records": "many"})
    api.wait_answer(good)
    api.wait_answer(bad)
    runtime.proc.send_signal(signal.SIGTERM)
    assert runtime.wait() == 0
    # Every line is a JSON object; each one logged during an invocation carries its request id
    lines = runtime.json_logs()
    wrote = [line for line in lines if line["message"] == "wrote object"]
    [summary] = [line for line in lines if line["message"] == "invocation summary"]
    [failed] = [line for line in lines if line["message"].startswith("invocation failed")]
    assert len(wrote) >= 3
    assert {line["requestId"] for line in [*wrote, summary]} == {good}
    assert failed["requestId"] == bad and failed["level"] == "ERROR"
    assert "EventShapeError" in failed["exception"]
    # and lines outside any invocation carry none
    [stopping] = [line for line in lines if line["message"] == "stopping: SIGTERM"]
    assert "requestId" not in stopping


def test_text_log_lines_are_the_managed_runtimes_with_the_request_id(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime(tmp_path / "archive", AWS_LAMBDA_LOG_FORMAT=None)
    request_id = api.queue({"Records": history(100, seconds_per_change=60.0)})
    api.wait_answer(request_id)
    runtime.proc.send_signal(signal.SIGTERM)
    assert runtime.wait() == 0
    lines = runtime.log_lines()
    shape = re.compile(
        r"^\[(INFO|WARNING|ERROR)\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t(\S*)\t"
    )
    assert lines and all(shape.match(line) for line in lines), lines
    ids = {m[2] for m in map(shape.match, lines) if m and "wrote object" in m.string}
    assert ids == {request_id}
    assert any(line.endswith("\t\tstopping: SIGTERM") for line in lines)


@pytest.mark.parametrize(
    ("lambda_level", "archiver_level", "info_logged"),
    [("WARN", "DEBUG", False), (None, "WARNING", False), ("INFO", "ERROR", True)],
)
def test_lambdas_log_level_wins_over_archiver_log_level(
    api: RuntimeApi,
    start_runtime: StartRuntime,
    tmp_path: Path,
    lambda_level: str | None,
    archiver_level: str,
    info_logged: bool,
) -> None:
    runtime = start_runtime(
        tmp_path / "archive",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_LAMBDA_LOG_LEVEL=lambda_level,
        ARCHIVER_LOG_LEVEL=archiver_level,
    )
    api.wait_answer(api.queue({"Records": history(50)}))
    api.wait_answer(api.queue({"not": "an event"}))
    runtime.proc.send_signal(signal.SIGTERM)
    assert runtime.wait() == 0
    levels = [line["level"] for line in runtime.json_logs()]
    assert "ERROR" in levels  # the failed invocation, at every level tried here
    assert ("INFO" in levels) is info_logged
    assert "DEBUG" not in levels


# --- the process: signals, crashes, connections, how it is started --------------------------


def test_sigterm_while_waiting_exits_cleanly(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime(tmp_path / "archive")
    assert api.wait_answer(api.queue({"Records": history(20)})).json() == NO_FAILURES
    api.wait_idle()

    runtime.proc.send_signal(signal.SIGTERM)

    assert runtime.wait() == 0
    assert "stopping: SIGTERM" in runtime.logs()


@pytest.fixture
def signal_state() -> Iterator[None]:
    """This process's SIGTERM handler and signal wake-up fd, put back after the test."""
    handler, wakeup = signal.getsignal(signal.SIGTERM), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    try:
        yield
    finally:
        signal.set_wakeup_fd(wakeup)
        signal.signal(signal.SIGTERM, handler)


@pytest.mark.usefixtures("signal_state")
@pytest.mark.parametrize("how", ["sigterm", "request_stop"])
def test_a_stop_from_another_thread_ends_the_wait(api: RuntimeApi, how: str) -> None:
    # A SIGTERM may arrive after the wait last looked at the stop flag and before its
    # select() blocks: select() is then not interrupted, and the Python handler waits for
    # the main thread to run again. A signal sent to another thread makes that happen every
    # time: the main thread is left to the wake-up byte the signal writes.
    client = RuntimeClient(api.address)
    client.stop_on(signal.SIGTERM)

    def stop() -> None:
        api.wait_idle()  # the main thread waits in next
        if how == "sigterm":
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        else:
            client.request_stop()

    stopper = threading.Thread(target=stop)
    # A wait the stop did not end would go on to take this invocation instead.
    fallback = threading.Timer(10.0, lambda: api.queue({"Records": []}))
    stopper.start()
    fallback.start()
    try:
        with pytest.raises(Stopped):
            client.next_invocation()
    finally:
        fallback.cancel()
        stopper.join()
        client.close()
    assert client.stop_requested


def test_sigterm_during_an_invocation_finishes_it_first(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    # Given an invocation big enough to take a while (hundreds of hourly files)
    archive = tmp_path / "archive"
    records = history(1000, seconds_per_change=1800.0)
    runtime = start_runtime(archive)
    api.wait_idle()
    request_id = api.queue({"Records": records})
    api.wait_delivered(request_id)
    # When SIGTERM arrives while it runs
    runtime.proc.send_signal(signal.SIGTERM)
    assert request_id not in api.answers
    # Then the invocation is archived and answered, and only then does the process exit
    assert runtime.wait() == 0
    assert api.answers[request_id].json() == NO_FAILURES
    assert len(parquet_event_ids(archive)) == len(records)


def test_kill_9_mid_invocation_acknowledges_nothing_and_the_redelivery_archives_it_all(
    api: RuntimeApi,
    start_runtime: StartRuntime,
    tmp_path: Path,
    lambda_env: Callable[..., None],
) -> None:
    # Given an invocation big enough to take a while (hundreds of hourly files)
    archive = tmp_path / "archive"
    records = history(1000, seed=7, seconds_per_change=1800.0)
    body = orjson.dumps({"Records": records})
    runtime = start_runtime(archive)
    api.wait_idle()
    killed = api.queue(body)
    api.wait_delivered(killed)
    # When the process is killed (SIGKILL) once the first files are written
    deadline = time.monotonic() + 60
    while not any(key.endswith(".parquet") for key in archived(archive)):
        assert time.monotonic() < deadline and runtime.proc.poll() is None
        time.sleep(0.005)
    runtime.proc.kill()
    assert runtime.wait() == -signal.SIGKILL
    # Then nothing was acknowledged: no response, no error for that invocation
    assert killed not in api.answers
    partial = archived(archive)
    assert partial
    # When Lambda re-delivers the batch to a new runtime
    start_runtime(archive)
    again = api.queue(body)
    assert api.wait_answer(again).json() == NO_FAILURES
    # Then every record is archived, and the files written before the crash were rewritten
    # with the same names and bytes: the archive is what one uninterrupted run writes
    assert sorted(parquet_event_ids(archive)) == sorted(r["eventID"] for r in records)
    final = archived(archive)
    assert len(partial) < len(final)
    assert {key: final[key] for key in partial} == partial
    lambda_env(str(tmp_path / "uninterrupted"))
    assert handler({"Records": records}, None) == NO_FAILURES
    assert final == archived(tmp_path / "uninterrupted")


def test_a_dropped_connection_is_reopened(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime(tmp_path / "archive")
    records = history(100)
    assert api.wait_answer(api.queue({"Records": records[:50]})).json() == NO_FAILURES
    # When the Runtime API drops the connection while the runtime waits on it
    api.wait_idle()
    api.drop_connections()
    # Then the runtime reconnects and serves the next invocation
    assert api.wait_answer(api.queue({"Records": records[50:]})).json() == NO_FAILURES
    assert runtime.proc.poll() is None
    assert len(parquet_event_ids(tmp_path / "archive")) == 100


@pytest.mark.parametrize(
    "command",
    [
        # AWS_LAMBDA_EXEC_WRAPPER: called with the managed runtime's bootstrap, which it ignores
        [str(ROOT / "archiver" / "bootstrap"), "/var/runtime/bootstrap"],
        # the container image's entry point, with a handler name as the function's Command
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), "archiver.lambda_handler.handler"],
    ],
    ids=["exec-wrapper", "image-entrypoint"],
)
def test_the_wrapper_and_the_image_entry_point_start_the_loop(
    api: RuntimeApi, start_runtime: StartRuntime, tmp_path: Path, command: list[str]
) -> None:
    runtime = start_runtime(
        tmp_path / "archive", command=command, PATH=f"{BIN}:/usr/bin:/bin", PYTHONPATH=None
    )

    assert api.wait_answer(api.queue({"Records": history(30)})).json() == NO_FAILURES

    assert len(parquet_event_ids(tmp_path / "archive")) == 30
    runtime.proc.send_signal(signal.SIGTERM)
    assert runtime.wait() == 0


# --- in this process: the context, and what importing the loop costs --------------------------


def test_the_context_counts_down_to_lambdas_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "archiver")
    monkeypatch.setenv("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/archiver")
    now = datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp()
    invocation = Invocation(
        request_id="8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        deadline_ms=int(now * 1000) + 90_000,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:archiver",
        trace_id=None,
        client_context=None,
        cognito_identity='{"cognitoIdentityId": "x"}',
        body=b"{}",
    )
    clock = [now]
    context = LambdaContext(invocation, clock=lambda: clock[0])

    assert context.get_remaining_time_in_millis() == 90_000
    clock[0] += 60.25
    assert context.get_remaining_time_in_millis() == 29_750
    clock[0] += 60
    assert context.get_remaining_time_in_millis() == 0
    assert context.aws_request_id == invocation.request_id
    assert context.invoked_function_arn == invocation.invoked_function_arn
    assert (context.function_name, context.log_group_name) == ("archiver", "/aws/lambda/archiver")
    assert context.identity == {"cognitoIdentityId": "x"} and context.client_context is None


_LOADED = """
import importlib, json, sys
importlib.import_module({module!r})
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""
HEAVY = ("archiver.lambda_handler", "pyarrow", "boto3", "botocore", "pydantic", "orjson")


def loaded_by(module: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _LOADED.format(module=module, heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_importing_the_loop_loads_nothing_heavy() -> None:
    # The loop imports the archiver during init, where a failure becomes an init error
    assert loaded_by("archiver.runtime") == []
    # and the probe sees what the handler module loads
    assert {"pyarrow", "archiver.lambda_handler"} <= set(loaded_by("archiver.lambda_handler"))
