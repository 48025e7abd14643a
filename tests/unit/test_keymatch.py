"""The --key filter: a plain JSON key matched exactly against ``item_key``, never through floats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.keymatch import key_mask, parse_key
from tests.strategies import attribute_names, binary_texts, number_texts

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = "10000000000000000000000000000000000003"  # 38 digits: floats cannot tell its neighbours


def item_keys(*keys: dict[str, Any]) -> pa.ChunkedArray:
    """An ``item_key`` column as the writer spells it."""
    texts = [orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode() for key in keys]
    return pa.chunked_array([pa.array(texts, pa.string())])


def matches(column: pa.ChunkedArray, text: str) -> list[bool]:
    result: list[bool] = key_mask(column, parse_key(text)).to_pylist()
    return result


# --- the oracle: parse each key and compare typed values -----------------------------------------


def oracle(key: dict[str, Any], wanted: dict[str, str | Decimal]) -> bool:
    for name, value in wanted.items():
        if name not in key:
            return False
        [(tag, text)] = key[name].items()
        if isinstance(value, str):
            if tag not in ("S", "B") or text != value:
                return False
        elif tag != "N" or Decimal(text) != value:
            return False
    return True


key_values = st.one_of(
    st.text(min_size=1, max_size=12).map(lambda s: {"S": s}),
    number_texts.map(lambda n: {"N": n}),
    binary_texts.filter(bool).map(lambda b: {"B": b}),
)
keys = st.dictionaries(
    st.one_of(st.sampled_from(["pk", "sk", 'a"b', "a.b*", "\\", "é"]), attribute_names),
    key_values,
    min_size=1,
    max_size=2,
)


def plain(av: dict[str, str]) -> str | Decimal:
    [(tag, text)] = av.items()
    return Decimal(text) if tag == "N" else text


@PROPERTY
@given(st.lists(keys, min_size=1, max_size=8), st.data())
def test_key_mask_matches_the_typed_comparison(rows: list[dict[str, Any]], data: Any) -> None:
    # Given item keys, and a key (all or some of one row's attributes, numbers respelled)
    source = data.draw(st.sampled_from(rows))
    names = data.draw(st.lists(st.sampled_from(sorted(source)), min_size=1, unique=True))
    wanted = {name: plain(source[name]) for name in names}
    for name, value in wanted.items():
        if isinstance(value, Decimal) and data.draw(st.booleans()):
            wanted[name] = Decimal(value.to_eng_string())  # another spelling, the same number
    extra = data.draw(attribute_names)
    if extra not in wanted and data.draw(st.booleans()):
        wanted[extra] = data.draw(st.sampled_from(["x", Decimal(1)]))

    # When matched; Then each row matches exactly when its typed values are equal
    mask = key_mask(item_keys(*rows), wanted).to_pylist()
    assert mask == [oracle(row, wanted) for row in rows]
    assert mask[rows.index(source)] or len(wanted) > len(names)


def test_a_38_digit_key_matches_only_itself() -> None:
    # Given items keyed by numbers that differ only past a float's 17 digits
    neighbours = [str(int(BIG) + d) for d in range(-6, 7)]
    column = item_keys(*({"n": {"N": n}} for n in neighbours))
    assert len({float(n) for n in neighbours}) == 1

    # When the key is given as a JSON number; Then exactly one item matches
    assert matches(column, f'{{"n": {BIG}}}') == [n == BIG for n in neighbours]
    assert matches(column, f'{{"n": {BIG}.000}}') == [n == BIG for n in neighbours]


def test_numbers_match_by_value_whatever_their_spelling() -> None:
    column = item_keys(*({"sk": {"N": n}} for n in ["7", "7.0", "007", "7E0", "70", "-7", "0.7E1"]))
    assert matches(column, '{"sk": 7}') == [True, True, True, True, False, False, True]
    assert matches(column, '{"sk": 7e0}') == matches(column, '{"sk": 7}')


def test_strings_match_s_or_b_exactly_and_never_numbers() -> None:
    column = item_keys(
        {"pk": {"S": "order#1"}},
        {"pk": {"S": "order#10"}},
        {"pk": {"B": "AAE="}},
        {"pk": {"S": "AAE="}},
        {"pk": {"N": "1"}},
        {"xpk": {"S": "order#1"}},
        {"pk": {"S": 'order#1"}'}},
    )
    assert matches(column, '{"pk": "order#1"}') == [True] + [False] * 6
    assert matches(column, '{"pk": "AAE="}') == [False, False, True, True, False, False, False]
    assert matches(column, '{"pk": "1"}') == [False] * 7
    assert matches(column, '{"pk": 1}') == [False, False, False, False, True, False, False]


def test_some_attributes_of_the_key_select_every_item_that_has_them() -> None:
    column = item_keys(
        {"pk": {"S": "a"}, "sk": {"N": "1"}},
        {"pk": {"S": "a"}, "sk": {"N": "2"}},
        {"pk": {"S": "b"}, "sk": {"N": "1"}},
        {"pk": {"S": "a"}},  # another key schema in the same archive
    )
    assert matches(column, '{"pk": "a"}') == [True, True, False, True]
    assert matches(column, '{"sk": 1}') == [True, False, True, False]
    assert matches(column, '{"pk": "a", "sk": 1.0}') == [True, False, False, False]
    assert matches(column, '{"pk": "a", "other": "x"}') == [False] * 4


def test_parse_key_keeps_numbers_exact() -> None:
    assert parse_key(f'{{"n": {BIG}, "d": 0.10, "s": "1"}}') == {
        "n": Decimal(BIG),
        "d": Decimal("0.10"),
        "s": "1",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{pk: 1}", "not JSON"),
        ('["a"]', "expected a JSON object"),
        ("{}", "expected a JSON object"),
        ('{"pk": true}', "'pk' is a boolean"),
        ('{"pk": null}', "'pk' is null"),
        ('{"pk": [1]}', "'pk' is a list"),
        ('{"pk": {"S": "a"}}', "'pk' is an object"),
        ('{"pk": NaN}', "NaN is not a number"),
    ],
)
def test_parse_key_rejects_what_no_key_holds(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(text)
