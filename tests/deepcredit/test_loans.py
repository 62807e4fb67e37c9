"""The loan-life rules (``deepcredit.loans``) and the readers that share them: the training
labels (``loan_outcomes``), the scorer's ledger and the live labeller see the same loans become
delinquent and default."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import (
    DEFAULT_DELAY_DAYS,
    Labels,
    Loan,
    OutcomeTracker,
    Transition,
    due_ts,
    loan_outcomes,
    step_follow_up,
    step_loan,
    waits_for_loan,
)
from scorer.ledger import PENDING_POST_TTL_S, Ledger, OpenLoan
from scorer.monitors import LoanLabeller

T0 = 1.5e9
#: Timestamps for the properties: one binade of doubles (2**30 to 2**31 s), where a time and
#: a count of days from another time in it compare alike.
TIMES = st.floats(1.1e9, 2.0e9)


def ev(i: int, ts: float, activity: Activity, loan: str | None = "a", **kw: object) -> ClickEvent:
    return ClickEvent(event_id=f"e{i}", user_id="u", ts=ts, activity=activity, amount=100.0,
                      loan_id=loan, **kw)  # fmt: skip


def post(i: int, ts: float, loan: str = "a", term_days: int = 30) -> ClickEvent:
    return ev(i, ts, Activity.POST, loan, rate=0.1, term_days=term_days)


def plain(event: ClickEvent, due: float) -> Loan:
    return Loan(event.amount, due, event.ts)


# --- the rules ----------------------------------------------------------------------------------


def test_due_and_label_boundaries() -> None:
    due = due_ts(T0, 30)
    assert due == T0 + 30 * DAY_S
    loan = Loan(100.0, due, T0, funded=True)
    assert loan.default_ts == due + DEFAULT_DELAY_DAYS * DAY_S
    assert loan.labels(due, repaid=True) == Labels(False, False)  # on the day: on time
    assert loan.labels(due + 1, repaid=True) == Labels(True, False)
    assert loan.labels(loan.default_ts, repaid=True) == Labels(True, False)  # 120 days: late
    assert loan.labels(loan.default_ts + 1, repaid=True) == Labels(True, True)
    assert loan.labels(due, repaid=False) == Labels(None, None)
    assert loan.labels(due + 1, repaid=False) == Labels(True, None)
    assert loan.labels(loan.default_ts, repaid=False) == Labels(True, None)
    assert loan.labels(loan.default_ts + 1, repaid=False) == Labels(True, True)
    unfunded = Loan(100.0, due, T0)
    assert unfunded.labels(loan.default_ts + 1, repaid=False) == Labels(None, None)
    assert loan.delay_days(due + 5 * DAY_S) == 5.0


@given(post_ts=TIMES, term=st.integers(1, 400), repay_days=st.floats(-400.0, 400.0))
def test_repayment_labels_follow_the_delay(post_ts: float, term: int, repay_days: float) -> None:
    loan = Loan(1.0, due_ts(post_ts, term), post_ts, funded=True)
    repay_ts = loan.due_ts + repay_days * DAY_S
    delay = loan.delay_days(repay_ts)
    assert loan.labels(repay_ts, repaid=True) == Labels(delay > 0, delay > DEFAULT_DELAY_DAYS)


@given(due=TIMES, as_of_days=st.floats(-30.0, 300.0), later_days=st.floats(0.0, 300.0))
def test_a_label_known_by_the_clock_is_the_label_of_any_later_repayment(
    due: float, as_of_days: float, later_days: float
) -> None:
    """Censoring never guesses: what the clock says at as_of, a repayment after it confirms."""
    loan = Loan(1.0, due, due - 30 * DAY_S, funded=True)
    as_of = due + as_of_days * DAY_S
    known = loan.labels(as_of, repaid=False)
    final = loan.labels(as_of + later_days * DAY_S, repaid=True)
    assert all(k is None or k == f for k, f in zip(known, final, strict=True))
    assert known.default is None or known.delinquent  # default known only once delinquent


# --- the state machine --------------------------------------------------------------------------


def test_a_loans_life_step_by_step() -> None:
    loans: dict[str, Loan] = {}
    opened = step_loan(loans, post(0, T0), plain)
    assert opened == Transition(Activity.POST, "a", Loan(100.0, T0 + 30 * DAY_S, T0))
    assert step_loan(loans, ev(1, T0 + 1, Activity.REPAY), plain) is None  # not funded yet
    assert step_loan(loans, ev(2, T0 + 2, Activity.MISS_PAYMENT), plain) is None
    assert step_loan(loans, ev(3, T0 + 3, Activity.BORROW), plain).activity is Activity.BORROW
    assert loans["a"].funded
    missed = step_loan(loans, ev(4, T0 + 30 * DAY_S, Activity.MISS_PAYMENT), plain)
    assert missed.activity is Activity.MISS_PAYMENT and "a" in loans
    settled = step_loan(loans, ev(5, T0 + 32 * DAY_S, Activity.REPAY), plain)
    assert (settled.activity, settled.delay_days, loans) == (Activity.REPAY, 2.0, {})
    assert step_loan(loans, ev(6, T0 + 33 * DAY_S, Activity.REPAY), plain) is None  # settled


def test_a_tracker_asked_now_and_then_labels_as_loan_outcomes_does() -> None:
    """``peek`` (the dashboard follows the clicks and asks from time to time) gives the open
    loans' outcomes that ``loan_outcomes`` gives at the same moment, and leaves them open."""
    stream = [post(0, T0), ev(1, T0 + 60, Activity.BORROW), post(2, T0 + 120, loan="b"),
              ev(3, T0 + 180, Activity.BORROW, loan="b"),
              ev(4, T0 + 35 * DAY_S, Activity.REPAY, loan="b")]  # fmt: skip
    tracker = OutcomeTracker()
    for e in stream[:4]:
        assert tracker.update(e) is None
    as_of = T0 + 31 * DAY_S  # both due, neither repaid: delinquent, default not yet known
    peeked = {o.loan_id: o for o in tracker.peek(as_of)}
    assert peeked == loan_outcomes(stream[:4], as_of=as_of)
    assert peeked["b"].delinquent is True and peeked["b"].default is None
    settled = tracker.update(stream[4])  # still open after the peek: its repayment settles it
    assert settled is not None and (settled.delinquent, settled.default) == (True, False)
    assert [o.loan_id for o in tracker.close(as_of)] == ["a"]


