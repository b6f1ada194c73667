"""RFC 8785 JSON Canonicalization Scheme (JCS), fast.

``canonicalize`` serialises with ``orjson`` (sorted keys, 53-bit integer check) and returns that output when it is
provably byte-identical to RFC 8785; otherwise it falls back to the reference ``rfc8785`` package. orjson's output
equals JCS when:

* there are no floats (JCS prints numbers the ES6 way, orjson prints ``1.0``/``1e+100``; NaN/Inf become ``null``),
  so any float anywhere sends the value to the slow path (which rejects NaN/Infinity);
* integers are within ±(2**53-1) (``OPT_STRICT_INTEGER`` raises otherwise; so does RFC 8785 here);
* no object key contains a character outside the BMP: JCS sorts keys by UTF-16 code units, orjson by code point,
  and the two orders differ only between astral characters and U+E000..U+FFFF;
* string escaping: orjson and JCS both emit ``\\b \\t \\n \\f \\r \\" \\\\`` and lowercase ``\\u00xx`` for the
  other controls, and everything else (DEL, U+2028, U+2029, non-ASCII) raw UTF-8 — checked by the test-suite;
* keys are ``str`` and strings are valid Unicode (orjson raises on surrogates and non-str keys, like RFC 8785).

How the fast path decides without a Python walk on the common case: orjson's output is scanned (C regex) for
a number with ``.``/``e``/``E`` or a ``null`` in a value position (only those can come from a float) and for
4-byte UTF-8 sequences (astral characters). Only if one of these occurs does a Python walk of the value run, to check for
real floats or astral characters in *keys*.

Floats (OB 3.0's credit fields are JSON numbers): a value holding floats is copied with each float replaced by
a marker string (a random per-call nonce and an index), serialised by orjson, and each quoted marker replaced by
the float's ES6 form as ``rfc8785`` writes it (the only part that differs from orjson). Everything else in the
output is orjson's, as on the fast path; if the markers found do not match the floats one for one, or the value
has astral keys, NaN/Infinity or anything odd, the whole value goes to ``rfc8785``.

Known deviation of the fast path: orjson also serialises ``uuid.UUID``, ``enum.Enum`` and tuples natively;
``datetime``, dataclasses and str/int/dict/list subclasses are refused (TypeError → retried on the slow path,
which refuses what RFC 8785 refuses). Pass plain JSON types.

``loads_strict`` parses JSON refusing duplicate keys and the NaN/Infinity literals.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import orjson
import rfc8785

from crypto.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "CanonicalizationError", "canonicalize", "loads_strict"]

MAX_SAFE_INTEGER = 2**53 - 1

_OPTS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# orjson writes every float with a '.' or an exponent 'e+'/'e-' (and NaN/Inf as null). A float is a number
# *value*: its digits (after an optional '-') follow ':', ',' or '['; a string value starts with '"' instead.
# Each pattern starts with a literal, so the regex engine scans at memchr speed and a candidate such as ':"'
# fails at once. A string that itself contains e.g. ":4.0" or ",null" only costs a (harmless) Python walk.
_FLOAT_PATTERNS = tuple(
    re.compile(p).search
    for p in (rb":-?[0-9]+[.eE]", rb",-?[0-9]+[.eE]", rb"\[-?[0-9]+[.eE]", rb"null(?<=[:,\[]null)")
)


def _has_float_candidate(out: bytes) -> bool:
    """True if ``out`` (orjson output of a dict or list) may contain a float or a NaN/Inf written as null."""
    for search in _FLOAT_PATTERNS:
        if search(out) is not None:
            return True
    return False


def _has_astral(out: bytes) -> bool:
    """Any 4-byte UTF-8 sequence (a character outside the BMP)."""
    return not out.isascii() and (
        b"\xf0" in out or b"\xf1" in out or b"\xf2" in out or b"\xf3" in out or b"\xf4" in out
    )


def _walk_needs_slow_path(obj: Any) -> bool:
    """True when the value holds a float, or an object key with a non-BMP character."""
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        t = type(value)
        if t is dict:
            for k, v in value.items():
                if not k.isascii() and max(k) > "\uffff":
                    return True
                if type(v) in (dict, list, tuple, float):
                    push(v)
        elif t is list or t is tuple:
            for v in value:
                if type(v) in (dict, list, tuple, float):
                    push(v)
        elif t is float:
            return True
    return False


def _fast(obj: Any) -> bytes | None:
    """orjson output when it is RFC 8785, else None (caller falls back). Top-level scalars take the slow path."""
    if type(obj) is not dict and type(obj) is not list:
        return None
    try:
        out = orjson.dumps(obj, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if not _has_float_candidate(out) and not _has_astral(out):
        return out
    if _walk_needs_slow_path(obj):
        return None
    return out


def _copy_floats_marked(value: Any, marker: str, numbers: list[bytes]) -> Any:
    """A copy of ``value`` with every float replaced by the string ``"\\x00" + marker + its index`` (its
    RFC 8785 form appended to ``numbers``). Raises _NotFast for what this path does not take."""
    t = type(value)
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotFast  # NaN/Infinity: the slow path refuses them with its message
        numbers.append(rfc8785.dumps(value))  # the reference's ES6 number form (one scalar, cheap)
        return f"\x00{marker}{len(numbers) - 1}"
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                raise _NotFast  # non-str keys (refused there), astral keys (UTF-16 order)
            out[k] = _copy_floats_marked(v, marker, numbers)
        return out
    if t is list:
        return [_copy_floats_marked(v, marker, numbers) for v in value]
    return value


class _NotFast(Exception):
    pass


# a marker as orjson writes it: the quoted string "\u0000" + 24 hex digits (the nonce) + the float's index
_MARKER = re.compile(rb'"\\u0000([0-9a-f]{24})([0-9]+)"')


def _with_floats(obj: Any) -> bytes | None:
    """RFC 8785 of a dict/list holding floats, without the pure-Python serialiser: orjson serialises a copy in
    which each float is a marker string carrying a random per-call nonce, and each marker (with its quotes) is
    then replaced by the float's ES6 form from ``rfc8785``. Keys and all other values are serialised exactly as
    on the fast path. If the number of markers found differs from the number of floats (a string that happens
    to contain one), or anything is unusual, returns None (the slow path decides)."""
    if type(obj) is not dict and type(obj) is not list:
        return None
    numbers: list[bytes] = []
    marker = secrets.token_hex(12)
    try:
        marked = _copy_floats_marked(obj, marker, numbers)
        if not numbers:
            return None
        out = orjson.dumps(marked, option=_OPTS)
    except (_NotFast, TypeError, orjson.JSONEncodeError, RecursionError, rfc8785.CanonicalizationError):
        return None
    expected = marker.encode()
    found = 0

    def number(match: re.Match[bytes]) -> bytes:
        nonlocal found
        if match[1] != expected:
            return match[0]  # some string's text, not one of ours
        found += 1
        index = int(match[2])
        return numbers[index] if index < len(numbers) else b""

    result = _MARKER.sub(number, out)
    return result if found == len(numbers) else None


def _slow(obj: Any) -> bytes:
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"not representable in RFC 8785 JSON: {exc}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise CanonicalizationError(f"not representable in RFC 8785 JSON: {exc}") from exc


def canonicalize(obj: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dict/list/str/int/float/bool/None).

    Raises CanonicalizationError for NaN/Infinity, integers outside ±(2**53-1), non-str keys, lone surrogates
    and non-JSON types.
    """
    out = _fast(obj)
    if out is None:
        out = _with_floats(obj)
    if out is not None:
        return out
    return _slow(obj)


def _pairs_no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CanonicalizationError(f"duplicate object key {key!r}")
        result[key] = value
    return result


def _bad_constant(name: str) -> Any:
    raise CanonicalizationError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_no_dups, parse_constant=_bad_constant)


def loads_strict(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON, refusing duplicate keys, NaN/Infinity literals, invalid UTF-8 and trailing data.

    Raises CanonicalizationError (a ValueError) with a message saying what is wrong.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CanonicalizationError(f"JSON text is not valid UTF-8: {exc}") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise CanonicalizationError(f"expected bytes or str, not {type(data).__name__}")
    if text.startswith("\ufeff"):
        raise CanonicalizationError("JSON text starts with a byte order mark")
    try:
        return _DECODER.decode(text)
    except CanonicalizationError:
        raise
    except json.JSONDecodeError as exc:
        raise CanonicalizationError(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise CanonicalizationError("JSON nested too deeply") from exc
