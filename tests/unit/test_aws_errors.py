"""The one AWS error boundary: botocore's exceptions in, a Failure kind and a message out.

Every case is a real exception object, built as boto3 or s3fs builds it
(``ClientError`` from an error response, botocore's connection and credentials
errors, s3fs's ``translate_boto_error``), not a mocked client. The pauses
between tries are checked as properties: within the cap, doubling until it,
jittered.
"""

from __future__ import annotations

import errno
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    FlexibleChecksumError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)
from botocore.parsers import ResponseParserError
from hypothesis import given
from hypothesis import strategies as st
from s3fs.errors import translate_boto_error
from urllib3.exceptions import ProtocolError

from archiver.archive.aws import (
    Failure,
    backoff,
    classify,
    describe,
    doubled,
    error_code,
    jittered,
)
from archiver.archive.errors import StoreAccessDenied, StoreError, StoreUnavailable
from archiver.archive.s3store import S3Store
from archiver.athena import GlueError
from archiver.athena import _call as glue_call
from archiver.streams import Page, StreamBusy, StreamDenied, StreamEvent, StreamGone, StreamSource
from replayer.dynamo import RestoreError, TableWriter
from replayer.redrive import Delivery, LambdaInvoker, RedriveError

ROOT = Path(__file__).parents[2]
URL = "https://dynamodb.eu-west-1.amazonaws.com"


