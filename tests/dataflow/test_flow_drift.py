"""Drift monitors inside the flow: an abrupt change of the activity mix, sent through the real
broker and flow, comes out as DriftAlerts on the drift-alerts topic and in the alert counter;
the drift step's snapshot carries the monitors across a restart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
from bytewax.testing import run_main
from prometheus_client import REGISTRY

from dataflow.flow import FlowConfig, build_flow
from dataflow.records import Accepted, Scored
from dataflow.steps import DriftStep
from deepcredit.codec import encode
from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.kafka_io import read_to_end
from deepcredit.records import DriftAlert, Monitor
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.artifact import load_scorer
from scorer.monitor_config import UserSample, user_point
from scorer.monitors import InputMonitor, MonitorConfig, PerformanceMonitor, ScoreMonitor
from tests.streams import read_scores, send

CRISIS_DAYS = 60.0
#: What the crisis does to the mix: nobody lends or recharges, everybody withdraws.
CRISIS_MIX = {Activity.LEND: Activity.WITHDRAW, Activity.RECHARGE: Activity.WITHDRAW}
CHANGED = {"share_lend", "share_recharge", "share_withdraw"}


def with_crisis(clicks: list[ClickEvent]) -> tuple[list[ClickEvent], float, float]:
    """The clicks, then their last ``CRISIS_DAYS`` again, moved on by as much, with lending and
    recharges turned into withdrawals (new event and loan ids). Also when the crisis starts and
    the warm-up that covers the whole ordinary history (so any alert is about the crisis)."""
    first, end = min(e.ts for e in clicks), max(e.ts for e in clicks)
    shift = CRISIS_DAYS * DAY_S
    crisis = [
        msgspec.structs.replace(e, event_id=f"{e.event_id}-c", ts=e.ts + shift,
                                activity=CRISIS_MIX.get(e.activity, e.activity),
                                loan_id=None if e.loan_id is None else f"{e.loan_id}-c")
        for e in clicks if e.ts > end - shift
    ]  # fmt: skip
    change = min(e.ts for e in crisis)
    return clicks + crisis, change, (change - first) / DAY_S


def alerts_counted() -> dict[tuple[str, str], float]:
    return {(s.labels["monitor"], s.labels["signal"]): s.value
            for family in REGISTRY.collect() if family.name == "deepcredit_drift_alerts"
            for s in family.samples if s.name.endswith("_total")}  # fmt: skip


def test_an_abrupt_change_of_the_activity_mix_lands_on_the_drift_alerts_topic(
    kafka: KafkaSettings, topics: Topics, clicks: list[ClickEvent], model_dir: Path
) -> None:
    stream, change, warmup = with_crisis(clicks)
    send(kafka, topics.clicks, [encode(e) for e in stream])
    w = load_scorer(model_dir)
    monitors = MonitorConfig(warmup_days=warmup, cooldown_days=1.0)
    before = alerts_counted()

    run_main(build_flow(FlowConfig(kafka, topics, tail=False, monitors=monitors), w,
                        lambda: DEFAULT_THRESHOLDS))  # fmt: skip

    messages = read_to_end(kafka, topics.drift_alerts)
    alerts = [msgspec.json.decode(m.value(), type=DriftAlert) for m in messages]
    assert alerts, "no drift alert after lending and recharges stopped"
    assert all(m.key() == a.monitor.value.encode() for m, a in zip(messages, alerts, strict=True))
    assert all(a.event_ts >= change and a.model_version == w.version for a in alerts)
    assert {a.signal for a in alerts if a.monitor is Monitor.INPUTS} & CHANGED
    assert len({a.alert_id for a in alerts}) == len(alerts)  # each alert written once
    after = alerts_counted()
    written = Counter((a.monitor.value, a.signal) for a in alerts)
    moved = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert moved == written
    # Every signal's series is exported from the start (at 0), so a first alert is an increase.
    monitors_ = (ScoreMonitor, InputMonitor, PerformanceMonitor)
    assert set(after) == {(m.MONITOR.value, s) for m in monitors_ for s in m.SIGNALS}
    posts = sum(e.activity is Activity.POST for e in stream)
    assert len(read_scores(kafka, topics.risk_scores)) == posts  # the scores are still all there


def test_the_drift_step_snapshot_carries_the_monitors_across_a_restart(
    clicks: list[ClickEvent],
) -> None:
    stream, change, warmup = with_crisis(clicks)
    items = [Scored(Accepted(e, 0.0, 0, 0), 0.1, 0.02) if e.activity is Activity.POST
             else Accepted(e, 0.0, 0, 0) for e in stream]  # fmt: skip
    config = MonitorConfig(warmup_days=warmup, cooldown_days=1.0)

    def signals(alerts: list[DriftAlert]) -> list[tuple[str, float]]:
        return [(a.alert_id, a.event_ts) for a in alerts]

    def run(step: DriftStep, batch: list, eof: bool = False) -> list[tuple[str, float]]:
        out = signals(list(step.on_batch(batch)[0]))
        return out + (signals(list(step.on_eof()[0])) if eof else [])

    # The reorder buffer holds more than half the stream, so the snapshot must carry it too.
    reorder = len(items) * 2 // 3
    whole = DriftStep("m1", config, None, reorder=reorder)
    expected = run(whole, items, eof=True)
    assert expected and all(ts >= change for _, ts in expected)

    half = len(items) // 2
    first = DriftStep("m1", config, None, reorder=reorder)
    got = run(first, items[:half])
    snapshot = first.snapshot()
    first.on_batch(items[half:])  # the snapshot is bytes: what came after does not reach it
    restored = DriftStep("m1", config, snapshot, reorder=reorder)
    assert len(restored.buffer) == half  # nothing released yet: all of it in the snapshot
    got += run(restored, items[half:], eof=True)
    assert got == expected

    # The monitors see the stream in event time although it arrives user by user.
    by_user = sorted(items, key=lambda v: (v.accepted.event if isinstance(v, Scored)
                                           else v.event).user_id)  # fmt: skip
    assert run(DriftStep("m1", config, None, reorder=len(items)), by_user, eof=True) == expected

    fresh = DriftStep("m2", config, snapshot)  # another model: new monitors, a new reference
    assert fresh.monitors is not None and fresh.monitors.inputs.events_seen == 0


def test_the_flow_s_drift_monitors_watch_the_sample_it_is_given(
    kafka: KafkaSettings, topics: Topics, clicks: list[ClickEvent], model_dir: Path
) -> None:
    send(kafka, topics.clicks, [encode(e) for e in clicks])
    sample = UserSample(fraction=0.5, max_users=1000)
    run_main(build_flow(FlowConfig(kafka, topics, tail=False, drift_sample=sample),
                        load_scorer(model_dir), lambda: DEFAULT_THRESHOLDS))  # fmt: skip
    watched = {e.user_id for e in clicks if user_point(e.user_id) < 0.5}
    assert 0 < len(watched) < len({e.user_id for e in clicks})
    assert REGISTRY.get_sample_value("deepcredit_drift_sample_share") == 0.5
    assert REGISTRY.get_sample_value("deepcredit_drift_users_watched") == len(watched)
    posts = sum(e.activity is Activity.POST for e in clicks)
    assert len(read_scores(kafka, topics.risk_scores)) == posts  # every post still scored
