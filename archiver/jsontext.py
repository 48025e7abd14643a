"""JSON text, cut without parsing: an object's members as raw slices, documents split into records.

The hot paths never turn a stream record's images into Python objects. This
module finds, in the exact bytes that arrived, where each member of a JSON
object sits (:func:`members`), replaces members by other text
(:func:`replace_members`), and splits a document into the raw text of each
record (:func:`split_array`, with a tolerant scanner for documents that the fast
parser refuses as a whole, so one poisoned record cannot take its batch down).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson

__all__ = [
    "JsonTextError",
    "decode_members",
    "members",
    "replace_members",
    "split_array",
    "tolerant_elements",
    "tolerant_member",
    "top_level_values",
]

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_NAME = msgspec.json.Decoder(str)
_HEADER = re.compile(rb'[ \t\r\n]*([{,])[ \t\r\n]*"((?:[^"\\]|\\.)*)"[ \t\r\n]*:[ \t\r\n]*', re.S)
_END = re.compile(rb"[ \t\r\n]*}[ \t\r\n]*\Z")
_EMPTY = re.compile(rb"[ \t\r\n]*{[ \t\r\n]*}[ \t\r\n]*\Z")
_encoded_names: dict[str, int] = {}


class JsonTextError(ValueError):
    """The text is not what was expected (not JSON, not an object, repeated member names)."""


def decode_members(text: Any) -> dict[str, msgspec.Raw]:
    """An object's members as raw values, in order; JsonTextError if ``text`` is not one object."""
    try:
        return _MEMBERS.decode(text)
    except msgspec.ValidationError:
        raise JsonTextError("not a JSON object") from None
    except (msgspec.DecodeError, RecursionError) as err:
        raise JsonTextError(f"not valid JSON ({_reason(err)})") from None


def _reason(err: BaseException) -> str:
    if isinstance(err, RecursionError):
        return "nested deeper than the parser allows"
    message = str(err)
    if message == "Input data was truncated":
        # What msgspec says of a string holding a lone surrogate escape, as of an unfinished text.
        return "truncated, or a string holding an invalid escape such as a lone surrogate"
    return message


def _name_length(name: str) -> int:
    length = _encoded_names.get(name)
    if length is None:
        length = len(orjson.dumps(name))
        if len(_encoded_names) < 4096:
            _encoded_names[name] = length
    return length


def members(text: bytes, fields: dict[str, msgspec.Raw]) -> dict[str, tuple[int, int, int]]:
    """Where each member of the object ``text`` sits: ``name -> (start, value_start, end)``.

    ``start`` is the member's opening quote, ``value_start`` where its value
    begins and ``end`` one past the value. ``fields`` is ``decode_members(text)``.

    Raises
    ------
    JsonTextError
        When the object repeats a member name (the decoded fields keep only one).
    """
    spans: dict[str, tuple[int, int, int]] = {}
    # Compact text (no whitespace, names spelled as orjson spells them) is the common case:
    # every deviation (whitespace, escapes in names, a repeated name) only makes it longer,
    # so equal lengths prove the layout and positions follow by arithmetic.
    expected = 1 + max(len(fields) - 1, 0) + 1
    for name, raw in fields.items():
        expected += _name_length(name) + 1 + len(raw)
    if len(text) == expected and text[:1] == b"{":
        position = 1
        for name, raw in fields.items():
            value_start = position + _name_length(name) + 1
            end = value_start + len(raw)
            spans[name] = (position, value_start, end)
            position = end + 1
        return spans
    if not fields:
        if _EMPTY.match(text) is None:
            raise JsonTextError("not a JSON object")
        return spans
    position = 0
    first = True
    for name, raw in fields.items():
        header = _HEADER.match(text, position)
        if header is None or header[1] != (b"{" if first else b","):
            raise JsonTextError("repeated member names")
        spelled = header[2]
        if spelled != name.encode() and _NAME.decode(b'"' + spelled + b'"') != name:
            raise JsonTextError("repeated member names")
        value_start = header.end()
        end = value_start + len(raw)
        spans[name] = (header.start(2) - 1, value_start, end)
        position = end
        first = False
    if _END.match(text, position) is None:
        raise JsonTextError("repeated member names")
    return spans


