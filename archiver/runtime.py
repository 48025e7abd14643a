"""Our Lambda runtime: invocations from Lambda's Runtime API in, the archiver's answers out.

``python -m archiver.runtime`` replaces AWS's runtime interface client
(``awslambdaric``), which parses every event into Python objects before a
handler runs. This loop hands the event's raw bytes to
:func:`archiver.lambda_handler.handle_bytes` instead, and speaks the Runtime API
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) itself over
one persistent HTTP connection to ``AWS_LAMBDA_RUNTIME_API``, reopened when it
drops:

- init: logging as Lambda's logging controls ask (``AWS_LAMBDA_LOG_FORMAT``
  ``JSON`` or ``Text``, ``AWS_LAMBDA_LOG_LEVEL`` over ``ARCHIVER_LOG_LEVEL``),
  then :func:`~archiver.lambda_handler.prepare`. Any failure there (invalid
  ``ARCHIVER_*`` settings, a module that does not import) is posted to
  ``/runtime/init/error`` and the process exits with 1.
- each invocation: ``GET /runtime/invocation/next`` (blocking, no timeout; Lambda
  may freeze the process while it waits), ``_X_AMZN_TRACE_ID`` set from the
  trace header (removed when there is none) so botocore passes the trace on,
  every log line stamped with the request id, then the archiver's
  ``{"batchItemFailures": [...]}`` posted to ``/response`` only once it has
  returned, that is once every record it does not report is durably stored. An
  exception (an event that is not a stream event, an unexpected failure) is
  logged with its traceback and posted to ``/error``: Lambda retries the whole
  batch, as it does when a handler raises. The loop then goes on.
- SIGTERM: the loop finishes the invocation in hand and exits with 0; while it
  waits for the next one (and none has begun to arrive), it exits at once.

Extensions keep working: they register with Lambda's Extensions API, a
separate endpoint this loop never touches, and Lambda runs them beside it.
The handler named in the function's configuration (``_HANDLER``) is not used:
this loop always serves the archiver.

Deployments start it as the image's entry point (``deploy/docker-entrypoint.sh``)
or, on the managed Python runtime, through ``AWS_LAMBDA_EXEC_WRAPPER`` set to
the ``archiver/bootstrap`` script shipped in this package.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archiver.logs import RequestIdFilter

__all__ = ["Invocation", "LambdaContext", "RuntimeApiError", "RuntimeClient", "Stopped", "main"]

log = logging.getLogger("archiver.runtime")

API_VERSION = "2018-06-01"
TRACE_VARIABLE = "_X_AMZN_TRACE_ID"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
CONFIGURATION_ERROR = "Runtime.ConfigurationError"
_USER_AGENT = "dynamodb-stream-archive (archiver.runtime)"


class RuntimeApiError(RuntimeError):
    """Lambda's Runtime API could not be reached or answered as it never should: the loop stops."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation as ``/runtime/invocation/next`` delivers it."""

    request_id: str
    deadline_ms: int  # epoch milliseconds at which Lambda stops the invocation
    invoked_function_arn: str | None
    trace_id: str | None
    client_context: str | None
    cognito_identity: str | None
    body: bytes


class LambdaContext:
    """The attributes of the ``context`` Lambda's Python runtime passes to a handler."""

    def __init__(self, invocation: Invocation, clock: Callable[[], float] = time.time) -> None:
        environ = os.environ
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.invoked_function_arn
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self._invocation = invocation
        self._clock = clock

    @property
    def client_context(self) -> Any:
        """The mobile SDK's client context, parsed; None when absent or unreadable."""
        return _json_or_none(self._invocation.client_context)

    @property
    def identity(self) -> Any:
        """The Amazon Cognito identity, parsed; None when absent or unreadable."""
        return _json_or_none(self._invocation.cognito_identity)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda's deadline for this invocation (never negative)."""
        return max(0, self._invocation.deadline_ms - int(self._clock() * 1000))


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


