"""The streaming form: ledger, features and the per-event step plan."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.features import ACTIVITY_FEATURES, LOAN_FEATURES, LoanStep
from scorer.ledger import PENDING_POST_TTL_S, Debt, Ledger
from scorer.steps import StepMemory, plan_step
from tests.strategies import make_events

T0 = 1.5e9


def ev(ts: float, activity: Activity, amount: float = 100.0, **kw: object) -> ClickEvent:
    return ClickEvent(event_id=f"e{ts}", user_id="u", ts=T0 + ts, activity=activity,
                      amount=amount, **kw)  # fmt: skip


def post(ts: float, loan: str, amount: float = 100.0, term_days: int = 30) -> ClickEvent:
    return ev(ts, Activity.POST, amount, loan_id=loan, rate=0.12, term_days=term_days)


def test_ledger_tracks_unpaid_overdue_and_undue() -> None:
    book = Ledger()
    book.apply(post(0, "a", 100))
    assert book.debt(T0 + 1) == Debt(0.0, 0.0, 0)  # posted, not funded: no debt
    book.apply(ev(60, Activity.BORROW, loan_id="a"))
    book.apply(post(DAY_S, "b", 50, term_days=90))
    book.apply(ev(DAY_S + 60, Activity.BORROW, loan_id="b"))
    assert book.debt(T0 + 10 * DAY_S) == Debt(150.0, 0.0, 2)
    assert book.debt(T0 + 40 * DAY_S) == Debt(150.0, 100.0, 1)  # a is past due
    assert book.apply(ev(45 * DAY_S, Activity.REPAY, loan_id="a")) == 15.0
    assert book.debt(T0 + 45 * DAY_S) == Debt(50.0, 0.0, 1)
    assert book.apply(ev(46 * DAY_S, Activity.REPAY, loan_id="a")) is None  # already settled


def test_ledger_forgets_posts_never_funded() -> None:
    book = Ledger()
    book.apply(post(0, "a"))
    book.apply(post(PENDING_POST_TTL_S + 1, "b"))
    assert set(book.loans) == {"b"}


def test_ledger_survives_serialisation() -> None:
    book = Ledger()
    book.apply(post(0, "a"))
    book.apply(ev(1, Activity.BORROW, loan_id="a"))
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(book), type=Ledger)
    assert again == book and again.debt(T0 + 5) == book.debt(T0 + 5)


def test_plan_routes_each_kind_of_event() -> None:
    memory = StepMemory()
    p = plan_step(memory, post(0, "a"))
    assert p.activity_x is None and p.loan_step is LoanStep.POST and len(p.loan_x) == LOAN_FEATURES
    p = plan_step(memory, ev(3600, Activity.BORROW, loan_id="a"))
    assert len(p.activity_x) == ACTIVITY_FEATURES and p.activity_gap_s == 3600  # from the post
    assert p.loan_step is None
    p = plan_step(memory, ev(30 * DAY_S, Activity.MISS_PAYMENT, loan_id="a"))
    assert p.loan_step is LoanStep.MISS and p.loan_gap_s == 30 * DAY_S
    p = plan_step(memory, ev(35 * DAY_S, Activity.REPAY, loan_id="a"))
    assert p.loan_step is LoanStep.REPAY
    assert p.loan_x[-1] == 5.0 / 120  # the delay in days, over the default horizon
    p = plan_step(memory, post(40 * DAY_S, "b"))
    assert p.post_gap_s == 40 * DAY_S and p.loan_gap_s == 5 * DAY_S


def test_repay_of_an_unknown_loan_is_only_an_activity() -> None:
    p = plan_step(StepMemory(), ev(0, Activity.REPAY, loan_id="zzz"))
    assert p.activity_x is not None and p.loan_step is None


def test_a_post_sees_only_the_past() -> None:
    """A post's inputs are the same whatever follows it."""
    events = make_events(300, users=1, seed=5)
    posts = [i for i, e in enumerate(events) if e.activity is Activity.POST]
    cut = posts[len(posts) // 2]
    full, prefix = StepMemory(), StepMemory()
    plans_full = [plan_step(full, e) for e in events]
    plans_prefix = [plan_step(prefix, e) for e in events[: cut + 1]]
    assert plans_full[: cut + 1] == plans_prefix


@given(st.integers(0, 10_000))
def test_gaps_are_never_negative(seed: int) -> None:
    memory = StepMemory()
    events = make_events(40, users=1, seed=seed)
    events = events[::-1]  # worst disorder: time runs backwards
    for e in events:
        p = plan_step(memory, e)
        assert min(p.activity_gap_s, p.loan_gap_s, p.post_gap_s) >= 0.0


def test_record_counts_each_loan_once_and_ages_the_last_late_one() -> None:
    book = Ledger()
    for i, (loan, repay_day) in enumerate([("a", 20), ("b", 40), ("c", 200)]):
        book.apply(post(i, loan, term_days=30))
        book.apply(ev(i + 60, Activity.BORROW, loan_id=loan))
        if repay_day > 30:
            book.apply(ev(30 * DAY_S + i, Activity.MISS_PAYMENT, loan_id=loan))
        book.apply(ev(repay_day * DAY_S + i, Activity.REPAY, loan_id=loan))
    record = book.record(as_of=T0 + 210 * DAY_S + 2)
    assert (record.on_time, record.late) == (1, 2)  # b and c: missed, then repaid late
    assert record.days_since_late == pytest.approx(10.0)
    assert Ledger().record(as_of=T0).days_since_late is None
