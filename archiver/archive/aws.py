"""Reaching AWS: the region and the boto3 clients of the archiver and the replayer, made here.

The region is ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's
``region``, as Lambda and the newer AWS SDKs resolve it; botocore alone reads
only the last two (boto/boto3#3620), so a container given ``AWS_REGION`` would
otherwise have no region. Every other setting (credentials, endpoints such as
``AWS_ENDPOINT_URL_DYNAMODB``, retries) is the SDK's own. S3 needs no region
(it finds the bucket's); every other service does, and :func:`client` says
what to set instead of botocore's ``NoRegionError`` traceback.

Every adapter that calls AWS sorts what went wrong through :func:`classify`
into one :class:`Failure` (throttled, unavailable, denied, not found, invalid),
then raises its own error (``StoreAccessDenied``, ``StreamBusy``, ``GlueError``,
``RestoreError``...) naming its bucket, stream, table or function, and the
operation, with :func:`describe`. Pauses between tries come from
:func:`backoff` (or :func:`doubled` and :func:`jittered`, for a caller that
keeps its last pause).

Every session made here reads timestamps with :func:`parse_timestamp`, which
gives botocore's values for the two forms S3 sends, 15 to 35 times faster: an
S3 response carries one (``Last-Modified``) and a listing one for each object.

boto3 and botocore are imported on first use, not with this module: the
format package stays free of the SDK at import time (Lambda cold starts).
"""

from __future__ import annotations

import datetime
import enum
import os
import random
import re
from collections.abc import Callable
from typing import Any

from .errors import MissingRegionError

__all__ = [
    "Failure",
    "backoff",
    "classify",
    "client",
    "describe",
    "doubled",
    "error_code",
    "jittered",
    "parse_timestamp",
    "region",
    "tuned",
]

_REGIONLESS = {"s3"}  # finds the bucket's region itself


def _region_variable() -> str | None:
    return os.environ.get("AWS_REGION") or None


