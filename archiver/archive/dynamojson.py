"""DynamoDB JSON (typed attribute values) in, checks and plain JSON out.

The archive keeps images in the typed form DynamoDB itself emits
(``{"price": {"N": "1.50"}}``): it is lossless and it is what DynamoDB's own
export to S3 writes. This module validates that form cheaply, turns it into
plain JSON (``{"price": 1.50}``) with every number kept digit for digit, and
reads single attributes for promoted columns.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import orjson

from .errors import RecordError

__all__ = [
    "ATTRIBUTE_TYPES",
    "KEY_TYPES",
    "check_image",
    "check_keys",
    "json_number",
    "plain_json",
    "plain_keys",
    "plain_value",
    "to_client",
    "to_client_item",
    "valid_image",
    "valid_keys",
]

ATTRIBUTE_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
KEY_TYPES = frozenset({"S", "N", "B"})

# DynamoDB accepts these number spellings; JSON accepts a subset of them.
# re.ASCII: \d must not match other scripts' digits, which Decimal() would accept.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_MAX_DIGITS = 38
_MIN_EXPONENT = -130
_MAX_EXPONENT = 125


class _Invalid(Exception):
    """Raised deep in a walk; each level adds its attribute name on the way out."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []


def _is_number(text: str) -> bool:
    if _NUMBER.fullmatch(text) is None:
        return False
    if len(text) <= _MAX_DIGITS and "e" not in text and "E" not in text:
        return True  # at most 38 digits and no exponent: always within DynamoDB's range
    value = Decimal(text)  # exact: the constructor neither rounds nor overflows
    if value == 0:
        return True
    # Count significant digits from the exact tuple: normalize() would round to the
    # context's 28 digits (accepting 39) and raise Overflow on huge exponents.
    significant = "".join(map(str, value.as_tuple().digits)).rstrip("0")
    return len(significant) <= _MAX_DIGITS and _MIN_EXPONENT <= value.adjusted() <= _MAX_EXPONENT


