"""``archiver.archive.fetch``: objects in, their fetches out in the same order, within bounds.

The fetch functions here stand in for a store's reads; they block on barriers
and events rather than sleep, so what is checked (order, errors, how many run
at once, how much is held ahead) does not depend on timing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from archiver.archive.fetch import QUEUED_PER_REQUEST, fetch_ahead
from archiver.archive.store import StoredObject


def objects(count: int, size: int = 100) -> list[StoredObject]:
    return [StoredObject(f"part={i // 10}/file-{i:04d}.parquet", size) for i in range(count)]


class Gauge:
    """How many fetches run at once, and the most that ever did."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started: list[str] = []

    def __enter__(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.running -= 1


def test_results_come_in_the_order_of_the_objects_whatever_order_they_finish_in() -> None:
    # Given fetches that finish in a shuffled order
    rng = random.Random(3)
    items = objects(200)

    def fetch(obj: StoredObject) -> str:
        time.sleep(rng.random() / 1000)  # jitter only: nothing below depends on it
        return obj.key.upper()

    # When they are fetched ahead, then Then each result comes at its object's place
    results = [(item.obj, item.result()) for item in fetch_ahead(items, fetch, in_flight=8)]
    assert results == [(obj, obj.key.upper()) for obj in items]


def test_an_error_comes_with_its_object_and_the_objects_after_it_still_come() -> None:
    # Given one object in the middle whose fetch fails, naming it
    items = objects(50)

    def fetch(obj: StoredObject) -> str:
        if obj is items[20]:
            raise FileNotFoundError(f"no such object {obj.key}")
        return obj.key

    fetched = fetch_ahead(items, fetch, in_flight=4)
    # Then the ones before it come as they are
    assert [next(fetched).result() for _ in range(20)] == [o.key for o in items[:20]]
    # and its error is raised when the caller reaches it, naming it
    failed = next(fetched)
    with pytest.raises(FileNotFoundError, match=items[20].key):
        failed.result()
    # and the caller may go on with the rest
    assert [item.result() for item in fetched] == [o.key for o in items[21:]]


@pytest.mark.parametrize("in_flight", [1, 3, 16])
def test_as_many_fetches_run_at_once_as_allowed_and_never_more(in_flight: int) -> None:
    # Given fetches that wait until `in_flight` of them run at the same time: a fetcher that
    # ran fewer at once would break the barrier (a BrokenBarrierError, after its timeout)
    gauge = Gauge()
    barrier = threading.Barrier(in_flight, timeout=60)
    items = objects(10 * in_flight)

    def fetch(obj: StoredObject) -> str:
        with gauge:
            if obj in items[:in_flight]:
                barrier.wait()
            time.sleep(0.001)  # hold the slot, so that a fetcher running more would show it
            return obj.key

    # When every object is fetched
    results = [item.result() for item in fetch_ahead(items, fetch, in_flight=in_flight)]
    # Then all came, and exactly `in_flight` ran at once at most
    assert results == [o.key for o in items]
    assert gauge.peak == in_flight


def test_no_more_bytes_are_fetched_ahead_than_the_bound_unless_one_object_is_larger() -> None:
    # Given objects of mixed sizes, some larger than the bound by themselves
    rng = random.Random(5)
    bound = 10_000
    items = [
        StoredObject(f"file-{i:03d}", rng.choice([10, 500, 3_000, 9_000, 25_000]))
        for i in range(300)
    ]
    index = {obj.key: i for i, obj in enumerate(items)}
    started: set[int] = set()
    lock = threading.Lock()

    def fetch(obj: StoredObject) -> int:
        with lock:
            started.add(index[obj.key])
        return obj.size

    # When the caller takes them one by one
    for position, item in enumerate(fetch_ahead(items, fetch, in_flight=4, bytes_ahead=bound)):
        assert item.result() == items[position].size
        # Then what has been fetched (or started) beyond its position weighs no more than the
        # bound, or is one object alone (the caller needs it next, whatever its size)
        with lock:
            ahead = [i for i in started if i > position]
        assert sum(items[i].size for i in ahead) <= bound or len(ahead) == 1


def test_objects_are_taken_lazily_and_never_further_ahead_than_the_queue() -> None:
    # Given a source that counts what is taken from it
    taken: list[StoredObject] = []

    def source() -> Iterator[StoredObject]:
        for obj in objects(1_000, size=0):
            taken.append(obj)
            yield obj

    fetched = fetch_ahead(source(), lambda obj: obj.key, in_flight=2)
    # Then nothing is taken, or fetched, before the caller asks for the first result
    assert taken == []
    first = next(fetched)
    assert first.result() == "part=0/file-0000.parquet"
    # and then no more than the queue holds (objects of no weight: only the count bounds it)
    assert len(taken) <= 2 * QUEUED_PER_REQUEST + 1
    fetched.close()


def test_closing_early_starts_nothing_more_and_waits_for_what_runs() -> None:
    # Given a fetch of many objects whose caller stops after the first
    gauge = Gauge()
    items = objects(500)

    def fetch(obj: StoredObject) -> str:
        with gauge:
            gauge.started.append(obj.key)
            time.sleep(0.001)
            return obj.key

    before = set(threading.enumerate())
    fetched = fetch_ahead(items, fetch, in_flight=4)
    assert next(fetched).result() == items[0].key
    # When it closes the iterator
    fetched.close()
    # Then nothing runs any more (its threads are gone), and no more was started than was
    # queued ahead
    assert gauge.running == 0
    assert [t for t in threading.enumerate() if t not in before] == []
    assert len(gauge.started) <= 1 + 4 * QUEUED_PER_REQUEST


def test_in_flight_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="in_flight"):
        next(fetch_ahead(objects(1), lambda obj: obj.key, in_flight=0))
