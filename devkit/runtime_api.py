"""A local stand-in of Lambda's Runtime API, for running a runtime loop outside Lambda.

Queue events with :meth:`RuntimeApi.queue`; a runtime pointed at it with
``AWS_LAMBDA_RUNTIME_API`` (see :meth:`RuntimeApi.env`) receives them from
``GET /2018-06-01/runtime/invocation/next``, which blocks until an event is
queued or the server stops, with the headers Lambda sends. What the runtime
posts to ``/response``, ``/error`` and ``/runtime/init/error`` is recorded with
its headers, for tests to assert. It answers as the API documents: 202 for a
post, 400 for an unknown request id, 403 for a second answer to one invocation.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from devkit.servers import LocalServer

__all__ = ["Answer", "QueuedEvent", "RuntimeApi"]

API = "/2018-06-01/runtime"
_ANSWER = re.compile(rf"^{API}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:archiver"


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    request_id: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """What a runtime posted: ``kind`` is ``response``, ``error`` or ``init_error``."""

    kind: str
    request_id: str | None
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RuntimeApi(LocalServer):
    """``with RuntimeApi() as api: api.queue(event); ...; api.wait_answer(request_id)``."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: deque[QueuedEvent] = deque()
        self._stopped = False
        self._sockets: set[socket.socket] = set()
        self._taken: set[str] = set()  # request ids handed to a runtime (being sent, or sent)
        self.delivered: list[str] = []  # request ids whose event was sent to a runtime, in order
        self.waiting = 0  # runtimes blocked in next right now
        self.answers: dict[str, Answer] = {}  # request id -> response or error
        self.init_errors: list[Answer] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.address = ""

    # --- the server ---------------------------------------------------------------------

    def start(self) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the runtime keeps one connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm holds
                # the second until the runtime's delayed ACK, 40 ms later, as Lambda does not.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with api._lock:
                    api._sockets.add(self.connection)

            def finish(self) -> None:
                with api._lock:
                    api._sockets.discard(self.connection)
                with contextlib.suppress(OSError):  # a connection dropped on purpose
                    super().finish()

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self._reply(404, {"errorMessage": f"no route {self.path}"})
                    return
                event = api._take(self.connection)
                if event is None:
                    if not api._stopped:
                        # the runtime went away while it waited: nothing was delivered
                        self.close_connection = True
                        return
                    self._reply(500, {"errorMessage": "the Runtime API stand-in stopped"})
                    return
                try:
                    self.send_response(200)
                    for name, value in event.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(event.body)))
                    self.end_headers()
                    self.wfile.write(event.body)
                    self.wfile.flush()
                except OSError:
                    api._put_back(event)
                    raise
                api._delivered(event)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name: value for name, value in self.headers.items()}
                if self.path == f"{API}/init/error":
                    with api._lock:
                        api.init_errors.append(Answer("init_error", None, headers, body))
                        api._lock.notify_all()
                    self._reply(202, {"status": "OK"})
                    return
                match = _ANSWER.match(self.path)
                if match is None:
                    self._reply(404, {"errorMessage": f"no route {self.path}"})
                    return
                request_id = match["id"]
                with api._lock:
                    if request_id not in api._taken:
                        status = 400
                    elif request_id in api.answers:
                        status = 403
                    else:
                        api.answers[request_id] = Answer(match["kind"], request_id, headers, body)
                        api._lock.notify_all()
                        status = 202
                if status == 202:
                    self._reply(202, {"status": "OK"})
                elif status == 400:
                    self._reply(
                        400,
                        {
                            "errorMessage": f"unknown request id {request_id}",
                            "errorType": "InvalidRequestID",
                        },
                    )
                else:
                    self._reply(
                        403,
                        {
                            "errorMessage": f"{request_id} was already answered",
                            "errorType": "InvalidStateTransition",
                        },
                    )

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        self.address = f"127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop serving; a runtime waiting in ``next`` gets a 500, as from a dying environment."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def env(self) -> dict[str, str]:
        """``AWS_LAMBDA_RUNTIME_API`` for a runtime process."""
        return {"AWS_LAMBDA_RUNTIME_API": self.address}

    def _take(self, connection: socket.socket) -> QueuedEvent | None:
        """The next queued event; None when the server stops or the runtime hangs up first."""
        with self._lock:
            self.waiting += 1
            self._lock.notify_all()
            try:
                while not self._queue and not self._stopped:
                    self._lock.wait(0.05)
                    if _hung_up(connection):
                        return None
                if self._stopped or _hung_up(connection):
                    return None
            finally:
                self.waiting -= 1
            event = self._queue.popleft()
            self._taken.add(event.request_id)
            return event

    def _delivered(self, event: QueuedEvent) -> None:
        with self._lock:
            self.delivered.append(event.request_id)
            self._lock.notify_all()

    def _put_back(self, event: QueuedEvent) -> None:
        with self._lock:
            self._taken.discard(event.request_id)
            self._queue.appendleft(event)
            self._lock.notify_all()

    # --- for tests -------------------------------------------------------------------------

    def queue(
        self,
        event: bytes | Any,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        timeout_seconds: float = 300.0,
        function_arn: str = FUNCTION_ARN,
    ) -> str:
        """Queue an invocation (JSON-encoded unless bytes); returns its request id."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        request_id = request_id or str(uuid.uuid4())
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + timeout_seconds) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": function_arn,
        }
        if trace_id is not None:
            headers["Lambda-Runtime-Trace-Id"] = trace_id
        with self._lock:
            self._queue.append(QueuedEvent(request_id, body, headers))
            self._lock.notify_all()
        return request_id

    def wait_delivered(self, request_id: str, timeout: float = 60.0) -> None:
        """Until a runtime has fetched ``request_id`` from ``next``."""
        self._wait(lambda: request_id in self.delivered, timeout, f"{request_id} delivered")

    def wait_answer(self, request_id: str, timeout: float = 60.0) -> Answer:
        """The response or error a runtime posted for ``request_id``."""
        self._wait(lambda: request_id in self.answers, timeout, f"an answer to {request_id}")
        return self.answers[request_id]

    def wait_init_error(self, timeout: float = 60.0) -> Answer:
        self._wait(lambda: bool(self.init_errors), timeout, "an init error")
        return self.init_errors[0]

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until a runtime is blocked in ``next``, waiting for an event."""
        self._wait(lambda: self.waiting > 0 and not self._queue, timeout, "runtime waiting")

    def drop_connections(self) -> None:
        """Close every open connection from the server's side (as after a long freeze)."""
        with self._lock:
            for connection in list(self._sockets):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _wait(self, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the Runtime API stand-in saw no {what} in {timeout:.0f} s")
                self._lock.wait(left)


class _QuietServer(ThreadingHTTPServer):
    """Threads that die with the process; no tracebacks for connections a runtime dropped."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _hung_up(connection: socket.socket) -> bool:
    """Whether the peer closed the connection (readable, and nothing to read)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
