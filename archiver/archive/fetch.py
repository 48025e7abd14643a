"""Fetching ahead: stored objects in (in the order they will be read), their contents out, in order.

Reading an archive means many small requests: a Lambda sink writes one file
per batch, and on S3 each small GET costs tens of milliseconds, most of it
waiting. One request after another, a reader spends nearly all its time
waiting; :func:`fetch_ahead` keeps up to ``in_flight`` requests going on a
pool of threads while the caller works through the results in their order,
and holds no more than about ``bytes_ahead`` bytes of objects the caller has
not reached yet, so a partition of large files cannot fill memory. The fetch
may decode what it got, too (Parquet decodes without the GIL, so the threads
decode side by side); an object then weighs what it takes decoded
(:func:`decoded_size`). Every reader of the archive goes through it:
``events``, ``redrive`` and ``restore`` (:mod:`.reader`), ``ls`` (footers),
``verify`` and compaction.

Threads suit every store: a ``LocalStore`` read is a file read, the boto3
``S3Store`` shares one client (boto3 clients are thread-safe, sessions and
resources are not, and none is made per request), and s3fs runs each request
on its own event loop, which takes concurrent ``cat_file`` calls. The S3
stores size their connection pools to :data:`IN_FLIGHT` (botocore keeps 10).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # the store imports this module's settings
    from .store import StoredObject

__all__ = [
    "BYTES_AHEAD",
    "DECODED_PER_BYTE",
    "IN_FLIGHT",
    "Fetched",
    "decoded_size",
    "fetch_ahead",
]

# Requests in flight at once: with S3's ~20 ms per small GET, 16 give ~800 objects/s.
IN_FLIGHT = 16
# Bytes of objects fetched (or being fetched) that the caller has not reached yet.
BYTES_AHEAD = 64 * 2**20
# Objects queued ahead per request slot: a slow object at the head does not leave the
# other slots idle.
QUEUED_PER_REQUEST = 4
# An archive file's columns take about this many times its bytes once decoded (zstd on
# JSON text): what a fetch that also decodes weighs against BYTES_AHEAD.
DECODED_PER_BYTE = 4

T = TypeVar("T")


class Fetched(Generic[T]):
    """One object's fetch, finished: :meth:`result` gives its contents or raises its error."""

    __slots__ = ("_future", "obj")

    def __init__(self, obj: StoredObject, future: Future[T]) -> None:
        self.obj = obj
        self._future = future

    def result(self) -> T:
        """What the fetch returned; the error it raised (which names the object) otherwise."""
        return self._future.result()


def fetch_ahead(
    objects: Iterable[StoredObject],
    fetch: Callable[[StoredObject], T],
    *,
    in_flight: int | None = None,
    bytes_ahead: int | None = None,
    weight: Callable[[StoredObject], int] | None = None,
) -> Generator[Fetched[T], None, None]:
    """``fetch(obj)`` of every object, in the order of ``objects``, fetched ahead on threads.

    Parameters
    ----------
    objects
        The objects in the order the caller reads them; taken from lazily, on the
        caller's thread.
    fetch
        Makes one object's result (its bytes, its footer); runs on a pool thread.
    in_flight
        Fetches running at once (default :data:`IN_FLIGHT`).
    bytes_ahead
        Bound on the weight of the objects fetched or queued but not yet handed to
        the caller (default :data:`BYTES_AHEAD`); the next object is always taken
        when nothing else is ahead, however large it is.
    weight
        An object's weight against ``bytes_ahead`` (default: its size).

    Returns
    -------
    Generator[Fetched]
        One finished fetch per object, in order. An error is raised by
        :meth:`Fetched.result` when the caller reaches that object, so the caller
        may go on with the next ones. Closing the iterator cancels what has not
        started and waits for what has.
    """
    slots = IN_FLIGHT if in_flight is None else in_flight
    if slots < 1:
        raise ValueError(f"in_flight must be at least 1, not {slots}")
    budget = BYTES_AHEAD if bytes_ahead is None else bytes_ahead
    size_of = weight or _size
    source = iter(objects)
    window: deque[tuple[StoredObject, Future[T], int]] = deque()
    held = 0  # the weight of what is in the window
    following: StoredObject | None = None  # taken from the source, not yet submitted
    exhausted = False
    pool = ThreadPoolExecutor(slots, thread_name_prefix="fetch")
    try:
        while True:
            while not exhausted and len(window) < slots * QUEUED_PER_REQUEST:
                if following is None:
                    following = next(source, None)
                    if following is None:
                        exhausted = True
                        break
                size = size_of(following)
                if window and held + size > budget:
                    break
                window.append((following, pool.submit(fetch, following), size))
                held += size
                following = None
            if not window:
                return
            obj, future, size = window.popleft()
            future.exception()  # wait for it; its error, if any, goes to the caller with it
            held -= size
            yield Fetched(obj, future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decoded_size(obj: StoredObject) -> int:
    """What ``obj`` weighs against :data:`BYTES_AHEAD` when its fetch decodes it too."""
    return obj.size * DECODED_PER_BYTE


def _size(obj: StoredObject) -> int:
    return obj.size