def test_events_that_name_no_open_loan_change_nothing() -> None:
    loans: dict[str, Loan] = {}
    assert step_loan(loans, ev(0, T0, Activity.BORROW, "ghost"), plain) is None
    assert step_loan(loans, ev(1, T0, Activity.LEND, None), plain) is None
    assert step_loan(loans, ev(2, T0, Activity.POST, "a", rate=0.1), plain) is None  # no term
    assert step_loan(loans, post(3, T0), lambda e, due: None) is None  # a reader not following
    assert loans == {}


def test_a_second_post_of_an_open_id_keeps_the_first_in_every_reader() -> None:
    """A re-post (a resend under a new event id, or a reused loan id) must not reset a funded
    loan to unfunded: the ledger would forget its debt."""
    kept: dict[str, Loan] = {}
    step_loan(kept, post(0, T0, term_days=30), plain)
    step_loan(kept, ev(1, T0 + 60, Activity.BORROW), plain)
    assert step_loan(kept, post(2, T0 + 120, term_days=90), plain) is None
    assert kept["a"] == Loan(100.0, T0 + 30 * DAY_S, T0, funded=True)
    ledger = Ledger()
    for e in (post(0, T0, term_days=30), ev(1, T0 + 60, Activity.BORROW),
              post(2, T0 + 120, term_days=90)):  # fmt: skip
        ledger.apply(e)
    assert ledger.debt(T0 + 31 * DAY_S).overdue == 100.0


def test_a_loan_event_waits_for_the_post_or_borrow_it_needs() -> None:
    loans: dict[str, Loan] = {}
    assert waits_for_loan(loans, Activity.BORROW, "a")
    assert waits_for_loan(loans, Activity.REPAY, "a")
    assert waits_for_loan(loans, Activity.MISS_PAYMENT, "a")
    assert not waits_for_loan(loans, Activity.POST, "a")
    assert not waits_for_loan(loans, Activity.LEND, "a")
    step_loan(loans, post(0, T0), plain)
    assert not waits_for_loan(loans, Activity.BORROW, "a")
    assert waits_for_loan(loans, Activity.REPAY, "a")  # not funded yet
    assert step_follow_up(loans, Activity.BORROW, "a", T0 + 1).activity is Activity.BORROW
    assert not waits_for_loan(loans, Activity.REPAY, "a")
    settled = step_follow_up(loans, Activity.REPAY, "a", T0 + 31 * DAY_S)
    assert (settled.activity, settled.delay_days, loans) == (Activity.REPAY, 1.0, {})


