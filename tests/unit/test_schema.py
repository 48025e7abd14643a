"""The Arrow schema and promoted columns: the spec parser and exact typed values."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.archive.errors import FormatError
from archiver.archive.schema import (
    BASE_COLUMN_NAMES,
    COLUMNS,
    METADATA_SCHEMA_VERSION,
    PARTITION_COLUMNS,
    SCHEMA_VERSION,
    PromotedColumn,
    arrow_schema,
    parse_promoted_columns,
)
from tests.strategies import attribute_values, number_texts

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DESERIALIZER = TypeDeserializer()
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

STABLE_COLUMNS = [
    "event_id",
    "event_name",
    "sequence_number",
    "change_time",
    "keys",
    "new_image",
    "old_image",
    "stream_arn",
    "stream_view_type",
    "size_bytes",
]


def test_stable_column_names_and_version_metadata() -> None:
    schema = arrow_schema()
    assert set(STABLE_COLUMNS) <= set(schema.names)
    assert schema.field("change_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("size_bytes").type == pa.int64()
    assert not schema.field("event_id").nullable
    assert schema.field("new_image").nullable
    assert schema.metadata[METADATA_SCHEMA_VERSION] == str(SCHEMA_VERSION).encode()
    assert PARTITION_COLUMNS == ("table_name", "dt", "hour")
    # partition values live in the path only
    assert not set(PARTITION_COLUMNS) & set(schema.names)
    assert all(name == name.lower() and " " not in name for name, *_ in COLUMNS)


# --- parse_promoted_columns ------------------------------------------------------


def test_parse_promoted_columns_reads_the_documented_spec() -> None:
    columns = parse_promoted_columns("customer_id:string,total=amount:decimal(18,2)")
    assert columns == (
        PromotedColumn("customer_id", "customer_id", "string"),
        PromotedColumn("total", "amount", "decimal", 18, 2),
    )
    assert columns[1].arrow_type == pa.decimal128(18, 2)
    assert columns[1].athena_type == "decimal(18,2)"


def test_parse_promoted_columns_every_type_and_spacing() -> None:
    columns = parse_promoted_columns(
        " a : string , b:bigint,c:double ,d:boolean, "
        "e = Some-Attr : decimal( 38 , 0 ),f:decimal(5,5), "
    )
    assert [(c.column, c.attribute, c.type_name, c.precision, c.scale) for c in columns] == [
        ("a", "a", "string", 0, 0),
        ("b", "b", "bigint", 0, 0),
        ("c", "c", "double", 0, 0),
        ("d", "d", "boolean", 0, 0),
        ("e", "Some-Attr", "decimal", 38, 0),
        ("f", "f", "decimal", 5, 5),
    ]
    assert [c.arrow_type for c in columns] == [
        pa.string(),
        pa.int64(),
        pa.float64(),
        pa.bool_(),
        pa.decimal128(38, 0),
        pa.decimal128(5, 5),
    ]
    assert parse_promoted_columns("") == ()


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("amount:money", "'amount:money'"),
        ("amount:decimal", "'amount:decimal'"),
        ("amount", "'amount'"),
        ("=amount:string", "'=amount:string'"),
        ("a:string,amount:int", "'amount:int'"),
        ("Customer-Id:string", "'Customer-Id:string'"),
        ("customerId:string", "'customerId'"),
        ("1st:string", "'1st:string'"),
        ("Total=amount:bigint", "'Total=amount:bigint'"),
        ("amount:decimal(39,2)", "'amount:decimal(39,2)'"),
        ("amount:decimal(0,0)", "'amount:decimal(0,0)'"),
        ("amount:decimal(2,3)", "'amount:decimal(2,3)'"),
        ("event_id:string", "'event_id'"),
        ("sequence_number=x:string", "'sequence_number'"),
        ("keys=pk:string", "'keys'"),
        ("table_name:string", "'table_name'"),
        ("dt:string", "'dt'"),
        ("hour:bigint", "'hour'"),
        ("a:string,a:bigint", "'a'"),
        ("a=x:string,a=y:double", "'a'"),
    ],
)
def test_parse_promoted_columns_rejects_bad_entries(spec: str, named: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_promoted_columns(spec)
    message = str(caught.value)
    assert named in message
    assert "promoted column" in message


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("event_id:string", "clashes"),
        ("table_name:string", "clashes"),
        ("a:string,a:bigint", "twice"),
        ("amount:money", "type one of string, bigint, double, boolean, decimal(p,s)"),
        ("Customer-Id:string", "not a valid column name"),
        ("amount:decimal(39,2)", "1 <= p <= 38"),
    ],
)
def test_parse_promoted_columns_says_why(spec: str, why: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_promoted_columns(spec)
    assert why in str(caught.value)


def test_every_archive_column_is_reserved() -> None:
    for name in BASE_COLUMN_NAMES:
        with pytest.raises(FormatError, match="clashes"):
            parse_promoted_columns(f"{name}=x:string")


def test_arrow_schema_adds_promoted_columns_and_records_them() -> None:
    promoted = parse_promoted_columns("customer_id:string,total=amount:decimal(18,2),n:bigint")
    schema = arrow_schema(promoted)
    assert schema.names[-3:] == ["customer_id", "total", "n"]
    assert schema.field("total").type == pa.decimal128(18, 2)
    assert schema.field("n").type == pa.int64()
    spec = schema.metadata[b"dynamodb_archive.promoted_columns"].decode()
    assert parse_promoted_columns(spec) == promoted


# --- PromotedColumn.value against boto3's TypeDeserializer ------------------------

COLUMN_SPECS = [
    "v:string",
    "v:bigint",
    "v:double",
    "v:boolean",
    "v:decimal(18,2)",
    "v:decimal(38,0)",
    "v:decimal(38,38)",
    "v:decimal(5,5)",
    "v:decimal(10,3)",
]


def _wire(av: dict[str, Any]) -> dict[str, Any]:
    [(tag, v)] = av.items()
    if tag == "B":
        return {"B": base64.b64decode(v)}
    if tag == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if tag in ("M", "L"):
        return {"NULL": True}  # containers never fit a promoted column; their content is not needed
    return av


def _fits_decimal(number: Decimal, precision: int, scale: int) -> bool:
    """Independent of the product: the number is exact at ``scale`` within ``precision`` digits."""
    if number == 0:
        return True
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    smallest = exponent + trailing  # exponent of the last significant digit
    return smallest >= -scale and number.adjusted() < precision - scale


def expected_value(column: PromotedColumn, av: dict[str, Any]) -> Any:
    tag = next(iter(av))
    oracle = DESERIALIZER.deserialize(_wire(av))
    kind = column.type_name
    if kind == "string":
        return oracle if tag == "S" else None
    if kind == "boolean":
        return oracle if tag == "BOOL" else None
    if tag != "N":
        return None
    if kind == "bigint":
        return (
            oracle
            if oracle == oracle.to_integral_value() and BIGINT_MIN <= oracle <= BIGINT_MAX
            else None
        )
    if kind == "double":
        return float(oracle)
    return oracle if _fits_decimal(oracle, column.precision, column.scale) else None


@PROPERTY
@given(
    st.sampled_from(COLUMN_SPECS),
    st.one_of(number_texts.map(lambda n: {"N": n}), attribute_values),
)
def test_promoted_value_is_exact_or_none(spec: str, av: dict[str, Any]) -> None:
    [column] = parse_promoted_columns(spec)
    value = column.value(av)
    expected = expected_value(column, av)
    tag = next(iter(av))
    if column.type_name == "string" and tag == "N":
        # a number promoted to a string column keeps its text exactly as written
        assert value == av["N"]
        return
    if expected is None:
        assert value is None
        return
    assert value == expected
    if column.type_name == "bigint":
        assert type(value) is int
    elif column.type_name == "double":
        assert type(value) is float
        oracle = DESERIALIZER.deserialize(av)
        if Decimal(float(oracle)) == oracle:  # exactly representable: then no rounding at all
            assert value == oracle  # float == Decimal compares exact values
    elif column.type_name == "decimal":
        assert isinstance(value, Decimal)
        assert value.as_tuple().exponent == -column.scale
        # and Arrow takes it without rounding
        assert (
            pa.array([value], pa.decimal128(column.precision, column.scale))[0].as_py() == expected
        )
    elif column.type_name == "boolean":
        assert type(value) is bool


@pytest.mark.parametrize(
    ("spec", "av", "expected"),
    [
        ("v:string", {"S": "abc"}, "abc"),
        ("v:string", {"S": ""}, ""),
        ("v:string", {"N": "1.50"}, "1.50"),
        ("v:string", {"BOOL": True}, None),
        ("v:string", {"SS": ["a"]}, None),
        ("v:bigint", {"N": "42"}, 42),
        ("v:bigint", {"N": "-9223372036854775808"}, -(2**63)),
        ("v:bigint", {"N": "9223372036854775807"}, 2**63 - 1),
        ("v:bigint", {"N": "9223372036854775808"}, None),
        ("v:bigint", {"N": "12345678901234567890123456789012345678"}, None),
        ("v:bigint", {"N": "3.0"}, 3),
        ("v:bigint", {"N": "1E+3"}, 1000),
        ("v:bigint", {"N": "3.5"}, None),
        ("v:bigint", {"N": "1e-130"}, None),
        ("v:bigint", {"S": "42"}, None),
        ("v:double", {"N": "0.5"}, 0.5),
        ("v:double", {"N": "1E+125"}, 1e125),
        ("v:double", {"S": "0.5"}, None),
        ("v:boolean", {"BOOL": False}, False),
        ("v:boolean", {"S": "true"}, None),
        ("v:boolean", {"N": "1"}, None),
        ("v:decimal(18,2)", {"N": "12.5"}, Decimal("12.50")),
        ("v:decimal(18,2)", {"N": "-0.01"}, Decimal("-0.01")),
        ("v:decimal(18,2)", {"N": "1.505"}, None),
        ("v:decimal(18,2)", {"N": "9999999999999999.99"}, Decimal("9999999999999999.99")),
        ("v:decimal(18,2)", {"N": "10000000000000000"}, None),
        ("v:decimal(18,2)", {"N": "1E+125"}, None),
        ("v:decimal(18,2)", {"N": "1e-130"}, None),
        ("v:decimal(18,2)", {"N": "0E+200"}, Decimal("0.00")),
        ("v:decimal(18,2)", {"S": "12.50"}, None),
        (
            "v:decimal(38,0)",
            {"N": "12345678901234567890123456789012345678"},
            Decimal("12345678901234567890123456789012345678"),
        ),
    ],
)
def test_promoted_value_examples(spec: str, av: dict[str, Any], expected: Any) -> None:
    [column] = parse_promoted_columns(spec)
    value = column.value(av)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, Decimal):
        assert str(value) == str(expected)


def test_promoted_value_of_absent_attribute_is_none() -> None:
    for spec in COLUMN_SPECS:
        [column] = parse_promoted_columns(spec)
        assert column.value(None) is None
