"""Decoding the control topics' records: any bytes give a usable record or a reason, never an
exception; a skipped message is logged where it is and counted."""

from __future__ import annotations

import logging
import time

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from deepcredit.codec import encode
from deepcredit.control import Rejected, SkipReason, decode_control, decode_record
from deepcredit.records import DriftAlert, ModelEvent, Monitor, ThresholdUpdate
from tests.strategies import thresholds_like

NOW = time.time()
ALERT = DriftAlert(alert_id="a1", monitor=Monitor.SCORES, detector="ADWIN", signal="p_default",
                   model_version="m1", event_ts=1.6e9, events_seen=10, detected_at=NOW)  # fmt: skip
EVENT = ModelEvent(action="promote", version="dc-2", previous="dc-1", by="ops", reason="better",
                   at=NOW)  # fmt: skip
THRESHOLDS = ThresholdUpdate(version=1, delinquent_review=0.2, delinquent_decline=0.5,
                             default_review=0.1, default_decline=0.3, updated_by="ops",
                             updated_at=NOW)  # fmt: skip
KINDS = (ThresholdUpdate, DriftAlert, ModelEvent)


def nested(record: msgspec.Struct, depth: int) -> bytes:
    """``record`` with an extra field of ``depth`` nested arrays."""
    return encode(record)[:-1] + b',"meta":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("record", [THRESHOLDS, ALERT, EVENT])
def test_a_valid_record_decodes_even_with_extra_fields(record: msgspec.Struct) -> None:
    assert decode_record(encode(record), type(record)) == record
    assert decode_record(nested(record, 10), type(record)) == record


@pytest.mark.parametrize(
    ("value", "kind", "reason", "says"),
    [
        (None, ThresholdUpdate, SkipReason.EMPTY, "tombstone"),
        (b"\xff\xfe", DriftAlert, SkipReason.NOT_JSON, "not a drift alert record"),
        (encode(ALERT)[:-1] + b',"x":"\xff"}', DriftAlert, SkipReason.NOT_JSON, "utf-8"),
        (nested(THRESHOLDS, 1200), ThresholdUpdate, SkipReason.NOT_JSON, "nested too deep"),
        (nested(EVENT, 100_000), ModelEvent, SkipReason.NOT_JSON, "nested too deep"),
        (encode(ALERT), ModelEvent, SkipReason.WRONG_SCHEMA, "not a model event record"),
        (encode(THRESHOLDS).replace(b'"version":1', b'"version":1.5'), ThresholdUpdate,
         SkipReason.WRONG_SCHEMA, "Expected `int`, got `float` - at `$.version`"),
        (encode(msgspec.structs.replace(THRESHOLDS, updated_at=NOW * 1000)), ThresholdUpdate,
         SkipReason.INVALID, "updated_at must be Unix seconds"),
        (encode(msgspec.structs.replace(THRESHOLDS, default_review=0.4)), ThresholdUpdate,
         SkipReason.INVALID, "default_review (0.4) must not exceed default_decline (0.3)"),
        (encode(msgspec.structs.replace(ALERT, event_ts=1.6e12)), DriftAlert, SkipReason.INVALID,
         "event_ts must be Unix seconds"),
        (encode(msgspec.structs.replace(ALERT, alert_id="")), DriftAlert, SkipReason.INVALID,
         "alert_id must not be empty"),
        (encode(msgspec.structs.replace(EVENT, action="keep")), ModelEvent, SkipReason.INVALID,
         "action must be 'promote', 'reject' or 'rollback'"),
        (encode(msgspec.structs.replace(EVENT, action="reject", override=True)), ModelEvent,
         SkipReason.INVALID, "only a promotion can override the gate"),
        (encode(msgspec.structs.replace(EVENT, at=NOW * 1000)), ModelEvent, SkipReason.INVALID,
         "at must be Unix seconds"),
    ],
)  # fmt: skip
def test_an_unusable_record_says_why(
    value: bytes | None, kind: type, reason: SkipReason, says: str
) -> None:
    rejected = decode_record(value, kind)
    assert isinstance(rejected, Rejected)
    assert rejected.reason is reason and says in rejected.detail


@given(st.binary(max_size=200) | thresholds_like(), st.sampled_from(KINDS))
def test_any_bytes_give_a_usable_record_or_a_reason(value: bytes, kind: type) -> None:
    record = decode_record(value, kind)
    assert isinstance(record, Rejected) or record.problem() is None


class _Message:
    """The part of confluent_kafka.Message that decoding reads."""

    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return "test-control-alerts"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


def test_a_skipped_message_is_logged_where_it_is_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    labels = {"topic": "test-control-alerts", "reason": "wrong_schema"}

    def count() -> float:
        return REGISTRY.get_sample_value("deepcredit_control_records_skipped_total", labels) or 0

    before = count()
    with caplog.at_level(logging.WARNING, logger="deepcredit.control"):
        assert decode_control(_Message(b'{"type":"drift_alert"}'), DriftAlert) is None
    assert "drift alert record test-control-alerts[2]@41 skipped: not a drift alert" in caplog.text
    assert count() == before + 1
    assert decode_control(_Message(encode(ALERT)), DriftAlert) == ALERT
    assert count() == before + 1
