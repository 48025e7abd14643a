"""A local TCP proxy that adds latency to every request, and counts the requests in flight.

``DelayProxy`` listens on a free port on 127.0.0.1 and forwards each
connection to an HTTP server (SeaweedFS, say), holding the first bytes of
every request for ``delay`` seconds before forwarding them: the latency S3
adds to each small GET (about 20 ms), per request, not per connection, so a
client that keeps its connections alive pays it on every request, as it does
on S3. A request starts with the client's first bytes after the previous
response began (or on a new connection) and is in flight until the first
bytes of its response come back; ``max_in_flight`` is the most that were in
flight at once. (A request that waits for ``100 Continue`` pays the delay
twice, once for its headers and once for its body.)

It runs an asyncio loop on a thread of its own::

    with DelayProxy("http://127.0.0.1:8333", delay=0.02) as proxy:
        os.environ["AWS_ENDPOINT_URL_S3"] = proxy.endpoint

Given ``tls`` (a server-side ``ssl.SSLContext``), it serves HTTPS in front of
the plain HTTP server: an endpoint with a certificate of the caller's making.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from urllib.parse import urlsplit

from devkit.servers import LocalServer, ServerError

__all__ = ["DelayProxy"]

_CHUNK = 1 << 16


class DelayProxy(LocalServer):
    """``delay`` seconds added to every request on its way to ``upstream`` (``http://host:port``)."""

    def __init__(
        self, upstream: str, *, delay: float = 0.02, tls: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.delay = delay
        self.tls = tls
        self.endpoint = ""
        self.requests = 0  # requests forwarded
        self.connections = 0  # connections accepted
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> DelayProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self.tls)
                )
            except OSError as err:
                failure.append(err)
                ready.set()
                loop.close()
                return
            port = self._server.sockets[0].getsockname()[1]
            self.endpoint = f"{'http' if self.tls is None else 'https'}://127.0.0.1:{port}"
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or not self.endpoint:
            raise ServerError(f"the delaying proxy did not start: {failure or 'timeout'}")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def close() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = self._server = self._thread = None

    def reset_counts(self) -> None:
        """Start counting requests (and the most in flight at once) from zero."""
        with self._lock:
            self.requests = self.connections = 0
            self.max_in_flight = self.in_flight

    def _begin(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        with self._lock:
            self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        # True between a response's first bytes and the next request's: a request starts there.
        idle = True
        pending = False  # a request is in flight (counted, its response not yet begun)

        async def requests() -> None:
            nonlocal idle, pending
            while data := await client_reader.read(_CHUNK):
                if idle:
                    idle, pending = False, True
                    self._begin()
                    await asyncio.sleep(self.delay)
                server_writer.write(data)
                await server_writer.drain()
            if server_writer.can_write_eof():
                server_writer.write_eof()

        async def responses() -> None:
            nonlocal idle, pending
            while data := await server_reader.read(_CHUNK):
                if not idle:
                    idle = True
                    if pending:
                        pending = False
                        self._end()
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()  # the server closed: so does the client's connection

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            # Over when both directions are (a closed server closes the client's side), or
            # either side fails.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            if pending:
                self._end()
            for writer in (server_writer, client_writer):
                writer.close()
