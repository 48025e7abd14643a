"""DynamoDB JSON: validation with attribute paths, and plain JSON checked against boto3."""

from __future__ import annotations

import base64
import copy
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.dynamojson import (
    ATTRIBUTE_TYPES,
    _check_map,
    _Invalid,
    _valid_map,
    check_image,
    check_keys,
    json_number,
    plain_json,
    to_client,
    to_client_item,
)
from archiver.archive.errors import RecordError
from tests.strategies import attribute_names, attribute_values, images, number_texts

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
DESERIALIZER = TypeDeserializer()


# --- the oracle: boto3's TypeDeserializer -------------------------------------


def to_wire(av: dict[str, Any]) -> dict[str, Any]:
    """Lambda-event form -> the form boto3 deserializes (binary as bytes, not base64 text)."""
    [(tag, v)] = av.items()
    if tag == "B":
        return {"B": base64.b64decode(v)}
    if tag == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if tag == "M":
        return {"M": {name: to_wire(x) for name, x in v.items()}}
    if tag == "L":
        return {"L": [to_wire(x) for x in v]}
    return av


def _leaf(value: Any, binary: bool = False) -> Any:
    """A leaf tagged with its JSON type (True == Decimal(1) must not pass for equal)."""
    if isinstance(value, Binary):
        return ("B", base64.b64encode(value.value).decode())
    if binary:
        return ("B", value)  # plain JSON keeps binary as base64 text
    return (type(value).__name__, value)


def canonical(av: dict[str, Any], value: Any) -> Any:
    """``value`` (deserialized, or parsed plain JSON): sets as sorted lists, binary as base64."""
    [(tag, v)] = av.items()
    if tag == "M":
        assert isinstance(value, dict)
        assert list(value) == list(v)
        return {name: canonical(v[name], value[name]) for name in v}
    if tag == "L":
        assert isinstance(value, list)
        return [canonical(x, y) for x, y in zip(v, value, strict=True)]
    if tag in ("SS", "NS", "BS"):
        assert len(value) == len(v)
        return sorted(_leaf(member, tag == "BS") for member in value)
    return _leaf(value, tag == "B")


@PROPERTY
@given(images())
def test_plain_json_equals_type_deserializer(image: dict[str, Any]) -> None:
    # Given an item in Lambda-event form, When it becomes plain JSON,
    # Then parsed with Decimals it equals what boto3 deserializes (sets sorted, binary base64).
    loaded = json.loads(plain_json(image), parse_float=Decimal, parse_int=Decimal)
    expected = {name: DESERIALIZER.deserialize(to_wire(av)) for name, av in image.items()}
    assert list(loaded) == list(image)
    for name, av in image.items():
        plain, oracle = canonical(av, loaded[name]), canonical(av, expected[name])
        assert plain == oracle


class Token(str):
    """A JSON number token exactly as written."""


def _numbers(av: dict[str, Any], value: Any) -> list[tuple[str, Any]]:
    """(typed text, plain token) for every number in an attribute value."""
    [(tag, v)] = av.items()
    if tag == "N":
        return [(v, value)]
    if tag == "NS":
        return list(zip(v, value, strict=True))
    if tag == "M":
        return [pair for name in v for pair in _numbers(v[name], value[name])]
    if tag == "L":
        return [pair for x, y in zip(v, value, strict=True) for pair in _numbers(x, y)]
    return []


@PROPERTY
@given(images())
def test_plain_json_keeps_numbers_digit_for_digit(image: dict[str, Any]) -> None:
    loaded = json.loads(plain_json(image), parse_float=Token, parse_int=Token)
    for name, av in image.items():
        for text, token in _numbers(av, loaded[name]):
            assert isinstance(token, Token)
            if JSON_NUMBER.fullmatch(text):
                assert token == text
            else:
                assert JSON_NUMBER.fullmatch(token)
                assert Decimal(token) == Decimal(text)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("1.50", "1.50"),
        ("-0.001", "-0.001"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1E+125", "1E+125"),
        ("1e-130", "1e-130"),
        ("-0", "-0"),
        ("+7", "7"),
        (".5", "0.5"),
        ("5.", "5"),
        ("007", "7"),
        ("00.10", "0.10"),
        ("+1.5e3", "1.5E+3"),
    ],
)
def test_json_number_keeps_the_value_and_digits(text: str, plain: str) -> None:
    assert json_number(text) == plain
    assert plain_json({"n": {"N": text}, "s": {"NS": [text]}}) == f'{{"n":{plain},"s":[{plain}]}}'