def test_a_post_drops_posts_unfunded_past_the_funding_window() -> None:
    loans: dict[str, Loan] = {}
    step_loan(loans, post(0, T0, "old"), plain, funding_ttl_s=10.0)
    step_loan(loans, post(1, T0, "funded"), plain, funding_ttl_s=10.0)
    step_loan(loans, ev(2, T0 + 1, Activity.BORROW, "funded"), plain)
    step_loan(loans, post(3, T0 + 10, "b"), plain, funding_ttl_s=10.0)
    assert set(loans) == {"old", "funded", "b"}  # 10 s is not more than 10 s
    step_loan(loans, post(4, T0 + 10.5, "c"), plain, funding_ttl_s=10.0)
    assert set(loans) == {"funded", "b", "c"}
    forever: dict[str, Loan] = {}
    step_loan(forever, post(0, T0, "old"), plain)
    step_loan(forever, post(1, T0 + 1000 * DAY_S, "b"), plain)
    assert set(forever) == {"old", "b"}


def test_the_ledger_snapshot_layout_starts_with_the_loan() -> None:
    """Snapshots store a ledger loan as [amount, due_ts, post_ts, funded, late]; a ledger
    written before it held loan events (four fields) decodes with nothing held and its running
    outcome figures at zero (they count from its next event on)."""
    old = msgspec.msgpack.encode([{"a": [100.0, T0 + 30 * DAY_S, T0, True, False]}, 0, 1, None])
    ledger = msgspec.msgpack.decode(old, type=Ledger)
    assert ledger.loans == {"a": OpenLoan(100.0, T0 + 30 * DAY_S, T0, True, False)}
    assert (ledger.held, ledger.given_up) == ([], 0)
    # Eleven fields: the four, the held list and count, borrowed cents, funded, repays (integer
    # zeros), the delays' sum (a 9-byte float 0.0) and their max (nil).
    zero = b"\xcb" + bytes(8)
    tail = b"\x90\x00" + b"\x00" * 3 + zero + b"\xc0"
    assert msgspec.msgpack.encode(ledger) == b"\x9b" + old[1:] + tail


# --- the readers agree --------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[ClickEvent]:
    """One user's loans, interleaved: each posted, most funded before their due date and
    within the ledger's funding window, then repaid early, late, in default or never, with a
    miss_payment at the due date of any loan not repaid by then."""
    stamped: list[tuple[float, int, Activity, str, int | None]] = []
    for k in range(draw(st.integers(1, 8))):
        loan, post_ts = f"l{k}", T0 + draw(st.floats(0.0, 200.0)) * DAY_S
        term = draw(st.sampled_from([1, 7, 30, 90]))
        stamped.append((post_ts, 0, Activity.POST, loan, term))
        if not draw(st.booleans()) and draw(st.booleans()):
            continue  # a quarter never funded
        due = due_ts(post_ts, term)
        borrow_ts = post_ts + draw(st.floats(1.0, min(PENDING_POST_TTL_S, due - post_ts) - 1.0))
        stamped.append((borrow_ts, 1, Activity.BORROW, loan, None))
        delay = draw(st.none() | st.sampled_from([0.0, 120.0]) | st.floats(-30.0, 300.0))
        repay_ts = None if delay is None else max(due + delay * DAY_S, borrow_ts + 1.0)
        if repay_ts is None or repay_ts > due:
            stamped.append((due, 2, Activity.MISS_PAYMENT, loan, None))
        if repay_ts is not None:
            stamped.append((repay_ts, 3, Activity.REPAY, loan, None))
    stamped.sort(key=lambda s: (s[0], s[1]))
    return [ev(i, ts, activity, loan, **({"rate": 0.1, "term_days": term} if term else {}))
            for i, (ts, _, activity, loan, term) in enumerate(stamped)]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(histories(), st.floats(0.0, 1.0))
