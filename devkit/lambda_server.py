"""A local endpoint of Lambda's Invoke API that runs real Python consumer functions.

Point boto3 at it with ``AWS_ENDPOINT_URL_LAMBDA``; ``lambda.invoke`` then runs
the registered function in this process and answers as Lambda does:
the function's return value as the payload, ``X-Amz-Function-Error:
Unhandled`` with ``errorMessage``/``errorType`` when it raises, and
``ResourceNotFoundException`` for an unknown function. Every invocation's
payload is recorded, for tests to compare with what the stream delivered.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devkit.servers import LocalServer

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


def function_name(reference: str) -> str:
    """The function's name from a name, an ARN or a partial ARN, each with an optional qualifier."""
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) >= 7:
        return parts[6]  # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]  # ACCOUNT:function:NAME[:QUALIFIER]
    return parts[0]  # NAME[:QUALIFIER]


class LambdaServer(LocalServer):
    """``with LambdaServer({"consumer": fn}) as server: ...`` -> ``server.endpoint``."""

    def __init__(self, functions: dict[str, Callable[[Any, Any], Any]] | None = None) -> None:
        self.functions = dict(functions or {})
        self.invocations: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                match = _PATH.match(self.path.split("?")[0])
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if match is None:
                    self._reply(
                        404, {"message": f"no route {self.path}"}, error="UnknownOperationException"
                    )
                    return
                name = function_name(urllib.parse.unquote(match["name"]))
                function = server.functions.get(name)
                if function is None:
                    self._reply(
                        404,
                        {"Type": "User", "Message": f"Function not found: {name}"},
                        error="ResourceNotFoundException",
                    )
                    return
                event = json.loads(body) if body else None
                with server._lock:
                    server.invocations.append((name, event))
                try:
                    result = function(event, None)
                except Exception as err:
                    self._reply(
                        200,
                        {
                            "errorMessage": str(err),
                            "errorType": type(err).__name__,
                            "stackTrace": traceback.format_tb(err.__traceback__),
                        },
                        function_error="Unhandled",
                    )
                    return
                self._reply(200, result)

            def _reply(
                self,
                status: int,
                payload: Any,
                *,
                error: str | None = None,
                function_error: str | None = None,
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                if function_error:
                    self.send_header("X-Amz-Function-Error", function_error)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LambdaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
