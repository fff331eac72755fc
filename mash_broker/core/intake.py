"""Reading one record before anything acts on it: its size, its nesting, UTF-8, JSON with each key once,
then the envelope's contract. Pure: bytes in, an ``Envelope`` or an ``Unreadable`` out.

Every check is cheap and runs before the one after it can fail badly: the size before anything, the
nesting depth (a scan, no parse) before a parser that recurses, duplicate keys before pydantic (whose
parser would keep the last). An ``Unreadable`` names fields and reasons, never a value, so it can be
logged, stored as a quarantine detail and sent back to the sender.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from pydantic import ValidationError

from mash_broker.contracts import Envelope
from mash_broker.core.messages import MAX_MESSAGE_BYTES

MAX_DEPTH = 64  # envelopes nest about 6 deep; a parser that recurses is safe far beyond this
DEAD_LETTERS = "gate.deadletter.v1"  # records no subscriber could act on, with error headers

# Reason codes of an unreadable record (the gate's quarantine, receipts, the dead-letter header). Bytes
# that are not UTF-8 or not JSON break the contract like a missing field does: ``contract_invalid``.
TOO_LARGE, TOO_DEEP, DUPLICATE_KEY = "message_too_large", "nesting_too_deep", "duplicate_key"
CONTRACT_INVALID, UNREADABLE = "contract_invalid", "record_unreadable"

WHOLE_RECORD = "(record)"
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
# A key is named in a detail only if it looks like a field name (a key can be input, e.g. a name).
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record nothing can act on: a reason code and, per field, what is wrong with it (no values)."""

    reason: str
    problems: tuple[tuple[str, str], ...]  # (field path or "(record)", reason in words)

    @property
    def detail(self) -> str:
        """One line: ``field: reason; ...`` (just the reason when it is about the whole record)."""
        if len(self.problems) == 1 and self.problems[0][0] == WHOLE_RECORD:
            return self.problems[0][1][:2000]
        return "; ".join(f"{where}: {why}" for where, why in self.problems)[:2000]


class _DuplicateKey(ValueError):
    """A JSON object names one key twice."""


def nesting_depth(raw: bytes) -> int:
    """How deep ``raw``'s arrays and objects nest, from a scan that skips strings (no parse, no recursion)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(array("b", brackets.translate(_STEPS))), default=0)


def read_envelope(
    raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_DEPTH
) -> Envelope | Unreadable:
    """``raw`` as an envelope, or why it is not one. Never raises for any input."""
    try:
        return _read(raw, max_bytes, max_depth)
    except Exception as exc:  # whatever else a record provokes is the record's
        return _unreadable(UNREADABLE, f"cannot be read ({type(exc).__name__})")


def _read(raw: bytes, max_bytes: int, max_depth: int) -> Envelope | Unreadable:
    if len(raw) > max_bytes:
        return _unreadable(TOO_LARGE, f"{len(raw)} bytes")
    if (depth := nesting_depth(raw)) > max_depth:
        return _unreadable(TOO_DEEP, f"nested {depth} deep, over the limit of {max_depth}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _unreadable(CONTRACT_INVALID, f"Invalid UTF-8 at byte {exc.start}")
    try:
        json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey:
        return Unreadable(DUPLICATE_KEY, ((duplicate_key_path(text), "key given more than once"),))
    except ValueError as exc:
        return _unreadable(CONTRACT_INVALID, f"Invalid JSON: {_json_error(exc)}")
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as err:
        return Unreadable(CONTRACT_INVALID, field_problems(err))


def field_problems(err: ValidationError) -> tuple[tuple[str, str], ...]:
    """Each field path and its reason: never the input values, which may be personal data."""
    return tuple(
        ((".".join(_loc_part(p) for p in e["loc"]) or "(message)")[:200], e["msg"][:200]) for e in err.errors()
    )


def contract_problems(err: ValidationError) -> str:
    """Field paths and reasons in one line (a quarantine detail, a receipt, a log field)."""
    return Unreadable(CONTRACT_INVALID, field_problems(err)).detail


def duplicate_key_path(text: str) -> str:
    """The path of the first key given twice in one object (``payload.child.given_name``)."""
    found = _first_duplicate(json.loads(text, object_pairs_hook=_Pairs), ())
    return ".".join(found) if found else WHOLE_RECORD


class _Pairs(list[tuple[str, Any]]):
    """An object's members in order, repeats kept (to find a duplicate's path)."""


def _first_duplicate(node: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, _ in node:
            if key in seen:
                return (*path, _loc_part(key))
            seen.add(key)
        children = [(_loc_part(k), v) for k, v in node]
    elif isinstance(node, list):
        children = [(str(i), v) for i, v in enumerate(node)]
    else:
        return None
    for part, child in children:
        if (found := _first_duplicate(child, (*path, part))) is not None:
            return found
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey
    return out


def _unreadable(reason: str, why: str) -> Unreadable:
    return Unreadable(reason, ((WHOLE_RECORD, why),))


def _json_error(exc: ValueError) -> str:
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "invalid"


def _loc_part(part: str | int) -> str:
    return str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(part) else "<key>"
