"""State folding (replayer.state): Arrow's column-wise fold equals a plain Python fold.

The oracle is the definition: walk every change in order and keep, for each
item, the last one (a REMOVE included, as a tombstone); an optional base state
(an export) comes first. Histories are random: few keys so that they repeat
within and across partitions, REMOVEs and re-inserts, empty partitions,
unicode keys.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive.schema import Col
from replayer.state import STATE_COLUMNS, fold, fold_all, state_schema

EVENTS = ["INSERT", "MODIFY", "REMOVE"]

Change = tuple[str, str, str]  # key, event name, payload


def item_key(key: str) -> str:
    return orjson.dumps({"pk": {"S": key}}, option=orjson.OPT_SORT_KEYS).decode()


def row(key: str, name: str, payload: str, time_us: int) -> dict[str, Any]:
    keys = {"pk": {"S": key}}
    image = None if name == "REMOVE" else orjson.dumps({**keys, "v": {"S": payload}}).decode()
    return {
        Col.ITEM_KEY: item_key(key),
        Col.EVENT_NAME: name,
        Col.KEYS: orjson.dumps(keys).decode(),
        Col.NEW_IMAGE: image,
        Col.CHANGE_TIME: time_us,
        Col.OLD_IMAGE: orjson.dumps({**keys, "v": {"S": f"before-{payload}"}}).decode(),
    }


def table(rows: list[dict[str, Any]], *, extra: bool = True) -> pa.Table:
    """Rows as the archive reader gives them: more columns than the fold needs, in another order."""
    columns = {name: [r[name] for r in rows] for name in reversed(STATE_COLUMNS)}
    columns[Col.CHANGE_TIME] = pa.array(columns[Col.CHANGE_TIME], pa.timestamp("us", tz="UTC"))
    if extra:
        columns[Col.OLD_IMAGE] = [r[Col.OLD_IMAGE] for r in rows]
        columns[Col.STREAM_VIEW_TYPE] = ["NEW_AND_OLD_IMAGES"] * len(rows)
        columns[Col.SEQUENCE_NUMBER] = [str(10**20 + i) for i in range(len(rows))]
    return pa.table(columns)


def state_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as a state (an export's items): exactly the state schema."""
    base = table(rows, extra=False).select(list(STATE_COLUMNS))
    return base.append_column(Col.OLD_IMAGE, pa.nulls(len(rows), pa.string())).cast(state_schema())


def python_fold(
    partitions: list[list[dict[str, Any]]], base: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    for r in base:
        state[r[Col.ITEM_KEY]] = {**r, Col.OLD_IMAGE: None}
    for partition in partitions:
        for r in partition:
            # the previous image is kept for REMOVEs only (conditional deletes use it)
            removed = r[Col.EVENT_NAME] == "REMOVE"
            state[r[Col.ITEM_KEY]] = {**r, Col.OLD_IMAGE: r[Col.OLD_IMAGE] if removed else None}
    return [state[k] for k in sorted(state)]


def rows_of(result: pa.Table) -> list[dict[str, Any]]:
    assert result.schema.equals(state_schema())
    result = result.set_column(
        result.schema.get_field_index(Col.CHANGE_TIME),
        Col.CHANGE_TIME,
        result.column(Col.CHANGE_TIME).cast(pa.int64()),
    )
    return result.to_pylist()


keys_ = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    pool = draw(keys_)
    change = st.tuples(st.sampled_from(pool), st.sampled_from(EVENTS), st.text(max_size=4))
    clock = 1_795_000_000_000_000
    partitions = []
    for changes in draw(st.lists(st.lists(change, max_size=12), max_size=5)):
        rows = []
        for key, name, payload in changes:
            clock += draw(st.integers(0, 10**9))  # equal times happen: order decides
            rows.append(row(key, name, payload, clock))
        partitions.append(rows)
    base_keys = draw(st.lists(st.sampled_from(pool), unique=True))
    base = [
        row(key, "INSERT", f"export-{i}", 1_794_000_000_000_000) for i, key in enumerate(base_keys)
    ]
    return partitions, base


@given(histories(), st.sampled_from([1, 3, 200_000]))
@settings(max_examples=200, deadline=None)
def test_fold_all_is_the_last_change_of_every_item(
    history: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]], min_rows: int
) -> None:
    # Given partitions of ordered changes, and maybe a base state (an export)
    partitions, base = history
    base_table = state_table(base) if base else None

    # When they are folded column-wise, gathering changes into folds of any size
    result = fold_all((table(p) for p in partitions), base_table, min_rows=min_rows)

    # Then each item's row is its last change (REMOVEs kept as tombstones), sorted by item key
    assert rows_of(result) == python_fold(partitions, base)


@given(histories())
@settings(max_examples=100, deadline=None)
def test_folding_hour_by_hour_equals_folding_everything_at_once(
    history: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    # Given a history split in partitions; When folded one partition at a time, and as one table
    partitions, _ = history
    everything = [r for p in partitions for r in p]
    by_hour = fold_all(table(p) for p in partitions)
    at_once = fold_all([table(everything)])

    # Then the two states are the same
    assert rows_of(by_hour) == rows_of(at_once)


def test_nothing_to_fold_is_an_empty_state() -> None:
    # Given no changes (or only empty partitions); When folded; Then the state is empty, typed
    assert fold_all([]).num_rows == 0
    assert fold_all([table([]), table([])]).schema.equals(state_schema())


def test_a_base_state_with_no_changes_comes_back_sorted() -> None:
    # Given a base state out of key order and no changes
    base = state_table([row("b", "INSERT", "1", 1), row("a", "INSERT", "2", 1)])

    # When folded; Then it is the same state, sorted by item key
    result = fold_all([], base)
    assert [r[Col.ITEM_KEY] for r in rows_of(result)] == [item_key("a"), item_key("b")]


def test_a_large_history_in_many_chunks() -> None:
    # Given 40,000 changes to 3,000 items in 12 partitions of several chunks each
    rng = random.Random(7)
    partitions = []
    clock = 0
    for _ in range(12):
        rows = []
        for _ in range(rng.randrange(2_000, 5_000)):
            clock += 1
            rows.append(row(f"item-{rng.randrange(3_000)}", rng.choice(EVENTS), str(clock), clock))
        partitions.append(rows)
    tables = []
    for rows in partitions:
        third = len(rows) // 3
        tables.append(
            pa.concat_tables(
                [table(rows[:third]), table(rows[third : 2 * third]), table(rows[2 * third :])]
            )
        )

    # When folded; Then it matches the Python fold
    assert rows_of(fold_all(tables)) == python_fold(partitions, [])


def test_fold_rejects_a_table_without_the_state_columns() -> None:
    # Given changes that lack the new_image column; When folded; Then Arrow says which is missing
    changes = table([row("a", "INSERT", "1", 1)]).drop_columns([Col.NEW_IMAGE])
    with pytest.raises(KeyError, match=Col.NEW_IMAGE):
        fold(None, changes)
