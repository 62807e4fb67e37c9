"""Reading the control topics: thresholds, drift alerts, model events.

Anyone who can write to those topics can put any bytes there (an admin tool, kcat, a bug), and
one record must never stop a reader or put something unusable in force. So every record is
decoded into its type, with msgspec checking the fields and their types, and then checked by
the record's own ``problem()`` (bounds, order, plausible times). One that fails is skipped:
logged with its topic, partition, offset and why, counted in
``deepcredit_control_records_skipped_total{topic,reason}``, and the reader goes on.

>>> decode_record(b'{"type":"thresholds","version":1}', ThresholdUpdate).detail
'not a thresholds record: Object missing required field `delinquent_review`'
>>> decode_record(b'{"x":' + b'[' * 5000 + b']' * 5000 + b'}', DriftAlert).detail
'not a drift alert record: nested too deep to decode'
"""

from __future__ import annotations

import enum
import functools
import logging
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from confluent_kafka import Message

from deepcredit.audit import ThresholdsChange
from deepcredit.metrics import CONTROL_RECORDS_SKIPPED
from deepcredit.records import DriftAlert, ModelEvent, ThresholdUpdate

__all__ = [
    "ControlRecord",
    "Rejected",
    "SkipReason",
    "decode_control",
    "decode_record",
    "skip",
]

log = logging.getLogger(__name__)

#: The records of the control topics; each has ``problem()``.
ControlRecord = TypeVar("ControlRecord", ThresholdUpdate, DriftAlert, ModelEvent, ThresholdsChange)


class SkipReason(enum.StrEnum):
    """Why a control record was skipped. A small fixed set, so it can label a metric."""

    EMPTY = "empty"  # no value: a tombstone
    NOT_JSON = "not_json"  # not UTF-8, not JSON, or nested too deep to decode
    WRONG_SCHEMA = "wrong_schema"  # JSON, but not the record's fields and types
    INVALID = "invalid"  # the record's ``problem()`` refuses it
    STALE = "stale"  # valid, but not newer than what is in force


@dataclass(frozen=True)
class Rejected:
    """A value that is not a usable record, and why (``detail`` is for people)."""

    reason: SkipReason
    detail: str


def decode_record(value: bytes | None, kind: type[ControlRecord]) -> ControlRecord | Rejected:
    """A usable ``kind`` record (``problem()`` is None), or why ``value`` is not one. Never
    raises, whatever the bytes."""
    name = _name(kind)
    if value is None:
        return Rejected(SkipReason.EMPTY, "empty value (a tombstone)")
    try:
        # msgspec checks UTF-8 only in the strings it keeps; check the fields it skips too.
        value.decode("utf-8")
        record = _decoder(kind).decode(value)
    except msgspec.ValidationError as exc:
        return Rejected(SkipReason.WRONG_SCHEMA, f"not a {name} record: {exc}")
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Rejected(SkipReason.NOT_JSON, f"not a {name} record: {exc}")
    except RecursionError:
        return Rejected(SkipReason.NOT_JSON, f"not a {name} record: nested too deep to decode")
    problem = record.problem()
    if problem is not None:
        return Rejected(SkipReason.INVALID, f"invalid {name}: {problem}")
    return record


def decode_control(message: Message, kind: type[ControlRecord]) -> ControlRecord | None:
    """The usable ``kind`` record in ``message``, or None when it holds none: then it is
    skipped (``skip``). Never raises, whatever the bytes."""
    record = decode_record(message.value(), kind)
    if isinstance(record, Rejected):
        skip(message, kind, record)
        return None
    return record


def skip(message: Message, kind: type[ControlRecord], why: Rejected) -> None:
    """Log that ``message`` of a control topic is skipped, where it is and why, and count it."""
    log.warning("%s record %s[%d]@%d skipped: %s", _name(kind), message.topic(),
                message.partition(), message.offset(), why.detail)  # fmt: skip
    CONTROL_RECORDS_SKIPPED.labels(topic=message.topic(), reason=why.reason.value).inc()


def _name(kind: type[msgspec.Struct]) -> str:
    """The record's tag, as people say it: ``thresholds``, ``drift alert``, ``model event``."""
    return str(kind.__struct_config__.tag).replace("_", " ")


@functools.cache
def _decoder(kind: type[ControlRecord]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)
