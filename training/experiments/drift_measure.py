"""How fast the drift monitors see a regime shift, and how often they cry wolf without one.

Two streams from the same generator config and seed, one with the generator's regime shift
(``GeneratorConfig.shift_at_ts``, a platform crisis) and one without, are scored event by event
through the numpy scorer (``scorer.model.advance``, one ``UserState`` per user) and fed to
``scorer.monitors.DriftMonitors``, as the live flow would. Per monitor we report the
detection delay after the shift (in events and in event-time days; None if never detected),
the alarms on the stream without the shift (false alarms), and the alarms before the shift.
Command line::

    deepcredit drift measure --users 1000 --seed 0 --model artifacts/models/dc-... \\
        --shift-at-day 730 --out results/drift.json

With ``samples`` (fractions of users, ``scorer.monitor_config.UserSample``), the same scores
also feed one more set of monitors per fraction, each watching only that share of the users as
the live flow's ``--drift-sample`` does; each set's report is under ``samples``, its delays
counted in the stream's events like the others, so the cost of watching fewer users reads off
side by side.

The generator guarantees that both streams are identical before the shift (tested in
``tests/training/benchmark/test_generator.py``), so the prefix is scored once: the run without the
shift is copied (user states and monitors) at its first event at or after the shift, and the shifted
stream resumes from that copy. The alarms before the shift are therefore the same on both.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

from tqdm import tqdm

from deepcredit.events import DAY_S, ClickEvent
from deepcredit.records import DriftAlert, Monitor
from scorer.model import ModelWeights, advance
from scorer.monitor_config import MonitorConfig, UserSample
from scorer.monitors import DriftMonitors
from scorer.user_state import UserState
from training.benchmark.config import DEFAULT_START_TS
from training.benchmark.generator import generate
from training.experiments.config import DriftMeasureConfig

__all__ = ["DriftMeasureConfig", "measure_drift"]


class _Replay:
    """One stream going through the scorer and the monitors (every user's, then one set per
    sample fraction), remembering where alerts came."""

    def __init__(self, weights: ModelWeights, monitors: list[DriftMonitors]) -> None:
        self.weights, self.sets = weights, monitors
        self.states: dict[str, UserState] = {}
        self.events = 0
        self.posts = 0
        # Per set of monitors: (index of the event, alert).
        self.alerts: list[list[tuple[int, DriftAlert]]] = [[] for _ in monitors]

    @property
    def monitors(self) -> DriftMonitors:
        """The monitors that watch every user."""
        return self.sets[0]

    def feed(self, event: ClickEvent) -> None:
        state = self.states.get(event.user_id)
        if state is None:
            state = UserState.new(self.weights.version, self.weights.hidden_size)
            self.states[event.user_id] = state
        p = advance(self.weights, state, event)
        self.posts += p is not None
        for monitors, alerts in zip(self.sets, self.alerts, strict=True):
            alerts.extend((self.events, a) for a in monitors.update(event, p))
        self.events += 1

    def finish(self, end_ts: float) -> None:
        """Let the clock run to the end of the horizon: labels due by then are released."""
        for monitors, alerts in zip(self.sets, self.alerts, strict=True):
            alerts.extend((self.events, a) for a in monitors.advance(end_ts))


def _monitors(config: DriftMeasureConfig, model_version: str) -> list[DriftMonitors]:
    cfg = MonitorConfig(config.warmup_days, config.cooldown_days, config.delta)
    return [
        DriftMonitors(model_version, scores=cfg, inputs=cfg, performance=cfg,
                      auc_window=config.auc_window, sample=UserSample(fraction))
        for fraction in (1.0, *config.samples)
    ]  # fmt: skip


def measure_drift(weights: ModelWeights, config: DriftMeasureConfig, progress: bool = True) -> dict:
    """Run both streams and report per monitor (see the module docstring)."""
    started = time.perf_counter()
    shift_ts, end_ts = config.shift_at_ts, config.generator(False).end_ts
    calm = _Replay(weights, _monitors(config, weights.version))
    fork: _Replay | None = None
    for event in _days(generate(config.generator(False)), config, 0.0, "no shift", progress):
        if fork is None and event.ts >= shift_ts:
            fork = copy.deepcopy(calm)
        calm.feed(event)
    calm.finish(end_ts)
    if fork is None:
        raise ValueError("no event at or after the shift: nothing to detect")
    shift_index = fork.events
    auc_at_shift = fork.monitors.performance.rolling_auc
    shifted, prefix = fork, 0
    for event in _days(generate(config.generator(True)), config, config.shift_at_day, "shifted",
                       progress):  # fmt: skip
        if event.ts < shift_ts:
            prefix += 1
            continue
        shifted.feed(event)
    shifted.finish(end_ts)
    if prefix != shift_index:
        raise RuntimeError(
            f"the streams differ before the shift ({prefix:,} vs {shift_index:,} events): "
            "the generator no longer keeps the past of a shifted run"
        )
    monitors = {m.value: _monitor_report(m, shifted, calm, shift_index, shift_ts) for m in Monitor}
    samples = {
        f"{fraction:g}": {
            "monitors": {
                m.value: _monitor_report(m, shifted, calm, shift_index, shift_ts, k)
                for m in Monitor
            },
            "users_watched": shifted.sets[k].users,
        }
        for k, fraction in enumerate(config.samples, start=1)
    }
    return {
        "monitors": monitors,
        **({"samples": samples} if samples else {}),
        "streams": {
            "shifted": _stream(shifted, shift_index),
            "no_shift": _stream(calm, shift_index),
        },
        "rolling_auc": {
            "at_shift": auc_at_shift,
            "end_shifted": shifted.monitors.performance.rolling_auc,
            "end_no_shift": calm.monitors.performance.rolling_auc,
        },
        "model_version": weights.version,
        "config": asdict(config),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _days(events, config: DriftMeasureConfig, from_day: float, name: str, progress: bool):
    """The events, with a progress bar in event-time days."""
    start = DEFAULT_START_TS
    with tqdm(total=round(config.horizon_days - from_day), unit="day", disable=not progress,
              desc=f"{name} ({config.users:,} users)") as bar:  # fmt: skip
        done = 0
        for i, event in enumerate(events):
            yield event
            if i % 4096 == 0:
                day = max(int((event.ts - start) / DAY_S - from_day), 0)
                if day > done:
                    bar.update(day - done)
                    done = day
        bar.update(bar.total - done)


def _stream(run: _Replay, shift_index: int) -> dict:
    m = run.monitors
    return {
        "events": run.events,
        "events_before_shift": shift_index,
        "events_after_shift": run.events - shift_index,
        "posts": run.posts,
        "labels": m.performance.events_seen,
        "open_loans_at_end": m.performance.open_loans,
    }


def _monitor_report(
    monitor: Monitor,
    shifted: _Replay,
    calm: _Replay,
    shift_index: int,
    shift_ts: float,
    k: int = 0,
) -> dict:
    """The report of one monitor of the ``k``-th set of monitors (0: every user's)."""
    ours = [(i, a) for i, a in shifted.alerts[k] if a.monitor is monitor]
    theirs = [(i, a) for i, a in calm.alerts[k] if a.monitor is monitor]
    after = [(i, a) for i, a in ours if a.event_ts >= shift_ts]
    theirs_after = [(i, a) for i, a in theirs if a.event_ts >= shift_ts]
    first = after[0] if after else None
    watch = getattr(shifted.sets[k], monitor.value)
    return {
        "detector": watch.detector_name,
        "signals": list(watch.SIGNALS),
        "detection_delay_events": None if first is None else first[0] - shift_index,
        "detection_delay_days": (
            None if first is None else round((first[1].event_ts - shift_ts) / DAY_S, 2)
        ),
        "detected_by": None if first is None else first[1].signal,
        "false_alarms_no_shift": len(theirs),
        "false_alarms_no_shift_after_shift_time": len(theirs_after),
        # A detection no earlier than this is indistinguishable from the monitor's own noise.
        "first_false_alarm_after_shift_days": (
            round((theirs_after[0][1].event_ts - shift_ts) / DAY_S, 2) if theirs_after else None
        ),
        "alarms_before_shift": len(ours) - len(after),
        "alarms_after_shift": len(after),
        "observations": {
            "shifted": watch.events_seen,
            "no_shift": getattr(calm.sets[k], monitor.value).events_seen,
        },
        "alerts_shifted": [_brief(a) for _, a in ours],
        "alerts_no_shift": [_brief(a) for _, a in theirs],
    }


def _brief(alert: DriftAlert) -> dict:
    return {
        "day": round((alert.event_ts - DEFAULT_START_TS) / DAY_S, 2),
        "signal": alert.signal,
        "value": None if alert.value is None else round(alert.value, 5),
    }
