"""Bytes to click events and back. ``decode_click`` never raises: bad input becomes a DeadLetter.

>>> decode_click(b'{"event_id":"e","user_id":"u","ts":1.6e9,"activity":"lend","amount":5}')
ClickEvent(event_id='e', user_id='u', ts=1600000000.0, activity=<Activity.LEND: 'lend'>, \
amount=5.0, loan_id=None, rate=None, term_days=None)
>>> decode_click(b'{"event_id":"e"').reason
<DeadLetterReason.INVALID_JSON: 'invalid_json'>
"""

from __future__ import annotations

import time

import msgspec

from deepcredit.events import ClickEvent
from deepcredit.records import DeadLetter, DeadLetterReason

__all__ = ["MAX_EVENT_BYTES", "decode_click", "encode", "encode_click"]

#: A click event is a few hundred bytes; anything past this is not one.
MAX_EVENT_BYTES = 4096
#: How much of a rejected message the dead letter keeps.
DEAD_LETTER_PAYLOAD_LIMIT = 1024
_DETAIL_LIMIT = 300

_click_decoder = msgspec.json.Decoder(ClickEvent)
_encoder = msgspec.json.Encoder()


def encode(record: msgspec.Struct) -> bytes:
    """Any of our records as compact JSON."""
    return _encoder.encode(record)


encode_click = encode


def decode_click(
    data: bytes | None,
    *,
    key: bytes | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> ClickEvent | DeadLetter:
    """Decode one Kafka message value into a valid ClickEvent, or a DeadLetter saying why not.

    The Kafka coordinates, when given, are copied into the dead letter so it can be traced.
    """

    def reject(reason: DeadLetterReason, detail: str) -> DeadLetter:
        raw = data or b""
        return DeadLetter(
            reason=reason,
            detail=detail[:_DETAIL_LIMIT],
            payload=bytes(raw[:DEAD_LETTER_PAYLOAD_LIMIT]),
            payload_size=len(raw),
            key=key,
            topic=topic,
            partition=partition,
            offset=offset,
            received_at=time.time(),
        )

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
    try:
        event = _click_decoder.decode(data)
    except msgspec.ValidationError as exc:
        message = str(exc)
        return reject(_classify(message), message)
    except msgspec.DecodeError as exc:
        return reject(DeadLetterReason.INVALID_JSON, str(exc))
    violation = event.contract_violation()
    if violation is not None:
        return reject(DeadLetterReason.MISSING_LOAN_FIELDS, violation)
    return event


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