def test_ledger_labeller_and_outcomes_agree_on_every_loan(
    history: list[ClickEvent], cut: float
) -> None:
    """Cut a history anywhere: the ledger's overdue and undue loans are the training labels'
    delinquent and censored ones, and the labeller has released exactly the known labels;
    at the end, the ledger's record counts the labels' on-time and delinquent loans."""
    as_of = history[0].ts + cut * (history[-1].ts + DAY_S - history[0].ts)
    ledger, labeller, released = Ledger(), LoanLabeller(), {}
    delays = {}
    for e in history:
        if e.ts > as_of:
            break
        delay = ledger.apply(e)
        if delay is not None:
            delays[e.loan_id] = delay
        scores = (0.3, 0.1) if e.activity is Activity.POST else None
        released |= {(x.loan_id, x.target): x.label for x in labeller.update(e, scores)}
    released |= {(x.loan_id, x.target): x.label for x in labeller.advance(as_of)}
    outcomes = loan_outcomes(history, as_of=as_of).values()
    owed = [o for o in outcomes if o.funded and o.repay_ts is None]
    debt = ledger.debt(as_of)
    assert {k for k, v in ledger.loans.items() if v.funded and v.past_due(as_of)} == {
        o.loan_id for o in owed if o.delinquent
    }
    assert debt.undue_loans == sum(o.delinquent is None for o in owed)
    assert delays == {o.loan_id: o.delay_days for o in outcomes if o.repay_ts is not None}
    known = {(o.loan_id, t): getattr(o, t) for o in outcomes for t in ("delinquent", "default")}
    assert released == {k: label for k, label in known.items() if label is not None}
    if as_of >= history[-1].ts:
        funded = [o for o in outcomes if o.funded]
        settled = [o for o in funded if o.repay_ts is not None]
        assert ledger.on_time == sum(not o.delinquent for o in settled)
        missed = {e.loan_id for e in history if e.activity is Activity.MISS_PAYMENT}
        # A miss_payment at the very end is the ledger's news before the clock's.
        assert ledger.late == sum(o.delinquent or o.loan_id in missed for o in funded)


def test_each_reader_keeps_its_funding_window() -> None:
    """Where the readers differ: the training labels take a borrow whenever it comes; the
    ledger forgets a post unfunded for longer than ``PENDING_POST_TTL_S`` at the user's next
    post; the labeller forgets one still unfunded at its due date."""
    late = T0 + PENDING_POST_TTL_S + DAY_S
    history = [post(0, T0, "a", term_days=7), post(1, late - 1, "b"),
               ev(2, late, Activity.BORROW, "a")]  # fmt: skip
    ledger, labeller = Ledger(), LoanLabeller()
    for e in history:
        ledger.apply(e)
        labeller.update(e, (0.3, 0.1))
    assert set(ledger.loans) == {"b"}
    assert labeller.open_loans == 1  # "b"
    o = loan_outcomes(history, as_of=late)["a"]
    assert (o.funded, o.delinquent, o.default) == (True, True, None)


@pytest.mark.parametrize("repost_days", [5.0, 40.0])
def test_an_id_posted_again_after_repayment_is_a_new_loan(repost_days: float) -> None:
    """Every reader starts the second loan afresh; the labeller's heap still holds the first
    one's due date, which must not label the second."""
    history = [post(0, T0), ev(1, T0 + 60, Activity.BORROW), ev(2, T0 + DAY_S, Activity.REPAY),
               post(3, T0 + repost_days * DAY_S, term_days=90),
               ev(4, T0 + repost_days * DAY_S + 60, Activity.BORROW)]  # fmt: skip
    as_of = T0 + (repost_days + 60) * DAY_S  # past the first due date, before the second
    labeller = LoanLabeller()
    labels = [x for e in history for x in labeller.update(e, (0.3, 0.1))]
    labels += labeller.advance(as_of)
    assert [(x.target, x.label) for x in labels] == [("delinquent", False), ("default", False)]
    o = loan_outcomes(history, as_of=as_of)["a"]
    assert (o.funded, o.delinquent, o.default) == (True, None, None)
