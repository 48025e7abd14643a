"""``replayer redrive`` end to end, against a local Lambda Invoke API running real Python consumers.

boto3 reaches the endpoint through ``AWS_ENDPOINT_URL_LAMBDA`` (devkit's
LambdaServer), which runs the consumer function in-process and answers as
Lambda does (``X-Amz-Function-Error`` when it raises, ResourceNotFound for an
unknown name). The consumers below remember what they processed; every check
compares that with the stream records the test generated and archived.
"""

from __future__ import annotations

import io
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from archiver.archive.reader import REPLAY_COLUMNS, EventFilter
from archiver.archive.store import LocalStore, open_store
from archiver.write import archive_records
from devkit.traffic import TableHistory, kinesis_record
from replayer.checkpoint import Checkpoint
from replayer.cli import main
from replayer.redrive import Delivery, RedriveOptions
from replayer.redrive import redrive as run_redrive
from replayer.runner import Selection

TABLE = "orders"
FUNCTION = "consumer"
SUMMARY_FIELDS = {
    "batches",
    "invocations",
    "records",
    "delivered",
    "retries",
    "failed",
    "dead_lettered",
    "stopped",
    "elapsed_s",
    "ok",
}


def hour(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["ApproximateCreationDateTime"]) // 3600


def key_of(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS)


def sequence_of(record: dict[str, Any]) -> str:
    """What Lambda takes back as the record's itemIdentifier."""
    if "kinesis" in record:
        return str(record["kinesis"]["sequenceNumber"])
    return str(record["dynamodb"]["SequenceNumber"])


def ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [r["eventID"] for r in records]


def make_records(
    count: int, *, seed: int = 5, items: int = 25, spacing: float = 40.0
) -> list[dict[str, Any]]:
    return TableHistory(TABLE, seed=seed, items=items, seconds_per_change=spacing).changes(count)


def archive(uri: str, records: list[dict[str, Any]]) -> str:
    report = archive_records(
        records, open_store(uri, s3="boto3") if uri.startswith("s3://") else LocalStore(uri)
    )
    assert report.ok and report.archived == len(records), report.errors
    return uri


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """300 changes to 25 items over about three hours (four hour partitions)."""
    records = make_records(300)
    assert len({hour(r) for r in records}) >= 4
    return archive(str(tmp_path_factory.mktemp("redrive") / "archive"), records), records


class Consumer:
    """A Lambda consumer: remembers every record it processed; ``poison`` records make it raise;
    ``flaky`` records are reported in batchItemFailures the first time they are seen."""

    def __init__(self, poison: Iterable[str] = (), flaky: Iterable[str] = ()) -> None:
        self.poison = set(poison)
        self.flaky = set(flaky)
        self.processed: list[dict[str, Any]] = []
        self.calls: list[list[dict[str, Any]]] = []
        self.partial: list[tuple[int, int]] = []  # (call index, first failed position)
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        records = event["Records"]
        with self._lock:
            self.calls.append(records)
            call = len(self.calls) - 1
        bad = [r["eventID"] for r in records if r["eventID"] in self.poison]
        if bad:
            raise ValueError(f"poison record {bad[0]}")
        for position, record in enumerate(records):
            if record["eventID"] in self.flaky:
                with self._lock:
                    self.flaky.discard(record["eventID"])
                    self.processed += records[:position]
                    self.partial.append((call, position))
                # a later record, then the failed one: Lambda resumes from the lowest
                return {
                    "batchItemFailures": [
                        {"itemIdentifier": sequence_of(records[-1])},
                        {"itemIdentifier": sequence_of(record)},
                    ]
                }
        with self._lock:
            self.processed += records
        return None