def test_plain_json_of_every_type() -> None:
    image = {
        "s": {"S": ""},
        "n": {"N": "1.50"},
        "b": {"B": "AP8="},
        "t": {"BOOL": True},
        "z": {"NULL": True},
        "m": {"M": {}},
        "l": {"L": [{"S": "x"}, {"N": "2"}]},
        "ss": {"SS": ["b", "a"]},
        "ns": {"NS": ["10", "9"]},
        "bs": {"BS": ["AQ==", "AA=="]},
    }
    assert plain_json(image) == (
        '{"s":"","n":1.50,"b":"AP8=","t":true,"z":null,"m":{},"l":["x",2],'
        '"ss":["b","a"],"ns":[10,9],"bs":["AQ==","AA=="]}'
    )


# --- validation: a valid image passes both walks --------------------------------


def _explains(image: dict[str, Any]) -> _Invalid | None:
    try:
        _check_map(image)
    except _Invalid as err:
        return err
    return None


@PROPERTY
@given(images())
def test_valid_images_pass_both_walks(image: dict[str, Any]) -> None:
    assert _valid_map(image)
    assert _explains(image) is None
    check_image(image, "NewImage")


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0.0",
        "1E+125",
        "1e-130",
        "-1E-130",
        "-1E+125",
        "9.9999999999999999999999999999999999999E+125",
        "-9.9999999999999999999999999999999999999E+125",
        "12345678901234567890123456789012345678",
        "0.12345678901234567890123456789012345678",
        "1234567890123456789012345678901234567.8E-50",
        "0E+999999999",
        ".5",
        "5.",
        "+1",
        "007",
    ],
)
def test_numbers_dynamodb_accepts(text: str) -> None:
    check_image({"x": {"N": text}, "y": {"NS": [text]}}, "NewImage")


# --- validation: each problem is named with its attribute path ------------------

SECRET = "s3cr3t-VALUE-4711"

