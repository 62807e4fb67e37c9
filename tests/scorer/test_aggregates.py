"""The running aggregates (scorer.aggregates): O(1) updates that equal their definitions
recomputed over the whole history, whatever the order events arrive in."""

from __future__ import annotations

import math

import numpy as np

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.aggregates import (
    ACTIVITY_INDEX,
    AGGREGATE_FEATURES,
    FEATURE_NAMES,
    GROUPS,
    HALF_LIVES_DAYS,
    QUICK_WITHDRAWAL_S,
    Rates,
)
from scorer.steps import StepMemory, plan_step
from tests.strategies import make_events


def test_decayed_counts_equal_their_sum_in_any_arrival_order() -> None:
    events = make_events(400, users=1, seed=5)
    now = max(e.ts for e in events)
    shuffled = list(events)
    np.random.default_rng(0).shuffle(shuffled)
    for order in (events, shuffled):
        r = Rates()
        for e in order:
            r.update(e)
        fast, slow, _ = r.at(now)
        for a in Activity:
            ts = np.array([e.ts for e in events if e.activity is a])
            for got, half_life in ((fast, HALF_LIVES_DAYS[0]), (slow, HALF_LIVES_DAYS[1])):
                want = float(np.sum(0.5 ** ((now - ts) / (half_life * DAY_S))))
                assert math.isclose(got[ACTIVITY_INDEX[a]], want, rel_tol=1e-9, abs_tol=1e-12)


def test_quick_withdrawals_count_those_soon_after_a_post_or_funding() -> None:
    events = sorted(make_events(600, users=1, seed=2), key=lambda e: e.ts)
    r = Rates()
    for e in events:
        r.update(e)
    now = events[-1].ts
    want, last_loan = 0.0, None
    for e in events:
        if e.activity in (Activity.POST, Activity.BORROW):
            last_loan = e.ts
        elif e.activity is Activity.WITHDRAW and last_loan is not None \
                and e.ts - last_loan <= QUICK_WITHDRAWAL_S:  # fmt: skip
            want += 0.5 ** ((now - e.ts) / (HALF_LIVES_DAYS[1] * DAY_S))
    assert math.isclose(r.at(now)[2], want, rel_tol=1e-9, abs_tol=1e-12)


def test_every_post_gets_finite_aggregates_grouped_by_reason() -> None:
    memory = StepMemory()
    posts = 0
    for e in sorted(make_events(800, users=1, seed=3), key=lambda e: e.ts):
        plan = plan_step(memory, e)
        assert (plan.aggregates is not None) == (e.activity is Activity.POST)
        if plan.aggregates is not None:
            posts += 1
            assert len(plan.aggregates) == AGGREGATE_FEATURES
            assert all(math.isfinite(v) and -2.0 < v < 3.0 for v in plan.aggregates)
    assert posts > 0
    covered = [c for g in GROUPS for c in range(g.start, g.stop)]
    assert covered == list(range(AGGREGATE_FEATURES))


def test_a_late_repayment_and_a_quick_withdrawal_show_in_their_groups() -> None:
    def ev(day: float, act: Activity, **kw: object) -> ClickEvent:
        return ClickEvent(event_id=f"e{day}{act}", user_id="u", ts=1e9 + day * DAY_S,
                          activity=act, amount=100.0, **kw)  # fmt: skip

    memory = StepMemory()
    history = [ev(0, Activity.POST, loan_id="a", rate=0.1, term_days=30),
               ev(1, Activity.BORROW, loan_id="a"), ev(2, Activity.WITHDRAW),
               ev(40, Activity.REPAY, loan_id="a"),
               ev(41, Activity.POST, loan_id="b", rate=0.1, term_days=30)]  # fmt: skip
    plans = [plan_step(memory, e) for e in history]
    first, last = plans[0].aggregates, plans[-1].aggregates
    assert first is not None and last is not None
    names = dict(zip(FEATURE_NAMES, last, strict=True))
    assert names["late_loans"] > 0 and names["delay_mean"] == names["delay_max"] == 10 / 120
    assert names["quick_withdrawals"] > 0 and names["quick_share"] == 1.0
    assert names["funded_loans"] > 0 and names["unpaid"] == 0.0
    assert all(v == 0.0 for v in first[:12])  # a first post: no record, no debt, no withdrawal
