"""Selecting one item's changes: a key given as plain JSON in, a row mask over ``item_key`` out.

A user names an item the way they see it, as plain JSON (``{"pk": "order#1",
"sk": 3}``): all of its key attributes, or some of them. Each attribute given
must match exactly, compared on the canonical typed key (``item_key``, DynamoDB
JSON with attribute names sorted) without building any record:

- a string matches an ``S`` value, or a ``B`` value written as that base64 text
  (plain JSON cannot tell the two apart), by its exact JSON text;
- a number matches an ``N`` value of the same decimal value, compared with
  :class:`decimal.Decimal` (``7``, ``7.0`` and ``007`` are one number), never
  through a float, so 38-digit keys stay distinct.
"""

from __future__ import annotations

import json
import string
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["key_mask", "parse_key"]

_PUNCTUATION = frozenset(string.punctuation)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a key can hold")


def parse_key(text: str) -> dict[str, str | Decimal]:
    """A key given as plain JSON, numbers kept exact.

    Parameters
    ----------
    text
        A JSON object of key attributes, e.g. ``{"pk": "order#1", "sk": 3}``.

    Returns
    -------
    dict
        Attribute name to a string, or a :class:`~decimal.Decimal` for a number.

    Raises
    ------
    ValueError
        When ``text`` is not JSON, not a non-empty object, or gives an attribute
        a value no key can hold (key attributes are strings, numbers or binary).
    """
    try:
        key = json.loads(text, parse_int=Decimal, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(key, dict) or not key:
        raise ValueError('expected a JSON object of key attributes, e.g. {"pk": "a"}')
    for name, value in key.items():
        if not isinstance(value, str | Decimal):
            kind = {bool: "a boolean", list: "a list", dict: "an object"}.get(type(value), "null")
            raise ValueError(
                f"attribute {name!r} is {kind}: key attributes are strings, numbers or "
                "base64 binary"
            )
    return key


def _literal(text: str) -> str:
    """``text`` as an RE2 pattern that matches it literally."""
    return "".join("\\" + c if c in _PUNCTUATION else c for c in text)


def _string_matches(item_keys: pa.ChunkedArray, name: str, value: str) -> pa.ChunkedArray:
    # orjson wrote item_key, so the same call spells name and value the same way. The pattern
    # ends with the value's closing quote and brace: a longer value cannot match, and inside a
    # JSON string every quote is escaped, so it can only match the attribute itself.
    member, text = orjson.dumps(name).decode(), orjson.dumps(value).decode()
    return pc.or_(
        pc.match_substring(item_keys, f'{member}:{{"S":{text}}}'),
        pc.match_substring(item_keys, f'{member}:{{"B":{text}}}'),
    )


def _number_matches(item_keys: pa.ChunkedArray, name: str, value: Decimal) -> pa.ChunkedArray:
    member = _literal(orjson.dumps(name).decode())
    found = pc.struct_field(pc.extract_regex(item_keys, member + r':\{"N":"(?P<n>[^"]*)"\}'), [0])
    equal = []
    for text in pc.unique(found).to_pylist():  # one Decimal per distinct number, not per row
        if text is None:
            continue
        try:
            if Decimal(text) == value:
                equal.append(text)
        except InvalidOperation:
            continue
    return pc.fill_null(pc.is_in(found, pa.array(equal, pa.string())), False)


def key_mask(item_keys: pa.ChunkedArray, key: dict[str, str | Decimal]) -> pa.ChunkedArray:
    """Which rows' ``item_key`` matches every attribute of ``key`` (from :func:`parse_key`).

    Parameters
    ----------
    item_keys
        The ``item_key`` column.
    key
        Attribute name to a string or a :class:`~decimal.Decimal`.

    Returns
    -------
    pyarrow.ChunkedArray
        One boolean per row, never null.
    """
    mask = None
    for name, value in key.items():
        if isinstance(value, str):
            matches = _string_matches(item_keys, name, value)
        else:
            matches = _number_matches(item_keys, name, value)
        mask = matches if mask is None else pc.and_(mask, matches)
    if mask is None:
        return pc.is_valid(item_keys)
    return mask