class RuntimeClient:
    """Lambda's Runtime API at ``address`` (host:port) over one persistent HTTP connection."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.stop_requested = False
        self._base = f"/{API_VERSION}/runtime"
        self._connection: http.client.HTTPConnection | None = None
        # A byte on this pair wakes the wait for the next invocation: request_stop writes one,
        # and so does the interpreter's C-level signal handler (stop_on), whenever the signal
        # arrives, also between the wait's last look at stop_requested and its select().
        self._wakeup, self._wakeup_writer = socket.socketpair()
        for end in (self._wakeup, self._wakeup_writer):
            end.setblocking(False)

    def stop_on(self, signum: int) -> None:
        """Stop on ``signum`` (see :meth:`request_stop`). Call from the main thread."""
        signal.set_wakeup_fd(self._wakeup_writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signum, lambda signum, frame: self.request_stop())

    def request_stop(self) -> None:
        """Stop at once while waiting for an invocation that has not begun to arrive, else
        once the invocation in hand is answered: :meth:`next_invocation` raises
        :class:`Stopped`. Safe from a signal handler and from any thread.
        """
        self.stop_requested = True
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            self._wakeup_writer.send(b"\0")

    def next_invocation(self) -> Invocation:
        """Wait, without a timeout, for the next invocation; :class:`Stopped` after a stop request."""
        status, headers, body = self._request("GET", f"{self._base}/invocation/next", wait=True)
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        if status != 200 or not request_id:
            raise RuntimeApiError(
                f"GET /runtime/invocation/next answered {status} "
                f"{'without a request id' if status == 200 else body[:500]!r}"
            )
        deadline = headers.get("Lambda-Runtime-Deadline-Ms", "")
        return Invocation(
            request_id=request_id,
            deadline_ms=int(deadline) if deadline.isdigit() else 0,
            invoked_function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            trace_id=headers.get("Lambda-Runtime-Trace-Id"),
            client_context=headers.get("Lambda-Runtime-Client-Context"),
            cognito_identity=headers.get("Lambda-Runtime-Cognito-Identity"),
            body=body,
        )

    def post_response(self, request_id: str, body: bytes) -> None:
        """Answer an invocation."""
        self._post(f"{self._base}/invocation/{request_id}/response", body, {})

    def post_error(self, request_id: str, body: bytes, error_type: str) -> None:
        """Fail an invocation: ``body`` is ``{"errorMessage", "errorType", "stackTrace"}``."""
        path = f"{self._base}/invocation/{request_id}/error"
        self._post(path, body, {ERROR_TYPE_HEADER: error_type})

    def post_init_error(self, body: bytes, error_type: str) -> None:
        """Report that the function cannot start; the process exits next."""
        self._post(f"{self._base}/init/error", body, {ERROR_TYPE_HEADER: error_type})

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        headers = {"Content-Type": "application/json", **headers}
        status, _, answer = self._request("POST", path, body, headers)
        if status == 202:
            return
        if status >= 500:
            # "Container error. Non-recoverable state. Runtime should exit promptly."
            raise RuntimeApiError(f"POST {path} answered {status}: {answer[:500]!r}")
        # 400 (unknown request id), 403 (already answered), 413 (too large): the
        # invocation is Lambda's to fail or retry now; the loop goes on.
        log.error(
            "Runtime API refused a post",
            extra={"path": path, "status": status, "answer": answer[:500].decode(errors="replace")},
        )

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        wait: bool = False,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = {"User-Agent": _USER_AGENT, **(headers or {})}
        for attempt in (1, 2):
            try:
                if self._connection is None:
                    # timeout=None: block as long as Lambda takes to deliver the next event
                    self._connection = http.client.HTTPConnection(self.address, timeout=None)
                    self._connection.connect()
                    # Every write goes out at once: Nagle's algorithm would hold a request's
                    # second segment until the Runtime API's delayed ACK, up to 40 ms each.
                    self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._connection.request(method, path, body=body, headers=headers)
                if wait:
                    self._wait_for_answer()
                response = self._connection.getresponse()
                return response.status, response.headers, response.read()
            except (OSError, http.client.HTTPException) as err:
                # A connection the other side dropped (idle, or while the process was
                # frozen) fails on first use: reconnect once, then give up.
                self.close()
                if attempt == 2:
                    raise RuntimeApiError(
                        f"{method} {path} on the Runtime API at {self.address} failed: {err}"
                    ) from err
                log.debug("Runtime API connection dropped; reconnecting", extra={"error": str(err)})
        raise AssertionError("unreachable")

    def _wait_for_answer(self) -> None:
        """Block until the answer begins to arrive; :class:`Stopped` if a stop comes first."""
        sock = self._connection.sock if self._connection is not None else None
        if sock is None:
            return  # nothing to wait on: let the read fail and the request be retried
        watched = [sock, self._wakeup]
        while True:
            self._raise_if_stopped()
            if sock in select.select(watched, [], [])[0]:
                return

    def _raise_if_stopped(self) -> None:
        # A Python function: entering it runs any signal handler still pending, so a stop
        # that woke the select() is seen here, not one wait later.
        with contextlib.suppress(BlockingIOError):
            while self._wakeup.recv(64):
                pass
        if self.stop_requested:
            raise Stopped


class Stopped(BaseException):
    """A stop was requested (SIGTERM) while the loop waited for the next invocation."""


@dataclass(frozen=True, slots=True)
class _Function:
    """What init built: the archiver's entry point, the response encoder, the request-id filter."""

    handle: Callable[[bytes, Any], Any]
    dumps: Callable[[Any], bytes]
    request_ids: RequestIdFilter


