"""Emitted records: thresholds validation and decisions, tagged JSON round trips."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepcredit.codec import encode
from deepcredit.records import Decision, DriftAlert, Monitor, Score, ThresholdUpdate

THRESHOLDS = ThresholdUpdate(
    version=1,
    delinquent_review=0.3,
    delinquent_decline=0.6,
    default_review=0.1,
    default_decline=0.3,
    updated_by="ops",
    updated_at=1.7e9,
)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"version": 0}, "version"),
        ({"delinquent_review": -0.1}, "delinquent_review"),
        ({"default_decline": 1.5}, "default_decline"),
        ({"default_review": math.nan}, "default_review"),
        ({"delinquent_review": 0.7}, "must not exceed"),
        ({"updated_by": ""}, "updated_by"),
    ],
)
def test_invalid_thresholds_say_why(change: dict, complaint: str) -> None:
    problem = msgspec.structs.replace(THRESHOLDS, **change).problem()
    assert problem is not None and complaint in problem


@given(st.floats(0, 1), st.floats(0, 1))
def test_decision_is_monotone_in_risk(p_delinquent: float, p_default: float) -> None:
    order = [Decision.APPROVE, Decision.REVIEW, Decision.DECLINE]
    base = THRESHOLDS.decide(p_delinquent=p_delinquent, p_default=p_default)
    riskier = THRESHOLDS.decide(
        p_delinquent=min(1.0, p_delinquent + 0.1), p_default=min(1.0, p_default + 0.1)
    )
    assert order.index(riskier) >= order.index(base)


def test_decision_boundaries() -> None:
    assert THRESHOLDS.decide(p_delinquent=0.29, p_default=0.09) is Decision.APPROVE
    assert THRESHOLDS.decide(p_delinquent=0.30, p_default=0.0) is Decision.REVIEW
    assert THRESHOLDS.decide(p_delinquent=0.0, p_default=0.30) is Decision.DECLINE


def test_records_round_trip_with_their_tag() -> None:
    score = Score(
        event_id="e",
        user_id="u",
        loan_id="l",
        p_delinquent=0.2,
        p_default=0.05,
        decision=Decision.APPROVE,
        thresholds_version=1,
        model_version="m1",
        event_ts=1.6e9,
        scored_at=1.7e9,
        prior_events=3,
        history_days=2.5,
    )
    alert = DriftAlert(
        alert_id="a",
        monitor=Monitor.SCORES,
        detector="ADWIN",
        signal="p_default",
        model_version="m1",
        event_ts=1.6e9,
        events_seen=10,
        detected_at=1.7e9,
    )
    for record in (score, alert, THRESHOLDS):
        raw = encode(record)
        assert msgspec.json.decode(raw)["type"] in {"score", "drift_alert", "thresholds"}
        assert msgspec.json.decode(raw, type=type(record)) == record
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(encode(score).replace(b"0.2", b"1.2"), type=Score)


# --- drift alerts: what a person reads ---------------------------------------------------------

ALERT = DriftAlert(alert_id="scores-p_default-900", monitor=Monitor.SCORES, detector="ADWIN",
                   signal="p_default", model_version="m1", event_ts=1.6e9, events_seen=900,
                   detected_at=1.7e9, value=0.08, reference_value=0.05, reference_n=400,
                   reference_from_ts=1.5e9, reference_to_ts=1.55e9, current_value=0.09,
                   window_n=250, window_from_ts=1.59e9, direction="up",
                   severity="high")  # fmt: skip


def test_a_drift_alert_decodes_without_the_readable_fields_an_older_writer_left_out() -> None:
    assert ALERT.problem() is None
    assert msgspec.json.decode(encode(ALERT), type=DriftAlert) == ALERT
    readable = {"reference_value", "reference_n", "reference_from_ts", "reference_to_ts",
                "current_value", "window_n", "window_from_ts", "direction", "severity"}  # fmt: skip
    older = {k: v for k, v in msgspec.to_builtins(ALERT).items() if k not in readable}
    old = msgspec.json.decode(msgspec.json.encode({"type": "drift_alert", **older}),
                              type=DriftAlert)  # fmt: skip
    assert old.problem() is None
    assert (old.reference_value, old.current_value, old.direction, old.severity) == (None,) * 4


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"reference_n": -1}, "reference_n"),
        ({"window_n": -5}, "window_n"),
        ({"current_value": math.inf}, "current_value"),
        ({"reference_value": math.nan}, "reference_value"),
        ({"window_from_ts": 1.6e12}, "window_from_ts must be Unix seconds"),
        ({"window_from_ts": 1.61e9}, "window_from_ts must not be after event_ts"),
        ({"reference_from_ts": 1.56e9}, "reference_from_ts must not be after"),
        ({"direction": "sideways"}, "direction must be"),
        ({"direction": "down"}, "contradicts"),
        ({"current_value": 0.05}, "contradicts"),
        ({"severity": "apocalyptic"}, "severity must be"),
    ],
)
def test_an_unreadable_drift_alert_says_why(change: dict, complaint: str) -> None:
    problem = msgspec.structs.replace(ALERT, **change).problem()
    assert problem is not None and complaint in problem
