"""Parallel lanes that keep each item's order, and a shared rate limit.

Changes are split into lanes by a hash of the item's key, so one item's
changes always travel the same lane, in order; lanes run side by side in
threads. A slice (``--slice K/N``) takes the hash modulo N, a lane the
quotient modulo the lane count, so the two splits are independent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from archiver.archive.reader import key_hash

__all__ = ["RateLimiter", "StopRun", "lane_of", "parse_slice", "run_lanes"]

T = TypeVar("T")


class StopRun(Exception):
    """Raised by a lane to stop every lane (the run failed and must resume from its checkpoint)."""


def parse_slice(text: str) -> tuple[int, int]:
    """``"2/8"`` -> (1, 8): the 0-based index and the count. ValueError names the text."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r} is not K/N (for example 2/8)") from None
    if not 1 <= k <= n:
        raise ValueError(f"{text!r}: K must be between 1 and N")
    return k - 1, n


def lane_of(item_key: str, lanes: int, slices: int = 1) -> int:
    return (key_hash(item_key) // slices) % lanes


class RateLimiter:
    """A token bucket shared by all lanes: at most ``rate`` units per second (None: unlimited)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, units: float) -> None:
        """Wait until ``units`` may go. Burst is at most one second's worth."""
        if not self.rate:
            return
        with self._lock:
            now = self.clock()
            start = max(self._next, now - 1.0)
            self._next = start + units / self.rate
            wait = start - now
        if wait > 0:
            self.sleep(wait)


def run_lanes(
    lanes: Sequence[Sequence[T]],
    work: Callable[[int, Sequence[T], threading.Event], None],
    concurrency: int,
) -> None:
    """Run ``work(lane, items, stop)`` for every non-empty lane, ``concurrency`` at a time.

    When a lane raises, ``stop`` is set so the others finish their current
    batch and return; the first exception is then raised here.
    """
    stop = threading.Event()

    def guarded(lane: int, items: Sequence[T]) -> None:
        if stop.is_set():
            return
        try:
            work(lane, items, stop)
        except BaseException:
            stop.set()
            raise

    busy = [(lane, items) for lane, items in enumerate(lanes) if items]
    if concurrency <= 1 or len(busy) <= 1:
        for lane, items in busy:
            guarded(lane, items)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lane") as pool:
        futures = [pool.submit(guarded, lane, items) for lane, items in busy]
        error: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as err:
                error = error or err
        if error is not None:
            raise error