def _initialise() -> _Function:
    """Logging as Lambda asks, then the archiver's settings and store (raises on any failure)."""
    from archiver.logs import configure_lambda

    request_ids = configure_lambda(
        os.environ.get("AWS_LAMBDA_LOG_FORMAT"), os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    )
    import orjson

    from archiver import lambda_handler

    lambda_handler.prepare()
    return _Function(lambda_handler.handle_bytes, orjson.dumps, request_ids)


def _init_error_type(err: BaseException) -> str:
    handler_module = sys.modules.get("archiver.lambda_handler")
    configuration_error = getattr(handler_module, "ConfigurationError", None)
    if isinstance(configuration_error, type) and isinstance(err, configuration_error):
        return CONFIGURATION_ERROR
    return type(err).__name__


def _error_body(err: BaseException, error_type: str) -> bytes:
    import json
    import traceback

    return json.dumps(
        {
            "errorMessage": str(err),
            "errorType": error_type,
            "stackTrace": traceback.format_tb(err.__traceback__),
        }
    ).encode()


def _set_trace_id(trace_id: str | None) -> None:
    if trace_id:
        os.environ[TRACE_VARIABLE] = trace_id
    else:
        os.environ.pop(TRACE_VARIABLE, None)


def _invoke(client: RuntimeClient, function: _Function, invocation: Invocation) -> None:
    """Run one invocation and post its outcome."""
    _set_trace_id(invocation.trace_id)
    function.request_ids.request_id = invocation.request_id
    try:
        try:
            response = function.dumps(function.handle(invocation.body, LambdaContext(invocation)))
        except Exception as err:
            error_type = type(err).__name__
            log.error(
                "invocation failed; Lambda retries the whole batch",
                exc_info=True,
                extra={"error_type": error_type},
            )
            client.post_error(invocation.request_id, _error_body(err, error_type), error_type)
        else:
            client.post_response(invocation.request_id, response)
    finally:
        function.request_ids.request_id = None


def _serve(client: RuntimeClient, function: _Function) -> None:
    """Invocations until a stop is requested."""
    while not client.stop_requested:
        try:
            invocation = client.next_invocation()
        except Stopped:
            return
        _invoke(client, function, invocation)


def main() -> int:
    """Run the loop; the exit status (0 after SIGTERM, 1 when init or the Runtime API fails).

    Arguments are ignored: as ``AWS_LAMBDA_EXEC_WRAPPER`` the managed runtime
    passes its own bootstrap command, which this loop replaces.
    """
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write(
            "archiver.runtime: AWS_LAMBDA_RUNTIME_API is not set; this is Lambda's runtime loop, "
            "run it inside Lambda (or against a local stand-in of the Runtime API)\n"
        )
        return 2
    client = RuntimeClient(address)
    client.stop_on(signal.SIGTERM)
    try:
        function = _initialise()
    except Exception as err:
        error_type = _init_error_type(err)
        log.error("init failed", exc_info=True, extra={"error_type": error_type})
        try:
            client.post_init_error(_error_body(err, error_type), error_type)
        except RuntimeApiError as post_failed:
            log.error("could not report the init error", extra={"error": str(post_failed)})
        return 1
    # Everything init made (modules, settings, clients) lives as long as the process: moved
    # out of the cyclic GC's generations, collections never walk it again.
    gc.freeze()
    try:
        _serve(client, function)
    except RuntimeApiError as err:
        log.error("stopping: the Runtime API failed", extra={"error": str(err)})
        return 1
    finally:
        client.close()
    log.info("stopping: SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
