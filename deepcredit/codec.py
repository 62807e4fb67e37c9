"""Bytes to click events and back. ``decode_click`` never raises: bad input becomes a DeadLetter.

Before parsing, a message is refused when it is over ``MAX_EVENT_BYTES``, not UTF-8, or nests
arrays and objects more than ``MAX_DEPTH`` deep (``exceeds_depth``): msgspec's parser recurses
once per level, as deep as Python's recursion limit, and ignored fields are parsed too. After
parsing, the ids are put in their canonical form (``events.canonical_id``) or refused.

>>> decode_click(b'{"event_id":"e","user_id":"u","ts":1.6e9,"activity":"lend","amount":5}')
ClickEvent(event_id='e', user_id='u', ts=1600000000.0, activity=<Activity.LEND: 'lend'>, \
amount=5.0, loan_id=None, rate=None, term_days=None)
>>> decode_click(b'{"event_id":"e"').reason
<DeadLetterReason.INVALID_JSON: 'invalid_json'>
>>> decode_click(b'{"meta":' + b'[' * 40 + b']' * 40 + b'}').reason
<DeadLetterReason.TOO_DEEP: 'too_deep'>
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, NamedTuple

import msgspec

from deepcredit.events import Activity, ClickEvent, canonical_id
from deepcredit.records import DeadLetter, DeadLetterReason

__all__ = [
    "DEAD_LETTER_PAYLOAD_LIMIT",
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "PostIds",
    "dead_letter",
    "decode_click",
    "encode",
    "encode_click",
    "exceeds_depth",
    "post_ids",
]

#: A click event is a few hundred bytes; anything past this is not one.
MAX_EVENT_BYTES = 4096
#: Most arrays and objects open inside each other in a message (an event itself is depth 1):
#: room for any sensible extra field, and far below Python's recursion limit wherever the
#: decoder is called from.
MAX_DEPTH = 32
#: How much of a rejected message the dead letter keeps: any message that may be an event
#: whole, so a fixed one can be replayed from its dead letter and a refused post's ids read
#: back from it (``post_ids``); oversize junk is cut there.
DEAD_LETTER_PAYLOAD_LIMIT = MAX_EVENT_BYTES
_DETAIL_LIMIT = 300

_click_decoder = msgspec.json.Decoder(ClickEvent)
_encoder = msgspec.json.Encoder()
# A JSON string (skipped whole, so brackets inside it do not count), or one bracket.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def encode(record: msgspec.Struct) -> bytes:
    """Any of our records as compact JSON."""
    return _encoder.encode(record)


encode_click = encode


def exceeds_depth(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``data`` opens more than ``limit`` arrays or objects inside each other.

    Costs two byte counts when ``data`` holds at most ``limit`` opening brackets (every event);
    otherwise one scan of its strings and brackets. For invalid JSON it may answer True where
    a parser would have stopped earlier on a syntax error, never False where a parser would go
    deeper than ``limit``.

    >>> exceeds_depth(b'{"a": [[1], {"b": "[[[["}]}', limit=3), exceeds_depth(b"[[[[]]]]", 3)
    (False, True)
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(data):
        first = token.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first != 0x22:  # a closing bracket (0x22 is the quote opening a string)
            depth -= 1
    return False


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    data: bytes | None,
    *,
    key: bytes | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> DeadLetter:
    """The DeadLetter of message ``data`` (its first ``DEAD_LETTER_PAYLOAD_LIMIT`` bytes kept),
    received now, with its Kafka coordinates when known."""
    raw = data or b""
    return DeadLetter(reason=reason, detail=detail[:_DETAIL_LIMIT],
                      payload=bytes(raw[:DEAD_LETTER_PAYLOAD_LIMIT]), payload_size=len(raw),
                      key=key, topic=topic, partition=partition, offset=offset,
                      received_at=time.time())  # fmt: skip


def decode_click(
    data: bytes | None,
    *,
    key: bytes | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> ClickEvent | DeadLetter:
    """Decode one Kafka message value into a valid ClickEvent with canonical ids, or a
    DeadLetter saying why not. Never raises.

    The Kafka coordinates, when given, are copied into the dead letter so it can be traced.
    The message key is not read: a user is who the event's ``user_id`` says.
    """

    def reject(reason: DeadLetterReason, detail: str) -> DeadLetter:
        return dead_letter(reason, detail, data, key=key, topic=topic, partition=partition,
                           offset=offset)  # fmt: skip

    if not data:
        return reject(DeadLetterReason.INVALID_JSON, "empty message")
    if len(data) > max_bytes:
        return reject(DeadLetterReason.OVERSIZE, f"{len(data)} bytes > limit of {max_bytes}")
    try:
        # msgspec validates UTF-8 only inside the strings it decodes into str; a bad byte in an
        # ignored field or a number would slip through, so check the whole message.
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(DeadLetterReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
    if exceeds_depth(data):
        return reject(DeadLetterReason.TOO_DEEP, f"nested deeper than {MAX_DEPTH} levels")
    try:
        event = _click_decoder.decode(data)
    except msgspec.ValidationError as exc:
        message = str(exc)
        return reject(_classify(message), message)
    except msgspec.DecodeError as exc:
        return reject(DeadLetterReason.INVALID_JSON, str(exc))
    try:
        event = _with_canonical_ids(event)
    except ValueError as exc:
        return reject(DeadLetterReason.INVALID_ID, str(exc))
    violation = event.contract_violation()
    if violation is not None:
        return reject(DeadLetterReason.MISSING_LOAN_FIELDS, violation)
    return event


class PostIds(NamedTuple):
    """What identifies a loan post that cannot be scored (``records.NotScored``)."""

    event_id: str | None
    user_id: str | None
    loan_id: str | None
    ts: float | None


class _AnyFields(msgspec.Struct):
    """The fields of any JSON object that identify an event, whatever their types."""

    activity: Any = None
    event_id: Any = None
    user_id: Any = None
    loan_id: Any = None
    ts: Any = None


_any_fields_decoder = msgspec.json.Decoder(_AnyFields)


def post_ids(data: bytes | None) -> PostIds | None:
    """The ids of message ``data`` when it is a loan post, however broken otherwise: a JSON
    object (UTF-8, at most ``MAX_EVENT_BYTES``, ``MAX_DEPTH`` deep) whose ``activity`` is
    ``"post"``; each id in canonical form, None where missing, not a string or breaking the id
    rule; ``ts`` when a finite number. None when the message is not such an object. Never
    raises.

    >>> post_ids(b'{"activity": "post", "event_id": "e1", "user_id": "u1", "ts": "x"}')
    PostIds(event_id='e1', user_id='u1', loan_id=None, ts=None)
    >>> post_ids(b'{"activity": "repay", "event_id": "e1"}') is None
    True
    """
    if not data or len(data) > MAX_EVENT_BYTES or exceeds_depth(data):
        return None
    try:
        data.decode("utf-8")  # all of it: msgspec checks only the strings it decodes
        fields = _any_fields_decoder.decode(data)
    except (UnicodeDecodeError, msgspec.DecodeError):  # ValidationError too: not an object
        return None
    if fields.activity != Activity.POST.value:
        return None
    ts = fields.ts
    number = isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts)
    return PostIds(_id_or_none(fields.event_id), _id_or_none(fields.user_id),
                   _id_or_none(fields.loan_id), float(ts) if number else None)  # fmt: skip


def _id_or_none(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return canonical_id(raw)
    except ValueError:
        return None


def _with_canonical_ids(event: ClickEvent) -> ClickEvent:
    """``event`` with its ids in canonical form; ValueError naming the first refused id."""
    name = "event_id"
    try:
        event_id = canonical_id(event.event_id)
        name = "user_id"
        user_id = canonical_id(event.user_id)
        name = "loan_id"
        loan_id = None if event.loan_id is None else canonical_id(event.loan_id)
    except ValueError as exc:
        raise ValueError(f"{name} {getattr(event, name)!r}: {exc}") from None
    if event_id is event.event_id and user_id is event.user_id and loan_id is event.loan_id:
        return event
    return msgspec.structs.replace(event, event_id=event_id, user_id=user_id, loan_id=loan_id)


def _classify(message: str) -> DeadLetterReason:
    """Map a msgspec validation message onto our small set of reasons."""
    if message.startswith("Object missing required field"):
        return DeadLetterReason.MISSING_FIELD
    if message.startswith("Invalid enum value"):
        return DeadLetterReason.UNKNOWN_ACTIVITY
    if message.startswith("Expected `object`") and " - at `" not in message:
        return DeadLetterReason.NOT_AN_OBJECT
    if "out of range" in message or any(op in message for op in (">=", "<=", "length")):
        return DeadLetterReason.OUT_OF_RANGE
    return DeadLetterReason.WRONG_TYPE
