"""Drift monitors: they fire on an abrupt change, stay quiet without one, respect warm-up and
cool-down, and label loans exactly as ``deepcredit.loans`` does."""

from __future__ import annotations

import copyreg
import gzip
import itertools
import math
import pickle
import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from river.base import DriftDetector

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import loan_outcomes
from deepcredit.records import DriftAlert, Monitor
from scorer import monitors
from scorer.monitor_config import user_point
from scorer.monitors import (
    DriftMonitors,
    InputMonitor,
    LoanLabeller,
    MonitorConfig,
    PerformanceMonitor,
    ScoreMonitor,
    UserSample,
)
from training.benchmark.generator import GeneratorConfig, generate

T0 = 1.5e9
DATA = Path(__file__).parents[1] / "data"
N = 6000  # observations per synthetic stream; the change comes at N // 2
CONFIG = MonitorConfig(warmup_days=2.0, cooldown_days=1000.0)


def fixed_clock() -> float:
    return 123.0


def fired(alerts: list[DriftAlert | None]) -> list[DriftAlert]:
    return [a for a in alerts if a is not None]


# --- scores -------------------------------------------------------------------------------------


def score_stream(seed: int, change: bool) -> list[DriftAlert | None]:
    """One post every 10 minutes; with ``change`` the mean risk goes from 0.14 to 0.2."""
    rng = random.Random(seed)
    m = ScoreMonitor("m1", CONFIG, clock=fixed_clock)
    out = []
    for i in range(N):
        p = rng.betavariate(2, 8 if change and i >= N // 2 else 12)
        out.append(m.update(p, p / 3, ts=T0 + i * 600.0))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_fire_after_an_abrupt_change_and_not_before(seed: int) -> None:
    alerts = fired(score_stream(seed, change=True))
    assert alerts, "no alert after the mean score rose by 40%"
    first = alerts[0]
    assert N // 2 < first.events_seen < N // 2 + 1500
    assert first.monitor is Monitor.SCORES and first.detector == "ADWIN"
    assert first.alert_id == f"scores-{first.signal}-{first.events_seen}"
    assert first.model_version == "m1" and first.detected_at == 123.0
    assert first.event_ts == T0 + (first.events_seen - 1) * 600.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_stay_quiet_on_a_stationary_stream(seed: int) -> None:
    assert fired(score_stream(seed, change=False)) == []


# --- inputs -------------------------------------------------------------------------------------

MIX = {a: 1.0 for a in Activity}
CRISIS = MIX | {Activity.LEND: 0.5, Activity.WITHDRAW: 1.5}


def input_stream(seed: int, change: bool, n: int = 3 * N) -> list[DriftAlert | None]:
    """Events of 50 users; with ``change`` lending halves and withdrawals grow by half."""
    rng = random.Random(seed)
    m = InputMonitor("m1", CONFIG, clock=fixed_clock)
    out = []
    for i in range(n):
        mix = CRISIS if change and i >= n // 2 else MIX
        activity = rng.choices(list(mix), weights=list(mix.values()))[0]
        loan = {"loan_id": f"l{i}", "rate": 0.1, "term_days": 30} if activity.value in (
            "post", "borrow", "repay", "miss_payment") else {}  # fmt: skip
        event = ClickEvent(event_id=f"e{i}", user_id=f"u{rng.randrange(50)}", ts=T0 + i * 60.0,
                           activity=activity, amount=rng.lognormvariate(6, 1), **loan)  # fmt: skip
        out.append(m.update(event))
    return out


def test_inputs_fire_on_a_change_of_the_activity_mix() -> None:
    alerts = fired(input_stream(0, change=True))
    assert alerts
    assert alerts[0].signal in ("share_lend", "share_withdraw")
    assert 3 * N // 2 < alerts[0].events_seen < 3 * N // 2 + 3000


@pytest.mark.parametrize("seed", [0, 1])
def test_inputs_stay_quiet_without_a_change(seed: int) -> None:
    assert fired(input_stream(seed, change=False)) == []


# --- warm-up and cool-down ------------------------------------------------------------------------


class Scripted(DriftDetector):
    """Fires at the given update indices, and nowhere else."""

    def __init__(self, fires: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.fires = fires
        self._n = 0

    def update(self, x: float) -> None:
        self._drift_detected = self._n in self.fires
        self._n += 1


@settings(max_examples=60, deadline=None)
@example(gaps=[0.0, 0.0], fires={0, 1}, warmup=0.0, cooldown=2.2250738585e-313)  # absorbed
@given(
    gaps=st.lists(st.floats(0.0, 3 * DAY_S), min_size=1, max_size=80),
    fires=st.sets(st.integers(0, 79)),
    warmup=st.floats(0.0, 20.0),
    cooldown=st.floats(0.0, 20.0),
)
def test_warmup_and_cooldown(gaps: list[float], fires: set[int], warmup: float,
                             cooldown: float) -> None:  # fmt: skip
    config = MonitorConfig(warmup, cooldown, detector=lambda: Scripted(frozenset(fires)))
    m = ScoreMonitor("m1", config)
    ts, alerts = T0, []
    for i, gap in enumerate(gaps):
        ts += gap
        if m.update(0.1, 0.1, ts) is not None:
            alerts.append((i, ts))
    start = T0 + gaps[0]
    # No alert in the warm-up, none within a cool-down of the previous one (both ends in event
    # time, as the monitor keeps them: a cool-down below the timestamps' resolution is none) ...
    assert all(t >= start + warmup * DAY_S for _, t in alerts)
    assert all(b >= a + cooldown * DAY_S for (_, a), (_, b) in itertools.pairwise(alerts))
    # ... and every other firing was silenced by one of the two.
    times = [T0 + sum(gaps[: i + 1]) for i in range(len(gaps))]
    alerted = {i for i, _ in alerts}
    for i in fires - alerted:
        if i >= len(gaps):
            continue
        before = [t for j, t in alerts if j < i]
        in_warmup = times[i] < start + warmup * DAY_S
        assert in_warmup or (before and times[i] < before[-1] + cooldown * DAY_S)


def test_warmup_suppresses_a_change_inside_it() -> None:
    """The same change that fires with a 2-day warm-up is silent under a longer one."""
    rng = random.Random(0)
    long = ScoreMonitor("m1", MonitorConfig(warmup_days=N * 600.0 / DAY_S, cooldown_days=0.0))
    alerts = []
    for i in range(N):
        p = rng.betavariate(2, 8 if i >= N // 2 else 12)
        alerts.append(long.update(p, p / 3, ts=T0 + i * 600.0))
    assert fired(alerts) == []


# --- performance --------------------------------------------------------------------------------


def loan_event(i: int, k: int, ts: float, activity: Activity, **kw: object) -> ClickEvent:
    return ClickEvent(event_id=f"e{i}-{k}", user_id=f"u{i % 40}", ts=ts, activity=activity,
                      amount=100.0, loan_id=f"l{i}", **kw)  # fmt: skip


def loan_events(seed: int, change: bool, loans: int = N) -> list[tuple[ClickEvent, tuple | None]]:
    """Loans posted an hour apart, each funded and repaid; delinquency happens with the scored
    probability, or with three times it after the change (the model has gone stale)."""
    rng = random.Random(seed)
    rows = []
    for i in range(loans):
        post_ts, term = T0 + i * 3600.0, 30
        due = post_ts + term * DAY_S
        p = rng.uniform(0.02, 0.3)
        late = rng.random() < (min(3 * p, 1.0) if change and i >= loans // 2 else p)
        repay_ts = due + (rng.uniform(1, 60) if late else -rng.uniform(0, 5)) * DAY_S
        rows.append((loan_event(i, 0, post_ts, Activity.POST, rate=0.1, term_days=term),
                     (p, p / 4)))  # fmt: skip
        rows.append((loan_event(i, 1, post_ts + 60, Activity.BORROW), None))
        rows.append((loan_event(i, 2, repay_ts, Activity.REPAY), None))
    rows.sort(key=lambda r: r[0].ts)
    return rows


def performance_alerts(seed: int, change: bool) -> tuple[PerformanceMonitor, list[DriftAlert]]:
    m = PerformanceMonitor("m1", MonitorConfig(warmup_days=30.0, cooldown_days=1000.0))
    alerts = [m.update(event, p) for event, p in loan_events(seed, change)]
    alerts.append(m.advance(T0 + 10_000 * DAY_S))
    return m, fired(alerts)


def test_performance_fires_when_the_model_goes_stale() -> None:
    _, alerts = performance_alerts(0, change=True)
    assert len(alerts) == 1
    assert alerts[0].signal == "brier_delinquent"
    change_ts = T0 + N // 2 * 3600.0 + 30 * DAY_S  # when the first stale loan comes due
    assert change_ts < alerts[0].event_ts < change_ts + 60 * DAY_S
    assert "rolling AUC delinquent" in alerts[0].detail


@pytest.mark.parametrize("seed", [0, 1])
def test_performance_quiet_and_auc_sane_when_the_model_holds(seed: int) -> None:
    m, alerts = performance_alerts(seed, change=False)
    assert alerts == []
    assert m.events_seen == 2 * N  # two labels per loan, all known in the end
    assert m.open_loans == 0
    auc = m.rolling_auc
    assert 0.6 < auc["delinquent"] < 0.85  # p itself is the truth: AUC of a calibrated score
    assert auc["default"] is None  # nobody in this stream is 120 days late


def test_only_known_labels_are_scored_and_they_match_outcomes() -> None:
    """On a generated stream cut at several moments, the labeller has released exactly the
    labels ``loan_outcomes`` knows at that moment, with the same values, for scored posts."""
    config = GeneratorConfig(users=25, seed=4, horizon_days=400)
    events = list(generate(config))
    posts = [e.loan_id for e in events if e.activity is Activity.POST]
    scored = set(posts[::2])  # every other post goes unscored: those must never be labelled
    for as_of in (config.start_ts + 120 * DAY_S, config.start_ts + 250 * DAY_S, config.end_ts):
        labeller, released = LoanLabeller(), {}
        for e in events:
            if e.ts > as_of:
                break
            p = (0.2, 0.05) if e.activity is Activity.POST and e.loan_id in scored else None
            for lab in labeller.update(e, p):
                assert (lab.loan_id, lab.target) not in released
                assert lab.known_at <= as_of
                released[lab.loan_id, lab.target] = lab.label
        for lab in labeller.advance(as_of):
            released[lab.loan_id, lab.target] = lab.label
        expected = {}
        for loan_id, o in loan_outcomes(events, as_of=as_of).items():
            if loan_id in scored:
                for target in ("delinquent", "default"):
                    if getattr(o, target) is not None:
                        expected[loan_id, target] = getattr(o, target)
        assert released == expected
        assert any(v for v in expected.values()) and not all(expected.values())


#: Offsets (days from the due date) on and around the two label boundaries, plus anything.
EDGES = st.sampled_from([0.0, 1e-5, 0.5, 120.0, 120.0 + 1e-5, 121.0]) | st.floats(-20.0, 300.0)


@settings(max_examples=200, deadline=None)
@given(
    term=st.integers(1, 90),
    funded=st.booleans(),
    repay=st.none() | EDGES,
    as_of=EDGES,
)
def test_one_loan_labelled_like_outcomes_at_every_moment(
    term: int, funded: bool, repay: float | None, as_of: float
) -> None:
    post_ts = T0
    due = post_ts + term * DAY_S
    stream = [loan_event(0, 0, post_ts, Activity.POST, rate=0.1, term_days=term)]
    if funded:
        stream.append(loan_event(0, 1, post_ts + 60, Activity.BORROW))
    if repay is not None and due + repay * DAY_S > post_ts + 60:
        stream.append(loan_event(0, 2, due + repay * DAY_S, Activity.REPAY))
    cut = max(due + as_of * DAY_S, post_ts)
    labeller, released = LoanLabeller(), {}
    for e in stream:
        if e.ts <= cut:
            p = (0.3, 0.1) if e.activity is Activity.POST else None
            released |= {lab.target: lab.label for lab in labeller.update(e, p)}
    released |= {lab.target: lab.label for lab in labeller.advance(cut)}
    o = loan_outcomes(stream, as_of=cut)["l0"]
    expected = {t: getattr(o, t) for t in ("delinquent", "default") if getattr(o, t) is not None}
    assert released == expected


# --- the facade ---------------------------------------------------------------------------------


def test_facade_runs_every_monitor_and_survives_a_pickle_round_trip() -> None:
    events = list(generate(GeneratorConfig(users=30, seed=5, horizon_days=500)))
    cfg = MonitorConfig(warmup_days=5.0, cooldown_days=20.0, delta=0.01)  # chatty on purpose

    def probabilities(e: ClickEvent) -> tuple[float, float] | None:
        if e.activity is not Activity.POST:
            return None
        p = 0.1 if e.ts < events[len(events) // 3].ts else 0.9  # the model goes wrong
        return p, p / 3

    def run(m: DriftMonitors, part: list[ClickEvent]) -> list[DriftAlert]:
        return [a for e in part for a in m.update(e, probabilities(e))]

    half = len(events) // 2
    whole = DriftMonitors("m1", scores=cfg, inputs=cfg, performance=cfg, clock=fixed_clock)
    first, rest = run(whole, events[:half]), run(whole, events[half:])
    fresh = DriftMonitors("m1", scores=cfg, inputs=cfg, performance=cfg, clock=fixed_clock)
    resumed = pickle.loads(pickle.dumps(fresh))
    assert run(resumed, events[:half]) == first
    resumed = pickle.loads(pickle.dumps(resumed))
    assert run(resumed, events[half:]) == rest
    alerts = first + rest
    assert {a.monitor for a in alerts} == set(Monitor)
    assert len({a.alert_id for a in alerts}) == len(alerts)
    assert whole.scores.events_seen == sum(e.activity is Activity.POST for e in events)
    assert whole.inputs.events_seen == len(events)


class _OlderHeld:
    """A held loan as older drift snapshots pickled it: ``_Held(p, due_ts, funded,
    delinquent_known)``."""

    def __init__(self, *fields: object) -> None:
        self.fields = fields

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (monitors._Held, self.fields)


class _OlderLabeller:
    """A labeller as older drift snapshots pickled it: its held loans one by one, no blob."""

    def __init__(self, state: dict[str, object]) -> None:
        self.state = state

    def __reduce__(self) -> tuple[object, ...]:
        return (copyreg._reconstructor, (LoanLabeller, object, None), self.state)


def test_a_labeller_from_an_older_snapshot_goes_on_labelling() -> None:
    due = T0 + 30 * DAY_S
    older = _OlderLabeller({"_held": {"l0": _OlderHeld((0.3, 0.1), due, True, False)},
                            "_deadlines": [(due, 0, "l0")], "_now": -math.inf})  # fmt: skip
    labeller = pickle.loads(pickle.dumps(older))
    assert isinstance(labeller, LoanLabeller)
    labels = labeller.advance(due + 1)
    labels += labeller.update(loan_event(0, 2, due + 5 * DAY_S, Activity.REPAY), None)
    assert [(x.target, x.label, x.p) for x in labels] == [("delinquent", True, 0.3),
                                                          ("default", False, 0.1)]  # fmt: skip
    assert labeller.open_loans == 0


def test_the_held_loans_are_snapshotted_as_one_blob_and_come_back_equal() -> None:
    labeller = LoanLabeller()
    for i in range(3):
        post = loan_event(i, 0, T0 + i, Activity.POST, rate=0.1, term_days=30)
        labeller.update(post, (0.1 * (i + 1), 0.01 * (i + 1)))
    labeller.update(loan_event(1, 1, T0 + 10, Activity.BORROW), None)
    state = labeller.__getstate__()
    assert isinstance(state["_held"], bytes)  # one msgpack blob, not a struct per loan
    back = pickle.loads(pickle.dumps(labeller))
    assert back._held == labeller._held and list(back._held) == list(labeller._held)
    assert back._deadlines == labeller._deadlines and back._now == labeller._now
    assert len(back._held) == 3 and back._held["l1"].funded and not back._held["l0"].funded
    assert back._held["l2"].p == (0.1 * 3, 0.01 * 3)


# --- the user sample ----------------------------------------------------------------------------


def _facade_stream(
    users: int, seed: int, days: float = 400
) -> list[tuple[ClickEvent, tuple[float, float] | None]]:
    events = generate(GeneratorConfig(users=users, seed=seed, horizon_days=days))
    return [(e, (0.2, 0.05) if e.activity is Activity.POST else None) for e in events]


def _state(m: DriftMonitors) -> tuple[object, ...]:
    held = m.performance._labeller._held
    return (m.users, m.inputs.events_seen, m.scores.events_seen, m.performance.events_seen,
            sorted(held), m.share)  # fmt: skip


def test_user_points_are_stable_and_uniform() -> None:
    points = [user_point(f"u{i}") for i in range(20_000)]
    assert points == [user_point(f"u{i}") for i in range(20_000)]
    assert all(0.0 <= x < 1.0 for x in points)
    for q in (0.125, 0.5):  # binomial sd at 20,000 ids: 0.0023 and 0.0035
        assert abs(sum(x < q for x in points) / len(points) - q) < 0.015
    with pytest.raises(ValueError, match="fraction"):
        UserSample(fraction=0.0)
    with pytest.raises(ValueError, match="max_users"):
        UserSample(max_users=0)


def test_a_sample_is_the_monitors_fed_only_its_users() -> None:
    stream = _facade_stream(60, 3)
    cfg = MonitorConfig(warmup_days=5.0, cooldown_days=20.0, delta=0.01)  # chatty on purpose
    sample = UserSample(fraction=0.5)

    def monitors(s: UserSample | None) -> DriftMonitors:
        return DriftMonitors("m1", scores=cfg, inputs=cfg, performance=cfg, clock=fixed_clock,
                             sample=s)  # fmt: skip

    sampled, alone = monitors(sample), monitors(None)
    a = [x for e, p in stream for x in sampled.update(e, p)]
    b = [x for e, p in stream if sample.watches(e.user_id) for x in alone.update(e, p)]
    assert a == b and a  # alerts, equal
    assert _state(sampled)[:5] == _state(alone)[:5]
    watched = {e.user_id for e, _ in stream if sample.watches(e.user_id)}
    assert sampled.users == len(watched) and 0 < len(watched) < 60
    assert sampled.inputs.events_seen < len(stream)


def test_past_max_users_the_share_halves_and_what_it_drops_is_forgotten() -> None:
    stream = _facade_stream(120, 4, days=300)  # nobody silent for SILENT_DAYS
    cap = 25
    m = DriftMonitors("m1", clock=fixed_clock, sample=UserSample(max_users=cap))
    for e, p in stream:
        m.update(e, p)
        assert m.users <= cap
    seen = {e.user_id for e, _ in stream}
    # The widest share 2**-k whose users fit under FULL of the cap: twice as wide did not.
    assert m.share == 2.0**-m.halvings < 1.0
    assert sum(user_point(u) < m.share for u in seen) == m.users <= monitors.FULL * cap
    assert sum(user_point(u) < 2 * m.share for u in seen) > monitors.FULL * cap
    labeller = m.performance._labeller
    assert labeller._held and all(loan.user_point < m.share for loan in labeller._held.values())
    # The dropped users' deadlines went too (a loan id here begins with its user's id).
    assert all(user_point(d[2].split("-L")[0]) < m.share for d in labeller._deadlines)
    assert all(user_point(u) < m.share for u in m.inputs._last_ts)
    back = pickle.loads(pickle.dumps(m))
    assert _state(back) == _state(m) and back.sample == m.sample
    assert back.halvings == m.halvings


def test_users_silent_for_a_year_are_forgotten_before_the_share_halves() -> None:
    cap = 10
    m = DriftMonitors("m1", clock=fixed_clock, sample=UserSample(max_users=cap))

    def act(user: int, day: float) -> None:
        m.update(ClickEvent(event_id=f"e{user}-{day}", user_id=f"u{user}", ts=T0 + day * DAY_S,
                            activity=Activity.RECHARGE, amount=10.0), None)  # fmt: skip

    for u in range(8):
        act(u, 0.0)  # then silent
    for u in range(8, 11):
        act(u, monitors.SILENT_DAYS + 30)  # the 11th user fills the sample
    assert m.share == 1.0 and m.users == 3  # the silent ones went, nobody else
    for u in range(11, 20):
        act(u, monitors.SILENT_DAYS + 40)
    assert m.share < 1.0 and m.users <= monitors.FULL * cap  # active users: the share halves


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 30), st.floats(0.0, 200.0), st.integers(0, 2)),
                   min_size=1, max_size=150),
    cap=st.integers(1, 12),
    fraction=st.sampled_from([1.0, 0.5, 0.3]),
)  # fmt: skip
def test_the_sample_s_bounds_hold_on_any_stream(
    steps: list[tuple[int, float, int]], cap: int, fraction: float
) -> None:
    """Whatever the stream: never more users kept than the cap, only users below the share,
    only their loans, and a share that is the fraction halved a whole number of times."""
    m = DriftMonitors("m1", clock=fixed_clock, sample=UserSample(fraction, cap))
    ts = T0
    for i, (user, gap_days, kind) in enumerate(steps):
        ts += gap_days * DAY_S
        loan = f"u{user}-L{i // 3}"
        activity, p = [(Activity.POST, (0.2, 0.05)), (Activity.BORROW, None),
                       (Activity.REPAY, None)][kind]  # fmt: skip
        extra = {"rate": 0.1, "term_days": 30} if activity is Activity.POST else {}
        event = ClickEvent(event_id=f"e{i}", user_id=f"u{user}", ts=ts, activity=activity,
                           amount=100.0, loan_id=loan, **extra)  # fmt: skip
        m.update(event, p)
        assert m.users <= cap
        assert m.share == fraction / 2**m.halvings
        assert all(user_point(u) < m.share for u in m.inputs._last_ts)
        held = m.performance._labeller._held.values()
        assert all(x.user_point < m.share for x in held)


def test_monitors_restored_take_the_flow_s_sample() -> None:
    stream = _facade_stream(40, 6)
    m = DriftMonitors("m1", clock=fixed_clock)
    for e, p in stream:
        m.update(e, p)
    users = m.users
    m.resample(UserSample(fraction=0.25))
    assert m.share == 0.25 and 0 < m.users < users
    assert all(user_point(u) < 0.25 for u in m.inputs._last_ts)
    assert all(x.user_point < 0.25 for x in m.performance._labeller._held.values())
    m.resample(UserSample(fraction=0.5, max_users=3))  # less room: the cap halves the share
    assert m.users <= 3 and m.halvings >= 1 and m.share == 0.5 / 2**m.halvings
    halved, k = m.share, m.halvings
    m.resample(UserSample(fraction=0.5, max_users=3))  # a restart with the same sample
    assert (m.share, m.halvings) == (halved, k)
    m.resample(UserSample(fraction=1.0, max_users=3))  # a larger fraction, the same room
    assert m.share == 1.0 / 2**k and m.halvings == k
    m.resample(UserSample(fraction=1.0, max_users=1000))  # more room: the fraction again
    assert m.share == 1.0 and m.halvings == 0 and m.users <= 3


def test_monitors_pickled_before_the_sample_watch_every_user_until_narrowed() -> None:
    with gzip.open(DATA / "drift-monitors-e261cd0.pickle.gz") as f:
        older = pickle.load(f)  # the drift step's snapshot at e261cd0
    assert isinstance(older, DriftMonitors) and older.model_version == "m-old"
    assert older.share == 1.0 and older.sample == UserSample() and older.watches("anyone")
    labeller = older.performance._labeller
    assert labeller._held and all(x.user_point == 1.0 for x in labeller._held.values())
    users = older.users
    older.resample(UserSample(fraction=0.5))
    # Its loans carry no user: each might be a dropped user's, whose repayments no longer
    # come, and would be labelled unpaid by the clock alone. Every one goes.
    assert not labeller._held and not labeller._deadlines
    assert not older.advance(T0 + 10_000 * DAY_S)
    assert 0 < older.users < users and older.share == 0.5


# --- what an alert tells a person --------------------------------------------------------------


def test_an_alert_carries_reference_current_direction_severity_and_window() -> None:
    rng = random.Random(0)
    m = ScoreMonitor("m1", CONFIG, clock=fixed_clock)
    ps = [rng.betavariate(2, 12 if i < N // 2 else 8) for i in range(N)]  # mean 1/7, then 1/5
    first = fired([m.update(p, p / 3, ts=T0 + i * 600.0) for i, p in enumerate(ps)])[0]
    i = first.events_seen  # the alert came with the i-th post
    signal = 0 if first.signal == "p_delinquent" else 1
    values = [(p, p / 3)[signal] for p in ps[:i]]
    warm = sum(T0 + k * 600.0 < T0 + CONFIG.warmup_days * DAY_S for k in range(i))
    n_ref = max(warm, monitors.CURRENT_WINDOW)
    assert first.reference_n == n_ref
    assert first.reference_value == pytest.approx(sum(values[:n_ref]) / n_ref)
    assert (first.reference_from_ts, first.reference_to_ts) == (T0, T0 + (n_ref - 1) * 600.0)
    assert first.window_n == monitors.CURRENT_WINDOW
    latest = values[i - first.window_n :]
    assert first.current_value == pytest.approx(sum(latest) / first.window_n)
    assert first.window_from_ts == T0 + (i - first.window_n) * 600.0
    assert first.direction == "up" and first.current_value > first.reference_value
    assert first.severity == monitors.severity(first.reference_value, first.current_value)
    assert msgspec.structs.replace(first, detected_at=T0).problem() is None  # the clock: 123
    assert f"{first.signal} up: mean {first.current_value:.4g}" in first.detail
    assert f"{first.severity} severity" in first.detail

    # ADWIN's own window mean (value) understates the move: it still mixes in the old level.
    assert first.reference_value < first.value < first.current_value


def test_a_fall_is_down_and_its_severity_follows_the_relative_change() -> None:
    rng = random.Random(1)
    m = ScoreMonitor("m1", CONFIG, clock=fixed_clock)
    alerts = fired([m.update(p, p / 3, ts=T0 + i * 600.0) for i, p in enumerate(
        rng.betavariate(2, 8 if i < N // 2 else 30) for i in range(N))])  # fmt: skip
    assert alerts and alerts[0].direction == "down"
    assert alerts[0].severity == monitors.severity(alerts[0].reference_value,
                                                   alerts[0].current_value)  # fmt: skip
    assert monitors.severity(0.2, 0.19) == "low" and monitors.severity(0.2, 0.25) == "medium"


def test_monitors_from_a_snapshot_before_references_go_on_and_alert_readably() -> None:
    m = ScoreMonitor("m1", CONFIG, clock=fixed_clock)
    for i in range(300):
        m.update(0.1, 0.03, ts=T0 + i * 600.0)
    older = m._watch.__dict__.copy()
    for name in ("_reference", "_reference_open", "_recent", "_warm_until"):
        del older[name]
    m._watch.__dict__ = older  # as pickled before these fields existed
    restored = pickle.loads(pickle.dumps(m))
    rng = random.Random(2)
    alerts = fired([restored.update(p, p / 3, ts=T0 + (300 + i) * 600.0) for i, p in enumerate(
        rng.betavariate(2, 12 if i < N // 2 else 4) for i in range(N))])  # fmt: skip
    assert alerts and alerts[0].reference_n >= monitors.CURRENT_WINDOW
    assert alerts[0].reference_from_ts == T0 + 300 * 600.0  # the reference starts at the restore
    assert alerts[0].direction == "up" and alerts[0].current_value > alerts[0].reference_value


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=400), st.integers(0, 300))
@example([0.1] * 200 + [0.9] * 200, 300)  # detections, and restarts after them
def test_the_direct_adwin_update_is_river_s(xs: list[float], jump: int) -> None:
    """The monitors' shortcut to River's Rust window gives River's own detections, window and
    estimate at every step, restarts after a detection included."""
    from river.drift import ADWIN

    river, ours = ADWIN(delta=0.05, clock=4), ADWIN(delta=0.05, clock=4)
    stream = xs + [1.0 - x for x in xs[:jump]] * 3  # a change, so detections happen
    for x in stream:
        river.update(x)
        assert monitors._adwin_update(ours, x) == river.drift_detected
        assert (ours.width, ours.estimation) == (river.width, river.estimation)