def _is_base64(text: str) -> bool:
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _describe(value: Any) -> str:
    # Names the JSON type only: error messages reach logs, item data must not.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        if len(value) == 1:
            return "an object"
        if value.keys() <= ATTRIBUTE_TYPES:  # type names are no item data; other keys may be
            return f"an object with keys {sorted(value)[:3]}"
        return f"an object with {len(value)} keys"
    return {str: "a string", int: "a number", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _check_value(av: Any) -> None:
    if type(av) is not dict or len(av) != 1:
        raise _Invalid(f"expected an attribute value with one type key, got {_describe(av)}")
    for tag, v in av.items():
        if tag == "S":
            if type(v) is not str:
                raise _Invalid(f"S must hold a string, got {_describe(v)}")
        elif tag == "N":
            if type(v) is not str or not _is_number(v):
                raise _Invalid(
                    f"N must hold a number of at most 38 digits as text, got {_describe(v)}"
                )
        elif tag == "M":
            if type(v) is not dict:
                raise _Invalid(f"M must hold a map, got {_describe(v)}")
            _check_map(v)
        elif tag == "L":
            if type(v) is not list:
                raise _Invalid(f"L must hold a list, got {_describe(v)}")
            for i, item in enumerate(v):
                try:
                    _check_value(item)
                except _Invalid as err:
                    err.path.append(f"[{i}]")
                    raise
        elif tag == "BOOL":
            if type(v) is not bool:
                raise _Invalid(f"BOOL must hold true or false, got {_describe(v)}")
        elif tag == "NULL":
            if v is not True:
                raise _Invalid(f"NULL must hold true, got {_describe(v)}")
        elif tag == "B":
            if type(v) is not str or not _is_base64(v):
                raise _Invalid("B must hold base64 text")
        elif tag in ("SS", "NS", "BS"):
            _check_set(tag, v)
        else:
            # A short capitalised name is a mistyped type; anything else may be item data.
            shown = repr(tag) if re.fullmatch(r"[A-Z]{1,4}", tag) else "(a key that names no type)"
            raise _Invalid(f"unknown attribute type {shown}")


def _check_set(tag: str, v: Any) -> None:
    if type(v) is not list or not v:
        raise _Invalid(f"{tag} must hold a non-empty list, got {_describe(v)}")
    if tag == "SS":
        ok = all(type(x) is str for x in v)
    elif tag == "NS":
        ok = all(type(x) is str and _is_number(x) for x in v)
    else:
        ok = all(type(x) is str and _is_base64(x) for x in v)
    if not ok:
        kind = {"SS": "strings", "NS": "numbers as text", "BS": "base64 text"}[tag]
        raise _Invalid(f"{tag} must hold {kind}")


def _check_map(m: dict[str, Any]) -> None:
    for name, av in m.items():
        try:
            _check_value(av)
        except _Invalid as err:
            err.path.append(f".{name}")
            raise


# The fast path: a tight walk that only answers yes or no. Stream records from
# DynamoDB are valid, so this is what runs; the walk above runs only to explain
# a failure. Keep the two in agreement (tests/unit/test_dynamojson.py checks it).
def _valid_number(v: str) -> bool:
    return (len(v) <= _MAX_DIGITS and v.isascii() and v.isdigit()) or _is_number(v)


def _valid_map(m: dict[str, Any]) -> bool:
    # S and N, most of any image, are checked inline: a call per value would double the cost.
    for av in m.values():
        if av.__class__ is not dict or len(av) != 1:
            return False
        [(tag, v)] = av.items()
        if tag == "S":
            if v.__class__ is not str:
                return False
        elif tag == "N":
            if v.__class__ is not str or not (
                (len(v) <= _MAX_DIGITS and v.isascii() and v.isdigit()) or _is_number(v)
            ):
                return False
        elif not _valid_other(tag, v):
            return False
    return True


def _valid_value(av: Any) -> bool:
    if av.__class__ is not dict or len(av) != 1:
        return False
    [(tag, v)] = av.items()
    if tag == "S":
        return v.__class__ is str
    if tag == "N":
        return v.__class__ is str and _valid_number(v)
    return _valid_other(tag, v)


def _valid_other(tag: str, v: Any) -> bool:
    if tag == "M":
        return v.__class__ is dict and _valid_map(v)
    if tag == "L":
        return v.__class__ is list and all(_valid_value(item) for item in v)
    if tag == "BOOL":
        return v is True or v is False
    if tag == "NULL":
        return v is True
    if tag == "B":
        return v.__class__ is str and _is_base64(v)
    if tag == "SS":
        return v.__class__ is list and bool(v) and all(x.__class__ is str for x in v)
    if tag == "NS":
        return (
            v.__class__ is list
            and bool(v)
            and all(x.__class__ is str and _valid_number(x) for x in v)
        )
    if tag == "BS":
        return (
            v.__class__ is list and bool(v) and all(x.__class__ is str and _is_base64(x) for x in v)
        )
    return False


def _path(where: str, err: _Invalid) -> str:
    """``where`` and the attribute path, with every map key below the top level shown as ``*``.

    The path reaches logs: a top-level attribute name is the table's vocabulary, a list
    index a position, but a key inside a map attribute is often item data
    (``NewImage.by_email.*``, not the address).
    """
    # Parts carry their own separator (".name" or "[i]"): a name may itself start with "[".
    top, *inner = reversed(err.path)
    return where + top + "".join(".*" if part[0] == "." else part for part in inner)


def check_image(image: Any, where: str) -> None:
    """Check that ``image`` is a map of valid DynamoDB attribute values.

    Parameters
    ----------
    image
        The decoded JSON of a ``Keys``, ``NewImage`` or ``OldImage``.
    where
        How to name the image in an error, e.g. ``"NewImage"``.

    Raises
    ------
    RecordError
        Naming the attribute path (``NewImage.address.zip``) and what was wrong.
    """
    if type(image) is not dict:
        raise RecordError(f"must be a map of attribute values, got {_describe(image)}", where)
    if _valid_map(image):
        return
    try:
        _check_map(image)
    except _Invalid as err:
        raise RecordError(err.reason, _path(where, err)) from None
    raise RecordError("invalid attribute value", where)  # the two walks disagree: refuse


def valid_image(image: Any) -> bool:
    """True when ``image`` is a map of valid attribute values (the fast check, no message)."""
    return image.__class__ is dict and _valid_map(image)


def valid_keys(keys: Any) -> bool:
    """True when ``keys`` is a non-empty map of valid S, N or B values (the fast check)."""
    if keys.__class__ is not dict or not keys:
        return False
    for av in keys.values():
        if av.__class__ is not dict or len(av) != 1:
            return False
        [tag] = av
        if tag not in KEY_TYPES or not _valid_value(av):
            return False
    return True


def check_keys(keys: Any, where: str = "Keys") -> None:
    """Check a key map: non-empty, each value of type S, N or B."""
    if valid_keys(keys):
        return
    check_image(keys, where)
    if not keys:
        raise RecordError("must name at least one key attribute", where)
    for name, av in keys.items():
        tag = next(iter(av))
        if tag not in KEY_TYPES:
            raise RecordError(f"key attributes must be S, N or B, got {tag}", f"{where}.{name}")


def json_number(text: str) -> str:
    """A DynamoDB number as a JSON number literal with the same value and digits."""
    if _JSON_NUMBER.fullmatch(text):
        return text
    try:
        return str(Decimal(text))
    except InvalidOperation:
        raise RecordError("N must hold a number") from None  # never the text: it is item data


def plain_value(av: dict[str, Any]) -> Any:
    """One typed attribute value as a plain JSON-ready value (numbers as exact fragments)."""
    for tag, v in av.items():
        if tag == "S" or tag == "BOOL" or tag == "B":
            return v
        if tag == "N":
            return orjson.Fragment(json_number(v))
        if tag == "M":
            return {name: plain_value(item) for name, item in v.items()}
        if tag == "L":
            return [plain_value(item) for item in v]
        if tag == "NULL":
            return None
        if tag == "NS":
            return [orjson.Fragment(json_number(x)) for x in v]
        if tag == "SS" or tag == "BS":
            return list(v)
    raise RecordError(f"not an attribute value: {_describe(av)}")


def plain_json(image: dict[str, Any]) -> str:
    """A typed image as plain JSON text: sets become lists, binary stays base64."""
    return orjson.dumps({name: plain_value(av) for name, av in image.items()}).decode()


def plain_keys(keys: dict[str, Any]) -> dict[str, Any]:
    """A valid key map (S, N or B values) as plain values ready for ``msgspec.json.encode``."""
    out: dict[str, Any] = {}
    for name, av in keys.items():
        for tag, v in av.items():
            if tag == "N":
                digits = v if v.isdigit() and (v[0] != "0" or len(v) == 1) else json_number(v)
                out[name] = msgspec.Raw(digits.encode())
            else:
                out[name] = v
    return out


# --- to boto3's low-level client ----------------------------------------------------------


def to_client(av: dict[str, Any]) -> dict[str, Any]:
    """A Lambda-form attribute value (binary as base64 text) as boto3's low-level client takes it.

    Binary (``B``, ``BS``, inside maps and lists too) becomes bytes; everything else is
    the same JSON the stream carried (numbers stay their text).
    """
    tag, v = next(iter(av.items()))
    if tag == "B":
        return {"B": base64.b64decode(v)}
    if tag == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if tag == "M":
        return {"M": {name: to_client(x) for name, x in v.items()}}
    if tag == "L":
        return {"L": [to_client(x) for x in v]}
    return av


def to_client_item(image: dict[str, Any]) -> dict[str, Any]:
    """A Lambda-form item (or key) as boto3's low-level client takes it: see :func:`to_client`."""
    return {name: to_client(av) for name, av in image.items()}