@dataclass
class Run:
    code: int
    summary: dict[str, Any] | None
    stderr: str
    invocations: list[list[dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def redrive(lambda_server: Any, capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``replayer redrive --archive A --table orders --function consumer ARGS`` in-process."""

    def run(archive_uri: str, *args: str, function: str = FUNCTION) -> Run:
        capsys.readouterr()
        seen = len(lambda_server.invocations)
        out = io.BytesIO()
        code = main(
            ["redrive", "--archive", archive_uri, "--table", TABLE, "--function", function, *args],
            stdout=out,
        )
        text = out.getvalue().strip()
        invocations = [event["Records"] for _, event in lambda_server.invocations[seen:]]
        return Run(code, orjson.loads(text) if text else None, capsys.readouterr().err, invocations)

    return run


def per_key(records: Iterable[dict[str, Any]]) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        out[key_of(r)].append(int(r["dynamodb"]["SequenceNumber"]))
    return dict(out)


def batches_by_hour(records: Sequence[dict[str, Any]], size: int) -> int:
    """How many invocations of at most ``size`` records the archive's hours need."""
    return sum(math.ceil(n / size) for n in Counter(hour(r) for r in records).values())


# -- what the consumer receives --------------------------------------------------------------------


@pytest.mark.parametrize(
    "function", [FUNCTION, f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"]
)
def test_the_consumer_receives_the_records_the_stream_delivered(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    function: str,
) -> None:
    # Given an archive and a consumer (named by name or by ARN)
    uri, records = history
    consumer = lambda_server.functions[FUNCTION] = Consumer()

    # When the archive is re-driven into it
    run = redrive(uri, "--json", function=function)

    # Then every invocation is {"Records": [...]} holding the original records, all of them,
    # once, in sequence order
    assert run.code == 0, run.stderr
    assert all(set(event) == {"Records"} for _, event in lambda_server.invocations)
    assert [r for batch in run.invocations for r in batch] == records
    assert consumer.processed == records
    assert all(len(batch) <= 100 for batch in run.invocations)
    assert len(run.invocations) == batches_by_hour(records, 100)
    # and the summary says so
    assert run.summary is not None and set(run.summary) == SUMMARY_FIELDS
    assert run.summary | {"elapsed_s": 0} == {
        "batches": len(run.invocations),
        "invocations": len(run.invocations),
        "records": len(records),
        "delivered": len(records),
        "retries": 0,
        "failed": [],
        "dead_lettered": 0,
        "stopped": None,
        "elapsed_s": 0,
        "ok": True,
    }
    assert f"delivered {len(records)} of {len(records)} records" in run.stderr


def test_batch_size_limits_every_invocation(
    history: tuple[str, list[dict[str, Any]]], lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given a consumer
    uri, records = history
    lambda_server.functions[FUNCTION] = Consumer()

    # When the archive is re-driven 7 records at a time
    run = redrive(uri, "--batch-size", "7")

    # Then no invocation holds more than 7, batches are full within each hour, all arrive once
    assert run.code == 0, run.stderr
    assert max(len(batch) for batch in run.invocations) == 7
    assert len(run.invocations) == batches_by_hour(records, 7)
    assert [r for batch in run.invocations for r in batch] == records


def test_max_payload_bytes_limits_every_invocation(
    tmp_path: Path, lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given large records (20 to 60 KB each)
    records = make_records(60, seed=9, items=10, spacing=20.0)
    for i, record in enumerate(records):
        for image in ("NewImage", "OldImage"):
            if image in record["dynamodb"]:
                record["dynamodb"][image]["blob"] = {"S": "x" * (20_000 + 40_000 * (i % 3) // 2)}
    uri = archive(str(tmp_path / "archive"), records)
    lambda_server.functions[FUNCTION] = Consumer()
    limit = 200_000

    # When they are re-driven with a byte limit far below what 100 records need
    run = redrive(uri, "--batch-size", "100", "--max-payload-bytes", str(limit))

    # Then no request body exceeds it, the limit did split batches, and all arrive once, in order
    assert run.code == 0, run.stderr
    sizes = [len(orjson.dumps({"Records": batch})) for batch in run.invocations]
    assert max(sizes) <= limit
    assert len(run.invocations) > batches_by_hour(records, 100)
    assert [r for batch in run.invocations for r in batch] == records
    # each batch is as large as the limit allows: the next record of its hour did not fit
    for batch, nxt, size in zip(run.invocations, run.invocations[1:], sizes, strict=False):
        if hour(batch[-1]) == hour(nxt[0]):
            assert size + 1 + len(orjson.dumps(nxt[0])) > limit


def test_each_key_keeps_its_order_under_concurrency(
    history: tuple[str, list[dict[str, Any]]], lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given a consumer and small batches, so that lanes interleave
    uri, records = history
    consumer = lambda_server.functions[FUNCTION] = Consumer()

    # When the archive is re-driven by 4 lanes at once
    run = redrive(uri, "--concurrency", "4", "--batch-size", "5")

    # Then each key received all its changes, in increasing sequence order, once
    assert run.code == 0, run.stderr
    assert per_key(consumer.processed) == per_key(records)
    assert sorted(ids(consumer.processed)) == sorted(ids(records))
    # and keys were dealt into lanes: keys that share an invocation form at most 4 groups
    # (one per lane, the same in every hour), and more than one
    group = {key: key for key in per_key(records)}

    def find(key: bytes) -> bytes:
        while group[key] != key:
            key = group[key]
        return key

    for batch in run.invocations:
        first = find(key_of(batch[0]))
        for record in batch[1:]:
            group[find(key_of(record))] = first
    assert 1 < len({find(key) for key in group}) <= 4


# -- failures --------------------------------------------------------------------------------------


def test_stop_halts_and_a_rerun_resumes_after_the_last_delivered_batch(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    tmp_path: Path,
) -> None:
    # Given a consumer that fails on one record in the middle of the archive
    uri, records = history
    poison = records[150]["eventID"]
    consumer = lambda_server.functions[FUNCTION] = Consumer(poison=[poison])
    checkpoint = tmp_path / "redrive.checkpoint"
    args = (
        "--batch-size",
        "10",
        "--concurrency",
        "2",
        "--retries",
        "1",
        "--on-error",
        "stop",
        "--checkpoint",
        str(checkpoint),
        "--json",
    )

    # When the re-drive runs
    stopped = redrive(uri, *args)

    # Then it stops with exit 1 after one retry of the failed batch, and says how to resume
    assert stopped.code == 1
    assert stopped.summary is not None and stopped.summary["ok"] is False
    assert stopped.summary["retries"] == 1 and stopped.summary["stopped"]
    assert f"poison record {poison}" in stopped.stderr
    assert f"rerun the same command to resume from {checkpoint}" in stopped.stderr
    failed = [batch for batch in stopped.invocations if poison in ids(batch)]
    assert len(failed) == 2 and failed[0] == failed[1]
    delivered_first = len(consumer.processed)
    assert 0 < delivered_first < len(records)

    # When the consumer is fixed and the same command runs again
    consumer.poison.clear()
    resumed = redrive(uri, *args)

    # Then everything is delivered: each record processed once, per key in order, and nothing
    # was sent twice except the failed batch (its retry, then the rerun)
    assert resumed.code == 0, resumed.stderr
    assert sorted(ids(consumer.processed)) == sorted(ids(records))
    assert per_key(consumer.processed) == per_key(records)
    sent = Counter(ids(r for batch in stopped.invocations + resumed.invocations for r in batch))
    assert sent == Counter(ids(records)) + Counter(ids(failed[0])) + Counter(ids(failed[0]))
    assert resumed.summary is not None
    assert resumed.summary["delivered"] == len(records) - delivered_first


def test_a_finished_checkpoint_sends_nothing_again_and_another_runs_is_refused(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    tmp_path: Path,
) -> None:
    # Given a re-drive that finished with a checkpoint
    uri, records = history
    consumer = lambda_server.functions[FUNCTION] = Consumer()
    checkpoint = str(tmp_path / "redrive.checkpoint")
    assert redrive(uri, "--checkpoint", checkpoint).code == 0
    assert len(consumer.processed) == len(records)

    # When the same command runs again; Then nothing is sent twice
    again = redrive(uri, "--checkpoint", checkpoint)
    assert again.code == 0 and again.invocations == []

    # When another command (another batch size) names the same checkpoint
    other = redrive(uri, "--checkpoint", checkpoint, "--batch-size", "10")

    # Then it is refused before invoking anything, naming the file and the difference
    assert other.code == 1 and other.invocations == []
    assert checkpoint in other.stderr and "different batch_size" in other.stderr
    assert "Traceback" not in other.stderr


@pytest.mark.parametrize("policy", ["skip", "dead-letter"])
def test_poison_records_are_isolated_and_the_rest_delivered(
    tmp_path: Path,
    lambda_server: Any,
    redrive: Callable[..., Run],
    policy: str,
    request: Any,
) -> None:
    # Given an archive (a local folder, or S3 for dead letters) and two poison records
    records = make_records(120, seed=13, items=15)
    if policy == "dead-letter":
        uri = archive(request.getfixturevalue("s3_archive"), records)
    else:
        uri = archive(str(tmp_path / "archive"), records)
    poison = [records[17], records[90]]
    consumer = lambda_server.functions[FUNCTION] = Consumer(poison=ids(poison))

    # When the archive is re-driven with --on-error skip or dead-letter
    run = redrive(uri, "--batch-size", "20", "--retries", "0", "--on-error", policy, "--json")

    # Then bisection isolates exactly the poison records, every other record is delivered
    # once, and the run fails (exit 1) naming them
    assert run.code == 1
    refs = {f"{r['eventID']}/{r['dynamodb']['SequenceNumber']}" for r in poison}
    assert run.summary is not None
    assert {f["record"] for f in run.summary["failed"]} == refs
    assert all("ValueError: poison record" in f["reason"] for f in run.summary["failed"])
    assert sorted(ids(consumer.processed)) == sorted(set(ids(records)) - set(ids(poison)))
    assert per_key(consumer.processed) == per_key(r for r in records if r not in poison)
    assert run.summary["delivered"] == len(records) - 2
    for ref in refs:
        assert ref in run.stderr
    if policy == "dead-letter":
        # and the poison records are kept in the archive's dead-letter area, with the reason
        assert run.summary["dead_lettered"] == 2 and "kept under _errors/redrive/" in run.stderr
        store = open_store(uri)
        kept = [
            orjson.loads(line)
            for obj in store.list(f"_errors/redrive/table_name={TABLE}/")
            for line in store.get(obj.key).splitlines()
        ]
        assert sorted((k["record"] for k in kept), key=lambda r: r["eventID"]) == sorted(
            poison, key=lambda r: r["eventID"]
        )
        assert all(k["function"] == FUNCTION and "poison record" in k["reason"] for k in kept)
    else:
        assert run.summary["dead_lettered"] == 0
        assert not list(open_store(uri).list("_errors/"))


def test_batch_item_failures_are_sent_again_from_the_first_failed_record(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
) -> None:
    # Given a consumer that reports two records (in different batches) as failed the first time
    uri, records = history
    flaky = [records[30]["eventID"], records[233]["eventID"]]
    consumer = lambda_server.functions[FUNCTION] = Consumer(flaky=flaky)

    # When the archive is re-driven
    run = redrive(uri, "--batch-size", "25", "--retries", "1", "--json")

    # Then each partly failed batch is sent again from its first failed record, as Lambda does
    assert run.code == 0, run.stderr
    assert len(consumer.partial) == 2
    for call, position in consumer.partial:
        assert consumer.calls[call + 1] == consumer.calls[call][position:]
        assert consumer.calls[call][position]["eventID"] in flaky
    # and in the end every record was processed once, in order
    assert consumer.processed == records
    assert run.summary is not None
    assert (run.summary["retries"], run.summary["delivered"]) == (2, len(records))
    assert run.summary["invocations"] == run.summary["batches"] + 2


def test_payloads_are_the_records_json_text_joined(
    history: tuple[str, list[dict[str, Any]]],
) -> None:
    # Given an archive, and an invoker that keeps every payload's bytes
    uri, records = history
    sent: list[tuple[bytes, list[str | None]]] = []

    def invoke(payload: bytes, identifiers: Sequence[str | None]) -> Delivery:
        sent.append((payload, list(identifiers)))
        return Delivery(None)

    # When it is re-driven 7 records at a time
    summary = run_redrive(
        Selection(LocalStore(uri), TABLE, EventFilter(), tuple(REPLAY_COLUMNS)),
        RedriveOptions(function=FUNCTION, batch_size=7),
        Checkpoint.open(None, {"test": "payloads"}),
        invoke,
    )

    # Then each payload is {"Records":[...]} joining the records' JSON text as it arrived, in
    # order, with their sequence numbers as identifiers
    assert summary.ok and summary.delivered == len(records)
    position = 0
    for payload, identifiers in sent:
        batch = records[position : position + len(identifiers)]
        assert payload == b'{"Records":[' + b",".join(orjson.dumps(r) for r in batch) + b"]}"
        assert identifiers == [sequence_of(r) for r in batch]
        position += len(identifiers)
    assert position == len(records)


def test_identifiers_keep_the_leading_zeros_that_arrived(
    tmp_path: Path, lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given sequence numbers with leading zeros (DynamoDB Local writes them), archived
    records = make_records(60, seed=19)
    for record in records:
        record["dynamodb"]["SequenceNumber"] = "0000" + record["dynamodb"]["SequenceNumber"]
    uri = archive(str(tmp_path / "archive"), records)
    flaky = [records[23]["eventID"]]
    consumer = lambda_server.functions[FUNCTION] = Consumer(flaky=flaky)

    # When re-driven into a consumer that reports one record in batchItemFailures
    run = redrive(uri, "--batch-size", "10", "--retries", "1", "--json")

    # Then the identifiers it names are found: the batch resumes from the failed record
    assert run.code == 0, run.stderr
    [(call, position)] = consumer.partial
    assert consumer.calls[call + 1] == consumer.calls[call][position:]
    assert consumer.processed == records


def test_kinesis_records_are_sent_as_they_arrived_and_named_by_kinesis_sequence(
    tmp_path: Path, lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given DynamoDB changes delivered through Kinesis, archived
    raws = [kinesis_record(r, i) for i, r in enumerate(make_records(50, seed=23))]
    uri = archive(str(tmp_path / "archive"), raws)
    consumer = lambda_server.functions[FUNCTION] = Consumer(flaky=[raws[17]["eventID"]])

    # When re-driven into a consumer that reports one record by its Kinesis sequence number
    run = redrive(uri, "--batch-size", "10", "--retries", "1", "--json")

    # Then the consumer gets the Kinesis records as they arrived (data byte for byte), the
    # failed record and those after it again, and every record in the end
    assert run.code == 0, run.stderr
    [(call, position)] = consumer.partial
    assert consumer.calls[call][position]["eventID"] == raws[17]["eventID"]
    assert consumer.calls[call + 1] == consumer.calls[call][position:]
    assert consumer.processed == raws
    assert run.summary is not None and run.summary["delivered"] == len(raws)


def test_an_unknown_function_is_a_clear_error(
    history: tuple[str, list[dict[str, Any]]], lambda_server: Any, redrive: Callable[..., Run]
) -> None:
    # Given no function named "missing-consumer"
    uri, _ = history

    # When the archive is re-driven into it
    run = redrive(uri, function="missing-consumer")

    # Then the run fails with a message naming it, and no traceback
    assert run.code == 1
    assert "cannot invoke missing-consumer: ResourceNotFoundException" in run.stderr
    assert "Traceback" not in run.stderr


def test_dry_run_invokes_nothing(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    tmp_path: Path,
) -> None:
    # Given a consumer
    uri, records = history
    lambda_server.functions[FUNCTION] = Consumer()
    checkpoint = tmp_path / "redrive.checkpoint"

    # When a dry run is asked for
    run = redrive(uri, "--dry-run", "--batch-size", "50", "--json", "--checkpoint", str(checkpoint))

    # Then nothing is invoked or checkpointed, and the counts are what would be sent
    assert run.code == 0, run.stderr
    assert lambda_server.invocations == []
    batches = batches_by_hour(records, 50)
    assert f"would send {len(records)} records in {batches} batches" in run.stderr
    assert run.summary is not None
    assert (run.summary["records"], run.summary["batches"], run.summary["invocations"]) == (
        len(records),
        batches,
        0,
    )
    assert not checkpoint.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--max-payload-bytes", "6291457"], "--max-payload-bytes"),
        (["--rate", "0"], "--rate"),
        (["--on-error", "ignore"], "--on-error"),
    ],
)
def test_bad_options_exit_2(
    history: tuple[str, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    named: str,
) -> None:
    # Given a bad option; When the re-drive runs; Then it exits 2 naming the option
    with pytest.raises(SystemExit) as exit_:
        main(["redrive", "--archive", history[0], "--table", TABLE, "--function", FUNCTION, *args])
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_a_bad_slice_exits_2(
    history: tuple[str, list[dict[str, Any]]], redrive: Callable[..., Run]
) -> None:
    # Given --slice 3/2; When the re-drive runs; Then it exits 2 naming --slice, invoking nothing
    run = redrive(history[0], "--slice", "3/2")
    assert run.code == 2 and "--slice" in run.stderr and run.invocations == []


@pytest.mark.parametrize("mode", [[], ["--on-error", "skip"], ["--dry-run"]], ids=str)
def test_a_payload_limit_below_every_record_fails_naming_the_record_and_its_size(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    mode: list[str],
) -> None:
    # Given records of a few hundred bytes each, and a payload limit of 100 bytes
    uri, records = history
    lambda_server.functions[FUNCTION] = Consumer()
    # When they are re-driven (or a dry run is asked for)
    run = redrive(uri, "--max-payload-bytes", "100", "--json", *mode)
    # Then nothing is sent and the run fails, naming a record and how large it is
    assert run.code == 1, run.stderr
    assert run.invocations == []
    assert run.summary is not None and not run.summary["ok"]
    first = run.summary["failed"][0]
    assert first["record"] == f"{records[0]['eventID']}/{sequence_of(records[0])}"
    size = len(orjson.dumps({"Records": [records[0]]}))
    assert f"payload of {size} bytes, over the limit of 100 bytes" in first["reason"]
    assert first["record"] in run.stderr and "over the limit of 100 bytes" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_checkpoint_that_cannot_be_written_is_bad_usage_before_anything_is_sent(
    history: tuple[str, list[dict[str, Any]]],
    lambda_server: Any,
    redrive: Callable[..., Run],
    tmp_path: Path,
) -> None:
    # Given a --checkpoint in a folder that cannot be made (its parent is a file)
    lambda_server.functions[FUNCTION] = Consumer()
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    checkpoint = blocker / "redrive.checkpoint"
    # When the re-drive runs
    run = redrive(history[0], "--checkpoint", str(checkpoint))
    # Then it exits 2 in one line naming the option and the path, and invokes nothing
    assert run.code == 2, run.stderr
    assert run.invocations == []
    assert run.stderr.startswith(f"replayer: error: --checkpoint {checkpoint}: cannot write")
    assert len(run.stderr.strip().splitlines()) == 1