def answered(
    code: str, status: int, operation: str = "PutObject", message: str = ""
) -> ClientError:
    """The exception boto3 raises for an error response with this code and HTTP status."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or f"scripted {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


# -- answers from the service --------------------------------------------------------------

ANSWERS = [
    # throttling: botocore's codes, whatever the status, and 429/509 whatever the code
    ("ThrottlingException", 400, Failure.THROTTLED),
    ("ProvisionedThroughputExceededException", 400, Failure.THROTTLED),
    ("RequestLimitExceeded", 400, Failure.THROTTLED),
    ("LimitExceededException", 400, Failure.THROTTLED),  # DynamoDB Streams
    ("TooManyRequestsException", 429, Failure.THROTTLED),  # Lambda
    ("SlowDown", 503, Failure.THROTTLED),  # S3
    ("EC2ThrottledException", 502, Failure.THROTTLED),  # Lambda, while setting up its VPC
    ("KMS.ThrottlingException", 400, Failure.THROTTLED),
    ("", 429, Failure.THROTTLED),
    ("SomethingNew", 509, Failure.THROTTLED),
    # the service failed: 5xx, and the server-fault codes whatever the status
    ("InternalServerError", 500, Failure.UNAVAILABLE),
    ("InternalServerError", 400, Failure.UNAVAILABLE),  # as DynamoDB Local answers
    ("InternalFailure", 500, Failure.UNAVAILABLE),
    ("InternalError", 500, Failure.UNAVAILABLE),  # S3
    ("ServiceUnavailable", 503, Failure.UNAVAILABLE),
    ("ServiceException", 500, Failure.UNAVAILABLE),  # Lambda
    ("InternalServiceException", 500, Failure.UNAVAILABLE),  # Glue
    ("RequestTimeout", 400, Failure.UNAVAILABLE),  # S3: the body came too slowly
    ("BadDigest", 400, Failure.UNAVAILABLE),  # S3: the bytes changed on the way
    ("", 502, Failure.UNAVAILABLE),
    ("", 504, Failure.UNAVAILABLE),
    # refusals: credentials, signatures, permissions, KMS keys
    ("AccessDenied", 403, Failure.DENIED),
    ("AccessDeniedException", 400, Failure.DENIED),
    ("UnrecognizedClientException", 400, Failure.DENIED),
    ("InvalidSignatureException", 403, Failure.DENIED),
    ("SignatureDoesNotMatch", 403, Failure.DENIED),
    ("InvalidAccessKeyId", 403, Failure.DENIED),
    ("InvalidClientTokenId", 403, Failure.DENIED),
    ("ExpiredToken", 400, Failure.DENIED),
    ("ExpiredTokenException", 400, Failure.DENIED),
    ("AllAccessDisabled", 403, Failure.DENIED),
    ("KMS.DisabledException", 400, Failure.DENIED),  # S3 with SSE-KMS
    ("KMS.NotFoundException", 400, Failure.DENIED),  # a missing key, not a missing object
    ("KMS.AccessDeniedException", 400, Failure.DENIED),
    ("KMSAccessDeniedException", 502, Failure.DENIED),  # Lambda answers it with a 502
    ("KMSDisabledException", 502, Failure.DENIED),
    ("KMSNotFoundException", 502, Failure.DENIED),
    ("KMSInvalidStateException", 502, Failure.DENIED),
    ("EC2AccessDeniedException", 502, Failure.DENIED),
    ("", 401, Failure.DENIED),
    ("", 403, Failure.DENIED),
    # nothing there
    ("NoSuchKey", 404, Failure.NOT_FOUND),
    ("NoSuchBucket", 404, Failure.NOT_FOUND),
    ("404", 404, Failure.NOT_FOUND),  # S3's HEAD: no body, the status is the code
    ("NotFound", 404, Failure.NOT_FOUND),
    ("ResourceNotFoundException", 400, Failure.NOT_FOUND),  # DynamoDB, Streams
    ("ResourceNotFoundException", 404, Failure.NOT_FOUND),  # Lambda
    ("EntityNotFoundException", 400, Failure.NOT_FOUND),  # Glue
    ("", 404, Failure.NOT_FOUND),
    # requests no retry can fix
    ("ValidationException", 400, Failure.INVALID),
    ("ConditionalCheckFailedException", 400, Failure.INVALID),
    ("ItemCollectionSizeLimitExceededException", 400, Failure.INVALID),
    ("InvalidRequestContentException", 400, Failure.INVALID),
    ("RequestTooLargeException", 413, Failure.INVALID),
    ("EntityTooLarge", 400, Failure.INVALID),
    ("InvalidInputException", 400, Failure.INVALID),  # Glue
    ("AlreadyExistsException", 400, Failure.INVALID),
    ("", 400, Failure.INVALID),
]


@pytest.mark.parametrize(("code", "status", "kind"), ANSWERS, ids=lambda v: str(v))
def test_an_answer_is_classified_by_its_code_then_its_status(
    code: str, status: int, kind: Failure
) -> None:
    assert classify(answered(code, status)) is kind


def test_only_throttling_and_unavailability_are_worth_another_try() -> None:
    assert {kind for kind in Failure if kind.transient} == {
        Failure.THROTTLED,
        Failure.UNAVAILABLE,
    }


def test_an_answer_without_response_metadata_is_classified_by_its_code() -> None:
    err = ClientError({"Error": {"Code": "ThrottlingException"}}, "GetRecords")
    assert classify(err) is Failure.THROTTLED
    assert classify(ClientError({"Error": {}}, "GetRecords")) is Failure.INVALID


# -- errors raised without an answer --------------------------------------------------------

UNANSWERED = [
    (EndpointConnectionError(endpoint_url=URL), Failure.UNAVAILABLE),
    (ConnectTimeoutError(endpoint_url=URL), Failure.UNAVAILABLE),
    (ReadTimeoutError(endpoint_url=URL), Failure.UNAVAILABLE),
    (ConnectionClosedError(endpoint_url=URL), Failure.UNAVAILABLE),
    (ResponseStreamingError(error="connection reset"), Failure.UNAVAILABLE),
    (IncompleteReadError(actual_bytes=10, expected_bytes=20), Failure.UNAVAILABLE),
    (FlexibleChecksumError(error_msg="Expected checksum x did not match"), Failure.UNAVAILABLE),
    (ResponseParserError("Unable to parse response, invalid XML"), Failure.UNAVAILABLE),
    (NoCredentialsError(), Failure.DENIED),
    (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), Failure.DENIED),
    (CredentialRetrievalError(provider="container-role", error_msg="401"), Failure.DENIED),
    (TokenRetrievalError(provider="sso", error_msg="expired"), Failure.DENIED),
    (UnauthorizedSSOTokenError(), Failure.DENIED),
    (ParamValidationError(report="Invalid length for parameter Key"), Failure.INVALID),
    (NoRegionError(), Failure.INVALID),
    # what escapes the SDK from below it, and the standard library's own I/O errors
    (ProtocolError("Connection aborted."), Failure.UNAVAILABLE),
    (ConnectionResetError(errno.ECONNRESET, "reset by peer"), Failure.UNAVAILABLE),
    (TimeoutError("timed out"), Failure.UNAVAILABLE),
    (OSError(errno.EIO, "I/O error"), Failure.UNAVAILABLE),
    (PermissionError(errno.EACCES, "denied"), Failure.DENIED),
    (FileNotFoundError(errno.ENOENT, "no such file"), Failure.NOT_FOUND),
    (ValueError("not an AWS error"), Failure.INVALID),
]


@pytest.mark.parametrize(("err", "kind"), UNANSWERED, ids=lambda v: type(v).__name__)
def test_an_error_without_an_answer_is_classified_by_its_class(
    err: BaseException, kind: Failure
) -> None:
    assert classify(err) is kind


# -- s3fs's translations keep the answer as their cause --------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "translated", "kind"),
    [
        ("NoSuchKey", 404, FileNotFoundError, Failure.NOT_FOUND),
        ("SignatureDoesNotMatch", 403, PermissionError, Failure.DENIED),
        # s3fs does not know this code: a plain OSError, whose cause says what it was
        ("KMS.AccessDeniedException", 400, OSError, Failure.DENIED),
        ("SlowDown", 503, OSError, Failure.THROTTLED),
        ("InternalError", 500, OSError, Failure.UNAVAILABLE),
        ("EntityTooLarge", 400, OSError, Failure.INVALID),
    ],
)
def test_an_s3fs_error_is_classified_by_the_answer_it_came_from(
    code: str, status: int, translated: type[OSError], kind: Failure
) -> None:
    err = translate_boto_error(answered(code, status))
    assert type(err) is translated
    assert classify(err) is kind
    assert error_code(err) == code


# -- messages ------------------------------------------------------------------------------


def test_describe_gives_the_code_and_message_of_an_answer() -> None:
    err = answered("NoSuchKey", 404, "GetObject", "The specified key does not exist.")
    assert describe(err) == "NoSuchKey: The specified key does not exist."
    assert describe(translate_boto_error(err)) == "NoSuchKey: The specified key does not exist."
    assert error_code(err) == "NoSuchKey"


def test_describe_names_the_status_of_an_answer_without_a_code() -> None:
    err = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
    assert error_code(err) == "503"
    assert describe(err) == "503"


def test_describe_gives_the_class_and_text_of_other_errors() -> None:
    assert describe(EndpointConnectionError(endpoint_url=URL)) == (
        f'EndpointConnectionError: Could not connect to the endpoint URL: "{URL}"'
    )
    assert error_code(ReadTimeoutError(endpoint_url=URL)) == "ReadTimeoutError"
    assert describe(ValueError()) == "ValueError"


def test_describe_says_in_words_that_no_credentials_were_found() -> None:
    assert describe(NoCredentialsError()) == (
        "no AWS credentials found (Unable to locate credentials)"
    )


def test_classify_does_not_load_the_sdk_for_an_error_of_its_own() -> None:
    # botocore's errors are recognised by name, so a caller without the SDK loaded keeps it so
    probe = (
        "import sys\n"
        "from archiver.archive.aws import classify\n"
        "classify(OSError(5, 'I/O error')); classify(ValueError()); classify(TimeoutError())\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- pauses between tries ------------------------------------------------------------------

attempts = st.integers(min_value=1, max_value=5000)
firsts = st.floats(min_value=0.001, max_value=100.0)
caps = st.floats(min_value=0.001, max_value=3600.0)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(attempts, firsts, caps, draws)
def test_a_pause_is_never_negative_nor_longer_than_the_cap(
    attempt: int, first: float, cap: float, draw: float
) -> None:
    assert 0.0 <= backoff(attempt, first, cap, rand=lambda: draw) <= cap


@given(attempts, firsts, caps)
def test_a_pause_doubles_with_each_failure_until_the_cap(
    attempt: int, first: float, cap: float
) -> None:
    # At the top of the jitter (a draw close to 1), the pause is the capped doubling itself
    def top(n: int) -> float:
        return backoff(n, first, cap, rand=lambda: 1.0)

    assert top(1) == min(first, cap)
    assert top(attempt + 1) >= top(attempt)
    assert top(attempt + 1) == min(cap, 2 * top(attempt)) or top(attempt) == cap
    assert top(attempt + 2000) == cap  # the cap is reached, and kept


@given(attempts, firsts, caps, draws)
def test_the_jitter_keeps_at_least_half_the_pause(
    attempt: int, first: float, cap: float, draw: float
) -> None:
    full = min(cap, first * 2.0 ** min(attempt - 1, 1000))
    pause = backoff(attempt, first, cap, rand=lambda: draw)
    assert full / 2 <= pause <= full
    assert pause == jittered(full, rand=lambda: draw)


@given(attempts, firsts, caps)
def test_the_doubling_form_and_the_attempt_form_are_one_backoff(
    attempt: int, first: float, cap: float
) -> None:
    pause = 0.0
    for _ in range(min(attempt, 60)):
        pause = doubled(pause, first, cap)
    assert pause == backoff(min(attempt, 60), first, cap, rand=lambda: 1.0)


def test_pauses_are_jittered() -> None:
    # Given many callers failing together, their pauses spread over the upper half of the pause
    rand = random.Random(7).random
    pauses = [backoff(4, 1.0, 60.0, rand=rand) for _ in range(200)]
    assert len(set(pauses)) == len(pauses)
    assert 4.0 <= min(pauses) < 4.4 and 7.6 < max(pauses) <= 8.0
    # and with the default source of randomness too
    assert len({backoff(4, 1.0, 60.0) for _ in range(20)}) > 1


def test_the_pollers_shard_pauses_double_from_half_a_second_to_thirty() -> None:
    pauses = [0.0]
    for _ in range(9):
        pauses.append(doubled(pauses[-1], 0.5, 30.0))
    assert pauses[1:] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


# -- each adapter: its own error, chosen by the kind -----------------------------------------


class Scripted:
    """A client whose every method raises the next scripted error, then returns ``answer``."""

    def __init__(self, *errors: BaseException, answer: Any = None) -> None:
        self.errors = list(errors)
        self.answer = answer
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(**_: Any) -> Any:
            self.calls.append(method)
            if self.errors:
                raise self.errors.pop(0)
            return self.answer

        return call


ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-11-18T00:00:00.000"


def read_once(err: BaseException) -> Page:
    def read_page(iterator: str, limit: int) -> bytes:
        raise err

    return StreamSource(None, ARN, read_page=read_page).read("iterator-1")


def test_get_records_throttled_or_unavailable_is_an_event_to_back_off_on() -> None:
    assert read_once(answered("LimitExceededException", 400)).event is StreamEvent.THROTTLED
    page = read_once(EndpointConnectionError(endpoint_url=URL))
    assert page.event is StreamEvent.UNAVAILABLE and URL in page.detail
    assert read_once(ConnectionResetError()).event is StreamEvent.UNAVAILABLE


@pytest.mark.parametrize(
    "err",
    [
        answered("AccessDeniedException", 400, "GetRecords"),
        answered("ExpiredTokenException", 400, "GetRecords"),
        NoCredentialsError(),
    ],
    ids=lambda e: error_code(e),
)
def test_get_records_refused_for_good_stops_the_poller_naming_the_stream(
    err: BaseException,
) -> None:
    with pytest.raises(StreamDenied, match=f"GetRecords on {ARN}") as caught:
        read_once(err)
    assert caught.value.__cause__ is err


def test_describe_stream_sorts_its_failures_into_gone_busy_and_denied() -> None:
    def describe(err: BaseException) -> None:
        StreamSource(Scripted(err), ARN, read_page=lambda i, n: b"").describe()

    with pytest.raises(StreamGone, match=ARN):
        describe(answered("ResourceNotFoundException", 400, "DescribeStream"))
    with pytest.raises(StreamBusy, match=f"DescribeStream on {ARN}: LimitExceededException"):
        describe(answered("LimitExceededException", 400, "DescribeStream"))
    with pytest.raises(StreamDenied, match="UnrecognizedClientException"):
        describe(answered("UnrecognizedClientException", 400, "DescribeStream"))
    with pytest.raises(ParamValidationError):  # a bug, not the stream's state: as it was
        describe(ParamValidationError(report="bad"))


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (answered("NoSuchKey", 404, "GetObject"), FileNotFoundError),
        (answered("NoSuchBucket", 404, "PutObject"), StoreAccessDenied),
        (answered("KMS.DisabledException", 400, "PutObject"), StoreAccessDenied),
        (NoCredentialsError(), StoreAccessDenied),
        (answered("SlowDown", 503, "PutObject"), StoreUnavailable),
        (answered("BadDigest", 400, "PutObject"), StoreUnavailable),
        (ReadTimeoutError(endpoint_url=URL), StoreUnavailable),
        (answered("EntityTooLarge", 400, "PutObject"), StoreError),
    ],
    ids=lambda v: error_code(v) if isinstance(v, BaseException) else v.__name__,
)
def test_the_s3_store_raises_its_own_errors_naming_the_object(
    err: BaseException, kind: type[Exception]
) -> None:
    store = S3Store("s3://my-bucket/archive", client=Scripted(err))
    with pytest.raises(kind, match=r"s3://my-bucket/archive/t/a\.bin") as caught:
        store.put("t/a.bin", b"x")
    assert type(caught.value) is kind
    if isinstance(caught.value, StoreError):
        assert caught.value.transient is classify(err).transient


@pytest.mark.parametrize(
    ("err", "outcome"),
    [
        (answered("TooManyRequestsException", 429, "Invoke"), Delivery),
        (answered("ServiceException", 500, "Invoke"), Delivery),
        (answered("RequestTooLargeException", 413, "Invoke"), Delivery),  # bisected
        (ReadTimeoutError(endpoint_url=URL), Delivery),
        (answered("ResourceNotFoundException", 404, "Invoke"), RedriveError),
        (answered("AccessDeniedException", 403, "Invoke"), RedriveError),
        (answered("KMSAccessDeniedException", 502, "Invoke"), RedriveError),
        (answered("ExpiredTokenException", 403, "Invoke"), RedriveError),
        (NoCredentialsError(), RedriveError),
    ],
    ids=lambda v: error_code(v) if isinstance(v, BaseException) else v.__name__,
)
def test_the_lambda_invoker_fails_a_batch_or_ends_the_run(
    err: BaseException, outcome: type[object]
) -> None:
    invoke = LambdaInvoker("consumer", client=Scripted(err))
    if outcome is RedriveError:
        with pytest.raises(
            RedriveError, match=re.escape(f"cannot invoke consumer: {describe(err)}")
        ):
            invoke(b'{"Records":[]}', [])
    else:
        delivery = invoke(b'{"Records":[]}', [])
        assert delivery.failed_from == 0 and error_code(err) in delivery.reason


def test_the_table_writer_retries_throttling_with_growing_jittered_pauses() -> None:
    sleeps: list[float] = []
    throttled = answered("ProvisionedThroughputExceededException", 400, "DescribeTable")
    client = Scripted(
        throttled, throttled, throttled, answer={"Table": {"KeySchema": [], "Count": 0}}
    )
    writer = TableWriter(client, "orders", sleep=sleeps.append)
    assert writer.key_names() == []
    assert len(sleeps) == 3
    for attempt, pause in enumerate(sleeps, start=1):
        full = 0.1 * 2 ** (attempt - 1)
        assert full / 2 <= pause <= full


@pytest.mark.parametrize(
    ("err", "message"),
    [
        (
            answered("ResourceNotFoundException", 400, "DescribeTable"),
            "table orders does not exist",
        ),
        (answered("ExpiredTokenException", 400, "DescribeTable"), "describe_table on orders"),
        (NoCredentialsError(), "no AWS credentials found"),
        (ParamValidationError(report="bad"), "ParamValidationError"),
    ],
    ids=lambda v: error_code(v) if isinstance(v, BaseException) else "",
)
def test_the_table_writer_stops_at_once_on_what_no_retry_fixes(
    err: BaseException, message: str
) -> None:
    sleeps: list[float] = []
    client = Scripted(err)
    with pytest.raises(RestoreError, match=message):
        TableWriter(client, "orders", sleep=sleeps.append).key_names()
    assert sleeps == [] and client.calls == ["describe_table"]


def test_glue_not_found_is_a_lookup_and_the_rest_a_glue_error_naming_the_call() -> None:
    with pytest.raises(LookupError, match="analytics"):
        glue_call(
            Scripted(answered("EntityNotFoundException", 400, "GetDatabase")),
            "get_database",
            "analytics",
        )
    with pytest.raises(
        GlueError, match=r"glue create_table analytics\.orders: AccessDeniedException"
    ):
        glue_call(
            Scripted(answered("AccessDeniedException", 400, "CreateTable")),
            "create_table",
            "analytics.orders",
        )