BAD_VALUES: list[tuple[Any, str]] = [
    ({"Q": "1"}, "unknown attribute type 'Q'"),
    ({"N": "abc"}, "N must hold a number"),
    ({"N": "1" * 39}, "38 digits"),
    ({"N": "1." + "2" * 38}, "38 digits"),
    ({"N": "-12345678901234567890123456789012345678.9"}, "38 digits"),
    ({"N": "1E+126"}, "N must hold"),
    ({"N": "-1e126"}, "N must hold"),
    ({"N": "1e-131"}, "N must hold"),
    ({"N": "0.1e-130"}, "N must hold"),
    ({"N": "1e999999999"}, "N must hold"),
    ({"N": "1e-999999999"}, "N must hold"),
    ({"N": "\u00b2"}, "N must hold"),  # superscript two: isdigit() but not a number
    ({"N": "\u0661\u0662"}, "N must hold"),  # Arabic-Indic digits
    ({"N": ""}, "N must hold"),
    ({"N": " 1"}, "N must hold"),
    ({"N": "NaN"}, "N must hold"),
    ({"N": "Infinity"}, "N must hold"),
    ({"N": "1_000"}, "N must hold"),
    ({"N": "0x10"}, "N must hold"),
    ({"N": "1e"}, "N must hold"),
    ({"N": "."}, "N must hold"),
    ({"N": 1}, "got a number"),
    ({"B": "not base64!"}, "B must hold base64"),
    ({"B": "QQ"}, "B must hold base64"),
    ({"B": "QUJD RA=="}, "B must hold base64"),
    ({"B": 5}, "B must hold base64"),
    ({"SS": []}, "non-empty"),
    ({"NS": []}, "non-empty"),
    ({"BS": []}, "non-empty"),
    ({"SS": "a"}, "SS must hold a non-empty list"),
    ({"SS": ["a", 1]}, "SS must hold strings"),
    ({"NS": ["1", "x"]}, "NS must hold numbers"),
    ({"NS": [1]}, "NS must hold numbers"),
    ({"BS": ["%%%%"]}, "BS must hold base64"),
    ({"NULL": False}, "NULL must hold true"),
    ({"NULL": "true"}, "NULL must hold true"),
    ({"BOOL": "true"}, "BOOL must hold true or false"),
    ({"BOOL": 1}, "BOOL must hold true or false"),
    ({"S": "a", "N": "1"}, "one type key"),
    ({}, "one type key"),
    ("plain", "one type key, got a string"),
    (None, "got null"),
    (5, "got a number"),
    (["S", "a"], "got a list"),
    ({"S": 1}, "S must hold a string"),
    ({"M": []}, "M must hold a map"),
    ({"L": {}}, "L must hold a list"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_VALUES)
def test_check_image_names_the_path_and_the_problem(bad: Any, reason: str) -> None:
    image = {
        "pk": {"S": "a"},
        "x": {"M": {"ok": {"N": "1"}, "y": bad}},
        "l": {"L": [{"S": "a"}, {"N": "2"}, bad]},
    }
    with pytest.raises(RecordError) as caught:
        check_image(image, "NewImage")
    assert caught.value.where == "NewImage.x.*"  # a key inside a map may be item data
    assert reason in caught.value.reason
    assert str(caught.value) == f"NewImage.x.*: {caught.value.reason}"

    del image["x"]
    with pytest.raises(RecordError) as caught:
        check_image(image, "orders/e1/100 OldImage")
    assert caught.value.where == "orders/e1/100 OldImage.l[2]"
    assert not _valid_map(image)


def test_path_through_lists_and_maps() -> None:
    image = {"a": {"L": [{"M": {"b": {"L": [{"S": "x"}, {"M": {"[c]": {"NULL": False}}}]}}}]}}
    with pytest.raises(RecordError, match=re.escape(r"NewImage.a[0].*[1].*: NULL must hold true")):
        check_image(image, "NewImage")


@pytest.mark.parametrize("image", [None, [], "x", 1, [{"S": "a"}]])
def test_check_image_wants_a_map(image: Any) -> None:
    with pytest.raises(RecordError, match=r"^NewImage: must be a map of attribute values"):
        check_image(image, "NewImage")


@pytest.mark.parametrize("bad", [bad for bad, _ in BAD_VALUES])
def test_messages_hold_types_never_values(bad: Any) -> None:
    # the bad value sits beside a secret; the secret is also the bad value where a string can be
    secret_bad = json.loads(json.dumps(bad).replace('"a"', json.dumps(SECRET)))
    with pytest.raises(RecordError) as caught:
        check_image({"card": {"S": SECRET}, "x": secret_bad}, "NewImage")
    assert SECRET not in str(caught.value)
    with pytest.raises(RecordError) as caught:
        check_image({"x": {"N": SECRET}}, "NewImage")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"N": "x"},  # a bad value under the secret map key
        {SECRET: "1"},  # the secret as a type key
        {"S": "a", SECRET: "1"},  # among the keys of an attribute value
    ],
    ids=["value", "type-key", "keys"],
)
def test_messages_hold_no_map_keys(bad: Any) -> None:
    # Given an image whose map attribute is keyed by item data (an e-mail address)
    image = {"by_email": {"M": {SECRET: {"M": {"n": bad}}}}, "l": {"L": [{"M": {SECRET: bad}}]}}
    # When it is checked, Then the message names the attribute, the depth and the type only
    with pytest.raises(RecordError) as caught:
        check_image(image, "orders/e1/100 NewImage")
    assert SECRET not in str(caught.value)
    assert caught.value.where == "orders/e1/100 NewImage.by_email.*.*"
    del image["by_email"]
    with pytest.raises(RecordError) as caught:
        check_image(image, "NewImage")
    assert SECRET not in str(caught.value)
    assert caught.value.where == "NewImage.l[0].*"


def test_plain_json_of_a_bad_number_does_not_show_it() -> None:
    with pytest.raises(RecordError) as caught:
        plain_json({"n": {"N": SECRET}})
    assert SECRET not in str(caught.value) and "N must hold a number" in str(caught.value)


# --- the two walks agree on corrupted and on arbitrary input --------------------


