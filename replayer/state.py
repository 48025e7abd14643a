"""State folding: ordered changes in, the last change of every item out, column-wise.

The state of a table at T is, for each item, its last change at or before T:
its NewImage, or nothing when that change is a REMOVE. Partitions are folded
one at a time with Arrow's hash aggregation (no Python loop over events), so
memory holds the state (one row per item) plus one hour of changes.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from archiver.archive.schema import Col

__all__ = ["STATE_COLUMNS", "fold", "fold_all", "state_schema"]

STATE_COLUMNS = (Col.ITEM_KEY, Col.EVENT_NAME, Col.KEYS, Col.NEW_IMAGE, Col.CHANGE_TIME)
_ROW = "__row"
MIN_FOLD_ROWS = 200_000


def state_schema() -> pa.Schema:
    """The state's columns; ``old_image`` is kept for REMOVEs only (conditional deletes need it)."""
    return pa.schema(
        [
            pa.field(Col.ITEM_KEY, pa.string()),
            pa.field(Col.EVENT_NAME, pa.string()),
            pa.field(Col.KEYS, pa.string()),
            pa.field(Col.NEW_IMAGE, pa.string()),
            pa.field(Col.CHANGE_TIME, pa.timestamp("us", tz="UTC")),
            pa.field(Col.OLD_IMAGE, pa.string()),
        ]
    )


def fold(state: pa.Table | None, changes: pa.Table) -> pa.Table:
    """The last change per item of ``state`` followed by ``changes`` (each already in order).

    ``changes`` may carry ``old_image``; it is kept on REMOVE rows only, so the
    state does not hold every item's previous image.
    """
    empty = pa.scalar(None, pa.string())
    if Col.OLD_IMAGE in changes.column_names:
        removed = pc.if_else(
            pc.equal(changes.column(Col.EVENT_NAME), "REMOVE"), changes.column(Col.OLD_IMAGE), empty
        )
    else:
        removed = pa.nulls(changes.num_rows, pa.string())
    changes = (
        changes.select(list(STATE_COLUMNS))
        .append_column(Col.OLD_IMAGE, removed)
        .cast(state_schema())
    )
    combined = changes if state is None else pa.concat_tables([state, changes])
    if combined.num_rows == 0:
        return combined
    ones = pa.repeat(pa.scalar(1, pa.int64()), combined.num_rows)
    numbers = pc.subtract(pc.cumulative_sum(ones), 1)  # 0 .. n-1, built in C
    combined = combined.append_column(_ROW, numbers)
    last = combined.group_by(Col.ITEM_KEY, use_threads=False).aggregate([(_ROW, "max")])
    rows = pc.sort_indices(last.column(f"{_ROW}_max"))
    return combined.take(last.column(f"{_ROW}_max").take(rows)).drop_columns([_ROW])


def fold_all(
    tables: Iterable[pa.Table], state: pa.Table | None = None, min_rows: int = MIN_FOLD_ROWS
) -> pa.Table:
    """Fold every table in order; the result is sorted by item key (a stable order for lanes).

    Each fold copies the state, so changes are gathered until they are about as
    many rows as the state (and at least ``min_rows``) before folding: the
    cost stays proportional to the changes, not to partitions times state.
    Memory holds the state plus about as many pending rows.
    """
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in tables:
        if not table.num_rows:
            continue
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= max(min_rows, state.num_rows if state is not None else 0):
            state = fold(state, pa.concat_tables(pending, promote_options="permissive"))
            pending, pending_rows = [], 0
            pa.default_memory_pool().release_unused()  # keep RSS at what Arrow holds
    if pending:
        state = fold(state, pa.concat_tables(pending, promote_options="permissive"))
    if state is None:
        return state_schema().empty_table()
    return state.take(pc.sort_indices(state, sort_keys=[(Col.ITEM_KEY, "ascending")]))
