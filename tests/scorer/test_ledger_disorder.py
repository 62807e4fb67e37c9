"""A user's events read out of event-time order (``scorer.ledger``, "Disorder"): loan events
read before the post or borrow they need are held and put in their place, so the ledger at
every post read after the events before it equals the in-order ledger; beyond ``HOLD_BOUND``
they are given up and counted; in time order nothing held is ever applied."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import due_ts
from scorer.ledger import HOLD_BOUND, PENDING_POST_TTL_S, Held, Ledger
from tests.streams import case_arrival

T0 = 1.5e9


def ev(i: int, ts: float, activity: Activity, loan: str | None = None, **kw: object) -> ClickEvent:
    return ClickEvent(event_id=f"e{i}", user_id="u", ts=ts, activity=activity, amount=100.0,
                      loan_id=loan, **kw)  # fmt: skip


def post(i: int, ts: float, loan: str, term_days: int = 30) -> ClickEvent:
    return ev(i, ts, Activity.POST, loan, rate=0.1, term_days=term_days)


def ledger_at_posts(events: list[ClickEvent]) -> dict[str, tuple]:
    """Debt and record right after each post is applied (what the post's features read), by
    the post's event id."""
    ledger, seen = Ledger(), {}
    for e in events:
        ledger.apply(e)
        if e.activity is Activity.POST:
            seen[e.event_id] = (ledger.debt(e.ts), ledger.record(e.ts))
    return seen


def test_the_case_repay_read_before_its_loan_settles_it_in_its_place() -> None:
    in_order, arrival = case_arrival()
    xl2 = in_order[-1].event_id
    assert ledger_at_posts(arrival)[xl2] == ledger_at_posts(in_order)[xl2]
    ledger = Ledger()
    for e in arrival:
        ledger.apply(e)
    debt = ledger.debt(in_order[-1].ts)
    assert "XL1" not in ledger.loans and debt.overdue == 0.0  # XL1 repaid on time, not overdue
    assert (ledger.on_time, ledger.late, ledger.held, ledger.given_up) == (1, 0, [], 0)


def test_a_held_event_waits_for_the_users_events_to_reach_its_time() -> None:
    """A repay read early settles its loan only once an event at or after its time is read:
    a post of another loan in between (read late too) still sees the loan owed."""
    repay = ev(3, T0 + 20 * DAY_S, Activity.REPAY, "a")
    history = [post(0, T0, "a"), ev(1, T0 + 60, Activity.BORROW, "a"),
               post(2, T0 + 10 * DAY_S, "b"), repay, post(4, T0 + 25 * DAY_S, "c")]  # fmt: skip
    arrival = [repay, *history[:3], history[4]]
    assert ledger_at_posts(arrival) == ledger_at_posts(history)
    assert ledger_at_posts(arrival)["e2"][0].unpaid == 100.0


def test_in_time_order_nothing_held_is_applied() -> None:
    """A repay of a loan posted and funded only after it is ignored, as before holding."""
    history = [ev(0, T0, Activity.REPAY, "a"), post(1, T0 + 1, "a"),
               ev(2, T0 + 2, Activity.BORROW, "a"), post(3, T0 + 3, "b"),
               ev(4, T0 + 4, Activity.REPAY, "b"),  # b not funded: ignored
               ev(5, T0 + 5, Activity.BORROW, "b"), ev(6, T0 + 6, Activity.RECHARGE)]  # fmt: skip
    ledger = Ledger()
    for e in history:
        ledger.apply(e)
    assert set(ledger.loans) == {"a", "b"} and all(v.funded for v in ledger.loans.values())
    assert (ledger.on_time, ledger.held, ledger.given_up) == (0, [], 0)


def test_beyond_the_bound_held_events_are_given_up_and_counted() -> None:
    ledger = Ledger()
    ledger.apply(ev(0, T0, Activity.REPAY, "a"))
    ledger.apply(ev(1, T0 + HOLD_BOUND.seconds, Activity.RECHARGE))  # not more than the bound
    assert len(ledger.held) == 1 and ledger.given_up == 0
    ledger.apply(ev(2, T0 + HOLD_BOUND.seconds + 1, Activity.RECHARGE))
    assert ledger.held == [] and ledger.given_up == 1
    ledger.apply(post(3, T0 - DAY_S, "a"))  # too late: its repay was given up
    ledger.apply(ev(4, T0 - DAY_S + 60, Activity.BORROW, "a"))
    assert ledger.debt(T0 + 40 * DAY_S).overdue == 100.0

    crowded = Ledger()
    for k in range(HOLD_BOUND.events + 2):
        crowded.apply(ev(k, T0 + 100 - k, Activity.REPAY, f"l{k}"))
    assert crowded.given_up == 2  # the earliest ones in event time went first
    kept = [Held(T0 + 100 - k, Activity.REPAY, f"l{k}") for k in range(HOLD_BOUND.events)]
    assert crowded.held == kept[::-1]


def test_a_held_event_of_a_loan_opened_after_it_is_dropped_not_applied() -> None:
    """Posted (or funded) at or after the held event's time: in event time the event came
    first, where it could not apply, so the in-order ledger ignores it."""
    ledger = Ledger()
    ledger.apply(ev(0, T0 + 10, Activity.REPAY, "a"))
    ledger.apply(post(1, T0 + 10, "a"))
    ledger.apply(ev(2, T0 + 20, Activity.BORROW, "a"))
    ledger.apply(ev(3, T0 + 30, Activity.RECHARGE))
    assert ledger.loans["a"].funded and ledger.held == [] and ledger.given_up == 0


@st.composite
def histories(draw: st.DrawFn) -> list[ClickEvent]:
    """One user's loans, interleaved with other activity, in time order with distinct times:
    each posted, most funded within the ledger's funding window and before their due date,
    then repaid early, late, in default or never, with a miss_payment at the due date of any
    loan not repaid by then; a last recharge after everything."""
    stamped: list[tuple[float, Activity, str | None, int | None]] = []
    for k in range(draw(st.integers(1, 6))):
        loan, post_ts = f"l{k}", T0 + draw(st.floats(0.0, 200.0)) * DAY_S
        term = draw(st.sampled_from([7, 30, 90]))
        stamped.append((post_ts, Activity.POST, loan, term))
        if draw(st.integers(0, 3)) == 0:
            continue  # a quarter never funded
        due = due_ts(post_ts, term)
        borrow_ts = post_ts + draw(st.floats(1.0, min(PENDING_POST_TTL_S, due - post_ts) - 1.0))
        stamped.append((borrow_ts, Activity.BORROW, loan, None))
        delay = draw(st.none() | st.floats(-5.0, 200.0))
        repay_ts = None if delay is None else max(due + delay * DAY_S, borrow_ts + 1.0)
        if repay_ts is None or repay_ts > due:
            stamped.append((due, Activity.MISS_PAYMENT, loan, None))
        if repay_ts is not None:
            stamped.append((repay_ts, Activity.REPAY, loan, None))
    for _ in range(draw(st.integers(0, 10))):
        stamped.append((T0 + draw(st.floats(0.0, 400.0)) * DAY_S, Activity.RECHARGE, None, None))
    stamped.sort(key=lambda s: s[0])
    stamped.append((stamped[-1][0] + DAY_S, Activity.RECHARGE, None, None))
    times = [s[0] for s in stamped]
    if len(set(times)) < len(times):  # ties make the in-order ledger depend on arrival
        stamped = [(ts + i * 1e-3, *rest) for i, (ts, *rest) in enumerate(stamped)]
    return [ev(i, ts, activity, loan, **({"rate": 0.1, "term_days": term} if term else {}))
            for i, (ts, activity, loan, term) in enumerate(stamped)]  # fmt: skip


def displaced(history: list[ClickEvent], seed: int, share: float) -> list[ClickEvent]:
    """``history`` with about ``share`` of its borrows, repays and missed payments read
    earlier, each anywhere after the previous displaced one's place (so a user's stream never
    runs past a held event: within ``HOLD_BOUND``), also before its own loan's post."""
    rng = random.Random(seed)
    follow_ups = {Activity.BORROW, Activity.REPAY, Activity.MISS_PAYMENT}
    moved_to: dict[int, list[int]] = {}  # new position -> original indices read there
    start = 0
    for j, e in enumerate(history):
        if e.activity in follow_ups and rng.random() < share:
            moved_to.setdefault(rng.randint(start, j), []).append(j)
            start = j + 1
    moved = {j for js in moved_to.values() for j in js}
    arrival = []
    for i, e in enumerate(history):
        arrival += [history[j] for j in moved_to.get(i, [])]
        if i not in moved:
            arrival.append(e)
    return arrival


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 2**32), st.floats(0.1, 1.0))
def test_with_loan_events_read_early_the_ledger_at_every_later_post_is_the_in_order_one(
    history: list[ClickEvent], seed: int, share: float
) -> None:
    arrival = displaced(history, seed, share)
    assert sorted(arrival, key=lambda e: e.ts) == history
    expected = ledger_at_posts(history)
    got = ledger_at_posts(arrival)
    position = {e.event_id: i for i, e in enumerate(history)}
    read: set[str] = set()
    for e in arrival:  # the posts read after every earlier event and no later one
        if e.activity is Activity.POST and len(read) == position[e.event_id]:
            assert read == {x.event_id for x in history[: position[e.event_id]]}
            assert got[e.event_id] == expected[e.event_id]
        read.add(e.event_id)
    in_order, out_of_order = Ledger(), Ledger()
    for e in history:
        in_order.apply(e)
    for e in arrival:
        out_of_order.apply(e)
    # After the last event everything held has found its place, but for a miss_payment read
    # after its loan's repay (it waits for a loan that is gone; the records agree).
    assert in_order.held == [] and in_order.given_up == 0
    assert all(h.activity is Activity.MISS_PAYMENT for h in out_of_order.held)
    assert msgspec.structs.replace(out_of_order, held=[], given_up=0) == in_order