def value_paths(image: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Every attribute value's path: names (str) into maps, indexes (int) into lists."""
    paths: list[tuple[str | int, ...]] = []

    def walk_value(av: dict[str, Any], here: tuple[str | int, ...]) -> None:
        [(tag, v)] = av.items()
        if tag == "M":
            walk_map(v, here)
        elif tag == "L":
            for i, item in enumerate(v):
                paths.append((*here, i))
                walk_value(item, (*here, i))

    def walk_map(m: dict[str, Any], here: tuple[str | int, ...]) -> None:
        for name, av in m.items():
            paths.append((*here, name))
            walk_value(av, (*here, name))

    walk_map(image, ())
    return paths


def replaced(image: dict[str, Any], path: tuple[str | int, ...], new: Any) -> dict[str, Any]:
    image = copy.deepcopy(image)
    container: Any = image
    for step in path[:-1]:
        av = container[step]
        container = av["M"] if "M" in av else av["L"]
    container[path[-1]] = new
    return image


def path_text(path: tuple[str | int, ...]) -> str:
    """The path as messages give it: the top-level name, list indexes, map keys as ``*``."""
    top, *inner = path
    return f".{top}" + "".join(f"[{step}]" if isinstance(step, int) else ".*" for step in inner)


@PROPERTY
@given(images(), st.data())
def test_any_corruption_fails_both_walks_at_its_path(
    image: dict[str, Any], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(value_paths(image)))
    bad, reason = data.draw(st.sampled_from(BAD_VALUES))
    corrupted = replaced(image, path, bad)
    assert not _valid_map(corrupted)
    assert _explains(corrupted) is not None
    with pytest.raises(RecordError) as caught:
        check_image(corrupted, "NewImage")
    assert caught.value.where == "NewImage" + path_text(path)
    assert reason in caught.value.reason


_odd_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.sampled_from(["", "1", "-1.5e3", "1e200", "\u00b2", "\u0661", "x", "QQ==", "QQ", "AP8="]),
)
_odd_values = st.recursive(
    _odd_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from([*sorted(ATTRIBUTE_TYPES), "X", "s"]), children, max_size=2
        ),
    ),
    max_leaves=12,
)


@PROPERTY
@given(st.dictionaries(attribute_names, st.one_of(attribute_values, _odd_values), max_size=4))
def test_fast_and_explaining_walks_always_agree(image: dict[str, Any]) -> None:
    assert _valid_map(image) == (_explains(image) is None)


# --- keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        {"pk": {"S": "a"}},
        {"pk": {"N": "1"}, "sk": {"B": "AP8="}},
        {"\u540d\u524d": {"S": "\u00e9"}},
    ],
)
def test_check_keys_accepts_s_n_b(keys: dict[str, Any]) -> None:
    check_keys(keys)


@pytest.mark.parametrize(
    "av",
    [
        {"BOOL": True},
        {"NULL": True},
        {"M": {}},
        {"L": []},
        {"SS": ["a"]},
        {"NS": ["1"]},
        {"BS": ["AA=="]},
    ],
)
def test_check_keys_rejects_other_types(av: dict[str, Any]) -> None:
    tag = next(iter(av))
    with pytest.raises(RecordError) as caught:
        check_keys({"pk": {"S": "a"}, "sk": av}, "orders/e1/100 Keys")
    assert caught.value.where == "orders/e1/100 Keys.sk"
    assert f"must be S, N or B, got {tag}" in caught.value.reason


def test_check_keys_rejects_empty_and_invalid() -> None:
    with pytest.raises(RecordError, match=r"^Keys: must name at least one key attribute"):
        check_keys({})
    with pytest.raises(RecordError, match=r"^Keys\.pk: N must hold"):
        check_keys({"pk": {"N": "x"}})
    with pytest.raises(RecordError, match=r"^Keys: must be a map"):
        check_keys([{"S": "a"}])


@PROPERTY
@given(number_texts)
def test_generated_numbers_are_valid_and_exact(text: str) -> None:
    check_image({"n": {"N": text}}, "NewImage")
    assert Decimal(json_number(text)) == DESERIALIZER.deserialize({"N": text}) == Decimal(text)
    loaded = json.loads(plain_json({"n": {"N": text}}), parse_float=Decimal, parse_int=Decimal)
    assert loaded["n"] == Decimal(text)


def test_items_go_to_the_low_level_client_with_binary_as_bytes() -> None:
    # Given an item as the stream carries it: binary as base64 text, at any depth
    item = {
        "pk": {"S": "a"},
        "n": {"N": "1.50"},
        "b": {"B": "AAH/"},
        "bs": {"BS": ["AA==", "/w=="]},
        "m": {"M": {"inner": {"B": "AQ=="}, "s": {"SS": ["x"]}}},
        "l": {"L": [{"B": "Ag=="}, {"NULL": True}]},
    }
    # When it is converted for boto3's client
    converted = to_client_item(item)
    # Then binary is bytes wherever it is, and every other value is as it was
    assert converted == {
        "pk": {"S": "a"},
        "n": {"N": "1.50"},
        "b": {"B": b"\x00\x01\xff"},
        "bs": {"BS": [b"\x00", b"\xff"]},
        "m": {"M": {"inner": {"B": b"\x01"}, "s": {"SS": ["x"]}}},
        "l": {"L": [{"B": b"\x02"}, {"NULL": True}]},
    }
    assert to_client({"N": "1E-130"}) == {"N": "1E-130"}
