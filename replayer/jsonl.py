"""The JSON Lines sink: pieces of record text (Arrow string arrays) in, bytes on a file out.

Each piece is written straight from Arrow's memory, without a Python object
per record, on a thread of its own: the next piece is built while this one is
written (writing and Arrow's kernels both release the GIL). At most ``depth``
pieces wait to be written, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["LineWriter", "OutputError", "write_texts", "writing"]

_STOP = object()


class OutputError(Exception):
    """The output cannot be written (a full disk, a closed stdout): exit status 1.

    A pipe whose reader went away (``| head``) is not one: that stays BrokenPipeError.
    """


@contextlib.contextmanager
def writing(name: str) -> Iterator[None]:
    """Turn a failed write or flush to ``name`` into an OutputError; a closed pipe stays one."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as err:
        raise OutputError(f"cannot write to {name}: {err.strerror or err}") from None


def write_texts(out: IO[bytes], texts: Any) -> None:
    """Write a string array's texts back to back (a ChunkedArray of ``string``, no nulls)."""
    for chunk in texts.chunks:
        _, offsets, data = chunk.buffers()
        bounds = memoryview(offsets).cast("i")  # string arrays hold int32 offsets into data
        out.write(memoryview(data)[bounds[chunk.offset] : bounds[chunk.offset + len(chunk)]])


class LineWriter:
    """``with LineWriter(out) as writer: writer.put(texts)``: each piece written, in order.

    An error writing is raised by the next :meth:`put`, or when the block ends:
    BrokenPipeError for a closed pipe, OutputError naming ``name`` for any other
    (a full disk).
    """

    def __init__(self, out: IO[bytes], depth: int = 2, name: str = "stdout") -> None:
        self.out = out
        self.name = name
        self.error: BaseException | None = None
        self._pieces: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True)

    def __enter__(self) -> LineWriter:
        self._thread.start()
        return self

    def put(self, texts: Any) -> None:
        """Queue a piece to be written after the ones before it."""
        if self.error is not None:
            raise self.error
        self._pieces.put(texts)

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._pieces.put(_STOP)
        self._thread.join()
        if self.error is not None and value is None:
            raise self.error

    def _run(self) -> None:
        while (texts := self._pieces.get()) is not _STOP:
            if self.error is None:  # after an error, keep taking pieces so put never blocks
                try:
                    with writing(self.name):
                        write_texts(self.out, texts)
                except BaseException as err:  # handed to the caller's thread
                    self.error = err