def region() -> str | None:
    """``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's region; None when unset."""
    import botocore.session

    found = _region_variable() or botocore.session.get_session().get_config_variable("region")
    return str(found) if found else None


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` in :func:`region`, with the SDK's other configuration.

    Parameters
    ----------
    service
        The boto3 service name (``"dynamodb"``, ``"lambda"``, ``"glue"``, ``"s3"``, ...).
    **kwargs
        Passed to ``Session.client`` (``config=``, for instance).

    Raises
    ------
    MissingRegionError
        When no region is set anywhere and the service needs one (every service but S3).
    """
    import boto3
    import botocore.session

    session = boto3.session.Session(
        botocore_session=tuned(botocore.session.Session()), region_name=_region_variable()
    )
    if session.region_name is None and service not in _REGIONLESS:
        raise MissingRegionError(
            f"no AWS region is set for {service}: set AWS_REGION "
            "(or AWS_DEFAULT_REGION, or region in your AWS profile)"
        )
    return session.client(service, **kwargs)


# -- timestamps ------------------------------------------------------------------------------

# The two forms S3 sends: ISO 8601 in XML bodies (a listing's LastModified) and RFC 1123 in
# headers (Last-Modified). botocore hands every timestamp to dateutil, at 90 to 150 us each.
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z", re.ASCII)
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_RFC_1123 = re.compile(
    rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ({'|'.join(_MONTH_NAMES)}) (\d{{4}}) "
    r"(\d\d):(\d\d):(\d\d) GMT",
    re.ASCII,
)


def parse_timestamp(value: Any) -> datetime.datetime:
    """A timestamp of an AWS response: the instant botocore's own parser reads (in UTC), without
    dateutil for the two forms S3 sends; any other form goes to botocore's parser."""
    if type(value) is str:
        try:
            found = _ISO.fullmatch(value)
            if found is not None:
                year, month, day, hour, minute, second, fraction = found.groups()
                return datetime.datetime(
                    int(year),
                    int(month),
                    int(day),
                    int(hour),
                    int(minute),
                    int(second),
                    int(fraction.ljust(6, "0")) if fraction else 0,
                    tzinfo=datetime.UTC,
                )
            found = _RFC_1123.fullmatch(value)
            if found is not None:
                day, month, year, hour, minute, second = found.groups()
                return datetime.datetime(
                    int(year),
                    _MONTHS[month],
                    int(day),
                    int(hour),
                    int(minute),
                    int(second),
                    tzinfo=datetime.UTC,
                )
        except ValueError:  # no such date (a 31st of April): botocore's parser says why
            pass
    import botocore.utils

    parsed: datetime.datetime = botocore.utils.parse_timestamp(value)
    return parsed


def tuned(session: Any) -> Any:
    """``session`` (a botocore or aiobotocore session) reading timestamps with
    :func:`parse_timestamp`; the session itself, for chaining."""
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return session


# -- what went wrong --------------------------------------------------------------------------


class Failure(enum.Enum):
    """What an AWS call's error means for the caller; ``transient`` says whether to try again."""

    THROTTLED = "throttled"  # slow down, then try again
    UNAVAILABLE = "unavailable"  # a 5xx, a dropped connection, a timeout: try again
    DENIED = "denied"  # credentials, permissions, a KMS key that cannot be used: stop
    NOT_FOUND = "not found"  # no such object, table, stream, function or Glue entity
    INVALID = "invalid"  # a request no retry can fix (validation and the rest)

    @property
    def transient(self) -> bool:
        return self in (Failure.THROTTLED, Failure.UNAVAILABLE)


# The codes botocore's standard retry mode treats as throttling
# (botocore/retries/standard.py, ThrottledRetryableChecker); any other code naming a
# throttle ("KMS.ThrottlingException") is one too.
_THROTTLED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# HTTP 429 and 509 (botocore/data/_retry.json: too_many_requests, limit_exceeded).
_THROTTLED_STATUSES = frozenset({429, 509})

# botocore's transient codes (TransientRetryableChecker), the server-fault codes AWS services
# send (DynamoDB Local sends InternalServerError with a 400), and the codes S3 gives a request
# whose bytes changed or stopped on the way, which the next try sends again
# (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    }
)

# Refusals no retry fixes: credentials (missing, wrong, expired), signatures, disabled accounts,
# and a KMS key that may not or cannot be used (S3's "KMS.*" codes, Lambda's "KMS*Exception",
# answered with a 502). Any code naming an access denial ("EC2AccessDeniedException") too.
_DENIED_CODES = frozenset(
    {
        "AllAccessDisabled",
        "AccountProblem",
        "NotSignedUp",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "TokenRefreshRequired",
        "RequestExpired",
        "RequestTimeTooSkewed",
        "InvalidSecurity",
        "AuthFailure",
        "UnauthorizedOperation",
        "KMS.DisabledException",
        "KMS.NotFoundException",
        "KMS.KMSInvalidStateException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
    }
)
_DENIED_STATUSES = frozenset({401, 403})

# S3 answers a HEAD with the bare status as its code; every other "no such thing" code is
# NoSuch... (S3) or ...NotFoundException (DynamoDB, Streams, Lambda, Glue's EntityNotFound...).
_NOT_FOUND_CODES = frozenset({"404", "NotFound"})

# botocore errors raised without an answer from the service, whose next try may pass: the
# connection and HTTP errors botocore's standard mode retries (ReadTimeoutError and
# EndpointConnectionError among them), bytes that arrived changed or cut short (a read's
# checksum), an answer garbled on the way. Named, not imported: botocore is loaded only by
# the calls that raise them. Credentials errors mean DENIED; any other is INVALID.
_TRANSIENT_SDK_ERRORS = frozenset(
    {
        "ConnectionError",
        "HTTPClientError",
        "ChecksumError",
        "FlexibleChecksumError",
        "IncompleteReadError",
        "CapacityNotAvailableError",
        "ResponseParserError",
    }
)
_CREDENTIALS_SDK_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "NoAuthTokenError",
        "TokenRetrievalError",
        "UnknownCredentialError",
        "RefreshWithMFAUnsupportedError",
        "SSOError",
        "LoginError",
    }
)
_SDK = frozenset({"botocore", "aiobotocore"})
_NETWORK = frozenset({"urllib3", "aiohttp"})  # their errors are the connection's


def _answer(err: BaseException) -> tuple[str, int, str] | None:
    """The code, HTTP status and message of the AWS error response behind ``err``, else None."""
    # s3fs turns each ClientError into an OSError (PermissionError, FileNotFoundError, or a plain
    # OSError for a code it does not know) and keeps the original as the cause.
    for candidate in (err, err.__cause__ if isinstance(err, OSError) else None):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            error = response["Error"]
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            return str(error.get("Code") or ""), int(status), str(error.get("Message") or "")
    return None


def _classify_answer(code: str, status: int) -> Failure:
    # Codes first: Lambda answers a KMS refusal with a 502, DynamoDB Local a server fault with
    # a 400. The status decides only for codes none of these lists know.
    if code in _THROTTLED_CODES or "Throttl" in code:
        return Failure.THROTTLED
    if code in _DENIED_CODES or "AccessDenied" in code:
        return Failure.DENIED
    if code in _NOT_FOUND_CODES or code.startswith("NoSuch") or code.endswith("NotFoundException"):
        return Failure.NOT_FOUND
    if code in _TRANSIENT_CODES:
        return Failure.UNAVAILABLE
    if status in _THROTTLED_STATUSES:
        return Failure.THROTTLED
    if status in _DENIED_STATUSES:
        return Failure.DENIED
    if status == 404:
        return Failure.NOT_FOUND
    if status >= 500:
        return Failure.UNAVAILABLE
    return Failure.INVALID


def _sdk_classes(err: BaseException) -> set[str] | None:
    """The names of the botocore classes ``err`` is an instance of; None if it is none of theirs."""
    found = {cls.__name__ for cls in type(err).__mro__ if cls.__module__.split(".")[0] in _SDK}
    return found or None


def classify(err: BaseException) -> Failure:
    """What an error raised by an AWS call (boto3, botocore, s3fs) means.

    Parameters
    ----------
    err
        The exception: a ``ClientError`` (the service answered), a botocore error raised
        without an answer (no connection, a timeout, no credentials), an OSError that s3fs
        made of either, or any other exception.

    Returns
    -------
    Failure
        ``THROTTLED`` and ``UNAVAILABLE`` are transient (``Failure.transient``); ``DENIED``,
        ``NOT_FOUND`` and ``INVALID`` are not. An exception that is none of the above is
        ``INVALID``, except the standard library's I/O errors: PermissionError is ``DENIED``,
        FileNotFoundError ``NOT_FOUND``, and any other OSError (a connection reset, a
        timeout) ``UNAVAILABLE``.
    """
    answer = _answer(err)
    if answer is not None:
        return _classify_answer(*answer[:2])
    sdk = _sdk_classes(err)
    if sdk is not None:
        if sdk & _CREDENTIALS_SDK_ERRORS:
            return Failure.DENIED
        if sdk & _TRANSIENT_SDK_ERRORS:
            return Failure.UNAVAILABLE
        return Failure.INVALID  # a bad parameter, region, endpoint or configuration
    if any(cls.__module__.split(".")[0] in _NETWORK for cls in type(err).__mro__):
        return Failure.UNAVAILABLE
    if isinstance(err, PermissionError):
        return Failure.DENIED
    if isinstance(err, FileNotFoundError):
        return Failure.NOT_FOUND
    if isinstance(err, OSError):
        return Failure.UNAVAILABLE
    return Failure.INVALID


def error_code(err: BaseException) -> str:
    """The AWS error code of ``err`` (``"NoSuchKey"``), else its class name."""
    answer = _answer(err)
    if answer is not None and (answer[0] or answer[1]):
        return answer[0] or str(answer[1])  # the status when the answer had no code
    return type(err).__name__


def describe(err: BaseException) -> str:
    """``err`` for a message: ``"Code: Message"`` for an AWS error response, else its text.

    Missing credentials say so in words (botocore says "Unable to locate credentials").
    """
    answer = _answer(err)
    if answer is not None:
        code, message = error_code(err), answer[2]
        return f"{code}: {message}" if message else code
    if type(err).__name__ == "NoCredentialsError":
        return f"no AWS credentials found ({err})"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# -- how long to wait ----------------------------------------------------------------------------


def doubled(previous: float, first: float, cap: float) -> float:
    """The next pause of a doubling backoff: ``first``, then twice the last one, at most ``cap``."""
    return min(cap, max(first, previous * 2))


def jittered(pause: float, rand: Callable[[], float] = random.random) -> float:
    """``pause`` with "equal jitter": half of it, plus a random part of the other half.

    Jitter spreads out callers that failed together (many pollers, one S3
    outage) so they do not retry in step. Half the pause is kept rather than
    drawing all of it at random ("full jitter"): a throttled service always
    gets at least half the pause, and the pauses still grow with each failure.
    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    return pause / 2 + pause / 2 * rand()


def backoff(
    attempt: int, first: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """The pause before try ``attempt + 1``: ``first`` doubled per failed try, capped, jittered.

    Parameters
    ----------
    attempt
        How many tries have failed so far (1 after the first).
    first
        The pause after the first failure, before jitter, in seconds.
    cap
        The longest pause, before jitter, in seconds.
    rand
        A source of numbers in [0, 1): ``random.random`` unless a test controls it.

    Returns
    -------
    float
        Seconds, between half and all of ``min(cap, first * 2 ** (attempt - 1))``
        (see :func:`jittered`).
    """
    exponent = min(max(attempt - 1, 0), 1000)  # 2.0 ** 1100 would overflow
    return jittered(min(cap, first * 2.0**exponent), rand)