def replace_members(
    text: bytes,
    spans: dict[str, tuple[int, int, int]],
    replacements: dict[str, bytes],
    *,
    respell: bool = False,
) -> bytes:
    """``text`` with the value of each named member replaced (every other byte kept exactly).

    With ``respell``, the whole member becomes ``"name":<replacement>``, spelled
    compactly whatever its spacing was (what replay's placeholders look for).
    """
    cuts = sorted((spans[name], name) for name in replacements if name in spans)
    if not cuts:
        return text
    parts = []
    position = 0
    for (start, value_start, end), name in cuts:
        if respell:
            parts.append(text[position:start])
            parts.append(orjson.dumps(name) + b":" + replacements[name])
        else:
            parts.append(text[position:value_start])
            parts.append(replacements[name])
        position = end
    parts.append(text[position:])
    return b"".join(parts)


def split_array(text: bytes) -> list[bytes]:
    """The raw text of each element of the JSON array ``text``, whatever the elements hold.

    Uses the fast parser, and the tolerant scanner when the fast parser refuses
    the document as a whole (so one malformed element is cut out and reported
    on its own, not the whole array).
    """
    try:
        return [bytes(raw) for raw in _ELEMENTS.decode(text)]
    except msgspec.ValidationError:
        raise JsonTextError("not a JSON array") from None
    except (msgspec.DecodeError, RecursionError):
        start = len(text) - len(text.lstrip())
        if text[start : start + 1] != b"[":
            raise JsonTextError("not a JSON array") from None
        end: list[int] = []
        elements = list(tolerant_elements(text, start, end))
        if text[end[0] :].strip():
            raise JsonTextError("text after the array's closing bracket") from None
        return elements


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.S)


def tolerant_elements(
    text: bytes, open_bracket: int, end: list[int] | None = None
) -> Iterator[bytes]:
    """The elements of the array opening at ``open_bracket``, cut by brackets and strings only.

    Values are not checked: an element that is not valid JSON comes out as it
    is, for its own decode to fail with its own reason. ``end``, when given,
    receives the position just after the closing bracket.

    Raises
    ------
    JsonTextError
        When the array is not closed.
    """
    depth = 0
    start = open_bracket + 1
    for token in _TOKEN.finditer(text, open_bracket + 1):
        kind = token[0][:1]
        if kind in (b"[", b"{"):
            depth += 1
        elif kind in (b"]", b"}"):
            if depth == 0:
                element = text[start : token.start()].strip()
                if element:
                    yield element
                if end is not None:
                    end.append(token.end())
                return
            depth -= 1
        elif kind == b"," and depth == 0:
            yield text[start : token.start()].strip()
            start = token.end()
    raise JsonTextError("an array that is never closed")


def top_level_values(text: bytes, most: int = 2) -> int:
    """How many JSON values ``text`` holds one after another (counting up to ``most``).

    Cut by brackets and strings only, so it answers for text the parser refuses;
    bare numbers and literals between values are not counted.
    """
    depth = 0
    count = 0
    for token in _TOKEN.finditer(text):
        kind = token[0][:1]
        if kind in (b"[", b"{"):
            if depth == 0:
                count += 1
                if count >= most:
                    return count
            depth += 1
        elif kind in (b"]", b"}"):
            depth = max(depth - 1, 0)
        elif kind == b'"' and depth == 0:
            count += 1
            if count >= most:
                return count
    return count


def tolerant_member(text: bytes, name: str) -> int | None:
    """Where the value of top-level member ``name`` of object ``text`` starts, found by scanning.

    Only the first top-level value of ``text`` is searched.
    """
    depth = 0
    want = orjson.dumps(name)
    tokens = _TOKEN.finditer(text)
    for token in tokens:
        kind = token[0][:1]
        if kind in (b"[", b"{"):
            depth += 1
        elif kind in (b"]", b"}"):
            depth -= 1
            if depth <= 0:
                return None
        elif kind == b'"' and depth == 1 and token[0] == want:
            colon = next(tokens, None)
            if colon is not None and colon[0] == b":":
                value = colon.end()
                while text[value : value + 1] in (b" ", b"\t", b"\r", b"\n"):
                    value += 1
                return value
    return None
